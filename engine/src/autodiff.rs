//! Reverse-mode symbolic differentiation: `gradients(ys, xs)` adds the backward graph.
//!
//! Only nodes on a path from some `x` to some `y` are differentiated; a tensor used by
//! several consumers receives the sum of their contributions. Each op's gradient rule is
//! a few lines in [`grad_rule`], built from the same graph builders users call, so the
//! backward graph runs on the same kernels as the forward one. Gradient nodes are named
//! under the `gradients/` scope, as in TensorFlow.

use crate::error::{Error, Result};
use crate::graph::{Graph, Tensor};
use crate::ops::{Family, Op, StridedSpec};
use crate::tensor::HostTensor;

/// Adds the gradients of `sum(ys)` with respect to each of `xs` (TF's `tf.gradients`).
///
/// `grad_ys` optionally gives the initial gradient of each `y` (ones by default). The
/// result has one entry per `x`: `None` when `x` does not affect any `y`.
pub fn gradients(
    g: &mut Graph,
    ys: &[Tensor],
    xs: &[Tensor],
    grad_ys: Option<&[Tensor]>,
) -> Result<Vec<Option<Tensor>>> {
    for &t in ys.iter().chain(xs) {
        g.check(t)?;
    }
    if let Some(gy) = grad_ys
        && gy.len() != ys.len()
    {
        return Err(Error::invalid_argument(format!(
            "gradients: {} grad_ys for {} ys",
            gy.len(),
            ys.len()
        )));
    }
    let n = g.nodes().len();
    // Forward reachability from xs along data edges.
    let mut from_x = vec![false; n];
    for &x in xs {
        from_x[x.0] = true;
    }
    for i in 0..n {
        if !from_x[i] && g.nodes()[i].inputs.iter().any(|t| from_x[t.0]) {
            from_x[i] = true;
        }
    }
    // Backward reachability from ys.
    let mut to_y = vec![false; n];
    for &y in ys {
        to_y[y.0] = true;
    }
    for i in (0..n).rev() {
        if to_y[i] {
            let ins: Vec<usize> = g.nodes()[i].inputs.iter().map(|t| t.0).collect();
            for j in ins {
                to_y[j] = true;
            }
        }
    }
    let on_path: Vec<bool> = (0..n).map(|i| from_x[i] && to_y[i]).collect();
    g.name_scope("gradients", |g| {
        let mut pending: Vec<Vec<Tensor>> = vec![Vec::new(); n];
        for (k, &y) in ys.iter().enumerate() {
            if !on_path[y.0] {
                continue;
            }
            if !g.dtype(y).is_float() {
                return Err(Error::invalid_argument(format!(
                    "gradients: '{}' has dtype {}; only float32 tensors are differentiable",
                    g.name(y),
                    g.dtype(y)
                )));
            }
            let seed = match grad_ys {
                Some(gy) => gy[k],
                None => {
                    let one = g.constant(HostTensor::scalar_f32(1.0), "grad_ys")?;
                    if g.shape(y).is_empty() {
                        one
                    } else {
                        g.broadcast_like(one, y)?
                    }
                }
            };
            pending[y.0].push(seed);
        }
        for i in (0..n).rev() {
            if !on_path[i] || pending[i].is_empty() {
                continue;
            }
            let grad = sum_all(g, std::mem::take(&mut pending[i]))?;
            if xs.iter().any(|x| x.0 == i) {
                pending[i].push(grad);
            }
            let node = g.nodes()[i].clone();
            if matches!(
                node.op,
                Op::Variable { .. } | Op::Placeholder | Op::Const(_)
            ) {
                continue;
            }
            let needs: Vec<bool> = node.inputs.iter().map(|t| on_path[t.0]).collect();
            if !needs.iter().any(|&b| b) {
                continue;
            }
            let grads = grad_rule(g, g.handle(i), grad)?;
            for ((t, gi), need) in node.inputs.iter().zip(grads).zip(needs) {
                if let (Some(gi), true) = (gi, need) {
                    pending[t.0].push(gi);
                }
            }
        }
        xs.iter()
            .map(|x| {
                let p = std::mem::take(&mut pending[x.0]);
                if p.is_empty() {
                    Ok(None)
                } else {
                    sum_all(g, p).map(Some)
                }
            })
            .collect()
    })
}

fn sum_all(g: &mut Graph, mut parts: Vec<Tensor>) -> Result<Tensor> {
    let mut acc = parts.remove(0);
    for p in parts {
        acc = g.add(acc, p)?;
    }
    Ok(acc)
}

/// Reduces a broadcast gradient back to the shape of `input`.
pub(crate) fn unbroadcast(
    g: &mut Graph,
    grad: Tensor,
    input: Tensor,
    out: Tensor,
) -> Result<Tensor> {
    if g.shape(input) == g.shape(out) {
        Ok(grad)
    } else {
        g.sum_like(grad, input)
    }
}

/// The gradient of each input of `node` given the gradient `dy` of its output.
pub fn grad_rule(g: &mut Graph, node: Tensor, dy: Tensor) -> Result<Vec<Option<Tensor>>> {
    let n = g.node(node).clone();
    let x = |k: usize| n.inputs[k];
    let y = node;
    let one = |t: Tensor| Ok::<_, Error>(vec![Some(t)]);
    match &n.op {
        Op::Identity => one(dy),
        Op::Unary(u) => u.grad(g, &n, y, dy),
        Op::Binary(b) => b.grad(g, &n, y, dy),
        Op::Compare(c) => c.grad(g, &n, y, dy),
        Op::BiasAdd => {
            let rank = g.shape(dy).len() as i64;
            let axes: Vec<i64> = (0..rank - 1).collect();
            let gb = if axes.is_empty() {
                dy
            } else {
                g.reduce_sum(dy, &axes, false)?
            };
            Ok(vec![Some(dy), Some(gb)])
        }
        Op::Cast(_) => {
            let from = g.dtype(x(0));
            if from.is_float() {
                one(g.cast(dy, from)?)
            } else {
                Ok(vec![None])
            }
        }
        Op::MatMul(m) => m.grad(g, &n, y, dy),
        Op::Reduction(r) => r.grad(g, &n, y, dy),
        Op::Reshape(_) => one(g.reshape_like(dy, x(0))?),
        Op::ReshapeLike => Ok(vec![Some(g.reshape_like(dy, x(0))?), None]),
        Op::Transpose(perm) => {
            let mut inv = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            one(g.transpose(dy, &inv)?)
        }
        Op::Softmax(s) => s.grad(g, &n, y, dy),
        Op::OneHot { .. } => Ok(vec![None; n.inputs.len()]),
        Op::Conv(c) => c.grad(g, &n, y, dy),
        Op::Slice { begin, size } => {
            let spec = StridedSpec::from_slice(begin, size);
            one(g.add_op(Op::StridedSliceGrad(spec), &[x(0), dy], "SliceGrad")?)
        }
        Op::StridedSlice(spec) => one(g.add_op(
            Op::StridedSliceGrad(spec.clone()),
            &[x(0), dy],
            "StridedSliceGrad",
        )?),
        Op::StridedSliceGrad(spec) => Ok(vec![
            None,
            Some(g.add_op(Op::StridedSlice(spec.clone()), &[dy], "StridedSlice")?),
        ]),
        Op::Pad { paddings, .. } => {
            let rank = paddings.len();
            let mut end_mask = 0;
            let end = paddings
                .iter()
                .enumerate()
                .map(|(d, p)| {
                    if p[1] == 0 {
                        end_mask |= 1 << d;
                        0
                    } else {
                        -(p[1] as i64)
                    }
                })
                .collect();
            let spec = StridedSpec {
                begin: paddings.iter().map(|p| p[0] as i64).collect(),
                end,
                strides: vec![1; rank],
                begin_mask: 0,
                end_mask,
                shrink_axis_mask: 0,
            };
            one(g.add_op(Op::StridedSlice(spec), &[dy], "Slice")?)
        }
        Op::Tile { multiples } => {
            let xs = g.shape(x(0)).to_vec();
            if xs.iter().any(|&d| d < 0) {
                return Err(Error::unimplemented(format!(
                    "gradient of Tile ('{}') over an input of unknown shape",
                    n.name
                )));
            }
            let split: Vec<i64> = multiples
                .iter()
                .zip(&xs)
                .flat_map(|(&m, &d)| [m as i64, d])
                .collect();
            let r = g.reshape(dy, &split)?;
            let axes: Vec<i64> = (0..xs.len() as i64).map(|d| 2 * d).collect();
            one(g.reduce_sum(r, &axes, false)?)
        }
        Op::Concat { axis } => {
            let mut at = 0i64;
            let mut grads = Vec::with_capacity(n.inputs.len());
            for t in &n.inputs {
                let len = g.shape(*t)[*axis];
                if len < 0 {
                    return Err(Error::unimplemented(format!(
                        "gradient of Concat ('{}') with an unknown size along the axis",
                        n.name
                    )));
                }
                let rank = g.shape(*t).len();
                let all = (1u64 << rank) - 1;
                let bit = 1u64 << axis;
                let mut begin = vec![0; rank];
                let mut end = vec![0; rank];
                begin[*axis] = at;
                end[*axis] = at + len;
                let spec = StridedSpec {
                    begin,
                    end,
                    strides: vec![1; rank],
                    begin_mask: all & !bit,
                    end_mask: all & !bit,
                    shrink_axis_mask: 0,
                };
                grads.push(Some(g.add_op(Op::StridedSlice(spec), &[dy], "Slice")?));
                at += len;
            }
            Ok(grads)
        }
        Op::Select => {
            let (c, a, b) = (x(0), x(1), x(2));
            let zero = g.scalar(0.0)?;
            let ga = g.select(c, dy, zero)?;
            let gb = g.select(c, zero, dy)?;
            Ok(vec![
                None,
                Some(unbroadcast(g, ga, a, y)?),
                Some(unbroadcast(g, gb, b, y)?),
            ])
        }
        Op::Gather { axis: 0, .. } => {
            let rows = g.shape(x(0))[0];
            if rows < 0 {
                return Err(Error::unimplemented(format!(
                    "gradient of Gather ('{}') over params of unknown rows",
                    n.name
                )));
            }
            let d = g.unsorted_segment_sum(dy, x(1), rows as usize)?;
            Ok(vec![Some(d), None])
        }
        Op::Gather { .. } => Err(Error::unimplemented(format!(
            "gradient of Gather ('{}') along an axis other than 0",
            n.name
        ))),
        Op::UnsortedSegmentSum { .. } => {
            // Rows of dropped ids get zeros: an unchecked gather.
            let op = Op::Gather {
                axis: 0,
                checked: false,
            };
            Ok(vec![Some(g.add_op(op, &[dy, x(1)], "GatherV2")?), None])
        }
        Op::Dropout { rate, seed } => Ok(vec![
            Some(g.add_op(
                Op::Dropout {
                    rate: *rate,
                    seed: *seed,
                },
                &[dy, x(1)],
                "DropoutGrad",
            )?),
            None,
        ]),
        op => Err(Error::invalid_argument(format!(
            "{} ('{}') is not differentiable",
            op.tf_name(),
            n.name
        ))),
    }
}
