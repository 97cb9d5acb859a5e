//! Local faults a long run meets: a full disk stops training at once with
//! ResourceExhausted (never retried as a lost device) and leaves the previous checkpoint
//! intact.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wgtrain_checkpoint::{BundleReader, SaverOptions, latest_checkpoint};
use wgtrain_engine::Code;
use wgtrain_hooks::*;

/// A small tmpfs mounted for the test (root only), unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir = scratch(name);
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            wgtrain_engine::runtime::testing::report_skip(
                "mounting a tmpfs needs root (CI runs as root)",
            );
            return None;
        }
        Some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: the process-wide event writer may still hold a file open there.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_training_at_once_with_resource_exhausted() {
    let Some(fs) = Tmpfs::mount("full", "96k") else {
        return;
    };
    let dir = fs.path().join("run");
    let m = model();
    // Every checkpoint kept, a summary every step: the disk fills within some steps.
    let scaffold = Scaffold::new().saver_options(SaverOptions {
        max_to_keep: 0,
        ..Default::default()
    });
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .scaffold(scaffold)
        .checkpoint_dir(&dir)
        .save_checkpoint_steps(1)
        .save_summaries_steps(1)
        .recovery(RecoveryPolicy {
            max_attempts: 3,
            backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        })
        .create()
        .unwrap();
    let started = Instant::now();
    let mut steps = 0;
    let err = loop {
        match sess.run(&feed(&m), &[], &[m.train]) {
            Ok(_) => steps += 1,
            Err(e) => break e,
        }
        assert!(steps < 5000, "the disk never filled");
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!("disk full after {steps} steps, {secs:.2} s: {err}");
    assert_eq!(err.code, Code::ResourceExhausted, "{err}");
    assert!(
        err.message.contains(&dir.display().to_string()),
        "names the file: {err}"
    );
    assert_eq!(sess.recoveries(), 0, "a full disk is not a lost device");
    let _ = sess.close();
    // The latest checkpoint the state file names is complete and verifies.
    let latest = latest_checkpoint(&dir).expect("a checkpoint before the disk filled");
    let reader = BundleReader::open(&latest).unwrap();
    for (name, r) in reader.verify() {
        r.unwrap_or_else(|e| panic!("{}: {name}: {e}", latest.display()));
    }
    let temps: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tempstate") || n.contains(".tmp"))
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");
}

#[test]
fn local_io_errors_carry_their_code() {
    use std::io::{Error as IoError, ErrorKind};
    let cases = [
        (IoError::from_raw_os_error(28), Code::ResourceExhausted), // ENOSPC
        (IoError::from_raw_os_error(122), Code::ResourceExhausted), // EDQUOT
        (IoError::from(ErrorKind::NotFound), Code::NotFound),
        (IoError::from(ErrorKind::AlreadyExists), Code::AlreadyExists),
        (
            IoError::from(ErrorKind::PermissionDenied),
            Code::PermissionDenied,
        ),
        (
            IoError::from(ErrorKind::ReadOnlyFilesystem),
            Code::PermissionDenied,
        ),
        (IoError::from(ErrorKind::UnexpectedEof), Code::DataLoss),
        (IoError::from(ErrorKind::TimedOut), Code::DeadlineExceeded),
        (
            IoError::from(ErrorKind::NotADirectory),
            Code::FailedPrecondition,
        ),
        (IoError::from(ErrorKind::Other), Code::Unknown),
    ];
    for (e, want) in cases {
        let got = wgtrain_engine::Error::io("runs/x/model.ckpt-3.index", &e);
        assert_eq!(got.code, want, "{e:?}");
        assert!(!got.code.is_recoverable(), "{got}");
        assert!(
            got.message.starts_with("runs/x/model.ckpt-3.index: "),
            "{got}"
        );
    }
}

#[test]
fn durations_that_are_not_finite_seconds_are_invalid_argument() {
    // Before, an infinite or NaN duration panicked in Duration::from_secs_f64.
    let m = model();
    let builders: Vec<(&str, MonitoredTrainingSession)> = vec![
        (
            "stop_grace_period_secs",
            MonitoredTrainingSession::new(m.g.clone())
                .config(host())
                .stop_grace_period_secs(f64::INFINITY),
        ),
        (
            "max_wait_secs",
            MonitoredTrainingSession::new(m.g.clone())
                .config(host())
                .max_wait_secs(f64::NAN),
        ),
        (
            "recovery_wait_secs",
            MonitoredTrainingSession::new(m.g.clone())
                .config(host())
                .recovery_wait_secs(-1.0),
        ),
        (
            "save_checkpoint_secs",
            MonitoredTrainingSession::new(m.g.clone())
                .config(host())
                .save_checkpoint_secs(f64::NAN),
        ),
        (
            "save_summaries_secs",
            MonitoredTrainingSession::new(m.g.clone())
                .config(host())
                .save_summaries_secs(f64::INFINITY),
        ),
    ];
    for (name, b) in builders {
        let e = b.create().err().unwrap();
        assert_eq!(e.code, Code::InvalidArgument, "{name}: {e}");
        assert!(e.message.contains(name), "{e}");
    }
    let clock: wgtrain_hooks::hook::SharedClock = std::sync::Arc::new(SystemClock);
    let e = SecondOrStepTimer::new(Some(f64::NEG_INFINITY), None, clock).unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    let opts = wgtrain_checkpoint::events::WriterOptions {
        flush_secs: f64::INFINITY,
        ..Default::default()
    };
    let e = wgtrain_checkpoint::events::EventWriter::new(scratch("flush"), opts)
        .err()
        .unwrap();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
}

/// Trains `model()` to global step `last` in `dir`, a checkpoint every step (TF keeps 5).
fn train_to(dir: &Path, last: i64) {
    let m = model();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(dir)
        .save_checkpoint_steps(1)
        .hooks([StopAtStepHook::last_step(last).boxed()])
        .create()
        .unwrap();
    train_until_stop(&mut sess, &m);
    sess.close().unwrap();
}

/// The global step a new monitored session over `dir` starts from.
fn resumed_step(dir: &Path) -> wgtrain_engine::Result<i64> {
    let m = model();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(dir)
        .save_checkpoint_steps(1)
        .create()?;
    let gs = m.g.get_global_step().unwrap();
    let raw = sess.raw_session().unwrap();
    let step = raw.read_variables(&[gs])?[0].scalar_value()? as i64;
    sess.close()?;
    Ok(step)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn an_unreadable_state_file_restores_the_newest_checkpoint_found() {
    // Before: the trainer silently restored step 0 and rewrote the state file.
    let dir = scratch("badstate");
    train_to(&dir, 6);
    std::fs::write(
        dir.join("checkpoint"),
        b"model_checkpoint_path: \"unterminated\n\x00",
    )
    .unwrap();
    assert_eq!(resumed_step(&dir).unwrap(), 6);
    // The state file is whole again and still names the older checkpoints.
    let st = wgtrain_checkpoint::state::read_state(&dir)
        .unwrap()
        .unwrap();
    assert_eq!(st.model_checkpoint_path, "model.ckpt-6");
    assert!(
        st.all_model_checkpoint_paths
            .contains(&"model.ckpt-4".to_string()),
        "{st:?}"
    );
}

#[test]
fn a_deleted_latest_index_falls_back_to_the_checkpoint_before_it() {
    let dir = scratch("noindex");
    train_to(&dir, 6);
    std::fs::remove_file(dir.join("model.ckpt-6.index")).unwrap();
    assert_eq!(resumed_step(&dir).unwrap(), 5);
}

#[test]
fn a_damaged_latest_checkpoint_falls_back_and_is_set_aside() {
    // Before: DataLoss, and training could not start.
    let dir = scratch("damaged");
    train_to(&dir, 6);
    let data = dir.join("model.ckpt-6.data-00000-of-00001");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[0] ^= 0x5a;
    std::fs::write(&data, bytes).unwrap();
    // A save interrupted by a crash left a temporary file.
    std::fs::write(dir.join("model.ckpt-7.index.tempstate999_0"), b"partial").unwrap();
    assert_eq!(resumed_step(&dir).unwrap(), 5);
    let files = names(&dir);
    assert!(
        files.contains(&"model.ckpt-6.data-00000-of-00001.damaged".to_string()),
        "{files:?}"
    );
    assert!(!files.iter().any(|f| f.contains("tempstate")), "{files:?}");
    assert_eq!(
        wgtrain_checkpoint::latest_checkpoint(&dir).unwrap(),
        dir.join("model.ckpt-5")
    );
}

#[test]
fn no_restorable_checkpoint_is_an_error_not_a_fresh_start() {
    let dir = scratch("alldamaged");
    train_to(&dir, 2);
    for f in names(&dir).iter().filter(|f| f.contains(".data-")) {
        std::fs::write(dir.join(f), b"garbage").unwrap();
    }
    let before = names(&dir);
    let e = resumed_step(&dir).unwrap_err();
    assert_eq!(e.code, Code::DataLoss, "{e}");
    assert!(e.message.contains("none of the"), "{e}");
    assert!(e.message.contains("start_fresh_if_unrestorable"), "{e}");
    // Nothing was touched.
    assert_eq!(names(&dir), before);
    // Asked for, a fresh start sets every damaged checkpoint aside (none overwritten)
    // and trains from step 0.
    let m = model();
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(&dir)
        .save_checkpoint_steps(1)
        .start_fresh_if_unrestorable(true)
        .hooks([StopAtStepHook::last_step(1).boxed()])
        .create()
        .unwrap();
    assert_eq!(global_step(&mut sess), 0);
    train_until_stop(&mut sess, &m);
    sess.close().unwrap();
    let after = names(&dir);
    for f in before.iter().filter(|f| f.starts_with("model.ckpt-")) {
        assert!(
            after.contains(&format!("{f}.damaged")),
            "{f} not set aside: {after:?}"
        );
    }
    assert_eq!(latest_checkpoint(&dir).unwrap(), dir.join("model.ckpt-1"));
    assert_eq!(resumed_step(&dir).unwrap(), 1);
}

/// A background job that never finishes (a device that stopped answering).
struct Stuck;

impl wgtrain_engine::Task for Stuck {
    type Job = ();
    fn run(&mut self, (): ()) -> wgtrain_engine::Result<()> {
        std::thread::sleep(Duration::from_secs(3600));
        Ok(())
    }
}

/// Registers a worker stuck in its first job with each session's coordinator.
struct StuckWorkerHook(Vec<wgtrain_engine::Worker<()>>);

impl SessionRunHook for StuckWorkerHook {
    fn after_create_session(
        &mut self,
        _: &mut dyn wgtrain_engine::Executor,
        coord: &Coordinator,
    ) -> wgtrain_engine::Result<()> {
        let w = wgtrain_engine::Worker::spawn("stuck", Default::default(), Stuck)?;
        w.submit(())?;
        coord.register_worker(w.background());
        self.0.push(w);
        Ok(())
    }
}

#[test]
fn close_is_bounded_by_the_grace_period_when_a_worker_hangs() {
    let m = model();
    let dir = scratch("stuck-close");
    let mut sess = MonitoredTrainingSession::new(m.g.clone())
        .config(host())
        .checkpoint_dir(&dir)
        .stop_grace_period_secs(0.5)
        .hooks([Box::new(StuckWorkerHook(Vec::new())) as Box<dyn SessionRunHook>])
        .create()
        .unwrap();
    for _ in 0..3 {
        sess.run(&feed(&m), &[], &[m.train]).unwrap();
    }
    let t = Instant::now();
    let e = sess.close().unwrap_err();
    let took = t.elapsed();
    assert_eq!(e.code, Code::DeadlineExceeded, "{e}");
    assert!(e.message.contains("stuck"), "{e}");
    assert!(took < Duration::from_secs(5), "close took {took:?}");
    // The workers that were not stuck finished: the final checkpoint and the events
    // are complete.
    assert_eq!(latest_checkpoint(&dir).unwrap(), dir.join("model.ckpt-3"));
    let checked = BundleReader::open(dir.join("model.ckpt-3"))
        .unwrap()
        .verify();
    assert!(checked.iter().all(|(_, r)| r.is_ok()), "{checked:?}");
    for f in wgtrain_checkpoint::events::event_files(&dir).unwrap() {
        let (_, err) = wgtrain_checkpoint::events::read_file(&f).unwrap();
        assert!(err.is_none(), "{f:?}: {err:?}");
    }
}

/// Copies the files of `from` into a new scratch directory.
fn copy_dir(from: &Path, name: &str) -> PathBuf {
    let to = scratch(name);
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    to
}

#[test]
fn damage_drills_restore_the_newest_good_checkpoint_and_keep_the_rest() {
    // The drill of the issue, per file of the newest checkpoint and the state file:
    // a byte flipped or the file cut short at a random place, WGTRAIN_DRILL_TRIALS
    // times each (12 in CI, 120 by hand). Every restart restores step 6 (the damage
    // was harmless, or the state file was rebuilt from the directory) or step 5 (the
    // newest set aside); none starts over, fails or panics, and the checkpoints
    // before stay on disk and in the state file.
    let trials: u64 = std::env::var("WGTRAIN_DRILL_TRIALS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let golden = scratch("drill-golden");
    train_to(&golden, 6);
    let mut r = wgtrain_engine::rng::Stream::new((13, 13));
    for file in [
        "model.ckpt-6.data-00000-of-00001",
        "model.ckpt-6.index",
        "checkpoint",
    ] {
        let (mut newest, mut previous) = (0, 0);
        for trial in 0..trials {
            let dir = copy_dir(&golden, "drill");
            let path = dir.join(file);
            let mut bytes = std::fs::read(&path).unwrap();
            let at = ((r.uniform() * bytes.len() as f64) as usize).min(bytes.len() - 1);
            if trial % 2 == 0 {
                bytes[at] ^= 1 << (trial / 2 % 8);
            } else {
                bytes.truncate(at);
            }
            std::fs::write(&path, &bytes).unwrap();
            let damaged = if file == "checkpoint" {
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                format!("{} bytes", bytes.len())
            };
            let step = resumed_step(&dir)
                .unwrap_or_else(|e| panic!("{file}, trial {trial} (byte {at}): {e}"));
            match step {
                6 => newest += 1,
                5 => previous += 1,
                s => panic!("{file}, trial {trial} (byte {at}): restored step {s}"),
            }
            let st = wgtrain_checkpoint::state::read_state(&dir)
                .unwrap()
                .unwrap();
            for older in 2..=4 {
                let name = format!("model.ckpt-{older}");
                assert!(
                    st.all_model_checkpoint_paths.contains(&name),
                    "{file}, trial {trial}: {name} dropped from the state file: {st:?}; \
                     the damaged file: {damaged}"
                );
                assert!(dir.join(format!("{name}.index")).exists());
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
        eprintln!(
            "{file}: {trials} trials, {newest} restored step 6, {previous} fell back to step 5"
        );
    }
}

/// The checkpoint files of `dir` (not set aside), sorted.
fn checkpoint_files(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("model.ckpt-") && !n.ends_with(".damaged"))
        .collect()
}

#[test]
fn files_of_saves_a_crash_interrupted_are_retired_not_left_forever() {
    // A kill after a checkpoint's files were renamed into place but before the state
    // file named it, or between its data and its index, left files no retention ever
    // deleted (a checkpoint's size each, crash after crash).
    let dir = scratch("orphans");
    train_to(&dir, 6);
    // The state file as it was before step 6's save finished.
    let mut st = wgtrain_checkpoint::state::read_state(&dir)
        .unwrap()
        .unwrap();
    st.all_model_checkpoint_paths
        .retain(|p| p != "model.ckpt-6");
    st.all_model_checkpoint_timestamps.pop();
    st.model_checkpoint_path = "model.ckpt-5".into();
    wgtrain_checkpoint::state::write_state(&dir, &st).unwrap();
    // Written when step 5's save finished, before step 6's index.
    let then = std::fs::metadata(dir.join("model.ckpt-5.index"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(dir.join("checkpoint"))
        .unwrap()
        .set_modified(then)
        .unwrap();
    // A save of step 9 that died between its data and its index.
    std::fs::copy(
        dir.join("model.ckpt-5.data-00000-of-00001"),
        dir.join("model.ckpt-9.data-00000-of-00001"),
    )
    .unwrap();
    std::fs::copy(dir.join("model.ckpt-5.meta"), dir.join("model.ckpt-9.meta")).unwrap();
    // The newest complete checkpoint restores, though the state file missed it.
    assert_eq!(resumed_step(&dir).unwrap(), 6);
    train_to(&dir, 20);
    let files = checkpoint_files(&dir);
    let steps: std::collections::BTreeSet<i64> = files
        .iter()
        .filter_map(|f| f["model.ckpt-".len()..].split('.').next()?.parse().ok())
        .collect();
    assert_eq!(
        steps,
        (16..=20).collect(),
        "files of checkpoints retention let go are still there: {files:?}"
    );
}
