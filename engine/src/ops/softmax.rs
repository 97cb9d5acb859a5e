//! The softmax family: softmax and log-softmax over the last axis, the cross-entropy
//! losses of logits, and their gradient with respect to the logits
//! (`shaders/softmax.wgsl`; the planner may fuse [`SoftmaxOp::XentGrad`] into the
//! matmul that consumes it, see `runtime/fusion/`).

use super::Op;
use super::export::{Export, TfAttr};
use super::family::Family;
use super::infer::{Check, Inferred, compatible, dims_match};
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Tensor};
use crate::reference::Value;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::params::RowParams;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder};
#[cfg(feature = "gpu")]
use crate::runtime::shaders::Shader;
use crate::tensor::{DType, num_elements as numel, shape_str};

/// How the incoming gradient of a cross-entropy gradient ([`SoftmaxOp::XentGrad`]) is
/// given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XentDy {
    /// One value per row.
    PerRow,
    /// One scalar for every row (the gradient of a sum of the losses).
    Scalar,
    /// One scalar divided by the number of rows (the gradient of a mean of the losses).
    Mean,
}

impl XentDy {
    /// The code of the kernels' `dy` mode (`softmax.wgsl`, `matmul.wgsl`).
    #[cfg(feature = "gpu")]
    pub(crate) fn code(self) -> u32 {
        match self {
            XentDy::PerRow => 0,
            XentDy::Mean => 1,
            XentDy::Scalar => 2,
        }
    }
}

/// The ops of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SoftmaxOp {
    /// Softmax over the last axis.
    Softmax,
    /// Log-softmax over the last axis.
    LogSoftmax,
    /// Per-row cross-entropy of logits (input 0) against label distributions (input 1).
    SoftmaxXent,
    /// Per-row cross-entropy of logits (input 0) against integer class labels (input 1).
    SparseSoftmaxXent,
    /// The gradient of the cross-entropy with respect to the logits: inputs (logits,
    /// labels, dy), output `(softmax(logits) * sum(labels) - labels) * dy` per row.
    XentGrad {
        /// Labels are class indices (one-hot targets).
        sparse: bool,
        /// How `dy` is given.
        dy: XentDy,
    },
}

impl Graph {
    /// Softmax over the last axis.
    pub fn softmax(&mut self, logits: Tensor) -> Result<Tensor> {
        self.add_op(Op::Softmax(SoftmaxOp::Softmax), &[logits], "Softmax")
    }

    /// Log-softmax over the last axis (computed stably as `x - max - log(sum(exp))`).
    pub fn log_softmax(&mut self, logits: Tensor) -> Result<Tensor> {
        self.add_op(Op::Softmax(SoftmaxOp::LogSoftmax), &[logits], "LogSoftmax")
    }

    /// Per-example cross-entropy between `labels` (a distribution per row) and the softmax
    /// of `logits`, both `[batch, classes]`; the result is `[batch]`. Numerically stable.
    pub fn softmax_cross_entropy_with_logits(
        &mut self,
        labels: Tensor,
        logits: Tensor,
    ) -> Result<Tensor> {
        self.add_op(
            Op::Softmax(SoftmaxOp::SoftmaxXent),
            &[logits, labels],
            "softmax_cross_entropy_with_logits",
        )
    }

    /// Per-example cross-entropy between int class `labels` `[batch]` and `logits`
    /// `[batch, classes]`. A label outside `[0, classes)` gives NaN for that example (TF's
    /// behaviour on GPUs).
    pub fn sparse_softmax_cross_entropy_with_logits(
        &mut self,
        labels: Tensor,
        logits: Tensor,
    ) -> Result<Tensor> {
        self.add_op(
            Op::Softmax(SoftmaxOp::SparseSoftmaxXent),
            &[logits, labels],
            "SparseSoftmaxCrossEntropyWithLogits",
        )
    }

    /// The mean over the batch of [`sparse_softmax_cross_entropy_with_logits`](Self::sparse_softmax_cross_entropy_with_logits).
    pub fn sparse_softmax_cross_entropy_mean(
        &mut self,
        logits: Tensor,
        labels: Tensor,
    ) -> Result<Tensor> {
        let per = self.sparse_softmax_cross_entropy_with_logits(labels, logits)?;
        self.reduce_mean(per, &[], false)
    }
}

/// Log-softmax of each row of `cols` elements, stably (`x - max - log(sum(exp))`).
fn log_softmax_rows(x: &[f64], cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for (row, o) in x.chunks(cols.max(1)).zip(out.chunks_mut(cols.max(1))) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        for (o, v) in o.iter_mut().zip(row) {
            *o = v - lse;
        }
    }
    out
}

fn infer_xent(c: &Check<'_>, sparse: bool) -> Result<Inferred> {
    let (dtypes, shapes) = (c.dtypes, c.shapes);
    c.arity(2)?;
    c.float_only(0)?;
    let (l, y) = (&shapes[0], &shapes[1]);
    if l.len() != 2 {
        return Err(c.err(format!("logits must be rank 2, got {}", shape_str(l))));
    }
    if sparse {
        if !matches!(dtypes[1], DType::I32 | DType::U32) {
            return Err(c.err(format!("labels must be int32, got {}", dtypes[1])));
        }
        if y.len() != 1 || !dims_match(y[0], l[0]) {
            return Err(c.err(format!(
                "labels of shape {} do not match logits of shape {}",
                shape_str(y),
                shape_str(l)
            )));
        }
    } else {
        c.same_dtype(0, 1)?;
        if y.len() != 2 || !dims_match(y[0], l[0]) || !dims_match(y[1], l[1]) {
            return Err(c.err(format!(
                "logits and labels must be the same size: logits {} labels {}",
                shape_str(l),
                shape_str(y)
            )));
        }
    }
    Ok(Inferred {
        dtype: DType::F32,
        shape: vec![l[0]],
    })
}

fn infer_xent_grad(c: &Check<'_>, sparse: bool, dy: XentDy) -> Result<Inferred> {
    let (dtypes, shapes) = (c.dtypes, c.shapes);
    c.arity(3)?;
    c.float_only(0)?;
    c.float_only(2)?;
    let l = &shapes[0];
    if l.len() != 2 {
        return Err(c.err(format!("logits must be rank 2, got {}", shape_str(l))));
    }
    let labels_ok = if sparse {
        matches!(dtypes[1], DType::I32 | DType::U32) && shapes[1].len() == 1
    } else {
        dtypes[1] == DType::F32 && compatible(&shapes[1], l)
    };
    let dy_ok = if dy != XentDy::PerRow {
        shapes[2].iter().all(|&d| d == 1)
    } else {
        shapes[2].len() == 1 && dims_match(shapes[2][0], l[0])
    };
    if !labels_ok || !dy_ok {
        return Err(c.err(format!(
            "logits {}, labels {} {}, dy {} do not fit",
            shape_str(l),
            dtypes[1],
            shape_str(&shapes[1]),
            shape_str(&shapes[2])
        )));
    }
    Ok(Inferred {
        dtype: DType::F32,
        shape: l.clone(),
    })
}

/// The gradient of a cross-entropy with respect to its logits and (dense labels) its
/// labels.
fn xent_grad(g: &mut Graph, node: &Node, sparse: bool, dy: Tensor) -> Result<Vec<Option<Tensor>>> {
    let (logits, labels) = (node.inputs[0], node.inputs[1]);
    // The gradient of a mean or sum of the losses arrives as a broadcast scalar: read
    // the scalar directly (divided by the rows for a mean) in the kernel.
    let (dy_in, mode) = match &g.node(dy).op {
        Op::Reduction(super::Reduction::BroadcastLike { mean })
            if g.shape(g.node(dy).inputs[0]).iter().all(|&d| d == 1) =>
        {
            (
                g.node(dy).inputs[0],
                if *mean { XentDy::Mean } else { XentDy::Scalar },
            )
        }
        _ => (dy, XentDy::PerRow),
    };
    let op = Op::Softmax(SoftmaxOp::XentGrad { sparse, dy: mode });
    let dl = g.add_op(op, &[logits, labels, dy_in], "xent_grad")?;
    let dlabels = if sparse {
        None
    } else {
        let ge = g.expand_dims(dy, -1)?;
        let ls = g.log_softmax(logits)?;
        let t = g.mul(ls, ge)?;
        Some(g.neg(t)?)
    };
    Ok(vec![Some(dl), dlabels])
}

/// The reference of [`SoftmaxOp::XentGrad`].
fn eval_xent_grad(ins: &[&Value], sparse: bool, dy: XentDy) -> Vec<f64> {
    let (rows, cols) = (ins[0].shape[0], ins[0].shape[1]);
    let ls = log_softmax_rows(&ins[0].data, cols);
    let mut out = vec![0.0; rows * cols];
    for i in 0..rows {
        let g = match dy {
            XentDy::PerRow => ins[2].data[i],
            XentDy::Scalar => ins[2].data[0],
            XentDy::Mean => ins[2].data[0] / rows as f64,
        };
        let total: f64 = if sparse {
            1.0
        } else {
            ins[1].data[i * cols..(i + 1) * cols].iter().sum()
        };
        for j in 0..cols {
            let y = if sparse {
                f64::from(u8::from(ins[1].data[i] == j as f64))
            } else {
                ins[1].data[i * cols + j]
            };
            out[i * cols + j] = (ls[i * cols + j].exp() * total - y) * g;
        }
    }
    out
}

/// TF's spelling of the cross-entropy gradient: the backprop output of the loss op on
/// the same logits and labels, times the incoming gradient per row.
fn export_xent_grad(e: &mut Export<'_>, sparse: bool, dy: XentDy) {
    let f32t = || TfAttr::Type(DType::F32);
    let (xent_op, xent_attrs) = if sparse {
        (
            "SparseSoftmaxCrossEntropyWithLogits",
            vec![("T", f32t()), ("Tlabels", TfAttr::Type(DType::I32))],
        )
    } else {
        ("SoftmaxCrossEntropyWithLogits", vec![("T", f32t())])
    };
    let xent = e.node(xent_op, xent_op, vec![e.input(0), e.input(1)], xent_attrs);
    let scale = match dy {
        XentDy::PerRow => {
            let axis = e.i32("dim", -1);
            let attrs = vec![("T", f32t()), ("Tdim", TfAttr::Type(DType::I32))];
            e.node("ExpandDims", "ExpandDims", vec![e.input(2), axis], attrs)
        }
        XentDy::Scalar => e.input(2),
        XentDy::Mean => {
            let labels = e.size_of("Size", &e.input(1), e.input_dtype(1));
            let rows = if sparse {
                labels
            } else {
                let classes = e.i32("classes", e.shape().last().copied().unwrap_or(1));
                let attrs = vec![("T", TfAttr::Type(DType::I32))];
                e.node("floordiv", "FloorDiv", vec![labels, classes], attrs)
            };
            let rows = e.cast_f32("Cast", rows);
            e.node(
                "truediv",
                "RealDiv",
                vec![e.input(2), rows],
                vec![("T", f32t())],
            )
        }
    };
    e.op = "Mul".into();
    e.inputs = vec![scale, format!("{xent}:1")];
}

impl Family for SoftmaxOp {
    fn tf_name(&self) -> &'static str {
        match self {
            SoftmaxOp::Softmax => "Softmax",
            SoftmaxOp::LogSoftmax => "LogSoftmax",
            SoftmaxOp::SoftmaxXent => "SoftmaxCrossEntropyWithLogits",
            SoftmaxOp::SparseSoftmaxXent => "SparseSoftmaxCrossEntropyWithLogits",
            SoftmaxOp::XentGrad { sparse: true, .. } => "SparseSoftmaxCrossEntropyWithLogitsGrad",
            SoftmaxOp::XentGrad { sparse: false, .. } => "SoftmaxCrossEntropyWithLogitsGrad",
        }
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(self.tf_name(), dtypes, shapes);
        match self {
            SoftmaxOp::Softmax | SoftmaxOp::LogSoftmax => {
                c.arity(1)?;
                c.float_only(0)?;
                if shapes[0].is_empty() {
                    return Err(c.err("logits must have rank >= 1".into()));
                }
                Ok(Inferred {
                    dtype: DType::F32,
                    shape: shapes[0].clone(),
                })
            }
            SoftmaxOp::SoftmaxXent => infer_xent(&c, false),
            SoftmaxOp::SparseSoftmaxXent => infer_xent(&c, true),
            SoftmaxOp::XentGrad { sparse, dy } => infer_xent_grad(&c, *sparse, *dy),
        }
    }

    fn grad(
        &self,
        g: &mut Graph,
        node: &Node,
        y: Tensor,
        dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        match self {
            SoftmaxOp::Softmax => {
                let gy = g.mul(dy, y)?;
                let s = g.reduce_sum(gy, &[-1], true)?;
                let d = g.sub(dy, s)?;
                Ok(vec![Some(g.mul(d, y)?)])
            }
            SoftmaxOp::LogSoftmax => {
                let e = g.exp(y)?;
                let s = g.reduce_sum(dy, &[-1], true)?;
                let t = g.mul(e, s)?;
                Ok(vec![Some(g.sub(dy, t)?)])
            }
            SoftmaxOp::SoftmaxXent => xent_grad(g, node, false, dy),
            SoftmaxOp::SparseSoftmaxXent => xent_grad(g, node, true, dy),
            SoftmaxOp::XentGrad { .. } => Err(Error::unimplemented(
                "second-order gradient of the cross-entropy is not implemented",
            )),
        }
    }

    fn eval(&self, ins: &[&Value], _dtype: DType, out_shape: &[usize]) -> Result<Vec<f64>> {
        let n = numel(out_shape);
        Ok(match self {
            SoftmaxOp::Softmax => {
                let cols = *out_shape.last().unwrap_or(&1);
                log_softmax_rows(&ins[0].data, cols)
                    .iter()
                    .map(|v| v.exp())
                    .collect()
            }
            SoftmaxOp::LogSoftmax => {
                log_softmax_rows(&ins[0].data, *out_shape.last().unwrap_or(&1))
            }
            SoftmaxOp::SoftmaxXent => {
                let cols = ins[0].shape[1];
                let ls = log_softmax_rows(&ins[0].data, cols);
                ls.chunks(cols.max(1))
                    .zip(ins[1].data.chunks(cols.max(1)))
                    .map(|(l, y)| -l.iter().zip(y).map(|(a, b)| a * b).sum::<f64>())
                    .take(n)
                    .collect()
            }
            SoftmaxOp::SparseSoftmaxXent => {
                let cols = ins[0].shape[1];
                let ls = log_softmax_rows(&ins[0].data, cols);
                (0..n)
                    .map(|i| {
                        let y = ins[1].data[i];
                        if y >= 0.0 && (y as usize) < cols {
                            -ls[i * cols + y as usize]
                        } else {
                            f64::NAN
                        }
                    })
                    .collect()
            }
            SoftmaxOp::XentGrad { sparse, dy } => eval_xent_grad(ins, *sparse, *dy),
        })
    }

    #[cfg(feature = "gpu")]
    fn record(
        &self,
        rec: &mut Recorder<'_>,
        ins: &[Arg<'_>],
        out: &Loc,
        _out_dtype: DType,
        out_shape: &[usize],
    ) -> Result<()> {
        let cols = *ins[0].shape.last().unwrap_or(&1);
        let rows = numel(out_shape).checked_div(cols).unwrap_or(0);
        let mut p = RowParams {
            rows: rows as u32,
            cols: cols as u32,
            sparse: 0,
            mean: 0,
        };
        let (entry, defs, binds): (_, _, &[(u32, &Loc)]) = match self {
            SoftmaxOp::Softmax | SoftmaxOp::LogSoftmax => {
                let log = u32::from(*self == SoftmaxOp::LogSoftmax);
                ("softmax", vec![("OP", log)], &[(1, ins[0].loc), (3, out)])
            }
            SoftmaxOp::SoftmaxXent | SoftmaxOp::SparseSoftmaxXent => {
                let (r, c) = (ins[0].shape[0], ins[0].shape[1]);
                if c == 0 {
                    return Err(Error::invalid_argument("cross-entropy over zero classes"));
                }
                (p.rows, p.cols) = (r as u32, c as u32);
                let entry = if *self == SoftmaxOp::SoftmaxXent {
                    "xent"
                } else {
                    "sparse_xent"
                };
                (entry, vec![], &[(1, ins[0].loc), (2, ins[1].loc), (3, out)])
            }
            SoftmaxOp::XentGrad { sparse, dy } => {
                p.sparse = u32::from(*sparse);
                p.mean = dy.code();
                (
                    "xent_grad",
                    vec![],
                    &[(1, ins[0].loc), (2, ins[1].loc), (3, out), (4, ins[2].loc)],
                )
            }
        };
        let groups = rec.groups_1d(u64::from(p.rows))?;
        rec.dispatch(
            Shader::Softmax,
            entry,
            defs,
            bytemuck::bytes_of(&p),
            binds,
            groups,
        )
    }

    fn export(&self, e: &mut Export<'_>) {
        let t = e.t();
        match self {
            SoftmaxOp::Softmax | SoftmaxOp::LogSoftmax | SoftmaxOp::SoftmaxXent => {
                e.attrs(vec![("T", TfAttr::Type(t))]);
            }
            SoftmaxOp::SparseSoftmaxXent => e.attrs(vec![
                ("T", TfAttr::Type(DType::F32)),
                ("Tlabels", TfAttr::Type(DType::I32)),
            ]),
            SoftmaxOp::XentGrad { sparse, dy } => {
                export_xent_grad(e, *sparse, *dy);
                e.attrs(vec![("T", TfAttr::Type(DType::F32))]);
            }
        }
    }
}
