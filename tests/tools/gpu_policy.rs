//! Without an adapter GPU tests fail, naming the install and the opt-out, unless
//! `WGTRAIN_SKIP_GPU_TESTS=1`; a skip is printed past the harness's capture, and
//! `WGTRAIN_REQUIRE_GPU=1` refuses skipping. Each case runs this binary again, on a
//! backend this machine has no adapter for.

use std::process::Command;

/// One GPU test of this binary, run alone with `env` and no adapter to be found.
fn run_gpu_test_without_adapter(env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "cli::devices_honours_wgpu_backend",
        "--test-threads=1",
    ])
    .env("WGPU_BACKEND", "dx12")
    .env_remove("WGTRAIN_REQUIRE_GPU")
    .env_remove("WGTRAIN_SKIP_GPU_TESTS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
#[cfg(target_os = "linux")]
fn gpu_tests_fail_without_an_adapter_unless_skipping_is_asked_for() {
    let (ok, out) = run_gpu_test_without_adapter(&[]);
    assert!(!ok, "{out}");
    assert!(out.contains("GPU tests need an adapter"), "{out}");
    assert!(out.contains("mesa-vulkan-drivers"), "{out}");
    assert!(out.contains("WGTRAIN_SKIP_GPU_TESTS=1"), "{out}");

    let (ok, out) = run_gpu_test_without_adapter(&[("WGTRAIN_SKIP_GPU_TESTS", "1")]);
    assert!(ok, "{out}");
    assert!(
        out.contains("SKIPPED cli::devices_honours_wgpu_backend: no GPU adapter"),
        "{out}"
    );

    let (ok, out) = run_gpu_test_without_adapter(&[
        ("WGTRAIN_SKIP_GPU_TESTS", "1"),
        ("WGTRAIN_REQUIRE_GPU", "1"),
    ]);
    assert!(!ok, "{out}");
}
