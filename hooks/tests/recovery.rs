//! Recovery from device loss (cases TF lacks). A lost device is shared by every session
//! of this process, so these tests live in their own binary and run one at a time.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

use std::sync::Mutex;
use wgtrain_checkpoint::{BundleReader, latest_checkpoint};
use wgtrain_engine::Code;
use wgtrain_hooks::*;

/// Device loss tests must not overlap.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn device_loss_mid_training_recovers_from_the_last_checkpoint() {
    if !have_gpu() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // TF lacks this: the device is lost at step 7; the session is re-created from the
    // checkpoint at step 5 and training finishes at step 12.
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
            sess.raw_session()
                .unwrap()
                .as_session()
                .unwrap()
                .simulate_device_loss();
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
    if !have_gpu() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // TF retries forever: here the attempts are bounded and the error surfaces.
    struct AlwaysLose;
    impl SessionRunHook for AlwaysLose {
        fn before_run(
            &mut self,
            ctx: &mut SessionRunContext,
        ) -> wgtrain_engine::Result<Option<SessionRunArgs>> {
            ctx.session.as_session().unwrap().simulate_device_loss();
            Ok(None)
        }
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

/// Keeps the readback worker of each session created.
struct SessionWorkers(std::sync::Arc<Mutex<Vec<std::sync::Arc<dyn wgtrain_engine::Background>>>>);

impl SessionRunHook for SessionWorkers {
    fn after_create_session(
        &mut self,
        sess: &mut dyn wgtrain_engine::Executor,
        _: &Coordinator,
    ) -> wgtrain_engine::Result<()> {
        self.0.lock().unwrap().extend(sess.background());
        Ok(())
    }
}

#[test]
fn recovery_joins_the_failed_sessions_workers_and_keeps_its_event_file() {
    if !have_gpu() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let m = model();
    let dir = scratch("devloss-workers");
    let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .checkpoint_dir(&dir)
        .save_checkpoint_steps(2)
        .save_summaries_steps(1)
        .recovery(RecoveryPolicy {
            max_attempts: 3,
            backoff: std::time::Duration::from_millis(1),
            max_backoff: std::time::Duration::from_millis(10),
        })
        .hooks([
            StopAtStepHook::last_step(6).boxed(),
            Box::new(SessionWorkers(std::sync::Arc::clone(&seen))) as Box<dyn SessionRunHook>,
        ])
        .create()
        .unwrap();
    while !sess.should_stop() {
        if global_step(&mut sess) == 3 && sess.recoveries() == 0 {
            sess.raw_session()
                .unwrap()
                .as_session()
                .unwrap()
                .simulate_device_loss();
        }
        sess.run(&feed(&m), &[], &[m.train]).unwrap();
    }
    assert_eq!(sess.recoveries(), 1);
    {
        let workers = seen.lock().unwrap();
        assert_eq!(workers.len(), 2);
        // The failed session's readback worker was stopped and joined at recovery.
        let now = Some(std::time::Instant::now());
        workers[0].wait(now).unwrap_or_else(|e| {
            assert_ne!(e.code, Code::DeadlineExceeded, "{e}");
        });
        // The live session's is still serving.
        let e = workers[1].wait(now).unwrap_err();
        assert_eq!(e.code, Code::DeadlineExceeded);
    }
    sess.close().unwrap();
    // One event file: the writer carried over to the re-created session.
    let files = wgtrain_checkpoint::events::event_files(&dir).unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    let steps = summary_steps(&dir, "loss");
    assert!(steps.contains(&6), "{steps:?}");
}
