//! TF-written goldens (testdata/tf) read back exactly as their manifests say,
//! and rewritten byte for byte.

#![allow(clippy::unwrap_used)]

mod common;
use common::testdata;
use serde_json::Value;
use std::path::PathBuf;
use wgtrain_checkpoint::bundle::{self, BundleReader, serialize};
use wgtrain_checkpoint::{Data, Tensor, TfDType, latest_checkpoint};

fn manifest() -> Value {
    let text = std::fs::read_to_string(testdata().join("ckpt_manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "NaN" => f64::NAN,
        Value::String(s) if s == "Infinity" => f64::INFINITY,
        Value::String(s) if s == "-Infinity" => f64::NEG_INFINITY,
        Value::Bool(b) => f64::from(u8::from(*b)),
        v => v.as_f64().unwrap(),
    }
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

#[test]
fn mts_checkpoints_read_as_the_manifest_says() {
    let m = manifest();
    for prefix in ["model.ckpt-0", "model.ckpt-3"] {
        let c = &m["checkpoints"][prefix];
        let r = BundleReader::open(testdata().join("ckpt").join(prefix)).unwrap();
        assert_eq!(r.header.num_shards, 1);
        assert_eq!(r.header.endianness, 0);
        assert_eq!(r.header.version.as_ref().unwrap().producer, 1);
        let vars = c["variables"].as_object().unwrap();
        assert_eq!(r.list().len(), vars.len());
        assert_eq!(vars.len() as u64, c["num_variables"].as_u64().unwrap());
        for (name, v) in vars {
            let e = r.entry(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(
                e.dtype.code() as u64,
                v["dtype_enum"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(e.dtype.name(), v["dtype"].as_str().unwrap(), "{name}");
            let shape: Vec<usize> = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(e.shape, shape, "{name}");
            let ie = &v["index_entry"];
            assert_eq!(
                e.proto.offset as u64,
                ie["offset"].as_u64().unwrap(),
                "{name}"
            );
            assert_eq!(e.proto.size as u64, ie["size"].as_u64().unwrap(), "{name}");
            assert_eq!(
                u64::from(e.proto.crc32c),
                ie["crc32c_masked"].as_u64().unwrap(),
                "{name}"
            );
            let t = r.get(name).unwrap();
            if let Some(h) = v.get("raw_le_hex") {
                let Data::Bytes(b) = &t.data else {
                    panic!("{name}")
                };
                assert_eq!(b, &hex(h.as_str().unwrap()), "{name}");
            }
            if let Some(vals) = v.get("values_hex") {
                let Data::Strings(s) = &t.data else {
                    panic!("{name}")
                };
                let want: Vec<Vec<u8>> = vals
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| hex(x.as_str().unwrap()))
                    .collect();
                assert_eq!(s, &want, "{name}");
            } else if let Some(vals) = v.get("values").and_then(Value::as_array) {
                let got = t.to_f64().unwrap();
                assert_eq!(got.len(), vals.len(), "{name}");
                for (g, w) in got.iter().zip(vals) {
                    let w = as_f64(w);
                    // int64 extremes go through f64 in both.
                    assert!(same(*g, w), "{name}: {g} vs {w}");
                }
            }
            if let Some(samples) = v.get("sample_flat_index").and_then(Value::as_object) {
                let got = t.to_f64().unwrap();
                for (k, w) in samples {
                    let i: usize = k.parse().unwrap();
                    // serde_json's decimal parsing may miss the last f64 bit.
                    assert_eq!(got[i] as f32, as_f64(w) as f32, "{name}[{i}]");
                }
                let sum: f64 = got.iter().sum();
                let want = v["sum_f64"].as_f64().unwrap();
                assert!(
                    (sum - want).abs() < 1e-6 * want.abs().max(1.0),
                    "{name} sum"
                );
            }
        }
        // The table's layout, block by block.
        let it = &c["index_table"];
        let db = &it["data_blocks"][0];
        let b = &r.table.data_blocks[0];
        assert_eq!(b.offset, db["offset"].as_u64().unwrap());
        assert_eq!(b.size, db["size"].as_u64().unwrap());
        assert_eq!(b.entries as u64, db["num_entries"].as_u64().unwrap());
        assert_eq!(b.restarts as u64, db["num_restarts"].as_u64().unwrap());
        assert_eq!(
            b.separator,
            db["index_separator_key"].as_str().unwrap().as_bytes()
        );
        assert_eq!(
            r.table.index_block.offset,
            it["index_block"]["offset"].as_u64().unwrap()
        );
        assert_eq!(
            r.table.metaindex_block.size,
            it["metaindex_block"]["size"].as_u64().unwrap()
        );
    }
}

/// Reads every tensor of the bundle at `prefix` and writes them again: the bytes must be
/// TF's.
fn rewrite_matches(prefix: PathBuf) {
    let r = BundleReader::open(&prefix).unwrap();
    let tensors: Vec<(String, Tensor)> = r
        .list()
        .into_iter()
        .map(|(n, _, _)| {
            let t = r.get(&n).unwrap();
            (n, t)
        })
        .collect();
    let (index, data) = serialize(&tensors).unwrap();
    let tf_index = std::fs::read(bundle::index_path(&prefix)).unwrap();
    let tf_data = std::fs::read(bundle::data_path(&prefix, 0, 1)).unwrap();
    assert_eq!(data.len(), tf_data.len());
    assert!(data == tf_data, "data file differs from TF's");
    assert_eq!(index.len(), tf_index.len());
    assert!(index == tf_index, "index file differs from TF's");
}

#[test]
fn rewriting_tf_bundles_gives_tfs_bytes() {
    rewrite_matches(testdata().join("ckpt/model.ckpt-3"));
    rewrite_matches(testdata().join("ckpt_relative/model.ckpt-7"));
    rewrite_matches(testdata().join("bundle_multiblock/many_keys"));
}

#[test]
fn the_multiblock_index_reads_every_key() {
    let m = manifest();
    let mb = &m["bundle_multiblock"];
    let r = BundleReader::open(testdata().join("bundle_multiblock/many_keys")).unwrap();
    let list = r.list();
    assert_eq!(list.len() as u64, mb["num_tensors"].as_u64().unwrap());
    assert_eq!(r.table.data_blocks.len(), 2);
    for (b, want) in r
        .table
        .data_blocks
        .iter()
        .zip(mb["index_table"]["data_blocks"].as_array().unwrap())
    {
        assert_eq!(b.offset, want["offset"].as_u64().unwrap());
        assert_eq!(b.size, want["size"].as_u64().unwrap());
        assert_eq!(b.entries as u64, want["num_entries"].as_u64().unwrap());
        assert_eq!(b.restarts as u64, want["num_restarts"].as_u64().unwrap());
        assert_eq!(
            b.separator,
            want["index_separator_key"].as_str().unwrap().as_bytes()
        );
    }
    assert_eq!(list[0].0, mb["first_keys_sorted"][0].as_str().unwrap());
    assert_eq!(list[3999].0, mb["last_key_sorted"].as_str().unwrap());
    // value_i = 0.25 * i, with i in the key.
    for (name, dtype, shape) in &list {
        assert_eq!(*dtype, TfDType::Float);
        assert!(shape.is_empty());
        let i: f64 = name["multiblock/layer_".len().."multiblock/layer_".len() + 5]
            .parse()
            .unwrap();
        assert_eq!(r.get(name).unwrap().to_f64().unwrap(), vec![0.25 * i]);
    }
}

#[test]
fn latest_checkpoint_resolves_the_goldens() {
    let d = testdata();
    assert_eq!(
        latest_checkpoint(d.join("ckpt")).unwrap(),
        d.join("ckpt").join("model.ckpt-3")
    );
    let p = latest_checkpoint(d.join("ckpt_relative")).unwrap();
    assert_eq!(p, d.join("ckpt_relative").join("model.ckpt-7"));
    let r = BundleReader::open(&p).unwrap();
    assert_eq!(r.get("global_step").unwrap().to_f64().unwrap(), vec![7.0]);
    assert_eq!(r.get("w").unwrap().to_f64().unwrap(), vec![0.5, -0.5]);
    // No state file: none.
    assert!(latest_checkpoint(d.join("bundle_multiblock")).is_none());
    let st = wgtrain_checkpoint::state::read_state(&d.join("ckpt"))
        .unwrap()
        .unwrap();
    let m = manifest();
    assert_eq!(
        st.to_text(),
        m["checkpoint_state_file_text"].as_str().unwrap()
    );
}
