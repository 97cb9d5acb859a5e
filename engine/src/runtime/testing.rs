//! Helpers for GPU tests. Without an adapter a GPU test fails, naming how to install
//! one, unless `WGTRAIN_SKIP_GPU_TESTS=1` lets it skip; a skip is printed past the
//! test harness's output capture (`SKIPPED <test>: …`), so a run that tested nothing
//! never looks green. `WGTRAIN_REQUIRE_GPU=1` (CI) refuses skipping whatever else is
//! set.

use super::{Session, SessionConfig};
use crate::error::{Code, Error};
use crate::graph::Graph;
use std::io::Write;

/// Whether GPU tests must run (no skipping): unless `WGTRAIN_SKIP_GPU_TESTS=1` is
/// set, or whenever `WGTRAIN_REQUIRE_GPU=1` is.
pub fn gpu_required() -> bool {
    let on = |k: &str| std::env::var(k).is_ok_and(|v| v == "1");
    on("WGTRAIN_REQUIRE_GPU") || !on("WGTRAIN_SKIP_GPU_TESTS")
}

/// Prints that the current test skips, where the harness does not capture it.
pub fn report_skip(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}

/// Decides what a failed session creation means for a test: `true` (skip: reported)
/// when there is no adapter and skipping is allowed.
///
/// # Panics
///
/// When there is no adapter and GPU tests are required (the default), with the
/// install hint and how to skip; on any other error.
pub fn skip_without_gpu(e: &Error) -> bool {
    if e.code != Code::NotFound {
        panic!("GPU session could not be created: {e}");
    }
    if gpu_required() {
        panic!(
            "GPU tests need an adapter: {e}. To skip them instead, set WGTRAIN_SKIP_GPU_TESTS=1"
        );
    }
    report_skip("no GPU adapter (WGTRAIN_SKIP_GPU_TESTS=1)");
    true
}

/// A session on the default adapter running `graph`, or `None` when there is no
/// adapter and skipping is allowed (see the module docs).
///
/// # Panics
///
/// As [`skip_without_gpu`].
pub fn gpu_session(graph: impl Into<std::sync::Arc<Graph>>) -> Option<Session> {
    match Session::new(graph, SessionConfig::default()) {
        Ok(s) => Some(s),
        Err(e) => {
            skip_without_gpu(&e);
            None
        }
    }
}

/// Whether the GPU tests can run here (`false`: skip, reported).
///
/// # Panics
///
/// As [`skip_without_gpu`].
pub fn have_gpu() -> bool {
    gpu_session(Graph::new()).is_some()
}
