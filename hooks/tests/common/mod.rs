//! Helpers shared by the hooks' test binaries.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use wgtrain_checkpoint::events::{event_files, read_file};
use wgtrain_checkpoint::proto::What;
use wgtrain_engine::{DType, Graph, HostTensor, Initializer, Operation, Sgd, Tensor};
use wgtrain_hooks::MonitoredSession;

pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wgtrain-mts-{name}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The config of a test whose subject is host-side logic: the reference interpreter,
/// no adapter needed.
pub fn host() -> wgtrain_engine::SessionConfig {
    wgtrain_engine::SessionConfig::default().backend(wgtrain_engine::runtime::Backend::Reference)
}

/// Whether a GPU session can be made (see `wgtrain_engine::runtime::testing`).
pub fn have_gpu() -> bool {
    wgtrain_engine::runtime::testing::have_gpu()
}

pub struct Model {
    pub g: Graph,
    pub x: Tensor,
    pub loss: Tensor,
    pub train: Operation,
    pub w: Tensor,
}

/// A one-variable regression trained by SGD with a global step, a loss summary.
pub fn model() -> Model {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1]).unwrap();
    let w = g
        .variable("w", DType::F32, &[], Initializer::Constant(1.0))
        .unwrap();
    let wx = g.mul(x, w).unwrap();
    let sq = g.square(wx).unwrap();
    let loss = g.reduce_mean(sq, &[], false).unwrap();
    g.scalar_summary("loss", loss).unwrap();
    let step = g.global_step().unwrap();
    let train = Sgd::new(0.01).minimize(&mut g, loss, step).unwrap();
    Model {
        g,
        x,
        loss,
        train,
        w,
    }
}

pub fn feed(m: &Model) -> Vec<(Tensor, HostTensor)> {
    vec![(m.x, HostTensor::from_f32(&[2], vec![1.0, 2.0]).unwrap())]
}

pub fn train_until_stop(sess: &mut MonitoredSession, m: &Model) -> usize {
    let mut n = 0;
    while !sess.should_stop() {
        sess.run(&feed(m), &[], &[m.train]).unwrap();
        n += 1;
        assert!(n < 10_000);
    }
    n
}

pub fn checkpoint_steps(dir: &Path) -> Vec<i64> {
    let mut steps: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.strip_prefix("model.ckpt-")?
                .strip_suffix(".index")?
                .parse()
                .ok()
        })
        .collect();
    steps.sort();
    steps
}

/// (step, tag) of every summary value in the directory's event files.
pub fn summary_steps(dir: &Path, tag: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for f in event_files(dir).unwrap() {
        let (records, err) = read_file(&f).unwrap();
        assert!(err.is_none(), "{err:?}");
        for r in records {
            if let Some(What::Summary(s)) = &r.event.what
                && s.value.iter().any(|v| v.tag == tag)
            {
                out.push(r.event.step);
            }
        }
    }
    out
}

pub fn global_step(sess: &mut MonitoredSession) -> i64 {
    let s = sess.raw_session().unwrap();
    let gs = s.graph().get_global_step().unwrap();
    s.read_variables(&[gs]).unwrap()[0].as_i64().unwrap()[0]
}
