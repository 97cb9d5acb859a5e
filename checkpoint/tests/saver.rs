//! The Saver over a session (the reference interpreter: the Saver sees only the
//! `Executor` seam; the hooks tests drive it over the GPU session): file names, retention, the state file, all-or-nothing
//! restore, warm start from TF-written checkpoints, asynchronous errors.

#![allow(clippy::unwrap_used)]

mod common;
use common::{scratch, testdata};
use std::path::Path;
use wgtrain_checkpoint::saver::{Retention, restore_map};
use wgtrain_checkpoint::state::read_state;
use wgtrain_checkpoint::{
    BundleReader, Saver, SaverOptions, init_from_checkpoint, latest_checkpoint,
};
use wgtrain_engine::{
    Code, DType, Executor, Graph, HostTensor, Initializer, Reference, Tensor, VariableOptions,
};

struct Model {
    sess: Reference,
    w: Tensor,
    b: Tensor,
    count: Tensor,
    step: Tensor,
    bump: wgtrain_engine::Operation,
}

/// Variables of several dtypes and a `bump` op that changes all of them.
fn model() -> Model {
    let mut g = Graph::new();
    g.set_seed(1);
    let w = g
        .variable(
            "dense/kernel",
            DType::F32,
            &[3, 4],
            Initializer::GlorotUniform,
        )
        .unwrap();
    let b = g
        .variable("dense/bias", DType::F32, &[4], Initializer::Zeros)
        .unwrap();
    let count = g
        .variable_with(
            "count",
            DType::I32,
            &[2],
            Initializer::Zeros,
            VariableOptions {
                trainable: false,
                ..Default::default()
            },
        )
        .unwrap();
    let step = g.global_step().unwrap();
    let half = g.scalar(0.5).unwrap();
    let w2 = g.add(w, half).unwrap();
    let a1 = g.assign(w, w2).unwrap();
    let b2 = g.sub(b, half).unwrap();
    let a2 = g.assign(b, b2).unwrap();
    let one = g
        .constant(HostTensor::from_i32(&[2], vec![1, 2]).unwrap(), "one")
        .unwrap();
    let a3 = g.assign_add(count, one).unwrap();
    let inc = g.constant(HostTensor::scalar_i64(1), "inc").unwrap();
    let a4 = g.assign_add(step, inc).unwrap();
    let bump = g
        .group(&[a1.op(), a2.op(), a3.op(), a4.op()], "bump")
        .unwrap();
    let init = g.global_variables_initializer().unwrap();
    let mut sess = Reference::new(g);
    sess.run(&[], &[], &[init]).unwrap();
    Model {
        sess,
        w,
        b,
        count,
        step,
        bump,
    }
}

fn values(m: &mut Model) -> Vec<HostTensor> {
    m.sess.read_variables(&[m.w, m.b, m.count, m.step]).unwrap()
}

fn exists(prefix: &Path) -> bool {
    wgtrain_checkpoint::bundle::index_path(prefix).exists()
        && wgtrain_checkpoint::bundle::data_path(prefix, 0, 1).exists()
}

#[test]
fn save_and_restore_round_trip_with_retention() {
    let mut m = model();
    let dir = scratch("saver", "rt");
    let g = m.sess.graph_arc();
    let mut saver = Saver::new(
        &g,
        SaverOptions {
            max_to_keep: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut saved = Vec::new();
    for step in 1..=4 {
        m.sess.run(&[], &[], &[m.bump]).unwrap();
        let p = saver
            .save(&mut m.sess, dir.join("model.ckpt"), Some(step))
            .unwrap();
        assert_eq!(p, dir.join(format!("model.ckpt-{step}")));
        saved.push(values(&mut m));
    }
    saver.flush().unwrap();
    // The newest two remain, named oldest first in the state file.
    assert!(!exists(&dir.join("model.ckpt-1")) && !exists(&dir.join("model.ckpt-2")));
    assert!(exists(&dir.join("model.ckpt-3")) && exists(&dir.join("model.ckpt-4")));
    let st = read_state(&dir).unwrap().unwrap();
    assert_eq!(st.model_checkpoint_path, "model.ckpt-4");
    assert_eq!(
        st.all_model_checkpoint_paths,
        vec!["model.ckpt-3", "model.ckpt-4"]
    );
    assert_eq!(latest_checkpoint(&dir).unwrap(), dir.join("model.ckpt-4"));
    // The checkpoint holds the values of the step it was saved at, with TF's dtypes.
    let r = BundleReader::open(dir.join("model.ckpt-3")).unwrap();
    assert_eq!(r.get("global_step").unwrap().to_f64().unwrap(), vec![3.0]);
    assert_eq!(r.get("count").unwrap().to_host().unwrap(), saved[2][2]);
    // Restore step 3 over step 4's values.
    saver
        .restore(&mut m.sess, dir.join("model.ckpt-3"))
        .unwrap();
    assert_eq!(values(&mut m), saved[2]);
    saver.close().unwrap();
}

#[test]
fn restore_is_all_or_nothing_with_clear_errors() {
    let mut m = model();
    let dir = scratch("saver", "errors");
    let g = m.sess.graph_arc();
    // A checkpoint of only some variables under other names.
    let mut partial = Saver::with_names(
        &g,
        vec![("dense/kernel".into(), m.w), ("renamed_bias".into(), m.b)],
        SaverOptions::default(),
    )
    .unwrap();
    partial.save(&mut m.sess, dir.join("part"), None).unwrap();
    partial.flush().unwrap();
    m.sess.run(&[], &[], &[m.bump]).unwrap();
    let before = values(&mut m);
    let full = Saver::new(&g, SaverOptions::default()).unwrap();
    let e = full.restore(&mut m.sess, dir.join("part")).unwrap_err();
    assert_eq!(e.code, Code::NotFound, "{e}");
    for name in ["dense/bias", "count", "global_step"] {
        assert!(e.message.contains(name), "{e}");
    }
    assert_eq!(values(&mut m), before, "nothing restored");
    // A shape mismatch names the variable and both shapes.
    let e = restore_map(
        &mut m.sess,
        &dir.join("part"),
        &[("dense/kernel".into(), m.w), ("dense/kernel".into(), m.b)],
    )
    .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    assert!(
        e.message.contains("[4]") && e.message.contains("[3, 4]"),
        "{e}"
    );
    assert_eq!(values(&mut m), before, "nothing restored");
    // Damaged data: DataLoss, nothing restored.
    let data = wgtrain_checkpoint::bundle::data_path(&dir.join("part"), 0, 1);
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&data, bytes).unwrap();
    let e = restore_map(
        &mut m.sess,
        &dir.join("part"),
        &[("dense/kernel".into(), m.w), ("renamed_bias".into(), m.b)],
    )
    .unwrap_err();
    assert_eq!(e.code, Code::DataLoss, "{e}");
    assert_eq!(values(&mut m), before, "nothing restored");
    // A missing checkpoint.
    let e = full.restore(&mut m.sess, dir.join("absent")).unwrap_err();
    assert_eq!(e.code, Code::NotFound);
}

#[test]
fn warm_start_from_checkpoints_tensorflow_wrote() {
    let mut g = Graph::new();
    let w = g
        .variable("w", DType::F32, &[2], Initializer::Zeros)
        .unwrap();
    let k = g
        .variable("my/kernel", DType::F32, &[3, 4], Initializer::Zeros)
        .unwrap();
    let step = g.global_step().unwrap();
    let init = g.global_variables_initializer().unwrap();
    let mut sess = Reference::new(g);
    sess.run(&[], &[], &[init]).unwrap();
    let d = testdata();
    init_from_checkpoint(
        &mut sess,
        d.join("ckpt_relative/model.ckpt-7"),
        &[("w", w), ("global_step", step)],
    )
    .unwrap();
    let v = sess.read_variables(&[w, step]).unwrap();
    assert_eq!(v[0].as_f32().unwrap(), vec![0.5, -0.5]);
    assert_eq!(v[1].as_i64().unwrap(), vec![7]);
    // A name map into a differently named variable, from the MTS checkpoint.
    init_from_checkpoint(
        &mut sess,
        d.join("ckpt/model.ckpt-3"),
        &[("dense/kernel", k)],
    )
    .unwrap();
    let got = sess.read_variables(&[k]).unwrap()[0].as_f32().unwrap();
    let want = BundleReader::open(d.join("ckpt/model.ckpt-3"))
        .unwrap()
        .get("dense/kernel")
        .unwrap()
        .to_host()
        .unwrap()
        .as_f32()
        .unwrap();
    assert_eq!(got, want);
}

#[test]
fn retention_is_rebuilt_after_a_restart() {
    let mut m = model();
    let dir = scratch("saver", "restart");
    let g = m.sess.graph_arc();
    let opts = SaverOptions {
        max_to_keep: 3,
        ..Default::default()
    };
    let mut s1 = Saver::new(&g, opts.clone()).unwrap();
    for step in 1..=3 {
        s1.save(&mut m.sess, dir.join("model.ckpt"), Some(step))
            .unwrap();
    }
    s1.close().unwrap();
    // A new saver (a restarted process) picks up the three and deletes the oldest.
    let mut s2 = Saver::new(&g, opts).unwrap();
    s2.recover_last_checkpoints(&dir).unwrap();
    assert_eq!(
        s2.last_checkpoints(),
        vec!["model.ckpt-1", "model.ckpt-2", "model.ckpt-3"]
    );
    s2.save(&mut m.sess, dir.join("model.ckpt"), Some(4))
        .unwrap();
    s2.flush().unwrap();
    assert!(!exists(&dir.join("model.ckpt-1")));
    let st = read_state(&dir).unwrap().unwrap();
    assert_eq!(
        st.all_model_checkpoint_paths,
        vec!["model.ckpt-2", "model.ckpt-3", "model.ckpt-4"]
    );
}

#[test]
fn synchronous_saves_and_write_errors_surface() {
    let mut m = model();
    let dir = scratch("saver", "sync");
    let g = m.sess.graph_arc();
    let mut sync = Saver::new(
        &g,
        SaverOptions {
            asynchronous: false,
            ..Default::default()
        },
    )
    .unwrap();
    sync.save(&mut m.sess, dir.join("model.ckpt"), Some(0))
        .unwrap();
    assert!(exists(&dir.join("model.ckpt-0")));
    // A directory that cannot be written: the async error comes back on flush.
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let mut asy = Saver::new(&g, SaverOptions::default()).unwrap();
    let r = asy.save(&mut m.sess, blocker.join("model.ckpt"), Some(1));
    let e = match r {
        Err(e) => e,
        Ok(_) => asy.flush().unwrap_err(),
    };
    // mkdir where a file is: EEXIST, as TF maps it; never a recoverable code.
    assert_eq!(e.code, Code::AlreadyExists, "{e}");
    assert!(e.message.contains("file"), "{e}");
}

#[test]
fn retention_follows_tf_rules() {
    // max_to_keep 2, a checkpoint preserved every hour: times in seconds.
    let mut r = Retention::new(2, 1.0, 0.0);
    assert!(r.add("a", 100.0).is_empty());
    assert!(r.add("b", 200.0).is_empty());
    assert_eq!(r.add("c", 3000.0), vec!["a"]);
    // "b" at 200 s is before the first preservation time (3600 s): deleted.
    assert_eq!(r.add("d", 3700.0), vec!["b"]);
    // "c" at 3000 s: deleted; "d" at 3700 s is past 3600 s: preserved, next at 7200 s.
    assert_eq!(r.add("e", 3800.0), vec!["c"]);
    assert!(r.add("f", 3900.0).is_empty());
    assert_eq!(r.next_preserve, 7200.0);
    let st = r.state("f");
    assert_eq!(st.all_model_checkpoint_paths, vec!["e", "f"]);
    // Saving the same prefix again moves it to the end.
    assert!(r.add("e", 4000.0).is_empty());
    assert_eq!(r.state("e").all_model_checkpoint_paths, vec!["f", "e"]);
    // max_to_keep 0: nothing deleted, only the latest named.
    let mut all = Retention::new(0, 10_000.0, 0.0);
    for (i, p) in ["a", "b", "c"].iter().enumerate() {
        assert!(all.add(p, i as f64).is_empty());
    }
    assert_eq!(all.state("c").all_model_checkpoint_paths, vec!["c"]);
}

#[test]
fn a_meta_exporter_writes_beside_each_checkpoint_and_goes_with_it() {
    let mut m = model();
    let dir = scratch("saver", "meta");
    let g = m.sess.graph_arc();
    let exports = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = std::sync::Arc::clone(&exports);
    let exporter: wgtrain_checkpoint::saver::MetaExporter = std::sync::Arc::new(move |p: &Path| {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::fs::write(p, b"meta graph").map_err(|e| wgtrain_engine::Error::io(p.display(), &e))
    });
    let mut saver = Saver::new(
        &g,
        SaverOptions {
            max_to_keep: 1,
            ..Default::default()
        },
    )
    .unwrap()
    .with_meta_exporter(exporter);
    saver
        .save(&mut m.sess, dir.join("model.ckpt"), Some(1))
        .unwrap();
    saver.flush().unwrap();
    assert_eq!(
        std::fs::read(dir.join("model.ckpt-1.meta")).unwrap(),
        b"meta graph"
    );
    // Later saves: the same bytes, linked to the previous .meta (no second export);
    // `on_written` sees each checkpoint once it is durable.
    let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    for step in [2, 3] {
        let w = std::sync::Arc::clone(&written);
        saver
            .save_then(
                &mut m.sess,
                dir.join("model.ckpt"),
                Some(step),
                Some(Box::new(move |p: &Path| {
                    assert!(wgtrain_checkpoint::bundle::index_path(p).exists());
                    w.lock().unwrap().push(p.to_path_buf());
                    Ok(())
                })),
            )
            .unwrap();
    }
    saver.close().unwrap();
    assert_eq!(
        *written.lock().unwrap(),
        vec![dir.join("model.ckpt-2"), dir.join("model.ckpt-3")]
    );
    assert_eq!(exports.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        std::fs::read(dir.join("model.ckpt-3.meta")).unwrap(),
        b"meta graph"
    );
    assert!(!dir.join("model.ckpt-2.meta").exists());
    assert!(!dir.join("model.ckpt-1.meta").exists());
}
