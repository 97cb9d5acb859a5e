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
            eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
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
    if !have_gpu() {
        return;
    }
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
            MonitoredTrainingSession::new(m.g.clone()).stop_grace_period_secs(f64::INFINITY),
        ),
        (
            "max_wait_secs",
            MonitoredTrainingSession::new(m.g.clone()).max_wait_secs(f64::NAN),
        ),
        (
            "recovery_wait_secs",
            MonitoredTrainingSession::new(m.g.clone()).recovery_wait_secs(-1.0),
        ),
        (
            "save_checkpoint_secs",
            MonitoredTrainingSession::new(m.g.clone()).save_checkpoint_secs(f64::NAN),
        ),
        (
            "save_summaries_secs",
            MonitoredTrainingSession::new(m.g.clone()).save_summaries_secs(f64::INFINITY),
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
