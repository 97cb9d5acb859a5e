//! Helpers shared by the checkpoint test binaries.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

/// TF's golden files: `testdata/tf` in the repository, or the folder
/// `WGTRAIN_TESTDATA` names.
pub fn testdata() -> PathBuf {
    if let Some(p) = std::env::var_os("WGTRAIN_TESTDATA") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/tf");
    assert!(
        p.join("ckpt_manifest.json").exists(),
        "TF goldens not found at {} (set WGTRAIN_TESTDATA)",
        p.display()
    );
    p
}

/// A fresh directory under the system temp dir, unique to this process and moment.
pub fn scratch(prefix: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "wgtrain-{prefix}-{name}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
