//! The `step` benchmark: training-step throughput of fixed workloads.
//!
//! `cargo bench --bench step [-- --json] [-- --only W1] [-- --kernels]`
//!
//! Distributed mode (built with `--features mpi`, run under the launcher, one rank a
//! process): `mpiexec -n 2 <bench binary> --distributed [--json]`, the binary as
//! `cargo bench --bench step --features mpi --no-run` prints it. W1 and W2 train through
//! `MonitoredTrainingSession::master("mpi")` at their batch per rank; the chief prints
//! steps/s, examples/s (every rank's), the gradient all-reduce and the per-run
//! agreement in ms per step (medians over the steps, waiting for the slower rank
//! included) and their share of the median step, and the bytes averaged.
//!
//! `--kernels` adds, per workload, the device time of each kernel of a train-only step
//! (median of 20 traced steps, where the adapter has timestamp queries).
//!
//! - W1: MLP 32-32-10, batch 32.
//! - W2: MLP 784-256-256-10, batch 128.
//! - W3: CNN on 28x28x1 (NHWC): conv 3x3 32 + ReLU, conv 3x3 64 + ReLU (VALID), max pool
//!   2x2, dense 128 + ReLU, dense 10; batch 64.
//!
//! All use ReLU, softmax cross-entropy and Adam(1e-3) on synthetic data from a fixed
//! seed. Each workload is measured with the loss read back every step and every 100
//! steps; the figure is the median steps/sec of 3 runs after a warm-up, with the kernel
//! dispatches and queue submissions of one step.

use std::time::Instant;
use wgtrain::engine::rng::Stream;
use wgtrain::{
    Adam, Conv, DType, Graph, HostTensor, Initializer, MonitoredTrainingSession, Operation,
    Padding, Pool, Session, SessionConfig, Tensor,
};

struct Workload {
    name: &'static str,
    /// Input width, then the dense layers' widths.
    layers: &'static [usize],
    /// Convolutions (3x3, VALID, ReLU) with these output channels and a 2x2 max pool
    /// before the dense layers, over the input as a square single-channel image.
    convs: &'static [usize],
    batch: usize,
    steps: usize,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "W1",
        layers: &[32, 32, 10],
        convs: &[],
        batch: 32,
        steps: 1000,
    },
    Workload {
        name: "W2",
        layers: &[784, 256, 256, 10],
        convs: &[],
        batch: 128,
        steps: 100,
    },
    Workload {
        name: "W3",
        layers: &[784, 128, 10],
        convs: &[32, 64],
        batch: 64,
        steps: 5,
    },
];

struct Built {
    sess: Session,
    x: Tensor,
    y: Tensor,
    loss: Tensor,
    train: Operation,
}

/// The workload's graph: (graph, x, y, loss, train op), without an init op.
fn graph_of(w: &Workload) -> wgtrain::Result<(Graph, Tensor, Tensor, Tensor, Operation)> {
    let mut g = Graph::new();
    g.set_seed(1);
    let x = g.placeholder("x", DType::F32, &[-1, w.layers[0] as i64])?;
    let y = g.placeholder("y", DType::I32, &[-1])?;
    let mut h = x;
    let mut width = w.layers[0];
    if !w.convs.is_empty() {
        let side = (w.layers[0] as f64).sqrt() as i64;
        h = g.reshape(x, &[-1, side, side, 1])?;
        let mut channels = 1;
        for (i, &c) in w.convs.iter().enumerate() {
            h = g.name_scope(&format!("conv_{i}"), |g| {
                let k = g.variable(
                    "kernel",
                    DType::F32,
                    &[3, 3, channels, c as i64],
                    Initializer::GlorotUniform,
                )?;
                let b = g.variable("bias", DType::F32, &[c as i64], Initializer::Zeros)?;
                let v = g.conv2d(h, k, Conv::new([1, 1], Padding::Valid))?;
                let a = g.bias_add(v, b)?;
                g.relu(a)
            })?;
            channels = c as i64;
        }
        h = g.max_pool(h, Pool::new([2, 2], [2, 2], Padding::Valid))?;
        let shape = g.shape(h).to_vec();
        width = (shape[1] * shape[2] * shape[3]) as usize;
        h = g.reshape(h, &[-1, width as i64])?;
    }
    let dense: Vec<usize> = std::iter::once(width)
        .chain(w.layers[1..].iter().copied())
        .collect();
    for (i, pair) in dense.windows(2).enumerate() {
        let last = i + 2 == dense.len();
        h = g.name_scope(&format!("dense_{i}"), |g| {
            let k = g.variable(
                "kernel",
                DType::F32,
                &[pair[0] as i64, pair[1] as i64],
                Initializer::GlorotUniform,
            )?;
            let b = g.variable("bias", DType::F32, &[pair[1] as i64], Initializer::Zeros)?;
            let m = g.matmul(h, k)?;
            let a = g.bias_add(m, b)?;
            if last { Ok(a) } else { g.relu(a) }
        })?;
    }
    let loss = g.sparse_softmax_cross_entropy_mean(h, y)?;
    let step = g.global_step()?;
    let train = Adam::new(1e-3).minimize(&mut g, loss, step)?;
    Ok((g, x, y, loss, train))
}

fn build(w: &Workload) -> wgtrain::Result<Built> {
    let (mut g, x, y, loss, train) = graph_of(w)?;
    let init = g.global_variables_initializer()?;
    let mut sess = Session::new(g, SessionConfig::default())?;
    sess.run(&[], &[], &[init])?;
    Ok(Built {
        sess,
        x,
        y,
        loss,
        train,
    })
}

fn batches(w: &Workload, count: usize) -> wgtrain::Result<Vec<(HostTensor, HostTensor)>> {
    let mut r = Stream::new((2024, 1));
    let (d, c) = (w.layers[0], *w.layers.last().unwrap_or(&1));
    (0..count)
        .map(|_| {
            let xs: Vec<f32> = (0..w.batch * d).map(|_| r.normal() as f32).collect();
            let ys: Vec<i32> = (0..w.batch)
                .map(|_| (r.uniform() * c as f64) as i32 % c as i32)
                .collect();
            Ok((
                HostTensor::from_f32(&[w.batch, d], xs)?,
                HostTensor::from_i32(&[w.batch], ys)?,
            ))
        })
        .collect()
}

/// W1/W2 through MonitoredTrainingSession (default hooks, checkpoints every 100
/// steps into a temporary directory), in 24 (W1) or 8 pairs with the raw session `raw` (the order
/// alternating, so drift on a shared machine hits both): (monitored steps/s and raw
/// steps/s with the loss read back every 100 steps, medians over the pairs; the median
/// of the pairs' overheads; median step ms; median checkpoint step ms). Step times are
/// those of `run` on the calling thread (the device runs behind it).
fn monitored(
    w: &Workload,
    data: &[(HostTensor, HostTensor)],
    raw: &mut Built,
) -> wgtrain::Result<(f64, f64, f64, f64, f64)> {
    let (g, x, y, loss, train) = graph_of(w)?;
    let dir = std::env::temp_dir().join(format!(
        "wgtrain-bench-mts-{}-{}",
        w.name,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut sess = MonitoredTrainingSession::new(g)
        .checkpoint_dir(&dir)
        .save_checkpoint_steps(100)
        .create()?;
    let mut step_ms = Vec::new();
    let mut ckpt_ms = Vec::new();
    let mut rates = Vec::new();
    let mut raw_rates = Vec::new();
    let mut overheads = Vec::new();
    let mut i = 0usize;
    // Pairs of a raw and a monitored run (the first monitored run is a warm-up): more
    // for the short runs of the small workload, whose figures the machine's noise
    // moves most.
    let pairs = if w.steps >= 1000 { 24 } else { 8 };
    for run in 0..=pairs {
        let raw_first = run % 2 == 1;
        if run > 0 && raw_first {
            raw_rates.push(measure(raw, data, w.steps, 100)?);
        }
        let t = Instant::now();
        for _ in 0..w.steps {
            let (bx, by) = &data[i % data.len()];
            i += 1;
            let feeds = [(x, bx.clone()), (y, by.clone())];
            let s0 = Instant::now();
            // The loss is read back half way between checkpoints, so that the steps
            // that save are not also the ones that wait for a readback.
            if i % 100 == 50 {
                sess.run(&feeds, &[loss], &[train])?;
            } else {
                sess.run(&feeds, &[], &[train])?;
            }
            let ms = s0.elapsed().as_secs_f64() * 1e3;
            // The global step after run i is i: a checkpoint every 100.
            if i.is_multiple_of(100) {
                ckpt_ms.push(ms)
            } else {
                step_ms.push(ms)
            }
        }
        // Wait for the device before stopping the clock, as `measure` does.
        if let Some(raw_sess) = sess.raw_session()
            && let Some(gs) = raw_sess.graph().get_global_step()
        {
            raw_sess.read_variables(&[gs])?;
        }
        if run > 0 {
            rates.push(w.steps as f64 / t.elapsed().as_secs_f64());
            if !raw_first {
                raw_rates.push(measure(raw, data, w.steps, 100)?);
            }
            let (r, m) = (raw_rates[raw_rates.len() - 1], rates[rates.len() - 1]);
            overheads.push(r / m - 1.0);
        }
    }
    sess.close()?;
    let _ = std::fs::remove_dir_all(&dir);
    let mid = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    Ok((
        mid(&mut rates),
        mid(&mut raw_rates),
        mid(&mut overheads),
        mid(&mut step_ms),
        mid(&mut ckpt_ms),
    ))
}

/// Steps per second over `steps` steps, reading the loss back every `every` steps.
fn measure(
    b: &mut Built,
    data: &[(HostTensor, HostTensor)],
    steps: usize,
    every: usize,
) -> wgtrain::Result<f64> {
    let t = Instant::now();
    for i in 0..steps {
        let (bx, by) = &data[i % data.len()];
        let feeds = [(b.x, bx.clone()), (b.y, by.clone())];
        if (i + 1) % every == 0 {
            b.sess.run(&feeds, &[b.loss], &[b.train])?;
        } else {
            b.sess.run(&feeds, &[], &[b.train])?;
        }
    }
    // Wait for the device to finish the last step before stopping the clock.
    let step = b.sess.graph().get_global_step();
    if let Some(step) = step {
        b.sess.read_variables(&[step])?;
    }
    Ok(steps as f64 / t.elapsed().as_secs_f64())
}

/// One rank of the distributed mode: W1 and W2 through `master("mpi")`.
#[cfg(feature = "mpi")]
fn distributed(json: bool) -> wgtrain::Result<()> {
    use wgtrain::StopAtStepHook;
    let rt = wgtrain::hooks::mpi::init()?;
    let world = rt.world();
    if world.rank == 0 && !json {
        println!(
            "| workload | ranks | batch per rank | steps/s | examples/s | all-reduce ms/step | agreement ms/step | share of the step | bytes averaged/step |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
    }
    for w in WORKLOADS.iter().filter(|w| w.convs.is_empty()) {
        let (g, x, y, loss, train) = graph_of(w)?;
        let data = batches(w, 8)?;
        let steps = w.steps as i64 * 2;
        let warmup = (steps / 10).max(2);
        let mut sess = MonitoredTrainingSession::new(g)
            .master("mpi")
            .log_step_count_steps(0)
            .save_summaries_steps(0)
            .hooks([StopAtStepHook::last_step(warmup + steps).boxed()])
            .create()?;
        // Per measured step: (step, all-reduce, agreement) in ns.
        let mut per_step: Vec<(u64, u64, u64)> = Vec::new();
        let (mut bytes, mut i) = (0u64, 0usize);
        let mut started = Instant::now();
        while !sess.should_stop() {
            let (bx, by) = &data[i % data.len()];
            let feeds = [(x, bx.clone()), (y, by.clone())];
            i += 1;
            if i as i64 == warmup + 1 {
                started = Instant::now();
            }
            let fetch: &[Tensor] = if i % 100 == 0 { &[loss] } else { &[] };
            let (t, agreed) = (Instant::now(), sess.agreement_stats().nanos);
            sess.run(&feeds, fetch, &[train])?;
            let step_ns = t.elapsed().as_nanos() as u64;
            let agree_ns = sess.agreement_stats().nanos - agreed;
            if let Some(raw) = sess.raw_session().and_then(|r| r.as_session()) {
                bytes = raw.stats().all_reduce_bytes;
                if i as i64 > warmup {
                    per_step.push((step_ns, raw.stats().all_reduce_ns, agree_ns));
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let measured = (i as i64 - warmup).max(1) as f64;
        let sps = measured / secs;
        // Medians: a shared machine's scheduling spikes would dominate means.
        let median = |f: fn(&(u64, u64, u64)) -> u64| {
            let mut v: Vec<u64> = per_step.iter().map(f).collect();
            v.sort_unstable();
            v.get(v.len() / 2).copied().unwrap_or(0) as f64 / 1e6
        };
        let (step_ms, reduce_ms, agree_ms) = (median(|s| s.0), median(|s| s.1), median(|s| s.2));
        let share = (reduce_ms + agree_ms) / step_ms.max(1e-9);
        let examples = sps * (w.batch * world.size) as f64;
        sess.close()?;
        if world.rank != 0 {
            continue;
        }
        if json {
            println!(
                "{{\"bench\":\"step_distributed\",\"workload\":\"{}\",\"ranks\":{},\"batch_per_rank\":{},\"steps_per_sec\":{sps:.2},\"examples_per_sec\":{examples:.1},\"all_reduce_ms_per_step\":{reduce_ms:.4},\"agreement_ms_per_step\":{agree_ms:.4},\"share_of_step\":{share:.4},\"bytes_reduced_per_step\":{bytes}}}",
                w.name, world.size, w.batch
            );
        } else {
            println!(
                "| {} | {} | {} | {sps:.1} | {examples:.0} | {reduce_ms:.3} | {agree_ms:.3} | {:.1}% | {bytes} |",
                w.name,
                world.size,
                w.batch,
                100.0 * share
            );
        }
    }
    Ok(())
}

#[cfg(not(feature = "mpi"))]
fn distributed(_: bool) -> wgtrain::Result<()> {
    Err(wgtrain::Error::unimplemented(
        "--distributed needs the bench built with --features mpi and run under mpiexec",
    ))
}

fn main() -> wgtrain::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    if args.iter().any(|a| a == "--distributed") {
        return distributed(json);
    }
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let kernels = args.iter().any(|a| a == "--kernels");
    let mut rows = Vec::new();
    let mut kernel_rows = Vec::new();
    let mut mts_rows: Vec<(&str, f64, f64, f64, f64, f64)> = Vec::new();
    for w in WORKLOADS {
        if only.as_deref().is_some_and(|o| o != w.name) {
            continue;
        }
        let mut b = build(w)?;
        let data = batches(w, 8)?;
        for every in [1usize, 100] {
            measure(&mut b, &data, (w.steps / 5).max(1), every)?;
            let mut runs: Vec<f64> = (0..3)
                .map(|_| measure(&mut b, &data, w.steps, every))
                .collect::<wgtrain::Result<_>>()?;
            runs.sort_by(|a, b| a.total_cmp(b));
            // The counters of the step that dominates the mode: with the loss read back
            // every step, a train+loss step; otherwise a train-only step.
            let (bx, by) = &data[0];
            let fetch: &[Tensor] = if every == 1 { &[b.loss] } else { &[] };
            b.sess
                .run(&[(b.x, bx.clone()), (b.y, by.clone())], fetch, &[b.train])?;
            let st = b.sess.stats();
            let adapter = b.sess.adapter().name.clone();
            rows.push((
                w.name,
                w.batch,
                every,
                runs[1],
                st.dispatches,
                st.submissions,
                adapter,
            ));
        }
        if kernels {
            kernel_rows.extend(
                kernel_times(&mut b, &data)?
                    .into_iter()
                    .map(|k| (w.name, k)),
            );
        }
        if w.convs.is_empty() {
            let (sps, raw, overhead, median, worst) = monitored(w, &data, &mut b)?;
            mts_rows.push((w.name, sps, raw, overhead, median, worst));
        }
    }
    if json {
        for (name, batch, every, sps, disp, subs, adapter) in &rows {
            println!(
                "{{\"bench\":\"step\",\"workload\":\"{name}\",\"batch\":{batch},\"readback_every\":{every},\"steps_per_sec\":{sps:.3},\"dispatches_per_step\":{disp},\"submissions_per_step\":{subs},\"adapter\":\"{}\"}}",
                adapter.replace('"', "'")
            );
        }
    } else {
        println!(
            "| workload | batch | loss read back | steps/s (median of 3) | dispatches/step | submissions/step |"
        );
        println!("|---|---|---|---|---|---|");
        for (name, batch, every, sps, disp, subs, _) in &rows {
            let digits = if *sps < 10.0 { 2 } else { 1 };
            println!("| {name} | {batch} | every {every} | {sps:.digits$} | {disp} | {subs} |");
        }
        if let Some(r) = rows.first() {
            println!("\nadapter: {}", r.6);
        }
    }
    if json {
        for (name, sps, raw, overhead, median, worst) in &mts_rows {
            println!(
                "{{\"bench\":\"step_monitored\",\"workload\":\"{name}\",\"steps_per_sec\":{sps:.1},\"raw_steps_per_sec\":{raw:.1},\"overhead\":{overhead:.4},\"median_step_ms\":{median:.3},\"checkpoint_step_ms\":{worst:.3}}}"
            );
        }
    } else if !mts_rows.is_empty() {
        println!(
            "\n| workload | MonitoredTrainingSession steps/s | raw Session steps/s | overhead (median of pairs) | median step (ms) | checkpoint step (ms) | checkpoint / median |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (name, sps, raw, overhead, median, worst) in &mts_rows {
            println!(
                "| {name} | {sps:.1} | {raw:.1} | {:.1}% | {median:.3} | {worst:.3} | {:.2}x |",
                100.0 * overhead,
                worst / median
            );
        }
    }
    if !kernel_rows.is_empty() {
        if json {
            for (name, (node, kernel, us)) in &kernel_rows {
                println!(
                    "{{\"bench\":\"step_kernels\",\"workload\":\"{name}\",\"node\":\"{node}\",\"kernel\":\"{kernel}\",\"device_us\":{us:.1}}}"
                );
            }
        } else {
            println!("\n| workload | node | kernel | device µs (median of 20) |");
            println!("|---|---|---|---|");
            for (name, (node, kernel, us)) in &kernel_rows {
                println!("| {name} | {node} | {kernel} | {us:.1} |");
            }
        }
    }
    Ok(())
}

/// Device time of each kernel of a train-only step: (node, kernel, median µs).
fn kernel_times(
    b: &mut Built,
    data: &[(HostTensor, HostTensor)],
) -> wgtrain::Result<Vec<(String, &'static str, f64)>> {
    let mut samples: Vec<Vec<f64>> = Vec::new();
    let mut labels = Vec::new();
    for i in 0..20 {
        let (bx, by) = &data[i % data.len()];
        let (_, meta) =
            b.sess
                .run_traced(&[(b.x, bx.clone()), (b.y, by.clone())], &[], &[b.train])?;
        if !meta.timed {
            return Ok(Vec::new());
        }
        if labels.is_empty() {
            labels = meta
                .kernels
                .iter()
                .map(|k| (k.node.clone(), k.kernel))
                .collect();
            samples = vec![Vec::new(); labels.len()];
        }
        for (s, k) in samples.iter_mut().zip(&meta.kernels) {
            s.push(k.duration_ns / 1e3);
        }
    }
    Ok(labels
        .into_iter()
        .zip(samples)
        .map(|((node, kernel), mut s)| {
            s.sort_by(|a, b| a.total_cmp(b));
            (node, kernel, s[s.len() / 2])
        })
        .collect())
}
