//! Helpers for GPU tests: run on an adapter when there is one, skip visibly when there
//! is none, and fail instead when `WGTRAIN_REQUIRE_GPU=1` (as CI sets it).

use super::{Session, SessionConfig};
use crate::graph::Graph;

/// Whether `WGTRAIN_REQUIRE_GPU=1` is set.
pub fn gpu_required() -> bool {
    std::env::var("WGTRAIN_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// A session on the default adapter, or `None` (with a message on stderr) when there is
/// no adapter and a GPU is not required.
///
/// # Panics
///
/// When no adapter is found and `WGTRAIN_REQUIRE_GPU=1`: the test must fail.
pub fn gpu_session(graph: Graph) -> Option<Session> {
    match Session::new(graph, SessionConfig::default()) {
        Ok(s) => Some(s),
        Err(e) if e.code == crate::Code::NotFound && !gpu_required() => {
            eprintln!("SKIPPED (no GPU adapter; set WGTRAIN_REQUIRE_GPU=1 to fail instead): {e}");
            None
        }
        Err(e) => panic!("GPU session could not be created: {e}"),
    }
}
