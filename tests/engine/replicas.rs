//! Data-parallel gradient averaging inside the session, with replicas on threads and an
//! in-process reducer: two replicas at batch B on disjoint halves train as one session
//! at batch 2B, the gradients averaged before clipping and the update.

use crate::common::*;
use std::sync::{Arc, Barrier, Mutex};
use wgtrain::engine::layers::{self, Activation};
use wgtrain::{
    Adam, DType, Error, GradientReducer, Graph, HostTensor, Operation, Optimizer, Sgd, Tensor,
};

/// Averages across `n` threads: each adds its gradients into the shared sum (the first
/// of a round zeroes it), waits for the others, reads the mean, and waits until every
/// thread has read before the next round can start.
struct ThreadReducer {
    n: usize,
    sum: Mutex<Vec<f32>>,
    arrived: Barrier,
    read: Barrier,
    calls: Mutex<usize>,
}

impl ThreadReducer {
    fn new(n: usize) -> Arc<ThreadReducer> {
        Arc::new(ThreadReducer {
            n,
            sum: Mutex::new(Vec::new()),
            arrived: Barrier::new(n),
            read: Barrier::new(n),
            calls: Mutex::new(0),
        })
    }
}

impl GradientReducer for ThreadReducer {
    fn all_reduce_mean(&self, grads: &mut [f32]) -> wgtrain::Result<()> {
        {
            let mut s = self.sum.lock().unwrap();
            let mut calls = self.calls.lock().unwrap();
            if (*calls).is_multiple_of(self.n) {
                *s = vec![0.0; grads.len()];
            }
            *calls += 1;
            for (a, b) in s.iter_mut().zip(grads.iter()) {
                *a += *b;
            }
        }
        self.arrived.wait();
        {
            let s = self.sum.lock().unwrap();
            for (g, a) in grads.iter_mut().zip(s.iter()) {
                *g = *a / self.n as f32;
            }
        }
        self.read.wait();
        Ok(())
    }

    fn abandon(&self, error: &Error) {
        panic!("a replica failed before its all-reduce: {error}");
    }
}

struct Model {
    g: Graph,
    x: Tensor,
    y: Tensor,
    loss: Tensor,
    train: Operation,
    init: Operation,
}

fn mlp(opt: &Optimizer) -> Model {
    let mut g = Graph::new();
    g.set_seed(7);
    let x = g.placeholder("x", DType::F32, &[-1, 12]).unwrap();
    let y = g.placeholder("y", DType::I32, &[-1]).unwrap();
    let h = layers::dense(&mut g, x, 16, Activation::Relu, "hidden").unwrap();
    let logits = layers::dense(&mut g, h, 5, Activation::Linear, "logits").unwrap();
    let loss = g.sparse_softmax_cross_entropy_mean(logits, y).unwrap();
    let step = g.global_step().unwrap();
    let train = opt.minimize(&mut g, loss, step).unwrap();
    let init = g.global_variables_initializer().unwrap();
    Model {
        g,
        x,
        y,
        loss,
        train,
        init,
    }
}

fn rows(t: &HostTensor, from: usize, to: usize) -> HostTensor {
    let width: usize = t.shape()[1..].iter().product();
    let mut shape = t.shape().to_vec();
    shape[0] = to - from;
    let v = t.to_f64()[from * width..to * width].to_vec();
    HostTensor::from_f64(t.dtype(), &shape, &v).unwrap()
}

/// Losses of each step and the final variables of one session at the whole batch, and of
/// each of two replicas at half of it.
fn train(
    opt: Optimizer,
    steps: usize,
) -> Option<(
    Vec<f64>,
    Vec<HostTensor>,
    Vec<(Vec<f64>, Vec<HostTensor>, usize)>,
)> {
    let batch = 16;
    let mut r = fixed_rng(41);
    let data: Vec<(HostTensor, HostTensor)> = (0..steps)
        .map(|_| {
            (
                rand_f32(&mut r, &[batch, 12], -1.0, 1.0),
                rand_i32(&mut r, &[batch], 0, 5),
            )
        })
        .collect();
    let m = mlp(&opt);
    let vars = m.g.global_variables();
    let mut one = gpu(m.g.clone())?;
    one.run(&[], &[], &[m.init]).unwrap();
    let mut losses = Vec::new();
    for (bx, by) in &data {
        let out = one
            .run(
                &[(m.x, bx.clone()), (m.y, by.clone())],
                &[m.loss],
                &[m.train],
            )
            .unwrap();
        losses.push(out[0].scalar_value().unwrap());
    }
    let whole = one.read_variables(&vars).unwrap();

    let reducer = ThreadReducer::new(2);
    let replicas: Vec<_> = (0..2)
        .map(|k| {
            let (data, reducer, g) = (data.clone(), Arc::clone(&reducer), m.g.clone());
            let (x, y, loss, train, init, vars) = (m.x, m.y, m.loss, m.train, m.init, vars.clone());
            std::thread::spawn(move || {
                let mut s = gpu(g).unwrap();
                s.run(&[], &[], &[init]).unwrap();
                s.set_gradient_reducer(Some(reducer as Arc<dyn GradientReducer>));
                let mut losses = Vec::new();
                let mut submissions = 0;
                for (bx, by) in &data {
                    let half = batch / 2;
                    let (bx, by) = (
                        rows(bx, k * half, (k + 1) * half),
                        rows(by, k * half, (k + 1) * half),
                    );
                    let out = s.run(&[(x, bx), (y, by)], &[loss], &[train]).unwrap();
                    submissions = s.stats().submissions;
                    assert!(s.stats().all_reduce_bytes > 0);
                    losses.push(out[0].scalar_value().unwrap());
                }
                (losses, s.read_variables(&vars).unwrap(), submissions)
            })
        })
        .collect();
    let replicas = replicas.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        *reducer.calls.lock().unwrap(),
        2 * steps,
        "one all-reduce per replica and step"
    );
    Some((losses, whole, replicas))
}

fn check_equivalent(opt: Optimizer) {
    let steps = 20;
    let Some((losses, whole, replicas)) = train(opt, steps) else {
        return;
    };
    let (a, b) = (&replicas[0], &replicas[1]);
    assert_eq!(
        a.2, 2,
        "a training run is two submissions around the all-reduce"
    );
    assert_eq!(losses.len(), steps);
    for (k, want) in losses.iter().enumerate() {
        let mean = (a.0[k] + b.0[k]) / 2.0;
        let tol = 1e-5 * want.abs().max(1.0);
        assert!(
            (mean - want).abs() <= tol,
            "step {k}: replicas' mean loss {mean} vs {want}"
        );
    }
    for ((va, vb), w) in a.1.iter().zip(&b.1).zip(&whole) {
        assert_eq!(
            va.bytes(),
            vb.bytes(),
            "replicas hold bitwise equal variables"
        );
        assert_close("variable", va, w, 1e-5);
    }
}

#[test]
fn sgd_replicas_train_as_one_batch() {
    check_equivalent(Sgd::new(0.5));
}

#[test]
fn adam_replicas_with_clipping_train_as_one_batch() {
    // Clipping by the global norm of the averaged gradients: clipping before averaging
    // would differ.
    check_equivalent(Adam::new(0.05).clip_by_global_norm(0.1));
}

#[test]
fn a_run_without_gradients_does_not_reduce() {
    let m = mlp(&Sgd::new(0.1));
    let Some(mut s) = gpu(m.g.clone()) else {
        return;
    };
    s.set_gradient_reducer(Some(ThreadReducer::new(1) as Arc<dyn GradientReducer>));
    s.run(&[], &[], &[m.init]).unwrap();
    let bx = HostTensor::from_f32(&[2, 12], vec![0.1; 24]).unwrap();
    let by = HostTensor::from_i32(&[2], vec![1, 2]).unwrap();
    s.run(&[(m.x, bx), (m.y, by)], &[m.loss], &[]).unwrap();
    assert_eq!(s.stats().submissions, 1);
    assert_eq!(s.stats().all_reduce_bytes, 0);
}
