//! The examples' core (datasets, the classifier's training loop) and the `wgtrain`
//! command-line tool.

#![allow(clippy::unwrap_used)]

mod classifier;
mod cli;
mod gpu_policy;
mod mnist;

use std::path::PathBuf;

/// Whether a GPU session can be made (see `wgtrain::engine::runtime::testing`).
pub fn have_gpu() -> bool {
    wgtrain::engine::runtime::testing::have_gpu()
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

/// TF's golden files: `testdata/tf` in the repository, or the folder
/// `WGTRAIN_TESTDATA` names.
pub fn testdata() -> PathBuf {
    if let Some(p) = std::env::var_os("WGTRAIN_TESTDATA") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/tf");
    assert!(
        p.join("ckpt_manifest.json").exists(),
        "TF goldens not found at {} (set WGTRAIN_TESTDATA)",
        p.display()
    );
    p
}
