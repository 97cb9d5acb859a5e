//! The examples' core (datasets, the classifier's training loop) and the `wgtrain`
//! command-line tool.

#![allow(clippy::unwrap_used)]

mod classifier;
mod cli;
mod mnist;

use std::path::PathBuf;

/// Whether a GPU session can be made (the GPU tests skip visibly otherwise, and fail
/// with `WGTRAIN_REQUIRE_GPU=1`).
pub fn have_gpu() -> bool {
    let ok = wgtrain::Session::new(wgtrain::Graph::new(), Default::default()).is_ok();
    if !ok {
        assert!(
            !wgtrain::engine::runtime::testing::gpu_required(),
            "no GPU adapter and WGTRAIN_REQUIRE_GPU=1"
        );
        eprintln!("SKIPPED (no GPU adapter)");
    }
    ok
}

/// A fresh directory under the system temp dir.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wgtrain-tools-{name}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// TF's golden files: `../shared/testdata/tf` beside the repository, or
/// `WGTRAIN_TESTDATA`.
pub fn testdata() -> PathBuf {
    if let Some(p) = std::env::var_os("WGTRAIN_TESTDATA") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/tf");
    assert!(
        p.join("ckpt_manifest.json").exists(),
        "TF goldens not found at {} (set WGTRAIN_TESTDATA)",
        p.display()
    );
    p
}
