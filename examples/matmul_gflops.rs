//! Matmul throughput on the default adapter: GFLOP/s of `a @ b` for square sizes,
//! plain and with each operand transposed.
//!
//! `cargo run --release --example matmul_gflops`

use std::time::Instant;
use wgtrain::{DType, Graph, HostTensor, Initializer, Session, SessionConfig};

fn main() -> wgtrain::Result<()> {
    println!("| m=n=k | transpose_a | transpose_b | GFLOP/s |");
    println!("|---|---|---|---|");
    for n in [128usize, 512] {
        for (ta, tb) in [(false, false), (true, false), (false, true)] {
            let mut g = Graph::new();
            let a = g.placeholder("a", DType::F32, &[n as i64, n as i64])?;
            let b = g.variable(
                "b",
                DType::F32,
                &[n as i64, n as i64],
                Initializer::GlorotUniform,
            )?;
            let out = g.variable("out", DType::F32, &[n as i64, n as i64], Initializer::Zeros)?;
            let c = g.matmul_t(a, b, ta, tb)?;
            let keep = g.assign(out, c)?;
            let init = g.global_variables_initializer()?;
            let mut s = Session::new(g, SessionConfig::default())?;
            s.run(&[], &[], &[init])?;
            let av = HostTensor::from_f32(&[n, n], vec![0.5; n * n])?;
            s.run(&[(a, av.clone())], &[], &[keep.op()])?;
            let runs = if n >= 512 { 10 } else { 100 };
            let start = Instant::now();
            for _ in 0..runs {
                s.run(&[(a, av.clone())], &[], &[keep.op()])?;
            }
            s.read_variables(&[out])?;
            let secs = start.elapsed().as_secs_f64() / runs as f64;
            let gflops = 2.0 * (n * n * n) as f64 / secs / 1e9;
            println!("| {n} | {ta} | {tb} | {gflops:.2} |");
        }
    }
    Ok(())
}
