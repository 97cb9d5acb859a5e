//! Measures the fixed cost of a run and the marginal cost of one kernel dispatch on the
//! default adapter: chains of N tiny elementwise kernels, timed per run.
//!
//! `cargo run --release --example dispatch_cost`

use std::time::Instant;
use wgtrain::{DType, Graph, HostTensor, Session, SessionConfig};

fn main() -> wgtrain::Result<()> {
    for (n, len) in [
        (1usize, 32usize),
        (41, 32),
        (41, 256),
        (41, 512),
        (41, 1024),
        (41, 16384),
    ] {
        let mut g = Graph::new();
        let x = g.placeholder("x", DType::F32, &[len as i64])?;
        let mut t = x;
        for _ in 0..n {
            t = g.relu(t)?;
        }
        let mut s = Session::new(g, SessionConfig::default())?;
        let feed = HostTensor::from_f32(&[len], vec![1.0; len])?;
        for _ in 0..50 {
            s.run(&[(x, feed.clone())], &[t], &[])?;
        }
        let runs = 400;
        let start = Instant::now();
        for _ in 0..runs {
            s.run(&[(x, feed.clone())], &[t], &[])?;
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / runs as f64;
        println!(
            "{n:>3} dispatches of {len:>6} elements: {us:8.1} us per run ({:.1} us per dispatch incl. fixed)",
            us / n as f64
        );
    }
    Ok(())
}
