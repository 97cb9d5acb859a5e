//! One step of each optimizer against a hand-computed update, on both backends;
//! learning-rate schedules and clipping.

use crate::common::*;
use wgtrain::engine::{LearningRate, Optimizer, clip_by_global_norm};
use wgtrain::{
    Adam, AdamW, DType, Graph, HostTensor, Initializer, Momentum, Reference, RmsProp, Sgd, Tensor,
};

const W0: [f32; 3] = [1.0, -2.0, 0.5];
const C: [f32; 3] = [0.5, 3.0, -1.5];

/// loss = sum(w * C): the gradient is C at every step.
fn setup(
    opt: Optimizer,
) -> (
    Graph,
    Tensor,
    Tensor,
    wgtrain::Operation,
    wgtrain::Operation,
) {
    let mut g = Graph::new();
    let w = g
        .variable(
            "w",
            DType::F32,
            &[3],
            Initializer::Value(HostTensor::from_f32(&[3], W0.to_vec()).unwrap()),
        )
        .unwrap();
    let c = g
        .constant(HostTensor::from_f32(&[3], C.to_vec()).unwrap(), "c")
        .unwrap();
    let p = g.mul(w, c).unwrap();
    let loss = g.reduce_sum(p, &[], false).unwrap();
    let step = g.global_step().unwrap();
    let train = opt.minimize(&mut g, loss, step).unwrap();
    let init = g.global_variables_initializer().unwrap();
    (g, w, step, train, init)
}

/// Runs `steps` steps on both backends; checks both against `expect(step)`.
fn check(opt: Optimizer, steps: usize, expect: impl Fn(usize) -> Vec<f64>) {
    let (g, w, step, train, init) = setup(opt);
    let g = std::sync::Arc::new(g);
    let mut r = Reference::new(g.clone());
    r.run(&[], &[], &[init]).unwrap();
    let mut s = gpu_session_arc(g.clone());
    if let Some(s) = s.as_mut() {
        s.run(&[], &[], &[init]).unwrap();
    }
    for k in 1..=steps {
        let want = expect(k);
        let ro = r.run(&[], &[w, step], &[train]).unwrap();
        assert_eq!(ro[1].as_i64().unwrap(), vec![k as i64], "global step");
        for (i, (a, b)) in ro[0].to_f64().iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() < 1e-6 * b.abs().max(1.0),
                "reference step {k} w[{i}]: {a} vs hand {b}"
            );
        }
        if let Some(s) = s.as_mut() {
            let go = s.run(&[], &[w, step], &[train]).unwrap();
            assert_eq!(
                go[1].as_i64().unwrap(),
                vec![k as i64],
                "global step on wgpu"
            );
            for (i, (a, b)) in go[0].to_f64().iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() < 1e-5 * b.abs().max(1.0),
                    "wgpu step {k} w[{i}]: {a} vs hand {b}"
                );
            }
        }
    }
}

fn w0() -> Vec<f64> {
    W0.iter().map(|&v| f64::from(v)).collect()
}

fn c() -> Vec<f64> {
    C.iter().map(|&v| f64::from(v)).collect()
}

#[test]
fn sgd_step() {
    check(Sgd::new(0.1), 3, |k| {
        w0().iter()
            .zip(c())
            .map(|(w, g)| w - 0.1 * g * k as f64)
            .collect()
    });
}

#[test]
fn momentum_and_nesterov_steps() {
    // accum_k = sum_{i<k} 0.9^i * g; w_k = w_{k-1} - lr * accum_k.
    let acc = |k: usize| (0..k).map(|i| 0.9f64.powi(i as i32)).sum::<f64>();
    check(Momentum::new(0.1), 3, move |k| {
        let total: f64 = (1..=k).map(acc).sum();
        w0().iter()
            .zip(c())
            .map(|(w, g)| w - 0.1 * g * total)
            .collect()
    });
    // Nesterov: w -= lr * g + lr * 0.9 * accum_k.
    check(Momentum::new(0.1).nesterov(true), 3, move |k| {
        let total: f64 = (1..=k).map(|j| 1.0 + 0.9 * acc(j)).sum();
        w0().iter()
            .zip(c())
            .map(|(w, g)| w - 0.1 * g * total)
            .collect()
    });
}

fn adam_expect(k: usize, lr: f64, wd: f64) -> Vec<f64> {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut w = w0();
    let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
    for t in 1..=k {
        let lr_t = lr * (1.0 - b2.powi(t as i32)).sqrt() / (1.0 - b1.powi(t as i32));
        for i in 0..3 {
            let g = c()[i];
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            w[i] = w[i] - lr * wd * w[i] - lr_t * m[i] / (v[i].sqrt() + eps);
        }
    }
    w
}

#[test]
fn adam_and_adamw_steps() {
    check(Adam::new(0.01), 3, |k| adam_expect(k, 0.01, 0.0));
    check(AdamW::new(0.01).weight_decay(0.1), 3, |k| {
        adam_expect(k, 0.01, 0.1)
    });
}

#[test]
fn rmsprop_step() {
    check(RmsProp::new(0.01), 3, |k| {
        let mut w = w0();
        let mut ms = [1.0; 3];
        for _ in 0..k {
            for i in 0..3 {
                let g = c()[i];
                ms[i] = 0.9 * ms[i] + 0.1 * g * g;
                w[i] -= 0.01 * g / (ms[i] + 1e-10).sqrt();
            }
        }
        w
    });
}

#[test]
fn adam_slots_are_tf_named_variables() {
    let (g, ..) = setup(Adam::new(0.01));
    let names: Vec<&str> = g.global_variables().iter().map(|v| g.name(*v)).collect();
    assert_eq!(
        names,
        vec![
            "w",
            "global_step",
            "beta1_power",
            "beta2_power",
            "w/Adam",
            "w/Adam_1"
        ]
    );
    assert_eq!(g.trainable_variables().len(), 1);
}

#[test]
fn learning_rate_schedules() {
    let cases: Vec<(LearningRate, Box<dyn Fn(f64) -> f64>)> = vec![
        (
            LearningRate::ExponentialDecay {
                initial: 0.1,
                decay_steps: 10,
                decay_rate: 0.5,
                staircase: false,
            },
            Box::new(|s| 0.1 * 0.5f64.powf(s / 10.0)),
        ),
        (
            LearningRate::ExponentialDecay {
                initial: 0.1,
                decay_steps: 10,
                decay_rate: 0.5,
                staircase: true,
            },
            Box::new(|s| 0.1 * 0.5f64.powf((s / 10.0).floor())),
        ),
        (
            LearningRate::PiecewiseConstant {
                boundaries: vec![5, 15],
                values: vec![1.0, 0.5, 0.1],
            },
            Box::new(|s| {
                if s <= 5.0 {
                    1.0
                } else if s <= 15.0 {
                    0.5
                } else {
                    0.1
                }
            }),
        ),
        (
            LearningRate::CosineDecay {
                initial: 0.2,
                decay_steps: 20,
                alpha: 0.1,
            },
            Box::new(|s: f64| {
                0.2 * (0.9 * 0.5 * (1.0 + (std::f64::consts::PI * s.min(20.0) / 20.0).cos()) + 0.1)
            }),
        ),
    ];
    for (lr, f) in cases {
        let mut g = Graph::new();
        let step = g.global_step().unwrap();
        let t = lr.build(&mut g, Some(step)).unwrap();
        let init = g.global_variables_initializer().unwrap();
        let mut r = Reference::new(g.clone());
        r.run(&[], &[], &[init]).unwrap();
        let mut s = gpu(g);
        if let Some(s) = s.as_mut() {
            s.run(&[], &[], &[init]).unwrap();
        }
        for st in [0i64, 1, 5, 6, 10, 15, 16, 25, 40] {
            let v = HostTensor::scalar_i64(st);
            r.set_variable(step, &v).unwrap();
            let want = f(st as f64);
            let got = r.run(&[], &[t], &[]).unwrap()[0].scalar_value().unwrap();
            assert!(
                (got - want).abs() < 1e-6,
                "{lr:?} at {st}: reference {got} vs {want}"
            );
            if let Some(s) = s.as_mut() {
                s.write_variables(&[(step, v)]).unwrap();
                let got = s.run(&[], &[t], &[]).unwrap()[0].scalar_value().unwrap();
                assert!(
                    (got - want).abs() < 1e-6,
                    "{lr:?} at {st}: wgpu {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn clipping_by_global_norm() {
    let mut g = Graph::new();
    let a = g
        .constant(HostTensor::from_f32(&[2], vec![3.0, 0.0]).unwrap(), "a")
        .unwrap();
    let b = g
        .constant(HostTensor::from_f32(&[1], vec![4.0]).unwrap(), "b")
        .unwrap();
    let (clipped, norm) = clip_by_global_norm(&mut g, &[a, b], 2.5).unwrap();
    let (unclipped, _) = clip_by_global_norm(&mut g, &[a, b], 10.0).unwrap();
    let fetch = [clipped[0], clipped[1], norm, unclipped[0]];
    let mut r = Reference::new(g.clone());
    let out = r.run(&[], &fetch, &[]).unwrap();
    assert_eq!(out[0].as_f32().unwrap(), vec![1.5, 0.0]);
    assert_eq!(out[1].as_f32().unwrap(), vec![2.0]);
    assert_eq!(out[2].as_f32().unwrap(), vec![5.0]);
    assert_eq!(out[3].as_f32().unwrap(), vec![3.0, 0.0]);
    check_against_reference(g, &[], &fetch, 1e-6);
}

#[test]
fn clipped_optimizer_trains() {
    // With clip 1.0 the SGD step is lr * C / |C|.
    let norm = c().iter().map(|x| x * x).sum::<f64>().sqrt();
    check(Sgd::new(0.1).clip_by_global_norm(1.0), 2, move |k| {
        w0().iter()
            .zip(c())
            .map(|(w, g)| w - 0.1 * g / norm * k as f64)
            .collect()
    });
}
