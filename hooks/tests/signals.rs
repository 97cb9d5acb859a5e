//! SIGTERM and SIGINT end a monitored training run with a final checkpoint at the
//! current step; a second signal exits at once. Each test runs this binary again as a
//! child (the ignored test `child_main`) and signals it.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wgtrain_hooks::*;

/// Sleeps in `end` (after it said so in a file), to be signalled a second time there.
struct SlowEnd(PathBuf);

impl SessionRunHook for SlowEnd {
    fn end(&mut self, _: &mut dyn wgtrain_engine::Executor) -> wgtrain_engine::Result<()> {
        std::fs::write(&self.0, b"ending").unwrap();
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    }
}

/// The child: trains until a signal stops it, writing its step after every run.
#[test]
#[ignore = "the child process of the signal tests"]
fn child_main() {
    let Ok(dir) = std::env::var("WGTRAIN_SIGNAL_DIR").map(PathBuf::from) else {
        return;
    };
    let m = model();
    let mut hooks: Vec<Box<dyn SessionRunHook>> = Vec::new();
    if std::env::var_os("WGTRAIN_SIGNAL_SLOW_END").is_some() {
        hooks.push(Box::new(SlowEnd(dir.join("ending"))));
    }
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(dir.join("ckpt"))
        .save_checkpoint_steps(
            std::env::var("WGTRAIN_SIGNAL_SAVE_STEPS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_000_000),
        )
        .save_summaries_steps(1)
        .hooks(hooks)
        .create()
        .unwrap();
    let gs = m.g.get_global_step().unwrap();
    while !sess.should_stop() {
        sess.run(&feed(&m), &[], &[m.train]).unwrap();
        let step = sess.raw_session().unwrap().known_scalar(gs).unwrap();
        // Atomically: a kill between truncating and writing must not leave it empty.
        let tmp = dir.join("progress.tmp");
        std::fs::write(&tmp, step.to_string()).unwrap();
        std::fs::rename(&tmp, dir.join("progress")).unwrap();
    }
    sess.close().unwrap();
}

fn progress(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(dir.join("progress"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

fn child(dir: &Path, slow_end: bool) -> std::process::Child {
    child_saving(dir, slow_end, 1_000_000)
}

fn child_saving(dir: &Path, slow_end: bool, every: i64) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env("WGTRAIN_SIGNAL_SAVE_STEPS", every.to_string());
    cmd.args(["--ignored", "--exact", "child_main", "--nocapture"])
        .env("WGTRAIN_SIGNAL_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if slow_end {
        cmd.env("WGTRAIN_SIGNAL_SLOW_END", "1");
    }
    cmd.spawn().unwrap()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

fn exit_of(mut c: std::process::Child, limit: Duration) -> (std::process::ExitStatus, f64) {
    let t = Instant::now();
    loop {
        if let Some(s) = c.try_wait().unwrap() {
            return (s, t.elapsed().as_secs_f64());
        }
        if t.elapsed() > limit {
            let _ = c.kill();
            panic!("the child did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The child is signalled once mid-training: it exits 0 within the grace period and its
/// latest checkpoint is the step it reached (no step lost).
fn stops_with_a_final_checkpoint(sig: &str) {
    let dir = scratch(&format!("signal-{sig}"));
    let c = child(&dir, false);
    let pid = c.id();
    wait_for("20 steps", Duration::from_secs(60), || {
        progress(&dir).is_some_and(|p| p >= 20)
    });
    signal(pid, sig);
    let (status, secs) = exit_of(c, Duration::from_secs(30));
    assert!(status.success(), "{sig}: {status}");
    let reached = progress(&dir).unwrap();
    let latest = wgtrain_checkpoint::latest_checkpoint(dir.join("ckpt")).unwrap();
    let saved: i64 = latest
        .to_string_lossy()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("{sig}: exited after {secs:.2} s; reached step {reached}, saved {saved}");
    assert_eq!(saved, reached, "{sig}: steps lost");
    assert!(secs < 10.0, "{sig}: exited after {secs} s");
}

#[test]
fn sigterm_stops_after_the_step_with_a_final_checkpoint() {
    stops_with_a_final_checkpoint("TERM");
}

#[test]
fn sigint_stops_after_the_step_with_a_final_checkpoint() {
    stops_with_a_final_checkpoint("INT");
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = scratch("signal-twice");
    let c = child(&dir, true);
    let pid = c.id();
    wait_for("5 steps", Duration::from_secs(60), || {
        progress(&dir).is_some_and(|p| p >= 5)
    });
    signal(pid, "TERM");
    wait_for("the hooks' end", Duration::from_secs(30), || {
        dir.join("ending").exists()
    });
    signal(pid, "TERM");
    let (status, secs) = exit_of(c, Duration::from_secs(10));
    assert_eq!(status.code(), Some(128 + 15), "{status}");
    assert!(secs < 5.0, "exited {secs} s after the second signal");
}

#[test]
fn kill_9_trials_restart_from_a_valid_checkpoint_and_leave_no_temporary_files() {
    // A checkpoint every step, killed at moments from a fixed seed, 10 times in a row
    // over one directory: every restart restores (a child that cannot panics and never
    // makes progress), and the last leaves no temporary file behind.
    let trials: usize = std::env::var("WGTRAIN_KILL_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let dir = scratch("kill9");
    let mut r = wgtrain_engine::rng::Stream::new((9, 9));
    let mut reached = 0;
    let mut lost = Vec::new();
    for trial in 0..trials {
        let c = child_saving(&dir, false, 1);
        let pid = c.id();
        let target = reached + 1 + (r.uniform() * 15.0) as i64;
        wait_for(
            &format!("trial {trial}: step {target}"),
            Duration::from_secs(60),
            || progress(&dir).is_some_and(|p| p >= target),
        );
        // Anywhere within a step or a save.
        std::thread::sleep(Duration::from_micros((r.uniform() * 3000.0) as u64));
        signal(pid, "KILL");
        let (status, _) = exit_of(c, Duration::from_secs(10));
        assert!(!status.success());
        reached = progress(&dir).unwrap();
        // What a restart will restore: the newest checkpoint that verifies.
        let ckpt = dir.join("ckpt");
        let restorable = wgtrain_checkpoint::state::checkpoints_newest_first(&ckpt)
            .into_iter()
            .find(|p| {
                wgtrain_checkpoint::BundleReader::open(p)
                    .is_ok_and(|r| r.verify().iter().all(|(_, ok)| ok.is_ok()))
            })
            .unwrap_or_else(|| panic!("trial {trial}: no checkpoint verifies"));
        let step: i64 = restorable
            .to_string_lossy()
            .rsplit_once('-')
            .and_then(|(_, n)| n.parse().ok())
            .unwrap();
        let temps = std::fs::read_dir(&ckpt)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().contains("tempstate"))
            })
            .count();
        lost.push((reached - step, temps));
    }
    let most = lost.iter().map(|l| l.0).max().unwrap_or(0);
    let with_temps = lost.iter().filter(|l| l.1 > 0).count();
    eprintln!(
        "{trials} kill -9 trials: each left a verified checkpoint at most {most} steps back; \
         {with_temps} left temporary files (removed by the next start)"
    );
    // With max_in_flight 2, at most the step's own save and the one before it are
    // unwritten when the process dies.
    assert!(most <= 2, "{lost:?}");
    let ckpt = dir.join("ckpt");
    let m = model();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(&ckpt)
        .create()
        .unwrap();
    let gs = m.g.get_global_step().unwrap();
    let resumed = sess.raw_session().unwrap().read_variables(&[gs]).unwrap()[0]
        .scalar_value()
        .unwrap() as i64;
    sess.close().unwrap();
    eprintln!("{trials} kill -9 trials: reached step {reached}, resumed at {resumed}");
    assert!(
        resumed >= reached - 2 && resumed <= reached + 1,
        "resumed {resumed}, reached {reached}"
    );
    let temps: Vec<String> = std::fs::read_dir(&ckpt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tempstate"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
    // Every checkpoint on disk is one the state file tracks: no crash left files that
    // retention would never delete.
    let st = wgtrain_checkpoint::state::read_state(&ckpt)
        .unwrap()
        .unwrap();
    let untracked: Vec<String> = std::fs::read_dir(&ckpt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("model.ckpt-"))
        .filter(|n| {
            let prefix = n.split_once(".data-").map_or_else(
                || n.trim_end_matches(".index").trim_end_matches(".meta"),
                |(p, _)| p,
            );
            !st.all_model_checkpoint_paths.iter().any(|p| p == prefix)
        })
        .collect();
    assert!(
        untracked.is_empty(),
        "untracked checkpoint files: {untracked:?}"
    );
    let latest = wgtrain_checkpoint::latest_checkpoint(&ckpt).unwrap();
    for (name, ok) in wgtrain_checkpoint::BundleReader::open(&latest)
        .unwrap()
        .verify()
    {
        ok.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
