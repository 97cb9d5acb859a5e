//! Reverse-mode symbolic differentiation: `gradients(ys, xs)` adds the backward graph.
//!
//! Only nodes on a path from some `x` to some `y` are differentiated; a tensor used by
//! several consumers receives the sum of their contributions. Each op's gradient rule is
//! a few lines in [`grad_rule`], built from the same graph builders users call, so the
//! backward graph runs on the same kernels as the forward one. Gradient nodes are named
//! under the `gradients/` scope, as in TensorFlow.

use crate::error::{Error, Result};
use crate::graph::{Graph, Tensor};
use crate::ops::{Op, Source};

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
                Op::Source(Source::Variable { .. } | Source::Placeholder | Source::Const(_))
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
    n.op.family().grad(g, &n, node, dy)
}
