//! Event files: TF's goldens read back as their manifests say, every kind round-trips
//! through the writer, damage is DataLoss with the offset.

#![allow(clippy::unwrap_used)]

mod common;
use common::{scratch, testdata};
use prost::Message;
use serde_json::Value;
use wgtrain_checkpoint::events::{
    self, EventWriter, WriterOptions, default_buckets, read_file, read_records,
};
use wgtrain_checkpoint::proto::{Event, GraphDef, SummaryValueKind, What};
use wgtrain_engine::Code;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn the_golden_event_file_reads_as_its_manifest_says() {
    let m: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("events_manifest.json")).unwrap(),
    )
    .unwrap();
    let path = testdata().join(m["file"].as_str().unwrap());
    let (records, err) = read_file(&path).unwrap();
    assert!(err.is_none(), "{err:?}");
    let want = m["records"].as_array().unwrap();
    assert_eq!(records.len(), want.len());
    assert_eq!(records.len() as u64, m["num_records"].as_u64().unwrap());
    for (r, w) in records.iter().zip(want) {
        let e = &r.event;
        assert_eq!(r.offset, w["offset"].as_u64().unwrap());
        assert_eq!(r.payload_len as u64, w["payload_len"].as_u64().unwrap());
        // Nothing TF wrote is lost in decoding: it encodes back to the same length.
        assert_eq!(e.encoded_len(), r.payload_len);
        assert_eq!(e.wall_time, f(&w["wall_time"]));
        assert_eq!(e.step, w["step"].as_i64().unwrap());
        match (w["kind"].as_str().unwrap(), e.what.as_ref().unwrap()) {
            ("file_version", What::FileVersion(v)) => {
                assert_eq!(v, w["file_version"].as_str().unwrap())
            }
            ("graph_def", What::GraphDef(b)) => {
                assert_eq!(b.len() as u64, w["bytes"].as_u64().unwrap());
                let g = GraphDef::decode(b.as_slice()).unwrap();
                let names: Vec<&str> = g.node.iter().map(|n| n.name.as_str()).collect();
                let want: Vec<&str> = w["node_names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap())
                    .collect();
                assert_eq!(names, want);
            }
            ("meta_graph_def", What::MetaGraphDef(b)) => {
                assert_eq!(b.len() as u64, w["bytes"].as_u64().unwrap())
            }
            ("session_log", What::SessionLog(l)) => {
                let status = match w["status"].as_str().unwrap() {
                    "START" => 1,
                    "STOP" => 2,
                    _ => 3,
                };
                assert_eq!(l.status, status);
            }
            ("summary", What::Summary(s)) => {
                let vals = w["values"].as_array().unwrap();
                assert_eq!(s.value.len(), vals.len());
                for (v, wv) in s.value.iter().zip(vals) {
                    assert_eq!(v.tag, wv["tag"].as_str().unwrap());
                    match (
                        wv["value_kind"].as_str().unwrap(),
                        v.value.as_ref().unwrap(),
                    ) {
                        ("simple_value", SummaryValueKind::SimpleValue(x)) => {
                            let hex = wv["simple_value_f32_hex"].as_str().unwrap();
                            let bits = u32::from_str_radix(hex, 16).unwrap().swap_bytes();
                            assert_eq!(x.to_bits(), bits);
                        }
                        ("histo", SummaryValueKind::Histo(h)) => {
                            let wh = &wv["histo"];
                            assert_eq!(h.min, f(&wh["min"]));
                            assert_eq!(h.max, f(&wh["max"]));
                            assert_eq!(h.num, f(&wh["num"]));
                            assert_eq!(h.sum, f(&wh["sum"]));
                            assert_eq!(h.sum_squares, f(&wh["sum_squares"]));
                            let lim: Vec<f64> = wh["bucket_limit"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(f)
                                .collect();
                            let cnt: Vec<f64> =
                                wh["bucket"].as_array().unwrap().iter().map(f).collect();
                            assert_eq!(h.bucket_limit, lim);
                            assert_eq!(h.bucket, cnt);
                            // Every limit TF wrote is one of the default buckets.
                            for l in &h.bucket_limit {
                                assert!(default_buckets().contains(l), "{l}");
                            }
                        }
                        ("image", SummaryValueKind::Image(i)) => {
                            let wi = &wv["image"];
                            assert_eq!(i64::from(i.height), wi["height"].as_i64().unwrap());
                            assert_eq!(i64::from(i.width), wi["width"].as_i64().unwrap());
                            assert_eq!(i64::from(i.colorspace), wi["colorspace"].as_i64().unwrap());
                            assert_eq!(
                                i.encoded_image_string.len() as u64,
                                wi["encoded_len"].as_u64().unwrap()
                            );
                            assert_eq!(&i.encoded_image_string[..8], b"\x89PNG\r\n\x1a\n");
                        }
                        ("tensor", SummaryValueKind::Tensor(t)) => {
                            let want: Vec<Vec<u8>> = wv["tensor"]["string_val"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|s| s.as_str().unwrap().as_bytes().to_vec())
                                .collect();
                            assert_eq!(t.string_val, want);
                            let plugin = v
                                .metadata
                                .as_ref()
                                .and_then(|m| m.plugin_data.as_ref())
                                .map(|p| p.plugin_name.clone());
                            assert_eq!(plugin.as_deref(), wv["plugin_name"].as_str());
                        }
                        (k, other) => panic!("{k} vs {other:?}"),
                    }
                }
            }
            (k, other) => panic!("{k} vs {other:?}"),
        }
    }
}

#[test]
fn the_hooks_event_file_reads_with_its_checkpoint_logs() {
    let path = testdata().join("ckpt/events.out.tfevents.1795955964.vm");
    let (records, err) = read_file(&path).unwrap();
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        records[0].event.what,
        Some(What::FileVersion("brain.Event:2".into()))
    );
    let checkpoints: Vec<(i64, String)> = records
        .iter()
        .filter_map(|r| match &r.event.what {
            Some(What::SessionLog(l)) if l.status == 3 => {
                Some((r.event.step, l.checkpoint_path.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        checkpoints,
        vec![(0, "model.ckpt".to_string()), (3, "model.ckpt".to_string())]
    );
    assert_eq!(records.len(), 9);
    // The records the manifest lists as rewritten: payload lengths, steps, wall times.
    let m: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("ckpt_manifest.json")).unwrap(),
    )
    .unwrap();
    let rewritten =
        m["path_rewrites"]["events_records_rewritten"]["events.out.tfevents.1795955964.vm"]
            .as_array()
            .unwrap();
    for w in rewritten {
        let r = &records[w["record"].as_u64().unwrap() as usize];
        assert_eq!(
            r.payload_len as u64,
            w["payload_len_after"].as_u64().unwrap()
        );
        assert_eq!(r.event.step, w["step"].as_i64().unwrap());
        assert_eq!(r.event.wall_time, f(&w["wall_time"]));
    }
}

#[test]
fn every_kind_round_trips_through_the_writer() {
    let d = scratch("events", "rt");
    let w = EventWriter::new(&d, WriterOptions::default()).unwrap();
    let name = w.path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let secs = &name["events.out.tfevents.".len()..][..10];
    assert!(secs.chars().all(|c| c.is_ascii_digit()), "{name}");
    let pixels: Vec<u8> = (0..2 * 3 * 5 * 3).map(|i| (i * 7) as u8).collect();
    let mut values = vec![
        events::scalar("loss", 0.25),
        events::histogram_value("w", &[-1.0, 0.0, 0.0, 2.5, 1e-13, -3e30]),
        events::text_value("notes", "hello ✓"),
    ];
    values.extend(events::image_values("img", &pixels, [2, 3, 5, 3], 2).unwrap());
    w.add_summary(7, values.clone()).unwrap();
    w.add_summary(8, vec![events::text_value("notes", "again")])
        .unwrap();
    w.add(events::session_log(9, 3, "model.ckpt-9")).unwrap();
    w.add(events::event(0, What::GraphDef(vec![1, 2, 3])))
        .unwrap();
    w.close().unwrap();
    // After close, writing is an error.
    let e = w.add_summary(10, vec![]).unwrap_err();
    assert_eq!(e.code, Code::FailedPrecondition);
    let (records, err) = read_file(&w.path()).unwrap();
    assert!(err.is_none());
    let evs: Vec<&Event> = records.iter().map(|r| &r.event).collect();
    assert_eq!(evs.len(), 5);
    assert_eq!(evs[0].what, Some(What::FileVersion("brain.Event:2".into())));
    assert_eq!(evs[1].step, 7);
    let Some(What::Summary(s)) = &evs[1].what else {
        panic!()
    };
    assert_eq!(s.value, values);
    let tags: Vec<&str> = s.value.iter().map(|v| v.tag.as_str()).collect();
    assert_eq!(tags, ["loss", "w", "notes", "img/image/0", "img/image/1"]);
    // The text plugin's metadata only the first time the tag appears.
    let Some(What::Summary(s2)) = &evs[2].what else {
        panic!()
    };
    assert!(s2.value[0].metadata.is_none());
    // The histogram: counts per TF's buckets.
    let Some(SummaryValueKind::Histo(h)) = &s.value[1].value else {
        panic!()
    };
    assert_eq!(h.num, 6.0);
    assert_eq!(h.bucket.iter().sum::<f64>(), 6.0);
    assert_eq!(h.min, -3e30);
    // The PNG decodes to the pixels.
    let Some(SummaryValueKind::Image(img)) = &s.value[3].value else {
        panic!()
    };
    let dec = png::Decoder::new(std::io::Cursor::new(img.encoded_image_string.clone()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    assert_eq!(&buf[..45], &pixels[..45]);
}

#[test]
fn a_flipped_byte_or_a_truncated_tail_is_data_loss_with_the_offset() {
    let path = testdata().join("events/events.out.tfevents.1795955967.vm");
    let bytes = std::fs::read(&path).unwrap();
    let (all, _) = read_records(&bytes, "golden");
    // Flip a payload byte of record 6: the five before it are returned.
    let at = all[6].offset as usize + 14;
    let mut bad = bytes.clone();
    bad[at] ^= 0x10;
    let (got, err) = read_records(&bad, "golden");
    assert_eq!(got.len(), 6);
    let err = err.unwrap();
    assert_eq!(err.code, Code::DataLoss);
    assert!(
        err.message.contains(&format!("offset {}", all[6].offset)),
        "{err}"
    );
    // A flipped length byte.
    let mut bad = bytes.clone();
    bad[all[3].offset as usize] ^= 1;
    let (got, err) = read_records(&bad, "golden");
    assert_eq!(got.len(), 3);
    assert!(err.unwrap().message.contains("length checksum"));
    // A truncated tail: every complete record, then the truncation.
    let cut = &bytes[..bytes.len() - 5];
    let (got, err) = read_records(cut, "golden");
    assert_eq!(got.len(), all.len() - 1);
    let err = err.unwrap();
    assert_eq!(err.code, Code::DataLoss);
    assert!(err.message.contains("truncated"), "{err}");
}

#[test]
fn one_writer_per_directory_closed_with_its_owner_and_float_images_as_tf() {
    let d = scratch("events", "cache");
    let writers = events::EventWriters::new();
    let a = writers.get(&d).unwrap();
    let b = writers.get(&d).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    a.add_summary(1, vec![events::scalar("x", 1.0)]).unwrap();
    // Another owner opens a file of its own beside it.
    let other = events::EventWriters::new().get(&d).unwrap();
    assert_ne!(other.path(), a.path());
    writers.close_all(None).unwrap();
    assert!(!a.is_open());
    let e = a.add_summary(2, vec![]).unwrap_err();
    assert_eq!(e.code, Code::FailedPrecondition);
    assert!(e.message.contains("closed"), "{e}");
    let (got, err) = read_records(&std::fs::read(a.path()).unwrap(), "a");
    assert!(err.is_none());
    assert_eq!(
        got.len(),
        2,
        "file version and the summary, flushed at close"
    );
    // After close, the owner opens a new file.
    let c = writers.get(&d).unwrap();
    assert_ne!(c.path(), a.path());
    other.close().unwrap();
    // Non-negative floats: the largest becomes 255; with negatives 0.0 maps to 128.
    assert_eq!(events::float_pixels(&[0.0, 0.5, 1.0]), vec![0, 128, 255]);
    assert_eq!(events::float_pixels(&[-1.0, 0.0, 0.5]), vec![1, 128, 192]);
}

#[test]
fn graph_summaries_are_fetched_asynchronously_and_written_by_the_writer() {
    use wgtrain_engine::{DType, Executor, Graph, HostTensor};
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[2, 3, 3, 1]).unwrap();
    let loss = g.reduce_mean(x, &[], false).unwrap();
    let s1 = g
        .name_scope("metrics", |g| g.scalar_summary("loss", loss))
        .unwrap();
    g.histogram_summary("pixels", x).unwrap();
    g.image_summary("digits", x, 3).unwrap();
    g.text_summary("notes", "**hello**").unwrap();
    assert_eq!(g.name(s1), "metrics/loss");
    let bad = g.scalar_summary("not_scalar", x).unwrap_err();
    assert_eq!(bad.code, Code::InvalidArgument);
    let merged = g.merge_all_summaries();
    assert_eq!(merged.specs.len(), 4);
    assert_eq!(merged.fetches().len(), 3);
    let mut s = wgtrain_engine::Reference::new(g);
    let d = scratch("events", "graph-summaries");
    let w = EventWriter::new(&d, WriterOptions::default()).unwrap();
    let xs: Vec<f32> = (0..18).map(|i| i as f32 / 17.0).collect();
    let feed = HostTensor::from_f32(&[2, 3, 3, 1], xs.clone()).unwrap();
    for step in [1, 2] {
        let pending = s
            .run_async(&[(x, feed.clone())], &merged.fetches(), &[])
            .unwrap();
        w.add_pending(step, merged.clone(), pending).unwrap();
    }
    w.close().unwrap();
    let (records, err) = read_file(&w.path()).unwrap();
    assert!(err.is_none());
    assert_eq!(records.len(), 3);
    let Some(What::Summary(sum)) = &records[1].event.what else {
        panic!("{:?}", records[1])
    };
    let tags: Vec<&str> = sum.value.iter().map(|v| v.tag.as_str()).collect();
    assert_eq!(
        tags,
        [
            "metrics/loss",
            "pixels",
            "digits/image/0",
            "digits/image/1",
            "notes"
        ]
    );
    let Some(SummaryValueKind::SimpleValue(l)) = sum.value[0].value else {
        panic!()
    };
    assert!((l - 0.5).abs() < 1e-6);
    let Some(SummaryValueKind::Histo(h)) = &sum.value[1].value else {
        panic!()
    };
    assert_eq!(h.num, 18.0);
    assert_eq!(records[2].event.step, 2);
}

#[test]
fn two_writers_within_one_second_keep_both_files() {
    // Two runs into one directory in the same second: before, the second writer took
    // the first's name and truncated its file.
    let d = scratch("events", "twice");
    let a = EventWriter::new(&d, WriterOptions::default()).unwrap();
    a.add_summary(1, vec![events::scalar("loss", 1.0)]).unwrap();
    a.close().unwrap();
    let b = EventWriter::new(&d, WriterOptions::default()).unwrap();
    b.add_summary(2, vec![events::scalar("loss", 2.0)]).unwrap();
    b.close().unwrap();
    assert_ne!(a.path(), b.path());
    let files = events::event_files(&d).unwrap();
    assert_eq!(files.len(), 2, "{files:?}");
    let pid = format!(".{}.", std::process::id());
    let mut steps = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.contains(&pid), "{name}: the process id in the name");
        let (records, err) = read_file(f).unwrap();
        assert!(err.is_none());
        steps.extend(
            records
                .iter()
                .filter(|r| r.event.step > 0)
                .map(|r| r.event.step),
        );
    }
    steps.sort_unstable();
    assert_eq!(steps, vec![1, 2], "both runs' points are on disk");
}
