//! An MLP trains on a synthetic classification task; its first losses match the
//! reference interpreter step for step.

use crate::common::*;
use wgtrain::engine::rng::Stream;
use wgtrain::{Adam, DType, Graph, HostTensor, Initializer, Operation, Reference, Tensor};

const DIM: usize = 8;
const CLASSES: usize = 3;

/// Three Gaussian blobs in 8-D.
fn batch(r: &mut Stream, n: usize) -> (HostTensor, HostTensor) {
    let mut xs = Vec::with_capacity(n * DIM);
    let mut ys = Vec::with_capacity(n);
    for _ in 0..n {
        let c = (r.uniform() * CLASSES as f64) as usize % CLASSES;
        for d in 0..DIM {
            let center = if d % CLASSES == c { 2.0 } else { 0.0 };
            xs.push((center + 0.7 * r.normal()) as f32);
        }
        ys.push(c as i32);
    }
    (
        HostTensor::from_f32(&[n, DIM], xs).unwrap(),
        HostTensor::from_i32(&[n], ys).unwrap(),
    )
}

struct Model {
    g: Graph,
    x: Tensor,
    y: Tensor,
    loss: Tensor,
    train: Operation,
    init: Operation,
}

fn model() -> Model {
    let mut g = Graph::new();
    g.set_seed(7);
    let x = g.placeholder("x", DType::F32, &[-1, DIM as i64]).unwrap();
    let y = g.placeholder("y", DType::I32, &[-1]).unwrap();
    let h = g
        .name_scope("hidden", |g| {
            let w = g.variable(
                "kernel",
                DType::F32,
                &[DIM as i64, 16],
                Initializer::GlorotUniform,
            )?;
            let b = g.variable("bias", DType::F32, &[16], Initializer::Zeros)?;
            let m = g.matmul(x, w)?;
            let a = g.bias_add(m, b)?;
            g.relu(a)
        })
        .unwrap();
    let logits = g
        .name_scope("logits", |g| {
            let w = g.variable(
                "kernel",
                DType::F32,
                &[16, CLASSES as i64],
                Initializer::GlorotUniform,
            )?;
            let b = g.variable("bias", DType::F32, &[CLASSES as i64], Initializer::Zeros)?;
            let m = g.matmul(h, w)?;
            g.bias_add(m, b)
        })
        .unwrap();
    let loss = g.sparse_softmax_cross_entropy_mean(logits, y).unwrap();
    let step = g.global_step().unwrap();
    let train = Adam::new(0.01).minimize(&mut g, loss, step).unwrap();
    let init = g.global_variables_initializer().unwrap();
    assert_eq!(g.name(g.trainable_variables()[0]), "hidden/kernel");
    Model {
        g,
        x,
        y,
        loss,
        train,
        init,
    }
}

#[test]
fn mlp_matches_reference_then_trains_to_low_loss() {
    let m = model();
    let g = std::sync::Arc::new(m.g);
    let mut r = Reference::new(g.clone());
    let Some(mut s) = gpu_session_arc(g.clone()) else {
        return;
    };
    r.run(&[], &[], &[m.init]).unwrap();
    s.run(&[], &[], &[m.init]).unwrap();
    let mut data = fixed_rng(99);
    let mut first = None;
    for step in 0..20 {
        let (bx, by) = batch(&mut data, 32);
        let feeds = vec![(m.x, bx), (m.y, by)];
        let want = r.run(&feeds, &[m.loss], &[m.train]).unwrap()[0]
            .scalar_value()
            .unwrap();
        let got = s.run(&feeds, &[m.loss], &[m.train]).unwrap()[0]
            .scalar_value()
            .unwrap();
        assert!(
            (got - want).abs() <= 1e-3 * want.abs(),
            "step {step}: wgpu loss {got} vs reference {want}"
        );
        first.get_or_insert(got);
    }
    let mut last = 0.0;
    for _ in 0..300 {
        let (bx, by) = batch(&mut data, 32);
        last = s
            .run(&[(m.x, bx), (m.y, by)], &[m.loss], &[m.train])
            .unwrap()[0]
            .scalar_value()
            .unwrap();
    }
    let first = first.unwrap_or(f64::NAN);
    assert!(
        last < 0.15 && last < first / 5.0,
        "loss went from {first} to {last}"
    );
    let (bx, by) = batch(&mut data, 500);
    let held_out = s.run(&[(m.x, bx), (m.y, by)], &[m.loss], &[]).unwrap()[0]
        .scalar_value()
        .unwrap();
    assert!(held_out < 0.2, "held-out loss {held_out}");
}
