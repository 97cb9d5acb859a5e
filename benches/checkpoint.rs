//! The `checkpoint` benchmark: how long a save blocks the training thread, asynchronous
//! against synchronous, and the write throughput.
//!
//! `cargo bench --bench checkpoint [-- --json]`
//!
//! - W2: the variables of the W2 MLP (784-256-256-10) with Adam's slots.
//! - 100MB: four 2500x2500 float32 variables.
//!
//! For each, the median of 5 saves: the time `Saver::save` takes on the calling thread
//! (async: recording the device copy and queueing the write; sync: the whole save), and
//! the bytes written per second of a synchronous save.

use std::path::Path;
use std::time::Instant;
use wgtrain::checkpoint::{Saver, SaverOptions};
use wgtrain::{Adam, DType, Graph, HostTensor, Initializer, Session, SessionConfig, Tensor};

fn w2() -> wgtrain::Result<Session> {
    let mut g = Graph::new();
    g.set_seed(1);
    let x = g.placeholder("x", DType::F32, &[-1, 784])?;
    let y = g.placeholder("y", DType::I32, &[-1])?;
    let mut h = x;
    let widths = [784, 256, 256, 10];
    for (i, p) in widths.windows(2).enumerate() {
        let k = g.variable(
            &format!("dense_{i}/kernel"),
            DType::F32,
            &[p[0] as i64, p[1] as i64],
            Initializer::GlorotUniform,
        )?;
        let b = g.variable(
            &format!("dense_{i}/bias"),
            DType::F32,
            &[p[1] as i64],
            Initializer::Zeros,
        )?;
        let m = g.matmul(h, k)?;
        h = g.bias_add(m, b)?;
        if i + 2 < widths.len() {
            h = g.relu(h)?;
        }
    }
    let loss = g.sparse_softmax_cross_entropy_mean(h, y)?;
    let step = g.global_step()?;
    let train = Adam::new(1e-3).minimize(&mut g, loss, step)?;
    let init = g.global_variables_initializer()?;
    let mut s = Session::new(g, SessionConfig::default())?;
    s.run(&[], &[], &[init])?;
    let bx = HostTensor::from_f32(&[8, 784], vec![0.1; 8 * 784])?;
    let by = HostTensor::from_i32(&[8], vec![1; 8])?;
    s.run(&[(x, bx), (y, by)], &[], &[train])?;
    Ok(s)
}

fn big() -> wgtrain::Result<Session> {
    let mut g = Graph::new();
    for i in 0..4 {
        g.variable(
            &format!("big_{i}"),
            DType::F32,
            &[2500, 2500],
            Initializer::Zeros,
        )?;
    }
    let init = g.global_variables_initializer()?;
    let mut s = Session::new(g, SessionConfig::default())?;
    s.run(&[], &[], &[init])?;
    Ok(s)
}

fn bytes_of(s: &Session) -> u64 {
    let g = s.graph();
    g.global_variables()
        .iter()
        .map(|&v: &Tensor| {
            let n = g.node(v);
            n.shape.iter().product::<i64>() as u64 * n.dtype.device_size() as u64
        })
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median milliseconds the calling thread spends in `save`.
fn blocked_ms(s: &mut Session, dir: &Path, asynchronous: bool) -> wgtrain::Result<f64> {
    let g = s.graph_arc();
    let mut saver = Saver::new(
        &g,
        SaverOptions {
            asynchronous,
            max_to_keep: 2,
            ..Default::default()
        },
    )?;
    let mut times = Vec::new();
    for k in 0..5 {
        // The device is idle and the writer done before each save.
        saver.flush()?;
        let t = Instant::now();
        saver.save(s, dir.join("model.ckpt"), Some(k))?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    saver.close()?;
    Ok(median(times))
}

fn main() -> wgtrain::Result<()> {
    let json = std::env::args().any(|a| a == "--json");
    let root = std::env::temp_dir().join(format!("wgtrain-bench-ckpt-{}", std::process::id()));
    let mut rows = Vec::new();
    for (name, mut s) in [("W2", w2()?), ("100MB", big()?)] {
        let dir = root.join(name);
        let bytes = bytes_of(&s);
        let a = blocked_ms(&mut s, &dir, true)?;
        let sync = blocked_ms(&mut s, &dir, false)?;
        let mbps = bytes as f64 / 1e6 / (sync / 1e3);
        rows.push((name, bytes, a, sync, mbps));
    }
    let _ = std::fs::remove_dir_all(&root);
    if json {
        for (name, bytes, a, sync, mbps) in &rows {
            println!(
                "{{\"bench\":\"checkpoint\",\"model\":\"{name}\",\"bytes\":{bytes},\"async_blocked_ms\":{a:.3},\"sync_blocked_ms\":{sync:.3},\"async_over_sync\":{:.4},\"sync_write_mb_per_s\":{mbps:.1}}}",
                a / sync
            );
        }
    } else {
        println!(
            "| model | bytes | async save blocks (ms) | sync save blocks (ms) | async / sync | sync write MB/s |"
        );
        println!("|---|---|---|---|---|---|");
        for (name, bytes, a, sync, mbps) in &rows {
            println!(
                "| {name} | {bytes} | {a:.3} | {sync:.1} | {:.2}% | {mbps:.0} |",
                100.0 * a / sync
            );
        }
    }
    Ok(())
}
