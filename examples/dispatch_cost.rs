//! Measures what a run costs on the default adapter apart from the kernels' work:
//! chains of N tiny elementwise kernels, timed per run, with the result read back every
//! run (latency) and never (throughput of pipelined runs).
//!
//! `cargo run --release --example dispatch_cost`

use std::time::Instant;
use wgtrain::{DType, Graph, HostTensor, Session, SessionConfig};

fn main() -> wgtrain::Result<()> {
    println!("| kernels | elements | us/run, read back | us/run, pipelined |");
    println!("|---|---|---|---|");
    for (n, len) in [
        (1usize, 32usize),
        (6, 32),
        (6, 1024),
        (12, 1024),
        (41, 1024),
    ] {
        let mut g = Graph::new();
        let x = g.placeholder("x", DType::F32, &[len as i64])?;
        let v = g.variable("v", DType::F32, &[len as i64], wgtrain::Initializer::Zeros)?;
        let mut t = x;
        for _ in 0..n {
            t = g.relu(t)?;
        }
        let keep = g.assign(v, t)?;
        let init = g.global_variables_initializer()?;
        let mut s = Session::new(g, SessionConfig::default())?;
        s.run(&[], &[], &[init])?;
        let feed = HostTensor::from_f32(&[len], vec![1.0; len])?;
        let mut time = |fetch: bool| -> wgtrain::Result<f64> {
            let runs = 400;
            for _ in 0..50 {
                s.run(&[(x, feed.clone())], &[], &[keep.op()])?;
            }
            let start = Instant::now();
            for _ in 0..runs {
                if fetch {
                    s.run(&[(x, feed.clone())], &[t], &[])?;
                } else {
                    s.run(&[(x, feed.clone())], &[], &[keep.op()])?;
                }
            }
            s.read_variables(&[v])?;
            Ok(start.elapsed().as_secs_f64() * 1e6 / runs as f64)
        };
        let latency = time(true)?;
        let pipelined = time(false)?;
        println!("| {n} | {len} | {latency:.1} | {pipelined:.1} |");
    }
    Ok(())
}
