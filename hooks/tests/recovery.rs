//! Recovery from device loss (cases TF lacks). A lost device is shared by every session
//! of this process, so these tests live in their own binary and run one at a time.

#![allow(clippy::unwrap_used, dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wgtrain_checkpoint::events::{event_files, read_file};
use wgtrain_checkpoint::proto::{SummaryValueKind, What};
use wgtrain_checkpoint::state::read_state;
use wgtrain_checkpoint::{BundleReader, latest_checkpoint};
use wgtrain_engine::runtime::testing::gpu_required;
use wgtrain_engine::{Code, DType, Graph, HostTensor, Initializer, Operation, Sgd, Tensor};
use wgtrain_hooks::*;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wgtrain-mts-{name}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Whether a GPU session can be made (skip visibly otherwise).
fn have_gpu() -> bool {
    let ok = wgtrain_engine::Session::new(Graph::new(), Default::default()).is_ok();
    if !ok {
        assert!(!gpu_required(), "no GPU adapter and WGTRAIN_REQUIRE_GPU=1");
        eprintln!("SKIPPED (no GPU adapter)");
    }
    ok
}

struct Model {
    g: Graph,
    x: Tensor,
    loss: Tensor,
    train: Operation,
    w: Tensor,
}

/// A one-variable regression trained by SGD with a global step, a loss summary.
fn model() -> Model {
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

fn feed(m: &Model) -> Vec<(Tensor, HostTensor)> {
    vec![(m.x, HostTensor::from_f32(&[2], vec![1.0, 2.0]).unwrap())]
}

fn train_until_stop(sess: &mut MonitoredSession, m: &Model) -> usize {
    let mut n = 0;
    while !sess.should_stop() {
        sess.run(&feed(m), &[], &[m.train]).unwrap();
        n += 1;
        assert!(n < 10_000);
    }
    n
}

fn checkpoint_steps(dir: &Path) -> Vec<i64> {
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
fn summary_steps(dir: &Path, tag: &str) -> Vec<i64> {
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

fn global_step(sess: &mut MonitoredSession) -> i64 {
    let s = sess.raw_session().unwrap();
    let gs = s.graph().get_global_step().unwrap();
    s.read_variables(&[gs]).unwrap()[0].as_i64().unwrap()[0]
}

/// Device loss tests must not overlap.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn device_loss_mid_training_recovers_from_the_last_checkpoint() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // TF lacks this: the device is lost at step 7; the session is re-created from the
    // checkpoint at step 5 and training finishes at step 12.
    if !have_gpu() {
        return;
    }
    let m = model();
    let dir = scratch("devloss");
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .checkpoint_dir(&dir)
        .save_checkpoint_steps(5)
        .recovery(RecoveryPolicy {
            max_attempts: 3,
            backoff: std::time::Duration::from_millis(1),
            max_backoff: std::time::Duration::from_millis(10),
        })
        .hooks([StopAtStepHook::last_step(12).boxed()])
        .create()
        .unwrap();
    let mut steps = Vec::new();
    while !sess.should_stop() {
        if global_step(&mut sess) == 7 && sess.recoveries() == 0 {
            sess.raw_session().unwrap().simulate_device_loss();
        }
        sess.run(&feed(&m), &[], &[m.train]).unwrap();
        steps.push(global_step(&mut sess));
    }
    assert_eq!(sess.recoveries(), 1);
    // After the loss at 7, the retried step continues from the checkpoint at 5.
    let at = steps.iter().position(|&s| s == 6).unwrap();
    assert_eq!(&steps[..at + 1], &[1, 2, 3, 4, 5, 6, 7][..at + 1]);
    assert!(steps.windows(2).any(|w| w[1] <= w[0]), "{steps:?}");
    assert_eq!(*steps.last().unwrap(), 12);
    sess.close().unwrap();
    assert_eq!(latest_checkpoint(&dir).unwrap(), dir.join("model.ckpt-12"));
    let r = BundleReader::open(dir.join("model.ckpt-12")).unwrap();
    assert_eq!(r.get("global_step").unwrap().to_f64().unwrap(), vec![12.0]);
}

#[test]
fn bounded_recovery_gives_up() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // TF retries forever: here the attempts are bounded and the error surfaces.
    struct AlwaysLose;
    impl SessionRunHook for AlwaysLose {
        fn before_run(
            &mut self,
            ctx: &mut SessionRunContext,
        ) -> wgtrain_engine::Result<Option<SessionRunArgs>> {
            ctx.session.simulate_device_loss();
            Ok(None)
        }
    }
    if !have_gpu() {
        return;
    }
    let m = model();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .recovery(RecoveryPolicy {
            max_attempts: 2,
            backoff: std::time::Duration::from_millis(1),
            max_backoff: std::time::Duration::from_millis(2),
        })
        .hooks([Box::new(AlwaysLose) as Box<dyn SessionRunHook>])
        .create()
        .unwrap();
    let e = sess.run(&feed(&m), &[], &[m.train]).unwrap_err();
    assert_eq!(e.code, Code::Aborted, "{e}");
    assert_eq!(sess.recoveries(), 2);
}
