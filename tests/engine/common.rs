//! Shared helpers: random inputs, tolerances, GPU sessions.

use wgtrain::engine::rng::Stream;
use wgtrain::engine::runtime::testing::gpu_session;
use wgtrain::{DType, Graph, HostTensor, Reference, Session, Tensor};

/// Relative tolerance for f32 kernels against the f64 reference.
pub const F32_RTOL: f64 = 1e-4;

/// The seed of this test run: `WGTRAIN_TEST_SEED` when set (to replay a failure), else
/// fresh from the clock. Failure messages print it.
pub fn run_seed() -> u64 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SEED.get_or_init(|| {
        std::env::var("WGTRAIN_TEST_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
            })
    })
}

/// A stream of random numbers for one call site, fresh each test run (see [`run_seed`]).
pub fn rng(site: u64) -> Stream {
    Stream::new((run_seed(), site))
}

/// A stream that is the same on every run, for tests that assert convergence.
pub fn fixed_rng(site: u64) -> Stream {
    Stream::new((site, 0x7e57))
}

/// A random f32 tensor in [lo, hi).
pub fn rand_f32(r: &mut Stream, shape: &[usize], lo: f64, hi: f64) -> HostTensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| (lo + (hi - lo) * r.uniform()) as f32)
        .collect();
    HostTensor::from_f32(shape, v).expect("shape")
}

/// A random i32 tensor in [lo, hi).
pub fn rand_i32(r: &mut Stream, shape: &[usize], lo: i32, hi: i32) -> HostTensor {
    let n: usize = shape.iter().product();
    let span = f64::from(hi - lo);
    let v: Vec<i32> = (0..n).map(|_| lo + (r.uniform() * span) as i32).collect();
    HostTensor::from_i32(shape, v).expect("shape")
}

/// A GPU session, or None when the test should skip.
pub fn gpu(g: Graph) -> Option<Session> {
    gpu_session(g)
}

/// Asserts `got` matches `want` elementwise within `rtol` relative (with an absolute
/// floor of `rtol` for values near zero); NaNs must match.
pub fn assert_close(what: &str, got: &HostTensor, want: &HostTensor, rtol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    let (g, w) = (got.to_f64(), want.to_f64());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        if a.is_nan() || b.is_nan() {
            assert!(
                a.is_nan() && b.is_nan(),
                "{what}[{i}]: got {a}, want {b} (WGTRAIN_TEST_SEED={})",
                run_seed()
            );
            continue;
        }
        let tol = rtol * b.abs().max(1.0);
        assert!(
            (a - b).abs() <= tol,
            "{what}[{i}]: got {a}, want {b} (tol {tol}, WGTRAIN_TEST_SEED={})",
            run_seed()
        );
    }
}

/// Runs `fetches` with `feeds` on the GPU and on the reference; compares within `rtol`.
pub fn check_against_reference(
    g: Graph,
    feeds: &[(Tensor, HostTensor)],
    fetches: &[Tensor],
    rtol: f64,
) {
    let names: Vec<String> = fetches.iter().map(|t| g.name(*t).to_string()).collect();
    let init = g.global_variables();
    let mut g = g;
    let init_op = if init.is_empty() {
        None
    } else {
        Some(g.global_variables_initializer().expect("init"))
    };
    let g = std::sync::Arc::new(g);
    let mut reference = Reference::new(std::sync::Arc::clone(&g));
    let Some(mut sess) = gpu_session_arc(std::sync::Arc::clone(&g)) else {
        return;
    };
    if let Some(op) = init_op {
        reference.run(&[], &[], &[op]).expect("reference init");
        sess.run(&[], &[], &[op]).expect("gpu init");
    }
    let want = reference.run(feeds, fetches, &[]).expect("reference run");
    let got = sess.run(feeds, fetches, &[]).expect("gpu run");
    for ((n, a), b) in names.iter().zip(&got).zip(&want) {
        assert_close(n, a, b, rtol);
    }
}

/// A GPU session over a shared graph.
pub fn gpu_session_arc(g: std::sync::Arc<Graph>) -> Option<Session> {
    gpu_session(g)
}

/// A placeholder for an f32 tensor of known shape.
pub fn ph(g: &mut Graph, name: &str, shape: &[usize]) -> Tensor {
    let s: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    g.placeholder(name, DType::F32, &s).expect("placeholder")
}
