//! Distributed training under a real `mpiexec` (cargo feature `mpi`): each test
//! launches this test binary once per rank, running the ignored test `rank_main` with
//! a drill described by environment variables; every rank writes what it saw to a
//! JSON file the test then compares (losses, variables, checksums, steps, files).

#![cfg(feature = "mpi")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wgtrain::engine::layers::{self, Activation};
use wgtrain::hooks::{SessionRunArgs, SessionRunContext, SessionRunValues};
use wgtrain::{
    Adam, DType, Graph, HostTensor, MonitoredTrainingSession, Operation, Optimizer, Padding,
    SessionRunHook, Sgd, StopAtStepHook, Tensor,
};

// ---------------------------------------------------------------------------------
// The rank side.

fn env(name: &str) -> Option<String> {
    std::env::var(format!("WGTRAIN_DRILL_{name}")).ok()
}

fn env_num(name: &str, default: i64) -> i64 {
    env(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Net {
    g: Graph,
    x: Tensor,
    y: Tensor,
    loss: Tensor,
    train: Operation,
}

fn net(model: &str, opt: &str) -> Net {
    let mut g = Graph::new();
    g.set_seed(11);
    let cnn = model == "cnn";
    let x = if cnn {
        g.placeholder("x", DType::F32, &[-1, 8, 8, 1]).unwrap()
    } else {
        g.placeholder("x", DType::F32, &[-1, 64]).unwrap()
    };
    let y = g.placeholder("y", DType::I32, &[-1]).unwrap();
    let logits = if cnn {
        let c = layers::conv2d(
            &mut g,
            x,
            8,
            [3, 3],
            [1, 1],
            Padding::Same,
            Activation::Relu,
            "conv1",
        )
        .unwrap();
        let p = layers::max_pool2d(&mut g, c, [2, 2], [2, 2], Padding::Same).unwrap();
        let f = layers::flatten(&mut g, p).unwrap();
        layers::dense(&mut g, f, 10, Activation::Linear, "logits").unwrap()
    } else if model == "linear" {
        layers::dense(&mut g, x, 10, Activation::Linear, "logits").unwrap()
    } else {
        let h = layers::dense(&mut g, x, 32, Activation::Relu, "hidden").unwrap();
        layers::dense(&mut g, h, 10, Activation::Linear, "logits").unwrap()
    };
    let loss = g.sparse_softmax_cross_entropy_mean(logits, y).unwrap();
    g.scalar_summary("loss", loss).unwrap();
    let step = g.global_step().unwrap();
    let o: Optimizer = if opt == "adam" {
        Adam::new(0.01)
    } else {
        Sgd::new(0.1)
    };
    let train = o.minimize(&mut g, loss, step).unwrap();
    Net {
        g,
        x,
        y,
        loss,
        train,
    }
}

/// Asks to stop after the run that reaches `at` (on one rank only).
struct StopAt {
    at: i64,
    step: Tensor,
}

impl SessionRunHook for StopAt {
    fn after_run(
        &mut self,
        ctx: &mut SessionRunContext,
        _: &SessionRunValues,
    ) -> wgtrain::Result<()> {
        let step = ctx.session.known_scalar(self.step).unwrap_or(0);
        if step >= self.at {
            ctx.request_stop();
        }
        Ok(())
    }

    fn before_run(&mut self, _: &mut SessionRunContext) -> wgtrain::Result<Option<SessionRunArgs>> {
        Ok(None)
    }
}

/// Fails the run that reaches `at` once, with `code` (on one rank only).
struct FailAt {
    at: i64,
    code: wgtrain::Code,
    step: Tensor,
    done: bool,
}

impl SessionRunHook for FailAt {
    fn after_run(
        &mut self,
        ctx: &mut SessionRunContext,
        _: &SessionRunValues,
    ) -> wgtrain::Result<()> {
        let step = ctx.session.known_scalar(self.step).unwrap_or(0);
        if step >= self.at && !self.done {
            self.done = true;
            return Err(wgtrain::Error::new(
                self.code,
                format!("drill: rank 1 fails at step {step}"),
            ));
        }
        Ok(())
    }
}

/// The examples' classifier on the digits, one rank of it: the global batch split
/// across the ranks, each on its shard.
fn classifier_rank(out: &Path, rank: usize) {
    use wgtrain::classifier::{Model, Options};
    let data = wgtrain::datasets::digits().unwrap().split(0.2, 7);
    let mut opts = Options::new(Model::Mlp);
    opts.steps = 300;
    opts.batch = 64;
    opts.checkpoint_dir = env("CKPT").map(PathBuf::from);
    opts.master = wgtrain::hooks::Master::Mpi;
    let r = wgtrain::classifier::train(&data, &opts).unwrap();
    let report = json!({"rank": r.rank, "ranks": r.ranks, "start_step": r.start_step,
        "final_step": r.final_step, "accuracy": r.held_out_accuracy});
    std::fs::write(out.join(format!("rank{rank}.json")), report.to_string()).unwrap();
}

fn epoch_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn checksum(values: &[HostTensor]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for v in values {
        v.bytes().hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// One rank of a drill: trains the model the environment names through a
/// `master("mpi")` monitored session and writes `rank<r>.json`.
#[test]
#[ignore = "one rank of a distributed drill, run by the other tests under mpiexec"]
fn rank_main() {
    let Some(out) = env("DIR").map(PathBuf::from) else {
        return;
    };
    let rt = wgtrain::hooks::mpi::init().unwrap();
    let world = rt.world();
    let rank = world.rank;
    if env("CLASSIFIER").is_some() {
        return classifier_rank(&out, rank);
    }
    std::fs::write(
        out.join(format!("pid{rank}")),
        std::process::id().to_string(),
    )
    .unwrap();
    let model = env("MODEL").unwrap_or_else(|| "mlp".into());
    let n = net(&model, &env("OPT").unwrap_or_else(|| "sgd".into()));
    let cnn = model == "cnn";
    let global_batch = env_num("BATCH", 32) as usize;
    let local = global_batch / world.size;
    let steps = env_num("STEPS", 50);
    let data = wgtrain::datasets::digits().unwrap();
    let vars = n.g.global_variables();
    let names: Vec<String> = vars.iter().map(|v| n.g.name(*v).to_string()).collect();
    let gs = n.g.get_global_step().unwrap();

    if rank == 0
        && let Some(secs) = env("HOLD_CHIEF_SECS")
    {
        std::thread::sleep(Duration::from_secs_f64(secs.parse().unwrap()));
    }
    let mut hooks: Vec<Box<dyn SessionRunHook>> = Vec::new();
    if let Some(last) = env("LAST_STEP") {
        hooks.push(StopAtStepHook::last_step(last.parse().unwrap()).boxed());
    } else {
        hooks.push(StopAtStepHook::num_steps(steps).boxed());
    }
    if env("NAN_HOOK").is_some() {
        hooks.push(Box::new(wgtrain::hooks::NanTensorHook::new(n.loss, true)));
    }
    if rank == 1
        && let Some(at) = env("FAIL_RANK1_AT")
    {
        let code = match env("FAIL_CODE").as_deref() {
            Some("ABORTED") => wgtrain::Code::Aborted,
            _ => wgtrain::Code::DataLoss,
        };
        hooks.push(Box::new(FailAt {
            at: at.parse().unwrap(),
            code,
            step: gs,
            done: false,
        }));
    }
    if rank == 1
        && let Some(at) = env("STOP_RANK1_AT")
    {
        hooks.push(Box::new(StopAt {
            at: at.parse().unwrap(),
            step: gs,
        }));
    }
    let mut b = MonitoredTrainingSession::new(n.g.clone())
        .master("mpi")
        .hooks(hooks)
        .max_wait_secs(env_num("MAX_WAIT", 60) as f64)
        .log_step_count_steps(env_num("LOG_STEPS", 0))
        .save_summaries_steps(env_num("SUMMARY_STEPS", 0));
    if let Some(dir) = env("CKPT") {
        b = b
            .checkpoint_dir(dir.replace("{rank}", &rank.to_string()))
            .save_checkpoint_steps(env_num("SAVE_STEPS", 10));
    }
    match env("CHIEF").as_deref() {
        Some("all") => b = b.is_chief(true),
        Some("rank1") => b = b.is_chief(rank == 1),
        _ => {}
    }
    if rank == 1
        && let Some(until) = env("WAITER_RANK1")
    {
        b = b.hooks([Box::new(wgtrain::hooks::GlobalStepWaiterHook::new(
            until.parse().unwrap(),
        )) as Box<dyn SessionRunHook>]);
    }
    let started = Instant::now();
    let mut sess = match b.create() {
        Ok(s) => s,
        Err(e) => {
            let report = json!({"rank": rank, "size": world.size, "error": e.code.name(),
                "message": e.message, "secs": started.elapsed().as_secs_f64()});
            std::fs::write(out.join(format!("rank{rank}.json")), report.to_string()).unwrap();
            eprintln!("rank {rank}: {e}");
            std::process::exit(3);
        }
    };
    let start_step = sess.raw_session().unwrap().read_variables(&[gs]).unwrap()[0]
        .scalar_value()
        .unwrap() as i64;
    let mut losses = Vec::new();
    let mut step = start_step;
    let mut error = None;
    while !sess.should_stop() {
        if rank == 1 && env_num("DROP_RANK1_AT", -1) == step {
            // Leaves the job as a user's error path would: no close(), no agreed stop.
            std::fs::write(out.join("dropped"), epoch_secs().to_string()).unwrap();
            drop(sess);
            drop(rt);
            std::process::exit(0);
        }
        if rank == 1 && env_num("PANIC_RANK1_AT", -1) == step {
            std::fs::write(out.join("panicked"), epoch_secs().to_string()).unwrap();
            panic!("drill: rank 1 panics at step {step}");
        }
        let rows: Vec<usize> = (0..local)
            .map(|i| ((step as usize) * global_batch + rank * local + i) % data.len())
            .collect();
        let (mut bx, by) = data.batch(&rows, cnn).unwrap();
        if rank == 1 && env_num("NAN_RANK1_AT", -1) == step {
            bx = HostTensor::from_f32(bx.shape(), vec![f32::NAN; bx.len()]).unwrap();
        }
        if rank == 1 && env_num("BAD_FEED_RANK1_AT", -1) == step {
            std::fs::write(out.join("failed"), epoch_secs().to_string()).unwrap();
            bx = HostTensor::zeros(DType::F32, &[local, 63]);
        }
        match sess.run(&[(n.x, bx), (n.y, by)], &[n.loss], &[n.train]) {
            Ok(o) => losses.push(o[0].scalar_value().unwrap()),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
        step += 1;
        std::fs::write(out.join(format!("progress{rank}")), step.to_string()).unwrap();
    }
    let raw = sess.raw_session().unwrap();
    let values = raw.read_variables(&vars).unwrap();
    let final_step = raw.known_scalar(gs).unwrap_or(-1);
    let mut var_map = BTreeMap::new();
    for (name, v) in names.iter().zip(&values) {
        if v.dtype() == DType::F32 {
            var_map.insert(name.clone(), json!(v.to_f64()));
        }
    }
    let recoveries = sess.recoveries();
    let closed = sess.close();
    let report = json!({
        "rank": rank, "size": world.size, "start_step": start_step, "final_step": final_step,
        "losses": losses, "checksum": checksum(&values), "vars": var_map,
        "error": error.as_ref().map(|e| e.code.name()),
        "message": error.as_ref().map(|e| e.message.clone()),
        "closed": closed.is_ok(), "recoveries": recoveries,
    });
    std::fs::write(out.join(format!("rank{rank}.json")), report.to_string()).unwrap();
}

// ---------------------------------------------------------------------------------
// The launcher side.

struct Job {
    code: Option<i32>,
    stderr: String,
    secs: f64,
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-mpi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn open_mpi() -> bool {
    Command::new("mpiexec")
        .arg("--version")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .map(|o| {
            let text = [o.stdout, o.stderr].concat();
            let text = String::from_utf8_lossy(&text);
            text.contains("Open MPI") || text.contains("OpenRTE")
        })
        .unwrap_or(false)
}

fn launcher(np: usize, dir: &Path, vars: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("mpiexec");
    if open_mpi() {
        cmd.args(["--oversubscribe", "--bind-to", "none"])
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
            .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    }
    cmd.args(["-n", &np.to_string()])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "rank_main",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("WGTRAIN_DRILL_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(format!("WGTRAIN_DRILL_{k}"), v);
    }
    cmd
}

/// Waits for `child` at most `limit`, killing it past that.
fn finish(mut child: std::process::Child, started: Instant, limit: Duration) -> Job {
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let stdout = child.stdout.take();
    std::thread::spawn(move || {
        if let Some(mut o) = stdout {
            let _ = std::io::copy(&mut o, &mut std::io::sink());
        }
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the MPI job ran past {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = started.elapsed().as_secs_f64();
    Job {
        code: status.code(),
        stderr: reader.join().unwrap(),
        secs,
    }
}

fn run(np: usize, dir: &Path, vars: &[(&str, String)]) -> Job {
    let started = Instant::now();
    let child = launcher(np, dir, vars)
        .spawn()
        .expect("mpiexec (apt-get install openmpi-bin)");
    finish(child, started, Duration::from_secs(300))
}

fn report(dir: &Path, rank: usize) -> Value {
    let p = dir.join(format!("rank{rank}.json"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Asserts `a` is within `rtol` of `b` (relative, with an absolute floor of `rtol` for
/// values under 1); returns the difference in those units.
fn close(what: &str, a: f64, b: f64, rtol: f64) -> f64 {
    let scale = b.abs().max(1.0);
    let tol = rtol * scale;
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b} (tol {tol})");
    (a - b).abs() / scale
}

fn ok(job: &Job) {
    assert_eq!(job.code, Some(0), "the job failed:\n{}", job.stderr);
}

/// np=2 at batch B per rank against np=1 at batch 2B on the same rows: per-step losses
/// and final variables within 1e-5 relative; both ranks end bitwise equal.
fn equivalence(model: &str, opt: &str) {
    let vars = |m: &str, o: &str| {
        vec![
            ("MODEL", m.to_string()),
            ("OPT", o.to_string()),
            ("STEPS", "50".into()),
            ("BATCH", "32".into()),
        ]
    };
    let one = scratch(&format!("eq1-{model}-{opt}"));
    ok(&run(1, &one, &vars(model, opt)));
    let two = scratch(&format!("eq2-{model}-{opt}"));
    ok(&run(2, &two, &vars(model, opt)));
    let (single, r0, r1) = (report(&one, 0), report(&two, 0), report(&two, 1));
    let (l, l0, l1) = (
        floats(&single["losses"]),
        floats(&r0["losses"]),
        floats(&r1["losses"]),
    );
    assert_eq!(l.len(), 50);
    assert_eq!((l0.len(), l1.len()), (50, 50));
    let mut worst_loss = 0f64;
    for k in 0..50 {
        worst_loss = worst_loss.max(close(
            &format!("{model}/{opt} loss at step {k}"),
            (l0[k] + l1[k]) / 2.0,
            l[k],
            1e-5,
        ));
    }
    assert_eq!(r0["checksum"], r1["checksum"], "replicas are bitwise equal");
    let (want, got) = (
        single["vars"].as_object().unwrap(),
        r0["vars"].as_object().unwrap(),
    );
    assert_eq!(want.len(), got.len());
    let mut worst_var = 0f64;
    for (name, w) in want {
        for (i, (a, b)) in floats(&got[name]).iter().zip(floats(w)).enumerate() {
            worst_var = worst_var.max(close(&format!("{model}/{opt} {name}[{i}]"), *a, b, 1e-5));
        }
    }
    eprintln!(
        "{model}/{opt}: largest difference from np=1 at twice the batch: losses {worst_loss:.2e}, variables {worst_var:.2e}"
    );
    assert_eq!(r0["final_step"], 50);
    assert_eq!(r1["final_step"], 50);
}

#[test]
fn mlp_sgd_on_two_ranks_equals_one_rank_at_twice_the_batch() {
    equivalence("mlp", "sgd");
}

#[test]
fn mlp_adam_on_two_ranks_equals_one_rank_at_twice_the_batch() {
    equivalence("mlp", "adam");
}

#[test]
fn cnn_sgd_on_two_ranks_equals_one_rank_at_twice_the_batch() {
    equivalence("cnn", "sgd");
}

#[test]
fn cnn_adam_on_two_ranks_equals_one_rank_at_twice_the_batch() {
    equivalence("cnn", "adam");
}

#[test]
fn a_worker_without_its_chief_fails_with_deadline_exceeded() {
    let dir = scratch("deadline");
    let job = run(
        2,
        &dir,
        &[("MAX_WAIT", "2".into()), ("HOLD_CHIEF_SECS", "30".into())],
    );
    assert_ne!(job.code, Some(0), "the job must fail");
    let worker = report(&dir, 1);
    assert_eq!(worker["error"], "DEADLINE_EXCEEDED", "{worker}");
    let msg = worker["message"].as_str().unwrap();
    assert!(
        msg.contains("rank 0") && msg.contains("max_wait_secs"),
        "{msg}"
    );
    let secs = worker["secs"].as_f64().unwrap();
    eprintln!(
        "deadline: the worker failed after {secs:.2} s, the job ended after {:.2} s",
        job.secs
    );
    assert!(secs < 2.0 + 2.0, "the worker waited {secs} s");
    assert!(
        job.secs < 25.0,
        "the job ended after {} s, not when the worker failed",
        job.secs
    );
}

#[test]
fn stop_at_step_ends_every_rank_at_the_same_step() {
    let dir = scratch("laststep");
    ok(&run(2, &dir, &[("LAST_STEP", "7".into())]));
    for r in 0..2 {
        assert_eq!(report(&dir, r)["final_step"], 7);
    }
}

#[test]
fn a_stop_requested_on_rank_1_only_ends_every_rank_after_the_same_step() {
    let dir = scratch("stop1");
    ok(&run(
        2,
        &dir,
        &[("STOP_RANK1_AT", "5".into()), ("STEPS", "40".into())],
    ));
    for r in 0..2 {
        let rep = report(&dir, r);
        assert_eq!(rep["final_step"], 5, "rank {r}: {rep}");
        assert_eq!(floats(&rep["losses"]).len(), 5);
    }
}

#[test]
fn only_the_chief_writes_files() {
    let dir = scratch("files");
    let ckpt = dir.join("run-{rank}");
    ok(&run(
        2,
        &dir,
        &[
            ("CKPT", ckpt.display().to_string()),
            ("STEPS", "20".into()),
            ("SUMMARY_STEPS", "5".into()),
            ("LOG_STEPS", "5".into()),
        ],
    ));
    let chief: Vec<String> = std::fs::read_dir(dir.join("run-0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for want in [
        "checkpoint",
        "graph.pbtxt",
        "model.ckpt-20.index",
        "model.ckpt-20.meta",
    ] {
        assert!(chief.iter().any(|f| f == want), "the chief wrote {chief:?}");
    }
    assert!(
        chief.iter().any(|f| f.starts_with("events.out.tfevents")),
        "{chief:?}"
    );
    let worker = dir.join("run-1");
    let empty = !worker.exists() || std::fs::read_dir(&worker).unwrap().next().is_none();
    assert!(empty, "the worker wrote into {}", worker.display());
    // The chief's step counter: global steps/s and the examples of every rank.
    let mut tags = std::collections::BTreeSet::new();
    for f in wgtrain::checkpoint::events::event_files(&dir.join("run-0")).unwrap() {
        for r in wgtrain::checkpoint::events::read_file(&f).unwrap().0 {
            if let Some(wgtrain::checkpoint::proto::What::Summary(s)) = &r.event.what {
                tags.extend(s.value.iter().map(|v| v.tag.clone()));
            }
        }
    }
    for want in ["global_step/sec", "examples/sec", "loss"] {
        assert!(tags.contains(want), "the chief's summaries: {tags:?}");
    }
}

fn wait_for_progress(dir: &Path, rank: usize, step: i64, limit: Duration) {
    let started = Instant::now();
    loop {
        let p = std::fs::read_to_string(dir.join(format!("progress{rank}")))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok());
        if p.is_some_and(|p| p >= step) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "rank {rank} never reached step {step}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn killing_rank_1_ends_the_job_and_a_rerun_resumes_with_two_or_one_ranks() {
    let dir = scratch("kill");
    let ckpt = dir.join("ckpt").display().to_string();
    let vars = vec![
        ("CKPT", ckpt.clone()),
        ("SAVE_STEPS", "5".into()),
        ("STEPS", "100000".into()),
    ];
    let started = Instant::now();
    let child = launcher(2, &dir, &vars).spawn().unwrap();
    wait_for_progress(&dir, 1, 12, Duration::from_secs(120));
    let pid = std::fs::read_to_string(dir.join("pid1")).unwrap();
    let killed = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap()
            .success()
    );
    let job = finish(child, started, Duration::from_secs(120));
    let ended = killed.elapsed().as_secs_f64();
    eprintln!("kill -9: the job ended {ended:.2} s after rank 1 was killed");
    assert_ne!(job.code, Some(0), "the job must fail");
    assert!(ended < 5.0, "the job ended {ended} s after the kill");
    let latest = wgtrain::checkpoint::latest_checkpoint(dir.join("ckpt")).expect("a checkpoint");
    let saved: i64 = latest
        .display()
        .to_string()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(saved >= 10, "latest checkpoint {}", latest.display());

    for np in [2usize, 1] {
        let again = scratch(&format!("kill-rerun{np}"));
        let mut v = vars.clone();
        v[2] = ("STEPS", "3".into());
        ok(&run(np, &again, &v));
        let resumed = report(&again, 0)["start_step"].as_i64().unwrap();
        assert!(
            resumed >= saved,
            "np={np} resumed from step {resumed}, the chief saved {saved}"
        );
        for r in 0..np {
            assert_eq!(
                report(&again, r)["final_step"].as_i64().unwrap(),
                resumed + 3
            );
        }
    }
}

#[test]
fn an_error_after_the_step_on_rank_1_fails_every_rank_after_the_same_step() {
    let dir = scratch("hookerror");
    ok(&run(
        2,
        &dir,
        &[("FAIL_RANK1_AT", "6".into()), ("STEPS", "40".into())],
    ));
    let (r0, r1) = (report(&dir, 0), report(&dir, 1));
    assert_eq!(r1["error"], "DATA_LOSS", "{r1}");
    assert_eq!(r0["error"], "DATA_LOSS", "{r0}");
    assert!(r0["message"].as_str().unwrap().contains("rank 1"), "{r0}");
    assert_eq!(r0["final_step"], 6);
    assert_eq!(r1["final_step"], 6);
}

#[test]
fn a_recoverable_error_on_rank_1_recovers_every_rank_from_the_chief() {
    let dir = scratch("recover");
    let ckpt = dir.join("ckpt").display().to_string();
    ok(&run(
        2,
        &dir,
        &[
            ("FAIL_RANK1_AT", "7".into()),
            ("FAIL_CODE", "ABORTED".into()),
            ("CKPT", ckpt),
            ("SAVE_STEPS", "5".into()),
            ("STEPS", "12".into()),
        ],
    ));
    let (r0, r1) = (report(&dir, 0), report(&dir, 1));
    for r in [&r0, &r1] {
        assert_eq!(r["error"], Value::Null, "{r}");
        assert_eq!(r["recoveries"], 1, "{r}");
    }
    assert_eq!(r0["final_step"], r1["final_step"]);
    assert_eq!(
        r0["checksum"], r1["checksum"],
        "replicas equal after the recovery"
    );
}

#[test]
fn two_chiefs_are_invalid_argument_on_every_rank() {
    let dir = scratch("twochiefs");
    let job = run(2, &dir, &[("CHIEF", "all".into())]);
    assert_ne!(job.code, Some(0));
    for r in 0..2 {
        let rep = report(&dir, r);
        assert_eq!(rep["error"], "INVALID_ARGUMENT", "rank {r}: {rep}");
        assert!(
            rep["message"]
                .as_str()
                .unwrap()
                .contains("exactly one chief"),
            "{rep}"
        );
    }
}

#[test]
fn an_explicit_chief_on_rank_1_is_the_one_that_writes() {
    let dir = scratch("chief1");
    let ckpt = dir.join("run-{rank}");
    ok(&run(
        2,
        &dir,
        &[
            ("CHIEF", "rank1".into()),
            ("CKPT", ckpt.display().to_string()),
            ("STEPS", "6".into()),
        ],
    ));
    assert!(
        dir.join("run-1").join("checkpoint").exists(),
        "rank 1 saves"
    );
    assert!(!dir.join("run-0").exists(), "rank 0 writes nothing");
    let (r0, r1) = (report(&dir, 0), report(&dir, 1));
    assert_eq!(r0["checksum"], r1["checksum"]);
}

#[test]
fn the_classifier_shards_the_digits_and_every_rank_ends_at_the_same_step() {
    let dir = scratch("classifier");
    let ckpt = dir.join("runs").display().to_string();
    ok(&run(2, &dir, &[("CLASSIFIER", "1".into()), ("CKPT", ckpt)]));
    let (r0, r1) = (report(&dir, 0), report(&dir, 1));
    assert_eq!(
        (r0["rank"].as_u64(), r1["rank"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(r0["ranks"], 2);
    assert_eq!(r0["final_step"], 300);
    assert_eq!(r1["final_step"], 300);
    let acc = r0["accuracy"].as_f64().unwrap();
    assert!(acc > 0.85, "held-out accuracy {acc}");
    let latest = wgtrain::checkpoint::latest_checkpoint(dir.join("runs")).unwrap();
    assert!(latest.ends_with("model.ckpt-300"), "{}", latest.display());
}

/// Runs drill `vars` on 2 ranks: the job must fail with `line` on stderr and, when rank
/// 1 marked the moment it failed in file `mark`, end within 5 s of it.
fn job_ends(name: &str, vars: &[(&str, String)], line: &str, mark: Option<&str>) -> PathBuf {
    let dir = scratch(name);
    let job = run(2, &dir, vars);
    assert_ne!(job.code, Some(0), "the job must fail:\n{}", job.stderr);
    assert!(job.stderr.contains(line), "no '{line}' in:\n{}", job.stderr);
    if let Some(mark) = mark {
        let at: f64 = std::fs::read_to_string(dir.join(mark))
            .unwrap()
            .parse()
            .unwrap();
        let ended = epoch_secs() - at;
        eprintln!("{name}: the job ended {ended:.2} s after rank 1 failed");
        assert!(ended < 5.0, "the job ended {ended} s after rank 1 failed");
    }
    dir
}

#[test]
fn a_panic_on_rank_1_ends_the_job() {
    let vars = [("PANIC_RANK1_AT", "4".into()), ("STEPS", "100000".into())];
    let dir = job_ends("panic", &vars, "rank 1 of 2 panicked", Some("panicked"));
    assert!(
        !dir.join("rank0.json").exists(),
        "the chief did not go on alone"
    );
}

#[test]
fn an_error_on_rank_1_before_the_all_reduce_ends_the_job() {
    let vars = [
        ("BAD_FEED_RANK1_AT", "3".into()),
        ("STEPS", "100000".into()),
    ];
    let line = "rank 1 of 2 failed: INVALID_ARGUMENT";
    job_ends("badfeed", &vars, line, Some("failed"));
}

#[test]
fn a_rank_that_drops_its_session_while_the_others_train_ends_the_job() {
    let vars = [("DROP_RANK1_AT", "4".into()), ("STEPS", "100000".into())];
    let line = "rank 1 of 2 failed: its monitored session was dropped";
    job_ends("dropped", &vars, line, Some("dropped"));
}

#[test]
fn a_global_step_waiter_on_a_worker_fails_instead_of_waiting_forever() {
    let vars = [("WAITER_RANK1", "1000".into()), ("STEPS", "100000".into())];
    let line = "rank 1 of 2 failed: FAILED_PRECONDITION: GlobalStepWaiterHook";
    job_ends("waiter", &vars, line, None);
}

#[test]
fn a_nan_loss_on_rank_1_fails_every_rank_after_the_same_step() {
    let dir = scratch("nan");
    let vars = [
        // No ReLU between the input and the loss to turn the NaN into a zero.
        ("MODEL", "linear".into()),
        ("NAN_HOOK", "1".into()),
        ("NAN_RANK1_AT", "4".into()),
        ("STEPS", "40".into()),
    ];
    ok(&run(2, &dir, &vars));
    let (r0, r1) = (report(&dir, 0), report(&dir, 1));
    assert_eq!(r1["error"], "INVALID_ARGUMENT", "{r1}");
    assert!(r1["message"].as_str().unwrap().contains("NaN loss"), "{r1}");
    assert_eq!(r0["error"], "INVALID_ARGUMENT", "{r0}");
    assert!(r0["message"].as_str().unwrap().contains("rank 1"), "{r0}");
    assert_eq!(r0["final_step"], 5);
    assert_eq!(r1["final_step"], 5);
}
