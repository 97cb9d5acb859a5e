//! Every differentiable op's gradient: the symbolic gradient on the reference (f64)
//! against central finite differences, and the wgpu gradient against the reference's.

use crate::common::*;
use wgtrain::engine::reference::Value;
use wgtrain::engine::{BinaryOp, ReduceOp, UnaryOp};
use wgtrain::{Conv, DType, Graph, HostTensor, Pool, Reference, Tensor, gradients};

struct Input {
    shape: Vec<usize>,
    lo: f64,
    hi: f64,
}

fn inp(shape: &[usize], lo: f64, hi: f64) -> Input {
    Input {
        shape: shape.to_vec(),
        lo,
        hi,
    }
}

/// Checks d(sum(build(xs) * c))/dxs with a random weighting `c`.
fn check_grad(seed: u64, inputs: Vec<Input>, build: impl FnOnce(&mut Graph, &[Tensor]) -> Tensor) {
    let mut r = rng(seed);
    let mut g = Graph::new();
    let xs: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, x)| ph(&mut g, &format!("x{i}"), &x.shape))
        .collect();
    let y = build(&mut g, &xs);
    let yshape: Vec<usize> = g.shape(y).iter().map(|&d| d as usize).collect();
    let c = rand_f32(&mut r, &yshape, -1.0, 1.0);
    let cw = g.constant(c, "weights").unwrap();
    let weighted = g.mul(y, cw).unwrap();
    let loss = g.reduce_sum(weighted, &[], false).unwrap();
    let grads: Vec<Tensor> = gradients(&mut g, &[loss], &xs, None)
        .unwrap()
        .into_iter()
        .map(|t| t.expect("connected"))
        .collect();
    let vals: Vec<HostTensor> = inputs
        .iter()
        .map(|x| rand_f32(&mut r, &x.shape, x.lo, x.hi))
        .collect();
    let g = std::sync::Arc::new(g);
    let mut reference = Reference::new(g.clone());
    let feeds64: Vec<(Tensor, Value)> = xs
        .iter()
        .zip(&vals)
        .map(|(t, v)| (*t, Value::from_host(v)))
        .collect();
    let analytic = reference.run_f64(&feeds64, &grads).unwrap();
    // Central differences on up to 24 elements of each input.
    let eps = 1e-6;
    for (k, x) in xs.iter().enumerate() {
        let n = vals[k].len();
        let picks: Vec<usize> = if n <= 24 {
            (0..n).collect()
        } else {
            (0..24).map(|i| i * n / 24).collect()
        };
        for j in picks {
            let mut f = |delta: f64| {
                let mut feeds = feeds64.clone();
                feeds[k].1.data[j] += delta;
                reference.run_f64(&feeds, &[loss]).unwrap()[0].data[0]
            };
            let numeric = (f(eps) - f(-eps)) / (2.0 * eps);
            let a = analytic[k].data[j];
            let tol = 1e-5 * a.abs().max(numeric.abs()).max(1.0);
            assert!(
                (a - numeric).abs() <= tol,
                "{}: d/d{}[{j}] analytic {a} vs numeric {numeric} (WGTRAIN_TEST_SEED={})",
                g.name(y),
                g.name(*x),
                run_seed()
            );
        }
    }
    // The wgpu gradient against the reference gradient on the same f32 inputs.
    let feeds: Vec<(Tensor, HostTensor)> = xs.iter().copied().zip(vals).collect();
    let want = reference.run(&feeds, &grads, &[]).unwrap();
    let Some(mut s) = gpu_session_arc(g.clone()) else {
        return;
    };
    let got = s.run(&feeds, &grads, &[]).unwrap();
    for ((gt, w), t) in got.iter().zip(&want).zip(&grads) {
        assert_close(g.name(*t), gt, w, 2e-4);
    }
}

#[test]
fn unary_gradients() {
    let cases: &[(UnaryOp, f64, f64)] = &[
        (UnaryOp::Neg, -2.0, 2.0),
        (UnaryOp::Exp, -2.0, 2.0),
        (UnaryOp::Log, 0.2, 3.0),
        (UnaryOp::Sqrt, 0.2, 3.0),
        (UnaryOp::Rsqrt, 0.2, 3.0),
        (UnaryOp::Square, -2.0, 2.0),
        (UnaryOp::Abs, -2.0, 2.0),
        (UnaryOp::Relu, -2.0, 2.0),
        (UnaryOp::Sigmoid, -4.0, 4.0),
        (UnaryOp::Tanh, -3.0, 3.0),
        (UnaryOp::Softplus, -4.0, 4.0),
        (UnaryOp::Cos, -3.0, 3.0),
        (UnaryOp::Sin, -3.0, 3.0),
        (UnaryOp::Reciprocal, 0.3, 3.0),
        (UnaryOp::Gelu, -3.0, 3.0),
    ];
    for (i, &(op, lo, hi)) in cases.iter().enumerate() {
        check_grad(100 + i as u64, vec![inp(&[7, 13], lo, hi)], |g, x| {
            g.unary(op, x[0]).unwrap()
        });
    }
}

#[test]
fn binary_gradients_with_broadcasting() {
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::Pow,
    ];
    let shapes: &[(&[usize], &[usize])] = &[
        (&[7, 5], &[7, 5]),
        (&[7, 5], &[5]),
        (&[3, 1, 5], &[4, 1]),
        (&[], &[6]),
    ];
    for (i, &op) in ops.iter().enumerate() {
        for (k, &(sa, sb)) in shapes.iter().enumerate() {
            let (a, b) = match op {
                BinaryOp::Div => (inp(sa, -2.0, 2.0), inp(sb, 0.5, 2.0)),
                BinaryOp::Pow => (inp(sa, 0.5, 2.0), inp(sb, -1.5, 1.5)),
                _ => (inp(sa, -2.0, 2.0), inp(sb, -2.0, 2.0)),
            };
            check_grad(200 + (i * 10 + k) as u64, vec![a, b], |g, x| {
                g.binary(op, x[0], x[1]).unwrap()
            });
        }
    }
}

#[test]
fn matmul_gradients() {
    for (i, (ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .enumerate()
    {
        let (m, k, n) = (7, 5, 3);
        let sa = if ta { [k, m] } else { [m, k] };
        let sb = if tb { [n, k] } else { [k, n] };
        check_grad(
            300 + i as u64,
            vec![inp(&sa, -1.0, 1.0), inp(&sb, -1.0, 1.0)],
            |g, x| g.matmul_t(x[0], x[1], ta, tb).unwrap(),
        );
    }
    check_grad(
        310,
        vec![inp(&[2, 4, 3], -1.0, 1.0), inp(&[2, 3, 5], -1.0, 1.0)],
        |g, x| g.matmul(x[0], x[1]).unwrap(),
    );
}

#[test]
fn reduction_gradients() {
    let axes_cases: &[&[i64]] = &[&[0], &[1], &[0, 2], &[]];
    for (i, op) in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min]
        .into_iter()
        .enumerate()
    {
        for (k, &axes) in axes_cases.iter().enumerate() {
            for keep in [false, true] {
                check_grad(
                    400 + (i * 20 + k * 2 + usize::from(keep)) as u64,
                    vec![inp(&[3, 4, 5], -2.0, 2.0)],
                    |g, x| g.reduce(op, x[0], axes, keep).unwrap(),
                );
            }
        }
    }
}

#[test]
fn layout_gradients() {
    check_grad(500, vec![inp(&[2, 3, 4], -1.0, 1.0)], |g, x| {
        g.transpose(x[0], &[2, 0, 1]).unwrap()
    });
    check_grad(501, vec![inp(&[2, 3, 4], -1.0, 1.0)], |g, x| {
        g.reshape(x[0], &[4, -1]).unwrap()
    });
    check_grad(502, vec![inp(&[2, 3], -1.0, 1.0)], |g, x| {
        g.expand_dims(x[0], 1).unwrap()
    });
    check_grad(503, vec![inp(&[2, 1, 3], -1.0, 1.0)], |g, x| {
        g.squeeze(x[0], &[1]).unwrap()
    });
    check_grad(504, vec![inp(&[7, 5], -1.0, 1.0)], |g, x| {
        g.identity(x[0], "id").unwrap()
    });
    check_grad(
        505,
        vec![inp(&[7, 5], -1.0, 1.0), inp(&[5], -1.0, 1.0)],
        |g, x| g.bias_add(x[0], x[1]).unwrap(),
    );
    check_grad(
        506,
        vec![inp(&[3, 1], -1.0, 1.0), inp(&[2, 3, 4], -1.0, 1.0)],
        |g, x| {
            let b = g.broadcast_like(x[0], x[1]).unwrap();
            g.mul(b, x[1]).unwrap()
        },
    );
    check_grad(507, vec![inp(&[7, 5], -1.0, 1.0)], |g, x| {
        g.cast(x[0], DType::F32).unwrap()
    });
}

#[test]
fn softmax_and_loss_gradients() {
    check_grad(600, vec![inp(&[7, 10], -3.0, 3.0)], |g, x| {
        g.softmax(x[0]).unwrap()
    });
    check_grad(601, vec![inp(&[7, 10], -3.0, 3.0)], |g, x| {
        g.log_softmax(x[0]).unwrap()
    });
    check_grad(
        602,
        vec![inp(&[7, 10], -3.0, 3.0), inp(&[7, 10], 0.0, 1.0)],
        |g, x| g.softmax_cross_entropy_with_logits(x[1], x[0]).unwrap(),
    );
    check_grad(603, vec![inp(&[7, 10], -3.0, 3.0)], |g, x| {
        let labels = g
            .constant(
                HostTensor::from_i32(&[7], vec![0, 9, 3, 3, 5, 1, 2]).unwrap(),
                "labels",
            )
            .unwrap();
        g.sparse_softmax_cross_entropy_with_logits(labels, x[0])
            .unwrap()
    });
    check_grad(604, vec![inp(&[7, 10], -3.0, 3.0)], |g, x| {
        let labels = g
            .constant(
                HostTensor::from_i32(&[7], vec![0, 9, 3, 3, 5, 1, 2]).unwrap(),
                "labels",
            )
            .unwrap();
        g.sparse_softmax_cross_entropy_mean(x[0], labels).unwrap()
    });
}

#[test]
fn fan_out_accumulates_and_unconnected_is_none() {
    let mut g = Graph::new();
    let x = ph(&mut g, "x", &[3]);
    let z = ph(&mut g, "z", &[3]);
    let a = g.mul(x, x).unwrap();
    let b = g.sin(x).unwrap();
    let y = g.add(a, b).unwrap();
    let s = g.reduce_sum(y, &[], false).unwrap();
    let grads = gradients(&mut g, &[s], &[x, z], None).unwrap();
    assert!(grads[1].is_none());
    let gx = grads[0].unwrap();
    assert!(g.name(gx).starts_with("gradients/"), "{}", g.name(gx));
    let mut r = Reference::new(g);
    let xv = HostTensor::from_f32(&[3], vec![0.5, -1.0, 2.0]).unwrap();
    let out = r.run(&[(x, xv)], &[gx], &[]).unwrap()[0].as_f32().unwrap();
    for (o, v) in out.iter().zip([0.5f32, -1.0, 2.0]) {
        assert!((o - (2.0 * v + v.cos())).abs() < 1e-6);
    }
}

#[test]
fn gradient_through_unknown_batch_dimension() {
    let mut g = Graph::new();
    let x = g.placeholder("x", DType::F32, &[-1, 4]).unwrap();
    let w = g
        .variable(
            "w",
            DType::F32,
            &[4, 3],
            wgtrain::Initializer::GlorotUniform,
        )
        .unwrap();
    let b = g
        .variable("b", DType::F32, &[3], wgtrain::Initializer::Zeros)
        .unwrap();
    let h = g.matmul(x, w).unwrap();
    let h = g.bias_add(h, b).unwrap();
    let m = g.reduce_mean(h, &[0], false).unwrap();
    let sq = g.square(m).unwrap();
    let loss = g.reduce_sum(sq, &[], false).unwrap();
    let grads: Vec<Tensor> = gradients(&mut g, &[loss], &[w, b], None)
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    let mut r = rng(700);
    for batch in [1, 9] {
        let feeds = vec![(x, rand_f32(&mut r, &[batch, 4], -1.0, 1.0))];
        check_against_reference(g.clone(), &feeds, &grads, 1e-4);
    }
}

#[test]
fn conv2d_gradients() {
    for (i, &(xs, fs, strides, dil, pad)) in crate::conv::CONV_CASES.iter().enumerate() {
        // The case with 37 channels has too many elements for quick finite differences
        // of every picked element; it still runs (24 picks per input).
        check_grad(
            700 + i as u64,
            vec![inp(&xs, -1.0, 1.0), inp(&fs, -1.0, 1.0)],
            |g, x| {
                g.conv2d(x[0], x[1], Conv::new(strides, pad).with_dilations(dil))
                    .unwrap()
            },
        );
    }
}

#[test]
fn depthwise_conv2d_gradients() {
    for (i, &(xs, fs, strides, dil, pad)) in crate::conv::DEPTHWISE_CASES.iter().enumerate() {
        check_grad(
            730 + i as u64,
            vec![inp(&xs, -1.0, 1.0), inp(&fs, -1.0, 1.0)],
            |g, x| {
                g.depthwise_conv2d(x[0], x[1], Conv::new(strides, pad).with_dilations(dil))
                    .unwrap()
            },
        );
    }
}

#[test]
fn pooling_gradients() {
    for (i, &(xs, k, s, pad)) in crate::conv::POOL_CASES.iter().enumerate() {
        check_grad(750 + i as u64, vec![inp(&xs, -1.0, 1.0)], |g, x| {
            g.max_pool(x[0], Pool::new(k, s, pad)).unwrap()
        });
        check_grad(770 + i as u64, vec![inp(&xs, -1.0, 1.0)], |g, x| {
            g.avg_pool(x[0], Pool::new(k, s, pad)).unwrap()
        });
    }
}

#[test]
fn index_op_gradients() {
    use wgtrain::engine::StridedSpec;
    let spec = |b: &[i64], e: &[i64], s: &[i64], m: [u64; 3]| StridedSpec {
        begin: b.to_vec(),
        end: e.to_vec(),
        strides: s.to_vec(),
        begin_mask: m[0],
        end_mask: m[1],
        shrink_axis_mask: m[2],
    };
    check_grad(900, vec![inp(&[4, 5], -1.0, 1.0)], |g, x| {
        g.slice(x[0], &[1, 2], &[2, -1]).unwrap()
    });
    check_grad(901, vec![inp(&[4, 5, 3], -1.0, 1.0)], |g, x| {
        g.strided_slice(x[0], spec(&[-1, 4, 0], &[0, 0, 3], &[-2, -3, 2], [0, 0, 0]))
            .unwrap()
    });
    check_grad(902, vec![inp(&[4, 5], -1.0, 1.0)], |g, x| {
        g.strided_slice(x[0], spec(&[2, 0], &[3, 0], &[1, 1], [2, 2, 1]))
            .unwrap()
    });
    check_grad(903, vec![inp(&[3, 4], -1.0, 1.0)], |g, x| {
        g.pad(x[0], &[[2, 0], [1, 3]], 0.25).unwrap()
    });
    check_grad(904, vec![inp(&[2, 3], -1.0, 1.0)], |g, x| {
        g.tile(x[0], &[3, 2]).unwrap()
    });
    check_grad(
        905,
        vec![inp(&[2, 3], -1.0, 1.0), inp(&[2, 1], -1.0, 1.0)],
        |g, x| g.concat(&[x[0], x[1], x[0]], 1).unwrap(),
    );
    check_grad(
        906,
        vec![inp(&[4, 3], -1.0, 1.0), inp(&[3], -1.0, 1.0)],
        |g, x| {
            let zero = g.scalar(0.0).unwrap();
            let c = g.greater(x[0], zero).unwrap();
            g.select(c, x[0], x[1]).unwrap()
        },
    );
    check_grad(907, vec![inp(&[5, 3], -1.0, 1.0)], |g, x| {
        // Repeated indices: their gradients add up.
        let idx = g
            .constant(
                HostTensor::from_i32(&[2, 3], vec![4, 0, 4, 1, 4, 2]).unwrap(),
                "idx",
            )
            .unwrap();
        g.gather(x[0], idx, 0).unwrap()
    });
    check_grad(908, vec![inp(&[6, 2], -1.0, 1.0)], |g, x| {
        let ids = g
            .constant(
                HostTensor::from_i32(&[6], vec![2, 0, 2, 7, 1, 2]).unwrap(),
                "ids",
            )
            .unwrap();
        g.unsorted_segment_sum(x[0], ids, 3).unwrap()
    });
    check_grad(909, vec![inp(&[9, 7], -1.0, 1.0)], |g, x| {
        let step = g.constant(HostTensor::scalar_i64(11), "step").unwrap();
        g.dropout(x[0], 0.4, step, Some(3)).unwrap()
    });
    check_grad(910, vec![inp(&[4, 3], -1.0, 1.0)], |g, x| {
        g.clip_by_value(x[0], -0.3, 0.4).unwrap()
    });
    check_grad(911, vec![inp(&[4, 3], -1.0, 1.0)], |g, x| {
        g.l2_loss(x[0]).unwrap()
    });
}
