//! Readers never panic: deterministic mutation tests of every file wgtrain reads. Each
//! reader gets thousands of damaged copies of a valid file (bytes flipped, set to 0xff,
//! zeroed, truncated, inserted, removed; a fixed seed per case) and must answer each
//! with a value or an error, never a panic or an allocation the file cannot back.

#![allow(clippy::unwrap_used)]

mod common;

use common::scratch;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use wgtrain_checkpoint::events::{self, read_records};
use wgtrain_checkpoint::graph_export::parse_pbtxt;
use wgtrain_checkpoint::state::CheckpointState;
use wgtrain_checkpoint::{BundleReader, Tensor, TfDType, write_bundle};
use wgtrain_engine::rng::Stream;

const CASES: u64 = 2000;

/// A damaged copy of `orig`, decided by case `case` of stream `site`.
fn mutate(orig: &[u8], site: u64, case: u64) -> Vec<u8> {
    let mut r = Stream::new((site, case));
    let mut b = orig.to_vec();
    let pick =
        |r: &mut Stream, n: usize| ((r.uniform() * n as f64) as usize).min(n.saturating_sub(1));
    let edits = 1 + pick(&mut r, 4);
    for _ in 0..edits {
        if b.is_empty() {
            b.push(0xff);
        }
        let at = pick(&mut r, b.len());
        match pick(&mut r, 6) {
            0 => b[at] ^= 1 << pick(&mut r, 8),
            1 => {
                let end = (at + 1 + pick(&mut r, 12)).min(b.len());
                b[at..end].fill(0xff);
            }
            2 => {
                let end = (at + 1 + pick(&mut r, 12)).min(b.len());
                b[at..end].fill(0);
            }
            3 => b.truncate(at),
            4 => {
                let junk: Vec<u8> = (0..1 + pick(&mut r, 16))
                    .map(|_| pick(&mut r, 256) as u8)
                    .collect();
                b.splice(at..at, junk);
            }
            _ => {
                let end = (at + 1 + pick(&mut r, 16)).min(b.len());
                b.drain(at..end);
            }
        }
    }
    b
}

/// Runs `read` on `CASES` mutations of `orig`; returns the cases that panicked.
fn never_panics(what: &str, site: u64, orig: &[u8], mut read: impl FnMut(&[u8])) {
    let mut panicked = Vec::new();
    let trace = std::env::var_os("WGTRAIN_MUTATION_TRACE").is_some();
    for case in 0..CASES {
        let b = mutate(orig, site, case);
        if trace {
            eprintln!("{what} case {case}: {:?}", String::from_utf8_lossy(&b));
        }
        if catch_unwind(AssertUnwindSafe(|| read(&b))).is_err() {
            panicked.push(case);
        }
    }
    eprintln!("{what}: {CASES} mutated files, {} panics", panicked.len());
    assert!(
        panicked.is_empty(),
        "{what}: cases {panicked:?} of site {site} panicked"
    );
}

/// A bundle of every kind of tensor: floats, ints, a scalar, strings.
fn bundle(dir: &Path) -> std::path::PathBuf {
    let prefix = dir.join("model.ckpt-7");
    let floats: Vec<u8> = (0..24)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    let ints: Vec<u8> = (0..6).flat_map(|i: i64| (i - 3).to_le_bytes()).collect();
    let tensors = vec![
        (
            "dense/kernel".to_string(),
            Tensor::from_bytes(TfDType::Float, &[4, 6], floats).unwrap(),
        ),
        (
            "global_step".to_string(),
            Tensor::from_bytes(TfDType::Int64, &[], 7i64.to_le_bytes().to_vec()).unwrap(),
        ),
        (
            "ints".to_string(),
            Tensor::from_bytes(TfDType::Int64, &[2, 3], ints).unwrap(),
        ),
        (
            "names".to_string(),
            Tensor::from_strings(
                &[3],
                vec![b"a".to_vec(), b"bc".to_vec(), vec![0xe2, 0x9c, 0x93]],
            )
            .unwrap(),
        ),
    ];
    write_bundle(&prefix, &tensors).unwrap();
    prefix
}

fn read_all(prefix: &Path) {
    if let Ok(r) = BundleReader::open(prefix) {
        for (name, _, _) in r.list() {
            let _ = r.get(&name);
        }
        let _ = r.verify();
    }
}

#[test]
fn the_bundle_index_reader_never_panics() {
    let dir = scratch("mutation", "index");
    let prefix = bundle(&dir);
    let index = wgtrain_checkpoint::bundle::index_path(&prefix);
    let orig = std::fs::read(&index).unwrap();
    never_panics("bundle index", 1, &orig, |b| {
        std::fs::write(&index, b).unwrap();
        read_all(&prefix);
    });
}

#[test]
fn the_bundle_data_reader_never_panics() {
    let dir = scratch("mutation", "data");
    let prefix = bundle(&dir);
    let data = wgtrain_checkpoint::bundle::data_path(&prefix, 0, 1);
    let orig = std::fs::read(&data).unwrap();
    never_panics("bundle data", 2, &orig, |b| {
        std::fs::write(&data, b).unwrap();
        read_all(&prefix);
    });
}

#[test]
fn the_state_file_parser_never_panics() {
    let st = CheckpointState {
        model_checkpoint_path: "model.ckpt-9".into(),
        all_model_checkpoint_paths: vec!["model.ckpt-8".into(), "model.ckpt-9".into()],
        all_model_checkpoint_timestamps: vec![1.5e9, 1.6e9],
        last_preserved_timestamp: 1.4e9,
    };
    let text = st.to_text();
    never_panics("state file", 3, text.as_bytes(), |b| {
        let _ = CheckpointState::parse(&String::from_utf8_lossy(b));
    });
}

#[test]
fn the_event_file_reader_never_panics() {
    let dir = scratch("mutation", "events");
    let w = events::EventWriter::new(&dir, Default::default()).unwrap();
    w.add_summary(
        3,
        vec![events::scalar("loss", 0.5), events::text_value("t", "x")],
    )
    .unwrap();
    w.add_summary(4, vec![events::histogram_value("h", &[1.0, 2.0, -3.0])])
        .unwrap();
    w.close().unwrap();
    let orig = std::fs::read(w.path()).unwrap();
    never_panics("event file", 4, &orig, |b| {
        let _ = read_records(b, "mutated");
    });
}

#[test]
fn the_graph_pbtxt_parser_never_panics() {
    let text = "node {\n  name: \"x\"\n  op: \"Placeholder\"\n  attr {\n    key: \"dtype\"\n    value {\n      type: DT_FLOAT\n    }\n  }\n  attr {\n    key: \"shape\"\n    value {\n      shape {\n        dim {\n          size: -1\n        }\n      }\n    }\n  }\n}\nnode {\n  name: \"c\"\n  op: \"Const\"\n  attr {\n    key: \"value\"\n    value {\n      tensor {\n        dtype: DT_FLOAT\n        float_val: 1.5\n        string_val: \"a\\\\001\"\n      }\n    }\n  }\n}\nversions {\n  producer: 27\n}\n";
    assert!(parse_pbtxt(text).is_ok());
    never_panics("graph.pbtxt", 5, text.as_bytes(), |b| {
        let _ = parse_pbtxt(&String::from_utf8_lossy(b));
    });
}
