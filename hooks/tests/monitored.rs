//! MonitoredTrainingSession and the built-in hooks, ported from TF's
//! `monitored_session_test.py` and `basic_session_run_hooks_test.py` (each test named
//! after the case it ports) plus cases TF lacks.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

use std::sync::{Arc, Mutex};
use wgtrain_checkpoint::events::{event_files, read_file};
use wgtrain_checkpoint::latest_checkpoint;
use wgtrain_checkpoint::proto::{SummaryValueKind, What};
use wgtrain_checkpoint::state::read_state;
use wgtrain_engine::{Code, DType, Graph, HostTensor, Initializer};
use wgtrain_hooks::*;

#[test]
fn test_defaults_empty_dir() {
    // MTS with no checkpoint_dir and no summary_dir: no default hooks, no files.
    let m = model();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .hooks([StopAtStepHook::last_step(3).boxed()])
        .create()
        .unwrap();
    assert_eq!(train_until_stop(&mut sess, &m), 3);
    sess.close().unwrap();
}

#[test]
fn schedule_n3_last10_checkpoints_and_summaries() {
    // tf-observed [schedule_n3_last10]: checkpoints 0, 3, 6, 9, 10; loss summaries at
    // 1, 4, 7, 10; global_step/sec at 4, 7, 10.
    let m = model();
    let dir = scratch("n3");
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(&dir)
        .save_checkpoint_steps(3)
        .save_summaries_steps(3)
        .log_step_count_steps(3)
        .hooks([StopAtStepHook::last_step(10).boxed()])
        .create()
        .unwrap();
    assert_eq!(train_until_stop(&mut sess, &m), 10);
    sess.close().unwrap();
    assert_eq!(checkpoint_steps(&dir), vec![0, 3, 6, 9, 10]);
    let st = read_state(&dir).unwrap().unwrap();
    assert_eq!(st.model_checkpoint_path, "model.ckpt-10");
    assert_eq!(
        st.all_model_checkpoint_paths,
        vec![
            "model.ckpt-0",
            "model.ckpt-3",
            "model.ckpt-6",
            "model.ckpt-9",
            "model.ckpt-10"
        ]
    );
    assert_eq!(summary_steps(&dir, "loss"), vec![1, 4, 7, 10]);
    assert!(dir.join("graph.pbtxt").exists());
    assert!(dir.join("model.ckpt-10.meta").exists());
}

#[test]
fn schedule_n5_last10() {
    // tf-observed [schedule_n5_last10]: checkpoints 0, 5, 10 (10 once); loss at 1, 6.
    let m = model();
    let dir = scratch("n5");
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(&dir)
        .save_checkpoint_steps(5)
        .save_summaries_steps(5)
        .hooks([StopAtStepHook::last_step(10).boxed()])
        .create()
        .unwrap();
    train_until_stop(&mut sess, &m);
    sess.close().unwrap();
    assert_eq!(checkpoint_steps(&dir), vec![0, 5, 10]);
    assert_eq!(summary_steps(&dir, "loss"), vec![1, 6]);
}

#[test]
fn default_secs_schedule_saves_at_creation_and_end() {
    // tf-observed [default_secs_schedule]: 600 s timer, 7 steps: saves at 0 and 7.
    let m = model();
    let dir = scratch("secs");
    let clock = ManualClock::at(1000.0);
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(&dir)
        .clock(Arc::new(clock.clone()))
        .hooks([StopAtStepHook::last_step(7).boxed()])
        .create()
        .unwrap();
    train_until_stop(&mut sess, &m);
    sess.close().unwrap();
    assert_eq!(checkpoint_steps(&dir), vec![0, 7]);
}

#[test]
fn test_save_checkpoint_secs_with_manual_clock() {
    // Secs schedule: a save when the clock passes the period.
    let m = model();
    let dir = scratch("secs2");
    let clock = ManualClock::at(0.0);
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(&dir)
        .save_checkpoint_secs(10.0)
        .clock(Arc::new(clock.clone()))
        .create()
        .unwrap();
    for k in 1..=6 {
        if k == 4 {
            clock.advance(11.0);
        }
        sess.run(&feed(&m), &[], &[m.train]).unwrap();
    }
    sess.close().unwrap();
    assert_eq!(checkpoint_steps(&dir), vec![0, 4, 6]);
}

#[test]
fn test_restore_and_resume() {
    // tf-observed [restore]: a second session restores step 6, re-saves model.ckpt-6 at
    // creation and continues; the values are the restored ones.
    let m = model();
    let dir = scratch("restore");
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(&dir)
        .hooks([StopAtStepHook::last_step(6).boxed()])
        .create()
        .unwrap();
    train_until_stop(&mut sess, &m);
    let w_before = sess.raw_session().unwrap().read_variables(&[m.w]).unwrap();
    sess.close().unwrap();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(&dir)
        .hooks([StopAtStepHook::num_steps(3).boxed()])
        .create()
        .unwrap();
    assert_eq!(global_step(&mut sess), 6);
    let w_now = sess.raw_session().unwrap().read_variables(&[m.w]).unwrap();
    assert_eq!(w_now, w_before);
    assert_eq!(train_until_stop(&mut sess, &m), 3);
    assert_eq!(global_step(&mut sess), 9);
    sess.close().unwrap();
    assert_eq!(checkpoint_steps(&dir), vec![0, 6, 9]);
}

#[test]
fn test_not_chief_times_out_waiting_for_the_chief() {
    // tf-observed [not_chief]: a worker with no chief waits max_wait_secs and fails.
    let m = model();
    let t = std::time::Instant::now();
    let e = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .is_chief(false)
        .max_wait_secs(0.3)
        .recovery_wait_secs(0.1)
        .create()
        .err()
        .unwrap();
    assert_eq!(e.code, Code::DeadlineExceeded, "{e}");
    assert!(e.message.contains("not ready"), "{e}");
    assert!(t.elapsed().as_secs_f64() < 5.0);
}

#[test]
fn test_should_stop() {
    // HookedSessionTest.testShouldStop; tf-observed [request_stop]: a hook's
    // request_stop ends the loop after that run.
    struct StopAfter(usize);
    impl SessionRunHook for StopAfter {
        fn after_run(
            &mut self,
            ctx: &mut SessionRunContext,
            _: &SessionRunValues,
        ) -> wgtrain_engine::Result<()> {
            self.0 -= 1;
            if self.0 == 0 {
                ctx.request_stop();
            }
            Ok(())
        }
    }
    let m = model();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .hooks([Box::new(StopAfter(4)) as Box<dyn SessionRunHook>])
        .create()
        .unwrap();
    assert_eq!(train_until_stop(&mut sess, &m), 4);
    // run after should_stop is an error.
    let e = sess.run(&feed(&m), &[], &[m.train]).unwrap_err();
    assert!(e.message.contains("should_stop"), "{e}");
    sess.close().unwrap();
}

#[test]
fn test_with_statement_and_close() {
    // Double close is an error; should_stop after close; run after close fails.
    let m = model();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .create()
        .unwrap();
    sess.run(&feed(&m), &[], &[m.train]).unwrap();
    sess.close().unwrap();
    assert!(sess.should_stop());
    let e = sess.close().unwrap_err();
    assert!(e.message.contains("already closed"), "{e}");
    assert!(sess.run(&feed(&m), &[], &[m.train]).is_err());
}

/// Records every call as text.
struct Transcript {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl SessionRunHook for Transcript {
    fn begin(&mut self, _: &mut Graph) -> wgtrain_engine::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}.begin", self.name));
        Ok(())
    }
    fn after_create_session(
        &mut self,
        _: &mut dyn wgtrain_engine::Executor,
        _: &Coordinator,
    ) -> wgtrain_engine::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}.after_create_session", self.name));
        Ok(())
    }
    fn before_run(
        &mut self,
        _: &mut SessionRunContext,
    ) -> wgtrain_engine::Result<Option<SessionRunArgs>> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}.before_run", self.name));
        Ok(None)
    }
    fn after_run(
        &mut self,
        _: &mut SessionRunContext,
        _: &SessionRunValues,
    ) -> wgtrain_engine::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}.after_run", self.name));
        Ok(())
    }
    fn end(&mut self, _: &mut dyn wgtrain_engine::Executor) -> wgtrain_engine::Result<()> {
        self.log.lock().unwrap().push(format!("{}.end", self.name));
        Ok(())
    }
}

#[test]
fn hook_lifecycle_transcript() {
    // tf-observed [hook_order]: every hook's begin, then after_create_session, then per
    // run all before_run then all after_run, in list order; end at close.
    let m = model();
    let log = Arc::new(Mutex::new(Vec::new()));
    let a = Box::new(Transcript {
        name: "A",
        log: Arc::clone(&log),
    });
    let b = Box::new(Transcript {
        name: "B",
        log: Arc::clone(&log),
    });
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .hooks([a as Box<dyn SessionRunHook>, b])
        .create()
        .unwrap();
    sess.run(&feed(&m), &[], &[m.train]).unwrap();
    sess.run(&feed(&m), &[], &[m.train]).unwrap();
    sess.close().unwrap();
    let text = log.lock().unwrap().join("\n");
    let want = "A.begin\nB.begin\nA.after_create_session\nB.after_create_session\n\
A.before_run\nB.before_run\nA.after_run\nB.after_run\n\
A.before_run\nB.before_run\nA.after_run\nB.after_run\nA.end\nB.end";
    assert_eq!(text, want);
}

#[test]
fn test_end_not_called_after_an_error_close() {
    let m = model();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .hooks([Box::new(Transcript {
            name: "A",
            log: Arc::clone(&log),
        }) as Box<dyn SessionRunHook>])
        .create()
        .unwrap();
    sess.close_with(false).unwrap();
    assert!(!log.lock().unwrap().iter().any(|l| l == "A.end"));
}

#[test]
fn test_nan_tensor_hook_fails_or_stops() {
    let m = model();
    let nan = vec![(m.x, HostTensor::from_f32(&[1], vec![f32::NAN]).unwrap())];
    let mut fail = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .hooks([Box::new(NanTensorHook::new(m.loss, true)) as Box<dyn SessionRunHook>])
        .create()
        .unwrap();
    fail.run(&feed(&m), &[], &[m.train]).unwrap();
    let e = fail.run(&nan, &[], &[m.train]).unwrap_err();
    assert!(e.message.contains("NaN loss"), "{e}");
    let mut stop = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .hooks([Box::new(NanTensorHook::new(m.loss, false)) as Box<dyn SessionRunHook>])
        .create()
        .unwrap();
    stop.run(&nan, &[], &[m.train]).unwrap();
    assert!(stop.should_stop());
}

#[test]
fn test_step_counter_every_n_steps() {
    // StepCounterHook with a manual clock: global_step/sec at 3, 5, ... with the rate.
    let m = model();
    let mut g = m.g.clone();
    let clock = ManualClock::at(0.0);
    let dir = scratch("counter");
    let hook = StepCounterHook::new(2, Some(dir.clone()), Arc::new(clock.clone())).unwrap();
    let rates = Arc::clone(&hook.rates);
    g.global_step().unwrap();
    let mut sess = MonitoredTrainingSession::new(g)
        .config(host())
        .hooks([Box::new(hook) as Box<dyn SessionRunHook>])
        .create()
        .unwrap();
    for _ in 0..5 {
        clock.advance(0.5);
        sess.run(&feed(&m), &[], &[m.train]).unwrap();
    }
    sess.close().unwrap();
    let r = rates.lock().unwrap().clone();
    assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 5]);
    assert!(r.iter().all(|x| (x.1 - 2.0).abs() < 1e-9), "{r:?}");
    let (records, _) = read_file(&event_files(&dir).unwrap()[0]).unwrap();
    let steps: Vec<i64> = records
        .iter()
        .filter(|r| matches!(&r.event.what, Some(What::Summary(s)) if s.value[0].tag == "global_step/sec"))
        .map(|r| r.event.step)
        .collect();
    assert_eq!(steps, vec![3, 5]);
}

#[test]
fn test_logging_tensor_hook_every_n_iter_and_at_end() {
    let m = model();
    let hook = LoggingTensorHook::new(
        vec![("w".into(), m.w)],
        Some(2),
        None,
        true,
        Arc::new(SystemClock),
    )
    .unwrap();
    let lines = Arc::clone(&hook.lines);
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .hooks([Box::new(hook) as Box<dyn SessionRunHook>])
        .create()
        .unwrap();
    for _ in 0..5 {
        sess.run(&feed(&m), &[], &[m.train]).unwrap();
    }
    sess.close().unwrap();
    let l = lines.lock().unwrap().clone();
    // Iterations 0, 2, 4, then at the end.
    assert_eq!(l.len(), 4, "{l:?}");
    assert!(l.iter().all(|s| s.starts_with("w = ")), "{l:?}");
    assert!(LoggingTensorHook::new(vec![], None, None, false, Arc::new(SystemClock)).is_err());
}

#[test]
fn test_final_ops_and_feed_fn_hooks() {
    let m = model();
    let x = m.x;
    let final_hook = FinalOpsHook::new(vec![m.w], vec![]);
    let values = Arc::clone(&final_hook.values);
    let feeder = FeedFnHook::new(Box::new(move || {
        vec![(x, HostTensor::from_f32(&[1], vec![1.0]).unwrap())]
    }));
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .hooks([
            Box::new(final_hook) as Box<dyn SessionRunHook>,
            Box::new(feeder),
        ])
        .create()
        .unwrap();
    for _ in 0..3 {
        sess.run(&[], &[], &[m.train]).unwrap();
    }
    let w = sess.raw_session().unwrap().read_variables(&[m.w]).unwrap();
    sess.close().unwrap();
    assert_eq!(values.lock().unwrap().clone().unwrap(), w);
}

#[test]
fn test_stop_at_step_requires_a_global_step() {
    let mut g = Graph::new();
    g.variable("v", DType::F32, &[], Initializer::Zeros)
        .unwrap();
    let e = MonitoredTrainingSession::new(g)
        .config(host())
        .hooks([StopAtStepHook::last_step(3).boxed()])
        .create()
        .err()
        .unwrap();
    assert!(e.message.contains("Global step should be created"), "{e}");
}

#[test]
fn test_run_step_fn_with_request_stop_and_raw_session() {
    let m = model();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .hooks([Box::new(Transcript {
            name: "A",
            log: Arc::clone(&log),
        }) as Box<dyn SessionRunHook>])
        .create()
        .unwrap();
    let f = feed(&m);
    // Raw session: no hooks called.
    sess.run_step_fn(|ctx| ctx.session()?.run(&f, &[], &[m.train]).map(|_| ()))
        .unwrap();
    assert!(
        !log.lock()
            .unwrap()
            .iter()
            .any(|l| l.ends_with("before_run"))
    );
    // With hooks, then a stop request.
    sess.run_step_fn(|ctx| {
        ctx.run_with_hooks(&f, &[], &[m.train])?;
        ctx.request_stop();
        Ok(())
    })
    .unwrap();
    assert!(log.lock().unwrap().iter().any(|l| l == "A.before_run"));
    assert!(sess.should_stop());
    sess.close().unwrap();
}

#[test]
fn test_profiler_hook_writes_chrome_timelines() {
    if !have_gpu() {
        return;
    }
    let m = model();
    let dir = scratch("profiler");
    let hook = ProfilerHook::new(&dir, None, Some(2), Arc::new(SystemClock)).unwrap();
    let written = Arc::clone(&hook.written);
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .hooks([Box::new(hook) as Box<dyn SessionRunHook>])
        .create()
        .unwrap();
    for _ in 0..4 {
        sess.run(&feed(&m), &[], &[m.train]).unwrap();
    }
    sess.close().unwrap();
    let w = written.lock().unwrap().clone();
    // As TF: not on the first step, then every 2 steps.
    assert_eq!(
        w,
        vec![dir.join("timeline-2.json"), dir.join("timeline-4.json")]
    );
    let text = std::fs::read_to_string(&w[0]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let events = v["traceEvents"].as_array().unwrap();
    assert!(events.len() > 1);
    assert!(
        events
            .iter()
            .skip(1)
            .all(|e| e["ph"] == "X" && e["args"]["node"].is_string())
    );
}

/// The loss values in a directory's event files, in order.
fn loss_summaries(dir: &std::path::Path) -> Vec<f32> {
    let mut got = Vec::new();
    for f in event_files(dir).unwrap() {
        for r in read_file(&f).unwrap().0 {
            if let Some(What::Summary(s)) = &r.event.what {
                for v in &s.value {
                    if let (true, Some(SummaryValueKind::SimpleValue(x))) =
                        (v.tag == "loss", &v.value)
                    {
                        got.push(*x);
                    }
                }
            }
        }
    }
    got
}

#[test]
fn pending_summaries_match_fetched_ones() {
    // Steps that fetch nothing read the summaries back on the readback thread; the
    // values written are the ones a fetching run sees.
    let m = model();
    let run = |fetch: bool| {
        let dir = scratch(if fetch { "sum-sync" } else { "sum-async" });
        let mut sess = MonitoredTrainingSession::new(m.g.clone())
            .config(host())
            .summary_dir(&dir)
            .save_summaries_steps(1)
            .log_step_count_steps(0)
            .create()
            .unwrap();
        for _ in 0..4 {
            let fetches = if fetch { vec![m.loss] } else { vec![] };
            sess.run(&feed(&m), &fetches, &[m.train]).unwrap();
        }
        sess.close().unwrap();
        loss_summaries(&dir)
    };
    let (pending, fetched) = (run(false), run(true));
    assert_eq!(pending.len(), 4);
    assert_eq!(pending, fetched);
}

#[test]
fn summaries_carry_the_loss_values() {
    let m = model();
    let dir = scratch("sumvals");
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .summary_dir(&dir)
        .save_summaries_steps(1)
        .log_step_count_steps(0)
        .create()
        .unwrap();
    let mut losses = Vec::new();
    for _ in 0..3 {
        let out = sess.run(&feed(&m), &[m.loss], &[m.train]).unwrap();
        losses.push(out[0].as_f32().unwrap()[0]);
    }
    sess.close().unwrap();
    // Only the summary hooks, no checkpoints.
    assert!(latest_checkpoint(&dir).is_none());
    assert_eq!(loss_summaries(&dir), losses);
}

#[test]
fn progress_bar_follows_the_global_step_and_shows_the_loss() {
    let m = model();
    let hook = ProgressBarHook::with_target(m.loss, 5, 2, indicatif::ProgressDrawTarget::hidden());
    let bar = hook.bar().clone();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .hooks([
            Box::new(hook) as Box<dyn SessionRunHook>,
            StopAtStepHook::num_steps(5).boxed(),
        ])
        .create()
        .unwrap();
    assert_eq!(train_until_stop(&mut sess, &m), 5);
    assert_eq!(bar.position(), 5);
    sess.close().unwrap();
    assert!(bar.is_finished());
    assert!(bar.message().starts_with("loss "), "{}", bar.message());
}

#[test]
fn run_and_run_step_fn_after_close_are_failed_precondition() {
    // A closed session is never re-created behind the caller's back.
    let m = model();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .create()
        .unwrap();
    sess.close().unwrap();
    let e = sess.run(&feed(&m), &[], &[m.train]).unwrap_err();
    assert_eq!(e.code, Code::FailedPrecondition);
    let e = sess
        .run_step_fn(|ctx| ctx.run_with_hooks(&feed(&m), &[], &[m.train]))
        .unwrap_err();
    assert_eq!(e.code, Code::FailedPrecondition);
    assert!(sess.raw_session().is_none());
}

#[test]
fn master_names_what_is_supported() {
    // Errors come before any device is opened: no GPU needed.
    let m = model();
    let e = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .master("grpc://localhost:2222")
        .create()
        .err()
        .unwrap();
    assert_eq!(e.code, Code::Unimplemented, "{e}");
    assert!(e.message.contains("\"mpi\""), "{e}");
    assert_eq!(Master::from(""), Master::Local);
    assert_eq!(Master::from("mpi"), Master::Mpi);
}

#[cfg(not(feature = "mpi"))]
#[test]
fn master_mpi_without_the_feature_is_unimplemented_naming_it() {
    let m = model();
    for master in [Master::Mpi, Master::from("mpi")] {
        let e = MonitoredTrainingSession::new(m.g.clone())
            .config(host())
            .master(master)
            .create()
            .err()
            .unwrap();
        assert_eq!(e.code, Code::Unimplemented, "{e}");
        assert!(e.message.contains("feature `mpi`"), "{e}");
    }
}
