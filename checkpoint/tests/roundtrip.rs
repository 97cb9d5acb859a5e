//! Write→read round trips for every dtype and odd shapes, damage reported as DataLoss,
//! and crash safety: a save interrupted between any two file operations never leaves
//! `latest_checkpoint` naming a checkpoint that reads wrong.

#![allow(clippy::unwrap_used)]

mod common;
use common::scratch;
use std::path::Path;
use wgtrain_checkpoint::bundle::{self, BundleReader, Fault, write_bundle, write_bundle_with};
use wgtrain_checkpoint::error::{Code, Error, Result};
use wgtrain_checkpoint::state::{CheckpointState, write_state, write_state_with};
use wgtrain_checkpoint::{HostTensor, Tensor, TfDType, latest_checkpoint};

/// A fresh empty directory under the system's temporary directory.
fn tensors() -> Vec<(String, Tensor)> {
    let mut v = Vec::new();
    let mut add = |name: &str, t: Tensor| v.push((name.to_string(), t));
    let seq = |n: usize, s: usize| {
        (0..n * s)
            .map(|i| (i * 37 % 251) as u8)
            .collect::<Vec<u8>>()
    };
    for (dt, shape) in [
        (TfDType::Float, vec![]),
        (TfDType::Float, vec![300, 300]),
        (TfDType::Float, vec![0]),
        (TfDType::Float, vec![3, 0, 2]),
        (TfDType::Double, vec![4]),
        (TfDType::Int32, vec![2, 3]),
        (TfDType::UInt32, vec![5]),
        (TfDType::Int64, vec![]),
        (TfDType::UInt8, vec![7]),
        (TfDType::Int8, vec![3]),
        (TfDType::Int16, vec![2]),
        (TfDType::UInt16, vec![2]),
        (TfDType::Half, vec![3]),
        (TfDType::BFloat16, vec![3]),
        (TfDType::UInt64, vec![1]),
    ] {
        let n: usize = shape.iter().product();
        let bytes = seq(n, dt.size().unwrap());
        add(
            &format!("t/{}_{}", dt.name(), shape.len()),
            Tensor::from_bytes(dt, &shape, bytes).unwrap(),
        );
    }
    add(
        "t/bool",
        Tensor::from_bytes(TfDType::Bool, &[3], vec![1, 0, 1]).unwrap(),
    );
    add(
        "t/strings",
        Tensor::from_strings(
            &[2, 2],
            vec![b"".to_vec(), b"a\0b".to_vec(), vec![0xff; 200], "€".into()],
        )
        .unwrap(),
    );
    add(
        "t/empty_strings",
        Tensor::from_strings(&[0], vec![]).unwrap(),
    );
    v
}

#[test]
fn every_dtype_and_odd_shape_round_trips() {
    let d = scratch("ckpt", "rt");
    let prefix = d.join("model.ckpt-1");
    let ts = tensors();
    write_bundle(&prefix, &ts).unwrap();
    let r = BundleReader::open(&prefix).unwrap();
    assert_eq!(r.list().len(), ts.len());
    for (name, t) in &ts {
        assert_eq!(&r.get(name).unwrap(), t, "{name}");
    }
    assert!(r.verify().iter().all(|(_, ok)| ok.is_ok()));
    // Engine tensors convert both ways.
    let h = HostTensor::from_i64(&[2], vec![i64::MIN, 5]).unwrap();
    let back = Tensor::from_host(&h).to_host().unwrap();
    assert_eq!(back, h);
    let e = r.get("t/float16_1").unwrap().to_host().unwrap_err();
    assert_eq!(e.code, Code::Unimplemented);
    // Duplicate and missing names.
    let dup = vec![ts[0].clone(), ts[0].clone()];
    assert_eq!(
        write_bundle(&d.join("dup"), &dup).unwrap_err().code,
        Code::InvalidArgument
    );
    assert_eq!(r.get("nope").unwrap_err().code, Code::NotFound);
    assert_eq!(
        BundleReader::open(d.join("absent")).err().map(|e| e.code),
        Some(Code::NotFound)
    );
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

fn truncate(path: &Path, by: usize) {
    let b = std::fs::read(path).unwrap();
    std::fs::write(path, &b[..b.len() - by]).unwrap();
}

#[test]
fn damage_is_data_loss_naming_the_file_and_tensor() {
    let d = scratch("ckpt", "damage");
    let ts = tensors();
    let fresh = |name: &str| {
        let p = d.join(name);
        write_bundle(&p, &ts).unwrap();
        p
    };
    // A flipped byte in the data file: the tensor there fails its checksum.
    let p = fresh("flip_data");
    let r = BundleReader::open(&p).unwrap();
    let at = r.entry("t/float32_2").unwrap().proto.offset as usize + 1000;
    flip(&bundle::data_path(&p, 0, 1), at);
    let e = r.get("t/float32_2").unwrap_err();
    assert_eq!(e.code, Code::DataLoss, "{e}");
    assert!(e.message.contains("t/float32_2") && e.message.contains(".data-00000-of-00001"));
    // Other tensors still read.
    assert!(r.get("t/int32_2").is_ok());
    let bad: Vec<String> = r
        .verify()
        .into_iter()
        .filter(|(_, res)| res.is_err())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(bad, vec!["t/float32_2".to_string()]);
    // A flipped byte anywhere in the index: DataLoss on open.
    let p = fresh("flip_index");
    let len = std::fs::metadata(bundle::index_path(&p)).unwrap().len() as usize;
    for at in [3, len / 2, len - 60, len - 3] {
        let q = fresh(&format!("flip_index_{at}"));
        flip(&bundle::index_path(&q), at);
        let e = BundleReader::open(&q).err().unwrap();
        assert_eq!(e.code, Code::DataLoss, "byte {at}: {e}");
        assert!(e.message.contains(".index"), "{e}");
    }
    // Truncated files.
    let p = fresh("trunc_data");
    truncate(&bundle::data_path(&p, 0, 1), 10);
    let r = BundleReader::open(&p).unwrap();
    let last = r
        .list()
        .into_iter()
        .map(|(n, _, _)| n)
        .max_by_key(|n| r.entry(n).unwrap().proto.offset)
        .unwrap();
    let e = r.get(&last).unwrap_err();
    assert_eq!(e.code, Code::DataLoss, "{e}");
    assert!(
        e.message.contains("truncated") && e.message.contains(&last),
        "{e}"
    );
    let p = fresh("trunc_index");
    truncate(&bundle::index_path(&p), 7);
    assert_eq!(BundleReader::open(&p).err().unwrap().code, Code::DataLoss);
    let p = fresh("trunc_index_small");
    std::fs::write(bundle::index_path(&p), b"abc").unwrap();
    assert_eq!(BundleReader::open(&p).err().unwrap().code, Code::DataLoss);
}

/// Fails at the `n`th file operation.
struct CrashAt {
    n: usize,
    seen: usize,
}

impl Fault for CrashAt {
    fn before(&mut self, what: &str) -> Result<()> {
        self.seen += 1;
        if self.seen == self.n {
            return Err(Error::new(Code::Aborted, format!("crash before {what}")));
        }
        Ok(())
    }
}

/// One save as the saver does it: the bundle, then the state file naming it.
fn save(dir: &Path, step: u64, ts: &[(String, Tensor)], fault: &mut dyn Fault) -> Result<()> {
    let name = format!("model.ckpt-{step}");
    write_bundle_with(&dir.join(&name), ts, fault)?;
    let mut st = wgtrain_checkpoint::state::read_state(dir)?.unwrap_or_default();
    st.all_model_checkpoint_paths.push(name.clone());
    st.model_checkpoint_path = name;
    write_state_with(dir, &st, fault)
}

#[test]
fn a_crash_between_any_two_file_operations_leaves_a_valid_latest_checkpoint() {
    let ts = tensors();
    let mut changed = ts.clone();
    changed[0].1 = Tensor::from_bytes(TfDType::Float, &[], 9.5f32.to_le_bytes().to_vec()).unwrap();
    // Count the operations of one save.
    let mut count = CrashAt {
        n: usize::MAX,
        seen: 0,
    };
    let d = scratch("ckpt", "count");
    save(&d, 1, &ts, &mut count).unwrap();
    let ops = count.seen;
    assert!(ops >= 9, "{ops} operations");
    for n in 1..=ops {
        let d = scratch("ckpt", &format!("crash{n}"));
        save(&d, 1, &ts, &mut wgtrain_checkpoint::bundle::NoFault).unwrap();
        let e = save(&d, 2, &changed, &mut CrashAt { n, seen: 0 }).unwrap_err();
        assert_eq!(e.code, Code::Aborted);
        let latest = latest_checkpoint(&d).expect("a checkpoint survives");
        let r = BundleReader::open(&latest).unwrap();
        let all_ok = r.verify().iter().all(|(_, ok)| ok.is_ok());
        assert!(all_ok, "crash at op {n}: {} reads wrong", latest.display());
        // It is the old checkpoint, with the old values.
        assert!(latest.ends_with("model.ckpt-1"), "crash at op {n}");
        assert_eq!(r.get(&ts[0].0).unwrap(), ts[0].1);
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("tempstate"))
            .collect();
        assert!(leftovers.is_empty(), "crash at op {n}: {leftovers:?}");
    }
}

#[test]
fn state_files_round_trip_with_escapes_and_timestamps() {
    let st = CheckpointState {
        model_checkpoint_path: "/abs/with \"quote\"/model.ckpt-9".into(),
        all_model_checkpoint_paths: vec![
            "model.ckpt-3".into(),
            "/abs/with \"quote\"/model.ckpt-9".into(),
        ],
        all_model_checkpoint_timestamps: vec![1.5e9, 1.6e9],
        last_preserved_timestamp: 1.4e9,
    };
    let back = CheckpointState::parse(&st.to_text()).unwrap();
    assert_eq!(back, st);
    let e = CheckpointState::parse("model_checkpoint_path: \"unterminated\n").unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    // The state names a prefix whose index is missing: none.
    let d = scratch("ckpt", "state");
    write_state(
        &d,
        &CheckpointState {
            model_checkpoint_path: "model.ckpt-5".into(),
            all_model_checkpoint_paths: vec!["model.ckpt-5".into()],
            ..Default::default()
        },
    )
    .unwrap();
    assert!(latest_checkpoint(&d).is_none());
    write_bundle(&d.join("model.ckpt-5"), &tensors()).unwrap();
    assert_eq!(latest_checkpoint(&d).unwrap(), d.join("model.ckpt-5"));
    // An absolute path into a directory that moved: found by name here.
    write_state(
        &d,
        &CheckpointState {
            model_checkpoint_path: "/gone/elsewhere/model.ckpt-5".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(latest_checkpoint(&d).unwrap(), d.join("model.ckpt-5"));
}
