//! The `wgtrain` tool on TF's golden files and on files the tests write: output, exit
//! codes (0 ok, 1 error with one line on stderr, 2 usage).

use crate::{have_gpu, scratch, testdata};
use std::path::Path;
use std::process::Command;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn wgtrain(args: &[&str]) -> Out {
    wgtrain_with(args, &[])
}

/// `wgtrain args` with `env` set (an empty value removes the variable) and, as on a
/// headless machine, no `XDG_RUNTIME_DIR`.
fn wgtrain_with(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wgtrain"));
    cmd.args(args).env_remove("XDG_RUNTIME_DIR");
    for (k, v) in env {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let o = cmd.output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// One line on stderr, starting "error: ".
fn one_error_line(o: &Out) -> &str {
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{:?}", o.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    lines[0]
}

#[test]
fn ckpt_list_gives_every_variable_of_a_tf_checkpoint() {
    let td = testdata();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(td.join("ckpt_manifest.json")).unwrap())
            .unwrap();
    let vars = manifest["checkpoints"]["model.ckpt-3"]["variables"]
        .as_object()
        .unwrap();
    // A directory means its latest checkpoint.
    let o = wgtrain(&["ckpt", "list", s(&td.join("ckpt"))]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("model.ckpt-3"), "{}", o.stdout);
    for (name, v) in vars {
        let line = o
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} missing:\n{}", o.stdout));
        let dims: Vec<String> = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert!(line.contains(&format!("[{}]", dims.join(", "))), "{line}");
    }
    assert_eq!(o.stdout.lines().count(), vars.len() + 1);
}

#[test]
fn ckpt_verify_passes_on_tf_files_and_reports_damage() {
    let td = testdata();
    let o = wgtrain(&["ckpt", "list", s(&td.join("ckpt/model.ckpt-0")), "--verify"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("every CRC matches"), "{}", o.stdout);
    // A copy with one byte of big/matrix flipped.
    let dir = scratch("cli-damaged");
    for f in ["model.ckpt-0.index", "model.ckpt-0.data-00000-of-00001"] {
        std::fs::copy(td.join("ckpt").join(f), dir.join(f)).unwrap();
    }
    let data = dir.join("model.ckpt-0.data-00000-of-00001");
    let mut b = std::fs::read(&data).unwrap();
    b[1000] ^= 0x40;
    std::fs::write(&data, b).unwrap();
    let o = wgtrain(&["ckpt", "list", s(&dir.join("model.ckpt-0")), "--verify"]);
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains("DataLoss big/matrix"), "{}", o.stdout);
    assert!(one_error_line(&o).contains("damaged"));
}

#[test]
fn ckpt_show_summarises_values() {
    let td = testdata();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(td.join("ckpt_manifest.json")).unwrap())
            .unwrap();
    let m = &manifest["checkpoints"]["model.ckpt-3"]["variables"]["big/matrix"];
    let o = wgtrain(&["ckpt", "show", s(&td.join("ckpt")), "big/matrix"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .starts_with("big/matrix: float32 [300, 300] (90000 values)"),
        "{}",
        o.stdout
    );
    let first = m["sample_flat_index"]["0"].as_f64().unwrap() as f32;
    assert!(o.stdout.contains(&format!("[{first}, ")), "{}", o.stdout);
    let min = m["min"].as_f64().unwrap() as f32;
    assert!(o.stdout.contains(&format!("min {min}")), "{}", o.stdout);
    assert!(o.stdout.contains(" ...]"));
    // Unknown names and paths: exit 1 with one line.
    let o = wgtrain(&["ckpt", "show", s(&td.join("ckpt")), "no/such"]);
    assert_eq!(o.code, 1);
    assert!(one_error_line(&o).contains("no/such"));
    let o = wgtrain(&["ckpt", "list", "/no/such/model.ckpt-1"]);
    assert_eq!(o.code, 1);
    one_error_line(&o);
    let empty = scratch("cli-empty");
    let o = wgtrain(&["ckpt", "list", s(&empty)]);
    assert_eq!(o.code, 1);
    assert!(one_error_line(&o).contains("no checkpoint"));
}

#[test]
fn ckpt_reads_a_checkpoint_we_wrote() {
    use wgtrain::checkpoint::tensor::{Tensor, TfDType};
    let dir = scratch("cli-ours");
    let kernel: Vec<u8> = [1.5f32, -2.0, 3.25, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let tensors = vec![
        (
            "dense/kernel".to_string(),
            Tensor::from_bytes(TfDType::Float, &[2, 2], kernel).unwrap(),
        ),
        (
            "global_step".to_string(),
            Tensor::from_bytes(TfDType::Int64, &[], 42i64.to_le_bytes().to_vec()).unwrap(),
        ),
    ];
    wgtrain::checkpoint::write_bundle(&dir.join("model.ckpt-42"), &tensors).unwrap();
    let o = wgtrain(&["ckpt", "list", s(&dir.join("model.ckpt-42")), "--verify"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("dense/kernel  float32   [2, 2]"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("global_step   int64     []"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("verified: 2 tensors"), "{}", o.stdout);
    let o = wgtrain(&[
        "ckpt",
        "show",
        s(&dir.join("model.ckpt-42")),
        "dense/kernel",
    ]);
    assert!(o.stdout.contains("[1.5, -2, 3.25, 4]"), "{}", o.stdout);
    assert!(
        o.stdout.contains("min -2  max 4  mean 1.6875"),
        "{}",
        o.stdout
    );
}

#[test]
fn events_gives_the_scalars_of_tf_event_files() {
    let td = testdata();
    let o = wgtrain(&["events", s(&td.join("events"))]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let loss = o.stdout.lines().find(|l| l.starts_with("loss ")).unwrap();
    let f: Vec<&str> = loss.split_whitespace().collect();
    // 5 scalar writes and one merged one; the last at step 50.
    assert_eq!(f[1..], ["6", "0", "50", "0.16666667"], "{loss}");
    let acc = o
        .stdout
        .lines()
        .find(|l| l.starts_with("metrics/accuracy"))
        .unwrap();
    assert!(acc.ends_with(" 40  0.9"), "{acc}");
    let o = wgtrain(&["events", s(&td.join("events")), "--csv"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.starts_with("run,tag,step,wall_time,value\n"));
    assert!(o.stdout.contains("\n.,loss,10,"), "{}", o.stdout);
    assert_eq!(
        o.stdout
            .lines()
            .filter(|l| l.starts_with(".,loss,"))
            .count(),
        6
    );
    // The monitored session's events too (the global_step/sec of StepCounterHook).
    let o = wgtrain(&["events", s(&td.join("ckpt"))]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

#[test]
fn events_shows_one_table_per_run_as_tensorboard_does() {
    let td = testdata();
    let logdir = scratch("cli-runs");
    for run in ["a", "b/nested"] {
        let d = logdir.join(run);
        std::fs::create_dir_all(&d).unwrap();
        for f in wgtrain::checkpoint::events::event_files(&td.join("events")).unwrap() {
            std::fs::copy(&f, d.join(f.file_name().unwrap())).unwrap();
        }
    }
    let o = wgtrain(&["events", s(&logdir)]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let headers: Vec<&str> = o.stdout.lines().filter(|l| l.starts_with("run ")).collect();
    assert_eq!(headers.len(), 2, "{}", o.stdout);
    assert!(
        headers[0].starts_with("run a: 1 event file(s)"),
        "{}",
        headers[0]
    );
    assert!(
        headers[1].starts_with("run b/nested: 1 event file(s)"),
        "{}",
        headers[1]
    );
    // Each run's points alone: 6 loss points, not 12.
    let losses: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| l.starts_with("loss "))
        .collect();
    assert_eq!(losses.len(), 2);
    for l in losses {
        assert_eq!(l.split_whitespace().nth(1), Some("6"), "{l}");
    }
    let o = wgtrain(&["events", s(&logdir), "--csv"]);
    assert_eq!(
        o.stdout
            .lines()
            .filter(|l| l.starts_with("b/nested,loss,"))
            .count(),
        6
    );
}

#[test]
fn ckpt_show_prints_floats_in_shortest_round_trip_form() {
    use wgtrain::checkpoint::tensor::{Tensor, TfDType};
    let dir = scratch("cli-floats");
    let prefix = dir.join("model.ckpt-1");
    let vals = [f32::MAX, f32::MIN_POSITIVE, 0.1, -2.5e-7, 1e16];
    let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    wgtrain::checkpoint::bundle::write_bundle(
        &prefix,
        &[(
            "v".to_string(),
            Tensor::from_bytes(TfDType::Float, &[5], bytes).unwrap(),
        )],
    )
    .unwrap();
    let o = wgtrain(&["ckpt", "show", s(&prefix), "v"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout
            .contains("[3.4028235e38, 1.1754944e-38, 0.1, -2.5e-7, 1e16]"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("max 3.4028235e38"), "{}", o.stdout);
}

#[test]
fn bad_paths_and_damaged_event_files_are_errors() {
    let o = wgtrain(&["events", "/no/such/dir"]);
    assert_eq!(o.code, 1);
    one_error_line(&o);
    let empty = scratch("cli-no-events");
    let o = wgtrain(&["events", s(&empty)]);
    assert_eq!(o.code, 1);
    assert!(one_error_line(&o).contains("no event files"));
    // A damaged copy of TF's event file: the good records, then DataLoss.
    let td = testdata();
    let dir = scratch("cli-bad-events");
    let src = wgtrain::checkpoint::events::event_files(&td.join("events")).unwrap()[0].clone();
    let dst = dir.join(src.file_name().unwrap());
    let mut b = std::fs::read(&src).unwrap();
    let n = b.len();
    b[n - 10] ^= 0xff;
    std::fs::write(&dst, b).unwrap();
    let o = wgtrain(&["events", s(&dir)]);
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains("loss"), "{}", o.stdout);
    let e = one_error_line(&o);
    assert!(e.contains("DATA_LOSS") && e.contains("checksum"), "{e}");
}

#[test]
fn usage_errors_exit_with_2() {
    assert_eq!(wgtrain(&[]).code, 2);
    assert_eq!(wgtrain(&["ckpt"]).code, 2);
    assert_eq!(wgtrain(&["ckpt", "show", "x"]).code, 2);
    assert_eq!(wgtrain(&["frobnicate"]).code, 2);
    assert_eq!(wgtrain(&["--help"]).code, 0);
}

#[test]
fn devices_lists_the_adapter() {
    let o = wgtrain_with(&["devices"], &[("WGPU_BACKEND", "")]);
    // Probing prints nothing of its own (Mesa's layers would, through libwayland).
    assert_eq!(o.stderr, "", "{}", o.stderr);
    if have_gpu() {
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(o.stdout.contains("backend: "), "{}", o.stdout);
        assert!(
            o.stdout.contains("storage buffers per kernel"),
            "{}",
            o.stdout
        );
    } else {
        assert_eq!(o.code, 1);
    }
}

#[test]
fn devices_honours_wgpu_backend() {
    if !have_gpu() {
        return;
    }
    let all = wgtrain_with(&["devices"], &[("WGPU_BACKEND", "")]);
    let gl = wgtrain_with(&["devices"], &[("WGPU_BACKEND", "gl")]);
    let backends = |o: &Out| -> Vec<String> {
        o.stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix("backend: "))
            .map(|l| l.split(',').next().unwrap_or("").to_string())
            .collect()
    };
    assert!(
        backends(&all).len() >= backends(&gl).len(),
        "{}",
        all.stdout
    );
    assert!(backends(&gl).iter().all(|b| b == "Gl"), "{}", gl.stdout);
    let none = wgtrain_with(&["devices"], &[("WGPU_BACKEND", "dx12")]);
    if !cfg!(windows) {
        assert_eq!(none.code, 1, "{}", none.stdout);
        assert!(
            one_error_line(&none).contains("WGPU_BACKEND=dx12"),
            "{}",
            none.stderr
        );
    }
}

#[test]
fn ckpt_verify_on_a_directory_says_which_checkpoint_a_restore_would_use() {
    use wgtrain::checkpoint::tensor::{Tensor, TfDType};
    let dir = scratch("cli-pick");
    for step in [4i64, 9] {
        let tensors = vec![(
            "global_step".to_string(),
            Tensor::from_bytes(TfDType::Int64, &[], step.to_le_bytes().to_vec()).unwrap(),
        )];
        wgtrain::checkpoint::write_bundle(&dir.join(format!("model.ckpt-{step}")), &tensors)
            .unwrap();
    }
    // No state file: the newest is found by name; then it is damaged.
    let o = wgtrain(&["ckpt", "list", s(&dir), "--verify"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let pick = format!("a restore would use {}", s(&dir.join("model.ckpt-9")));
    assert!(o.stdout.contains(&pick), "{}", o.stdout);
    let data = dir.join("model.ckpt-9.data-00000-of-00001");
    let mut b = std::fs::read(&data).unwrap();
    b[0] ^= 1;
    std::fs::write(&data, b).unwrap();
    let o = wgtrain(&["ckpt", "list", s(&dir), "--verify"]);
    assert_eq!(o.code, 1);
    assert!(one_error_line(&o).contains("DATA_LOSS"), "{}", o.stderr);
    let skip = format!("a restore would skip {}", s(&dir.join("model.ckpt-9")));
    let pick = format!("a restore would use {}", s(&dir.join("model.ckpt-4")));
    assert!(
        o.stdout.contains(&skip) && o.stdout.contains(&pick),
        "{}",
        o.stdout
    );
}

#[test]
fn ckpt_and_events_work_on_a_machine_with_no_gpu_driver() {
    // No Vulkan ICD and no EGL vendor library (Mesa's GL): no graphics driver is
    // reachable.
    let env = [
        ("VK_ICD_FILENAMES", "/nonexistent"),
        ("VK_DRIVER_FILES", "/nonexistent"),
        ("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent"),
        ("__EGL_VENDOR_LIBRARY_DIRS", "/nonexistent"),
        ("WGPU_BACKEND", ""),
    ];
    // The setup is what it claims: no adapter is visible.
    let devices = wgtrain_with(&["devices"], &env);
    assert_eq!(devices.code, 1, "{}", devices.stdout);
    let td = testdata();
    let ckpt = s(&td.join("ckpt")).to_string();
    let events = s(&td.join("events")).to_string();
    for args in [
        vec!["ckpt", "list", &ckpt],
        vec!["ckpt", "list", "--verify", &ckpt],
        vec!["ckpt", "show", &ckpt, "dense/kernel", "--all"],
        vec!["events", &events],
        vec!["events", &events, "--csv"],
    ] {
        let with = wgtrain(&args);
        let without = wgtrain_with(&args, &env);
        assert_eq!(without.code, 0, "{args:?}: {}", without.stderr);
        assert_eq!(without.stdout, with.stdout, "{args:?}");
        assert!(!without.stdout.is_empty(), "{args:?}");
    }
}
