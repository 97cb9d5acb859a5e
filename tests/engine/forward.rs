//! Every op's forward pass on wgpu against the reference interpreter, on fresh random
//! inputs with broadcasting and odd shapes.

use crate::common::*;
use wgtrain::engine::{BinaryOp, CompareOp, ReduceOp, UnaryOp};
use wgtrain::{DType, Graph, HostTensor, Tensor};

/// Builds a graph over placeholders for `inputs`, runs `build`'s outputs on both
/// backends and compares.
fn fwd(inputs: Vec<HostTensor>, build: impl FnOnce(&mut Graph, &[Tensor]) -> Vec<Tensor>) {
    let mut g = Graph::new();
    let ts: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let s: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
            g.placeholder(&format!("in{i}"), t.dtype(), &s).unwrap()
        })
        .collect();
    let outs = build(&mut g, &ts);
    let feeds: Vec<(Tensor, HostTensor)> = ts.into_iter().zip(inputs).collect();
    check_against_reference(g, &feeds, &outs, F32_RTOL);
}

const UNARY: &[(UnaryOp, f64, f64)] = &[
    (UnaryOp::Neg, -3.0, 3.0),
    (UnaryOp::Exp, -5.0, 5.0),
    (UnaryOp::Log, 0.01, 10.0),
    (UnaryOp::Sqrt, 0.0, 10.0),
    (UnaryOp::Rsqrt, 0.05, 10.0),
    (UnaryOp::Square, -3.0, 3.0),
    (UnaryOp::Abs, -3.0, 3.0),
    (UnaryOp::Relu, -3.0, 3.0),
    (UnaryOp::Sigmoid, -30.0, 30.0),
    (UnaryOp::Tanh, -30.0, 30.0),
    (UnaryOp::Softplus, -30.0, 30.0),
    (UnaryOp::Sign, -3.0, 3.0),
    (UnaryOp::Cos, -3.0, 3.0),
    (UnaryOp::Sin, -3.0, 3.0),
    (UnaryOp::Floor, -3.0, 3.0),
    (UnaryOp::Reciprocal, 0.1, 3.0),
    (UnaryOp::Gelu, -8.0, 8.0),
];

#[test]
fn unary_f32_odd_shapes() {
    let mut r = rng(10);
    for &(op, lo, hi) in UNARY {
        for shape in [&[1usize][..], &[7], &[7, 129], &[3, 5, 17]] {
            fwd(vec![rand_f32(&mut r, shape, lo, hi)], |g, x| {
                vec![g.unary(op, x[0]).unwrap()]
            });
        }
    }
}

#[test]
fn unary_i32() {
    let mut r = rng(11);
    for op in [UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Square, UnaryOp::Sign] {
        fwd(vec![rand_i32(&mut r, &[129], -1000, 1000)], |g, x| {
            vec![g.unary(op, x[0]).unwrap()]
        });
    }
}

const BINARY: &[BinaryOp] = &[
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Maximum,
    BinaryOp::Minimum,
    BinaryOp::Pow,
    BinaryOp::ReluGrad,
    BinaryOp::SigmoidGrad,
    BinaryOp::TanhGrad,
    BinaryOp::GeluGrad,
];

const BROADCASTS: &[(&[usize], &[usize])] = &[
    (&[7, 129], &[7, 129]),
    (&[7, 129], &[129]),
    (&[7, 1], &[1, 129]),
    (&[], &[7]),
    (&[3, 1, 5], &[4, 1]),
    (&[2, 3, 4, 5], &[3, 1, 5]),
    (&[1], &[1]),
];

#[test]
fn binary_f32_with_broadcasting() {
    let mut r = rng(12);
    for &op in BINARY {
        for &(sa, sb) in BROADCASTS {
            let (lo, hi) = if op == BinaryOp::Pow {
                (0.1, 3.0)
            } else {
                (-3.0, 3.0)
            };
            let a = rand_f32(&mut r, sa, lo, hi);
            let b = if op == BinaryOp::Div {
                rand_f32(&mut r, sb, 0.5, 3.0)
            } else {
                rand_f32(&mut r, sb, -2.0, 2.0)
            };
            fwd(vec![a, b], |g, x| vec![g.binary(op, x[0], x[1]).unwrap()]);
        }
    }
}

#[test]
fn pow_with_negative_base_and_integer_exponent() {
    let a = HostTensor::from_f32(&[4], vec![-2.0, -3.0, 2.0, -0.5]).unwrap();
    let b = HostTensor::from_f32(&[4], vec![2.0, 3.0, 0.5, 0.0]).unwrap();
    fwd(vec![a, b], |g, x| vec![g.pow(x[0], x[1]).unwrap()]);
}

#[test]
fn binary_int() {
    let mut r = rng(13);
    for op in [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
    ] {
        let a = rand_i32(&mut r, &[7, 33], -1000, 1000);
        let b = rand_i32(&mut r, &[33], 1, 50);
        fwd(vec![a, b], |g, x| vec![g.binary(op, x[0], x[1]).unwrap()]);
        let a = HostTensor::from_u32(&[5], vec![1, 7, 100, 3, 4_000_000_000]).unwrap();
        let b = HostTensor::from_u32(&[1], vec![3]).unwrap();
        fwd(vec![a, b], |g, x| vec![g.binary(op, x[0], x[1]).unwrap()]);
    }
}

#[test]
fn comparisons() {
    let mut r = rng(14);
    for op in [
        CompareOp::Equal,
        CompareOp::NotEqual,
        CompareOp::Greater,
        CompareOp::GreaterEqual,
        CompareOp::Less,
        CompareOp::LessEqual,
    ] {
        let a = rand_i32(&mut r, &[7, 9], 0, 4);
        let b = rand_i32(&mut r, &[9], 0, 4);
        let (af, bf) = (
            rand_f32(&mut r, &[7, 9], -1.0, 1.0),
            rand_f32(&mut r, &[7, 1], -1.0, 1.0),
        );
        fwd(vec![a, b, af, bf], |g, x| {
            let f = |g: &mut Graph, a, b| {
                match op {
                    CompareOp::Equal => g.equal(a, b),
                    CompareOp::NotEqual => g.not_equal(a, b),
                    CompareOp::Greater => g.greater(a, b),
                    CompareOp::GreaterEqual => g.greater_equal(a, b),
                    CompareOp::Less => g.less(a, b),
                    CompareOp::LessEqual => g.less_equal(a, b),
                }
                .unwrap()
            };
            vec![f(g, x[0], x[1]), f(g, x[2], x[3])]
        });
    }
}

#[test]
fn casts_between_every_dtype() {
    let dtypes = [DType::F32, DType::I32, DType::U32, DType::I64, DType::Bool];
    let src = HostTensor::from_f32(&[7], vec![0.0, 1.5, -2.7, 3.0, 1e6, -1e6, 0.25]).unwrap();
    for &mid in &dtypes {
        for &to in &dtypes {
            fwd(vec![src.clone()], |g, x| {
                let a = g.cast(x[0], mid).unwrap();
                vec![a, g.cast(a, to).unwrap()]
            });
        }
    }
    let big = HostTensor::from_i64(&[3], vec![1 << 40, -(1 << 33) - 5, -1]).unwrap();
    for &to in &dtypes {
        fwd(vec![big.clone()], |g, x| vec![g.cast(x[0], to).unwrap()]);
    }
}

#[test]
fn matmul_all_transposes_and_batched() {
    let mut r = rng(15);
    for (m, k, n) in [
        (1, 1, 1),
        (7, 129, 33),
        (33, 7, 129),
        (64, 64, 64),
        (5, 1, 3),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let sa = if ta { [k, m] } else { [m, k] };
            let sb = if tb { [n, k] } else { [k, n] };
            let a = rand_f32(&mut r, &sa, -1.0, 1.0);
            let b = rand_f32(&mut r, &sb, -1.0, 1.0);
            fwd(vec![a, b], |g, x| {
                vec![g.matmul_t(x[0], x[1], ta, tb).unwrap()]
            });
        }
    }
    let a = rand_f32(&mut r, &[3, 7, 9], -1.0, 1.0);
    let b = rand_f32(&mut r, &[3, 5, 9], -1.0, 1.0);
    fwd(vec![a, b], |g, x| {
        vec![g.matmul_t(x[0], x[1], false, true).unwrap()]
    });
    let a = rand_f32(&mut r, &[2, 2, 4, 3], -1.0, 1.0);
    let b = rand_f32(&mut r, &[2, 2, 4, 5], -1.0, 1.0);
    fwd(vec![a, b], |g, x| {
        vec![g.matmul_t(x[0], x[1], true, false).unwrap()]
    });
}

#[test]
fn reductions_over_axes() {
    let mut r = rng(16);
    let axes_cases: &[&[i64]] = &[&[0], &[1], &[2], &[-1], &[0, 2], &[0, 1], &[]];
    for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
        for &axes in axes_cases {
            for keep in [false, true] {
                let x = rand_f32(&mut r, &[5, 7, 9], -2.0, 2.0);
                fwd(vec![x], |g, t| {
                    vec![g.reduce(op, t[0], axes, keep).unwrap()]
                });
            }
        }
        if op != ReduceOp::Mean {
            let x = rand_i32(&mut r, &[7, 13], -100, 100);
            fwd(vec![x], |g, t| {
                vec![
                    g.reduce(op, t[0], &[1], false).unwrap(),
                    g.reduce(op, t[0], &[], false).unwrap(),
                ]
            });
        }
    }
    // A long reduction: relative error of an f32 sum over 100k elements.
    let x = rand_f32(&mut r, &[100_000], 0.0, 1.0);
    fwd(vec![x], |g, t| {
        vec![g.reduce_mean(t[0], &[], false).unwrap()]
    });
}

#[test]
fn layout_ops() {
    let mut r = rng(17);
    let x = rand_f32(&mut r, &[2, 3, 4, 5], -1.0, 1.0);
    fwd(vec![x], |g, t| {
        vec![
            g.transpose(t[0], &[3, 1, 0, 2]).unwrap(),
            g.transpose(t[0], &[0, 1, 3, 2]).unwrap(),
            g.reshape(t[0], &[6, -1]).unwrap(),
            g.expand_dims(t[0], -1).unwrap(),
            g.expand_dims(t[0], 0).unwrap(),
        ]
    });
    let x = rand_f32(&mut r, &[3, 1, 4, 1], -1.0, 1.0);
    fwd(vec![x], |g, t| {
        vec![
            g.squeeze(t[0], &[]).unwrap(),
            g.squeeze(t[0], &[1]).unwrap(),
        ]
    });
    let x = HostTensor::from_i64(&[2, 3], vec![1, 2, 3, 1 << 40, 5, -6]).unwrap();
    fwd(vec![x], |g, t| vec![g.transpose(t[0], &[1, 0]).unwrap()]);
    let x = rand_f32(&mut r, &[3, 1], -1.0, 1.0);
    let like = rand_f32(&mut r, &[2, 3, 4], -1.0, 1.0);
    fwd(vec![x, like], |g, t| {
        vec![
            g.broadcast_like(t[0], t[1]).unwrap(),
            g.sum_like(t[1], t[0]).unwrap(),
        ]
    });
}

#[test]
fn argmax_and_one_hot() {
    let mut r = rng(18);
    let x = rand_f32(&mut r, &[7, 129], -1.0, 1.0);
    fwd(vec![x], |g, t| {
        vec![g.argmax(t[0], 1).unwrap(), g.argmax(t[0], 0).unwrap()]
    });
    let x = rand_i32(&mut r, &[4, 5, 6], -50, 50);
    fwd(vec![x], |g, t| vec![g.argmax(t[0], 1).unwrap()]);
    let idx = HostTensor::from_i32(&[6], vec![0, 3, 9, -1, 10, 5]).unwrap();
    fwd(vec![idx], |g, t| {
        vec![
            g.one_hot(t[0], 10, 1.0, 0.0).unwrap(),
            g.one_hot(t[0], 4, 5.0, -1.0).unwrap(),
        ]
    });
}

#[test]
fn softmax_and_losses() {
    let mut r = rng(19);
    for (rows, cols) in [(1, 1), (7, 10), (129, 3), (3, 1000)] {
        let logits = rand_f32(&mut r, &[rows, cols], -20.0, 20.0);
        let labels = {
            let p = rand_f32(&mut r, &[rows, cols], 0.0, 1.0).to_f64();
            let mut v = vec![0f32; rows * cols];
            for i in 0..rows {
                let s: f64 = p[i * cols..(i + 1) * cols].iter().sum();
                for j in 0..cols {
                    v[i * cols + j] = (p[i * cols + j] / s) as f32;
                }
            }
            HostTensor::from_f32(&[rows, cols], v).unwrap()
        };
        let sparse = rand_i32(&mut r, &[rows], 0, cols as i32);
        fwd(vec![logits, labels, sparse], |g, t| {
            vec![
                g.softmax(t[0]).unwrap(),
                g.log_softmax(t[0]).unwrap(),
                g.softmax_cross_entropy_with_logits(t[1], t[0]).unwrap(),
                g.sparse_softmax_cross_entropy_with_logits(t[2], t[0])
                    .unwrap(),
            ]
        });
    }
    // Out-of-range labels give NaN on both backends.
    let logits = rand_f32(&mut r, &[3, 4], -1.0, 1.0);
    let labels = HostTensor::from_i32(&[3], vec![1, 4, -1]).unwrap();
    fwd(vec![logits, labels], |g, t| {
        vec![
            g.sparse_softmax_cross_entropy_with_logits(t[1], t[0])
                .unwrap(),
        ]
    });
    // Huge logits stay finite.
    let logits =
        HostTensor::from_f32(&[2, 3], vec![1000.0, -1000.0, 0.0, 88.0, 89.0, 90.0]).unwrap();
    let labels = HostTensor::from_i32(&[2], vec![1, 0]).unwrap();
    fwd(vec![logits, labels], |g, t| {
        vec![
            g.sparse_softmax_cross_entropy_with_logits(t[1], t[0])
                .unwrap(),
            g.log_softmax(t[0]).unwrap(),
        ]
    });
}

#[test]
fn bias_add() {
    let mut r = rng(20);
    let x = rand_f32(&mut r, &[7, 3, 129], -1.0, 1.0);
    let b = rand_f32(&mut r, &[129], -1.0, 1.0);
    fwd(vec![x, b], |g, t| vec![g.bias_add(t[0], t[1]).unwrap()]);
}

#[test]
fn identity_and_unknown_batch() {
    let mut r = rng(21);
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1, 6]).unwrap();
    let y = g.reshape(x, &[-1, 3]).unwrap();
    let z = g.identity(y, "copy").unwrap();
    let m = g.reduce_mean(z, &[0], false).unwrap();
    let e = g.expand_dims(m, 0).unwrap();
    for batch in [1, 5, 129] {
        let feeds = vec![(x, rand_f32(&mut r, &[batch, 6], -1.0, 1.0))];
        check_against_reference(g.clone(), &feeds, &[y, z, m, e], F32_RTOL);
    }
}

#[test]
fn tensor_needing_more_than_65535_workgroups() {
    let mut r = rng(22);
    // 256 * 65535 = 16_776_960 elements fit one row of workgroups; go past it.
    let n = 17_000_000;
    let x = rand_f32(&mut r, &[n], -1.0, 1.0);
    let b = rand_f32(&mut r, &[1], -1.0, 1.0);
    fwd(vec![x, b], |g, t| {
        let s = g.add(t[0], t[1]).unwrap();
        vec![g.relu(s).unwrap()]
    });
}

#[test]
fn nan_propagates_through_max_and_min() {
    let x = HostTensor::from_f32(&[2, 3], vec![1.0, f32::NAN, 3.0, -1.0, -2.0, -3.0]).unwrap();
    fwd(vec![x], |g, t| {
        vec![
            g.reduce_max(t[0], &[1], false).unwrap(),
            g.reduce_min(t[0], &[1], false).unwrap(),
            g.reduce_sum(t[0], &[1], false).unwrap(),
        ]
    });
}

#[test]
fn float_to_int_casts_saturate_and_map_nan_to_zero() {
    let x =
        HostTensor::from_f32(&[7], vec![f32::NAN, -1e30, 1e30, -3.9, 3.9, 1e19, -1e19]).unwrap();
    fwd(vec![x], |g, t| {
        vec![
            g.cast(t[0], DType::I32).unwrap(),
            g.cast(t[0], DType::U32).unwrap(),
            g.cast(t[0], DType::I64).unwrap(),
        ]
    });
}
