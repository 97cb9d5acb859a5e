//! The reduction family: sums, means, maxima and minima over axes, the index of the
//! maximum, and the two ops autodiff builds for broadcasting (a broadcast to the shape
//! of another tensor, and the sum back down to it) (`shaders/reduce.wgsl`; broadcasts
//! are gathers of `shaders/layout.wgsl`).

use super::Op;
use super::export::{Export, TfAttr};
use super::family::Family;
use super::infer::{Check, Inferred, broadcast_shapes, compatible};
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Tensor};
use crate::reference::eval::gather_index;
use crate::reference::{Value, broadcast_strides, strides};
#[cfg(feature = "gpu")]
use crate::runtime::kernels::params::ReduceParams;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder, dt_code};
#[cfg(feature = "gpu")]
use crate::runtime::shaders::Shader;
use crate::tensor::{DType, num_elements as numel, shape_str};
#[cfg(feature = "gpu")]
use bytemuck::Zeroable;

/// Reductions over axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
}

impl ReduceOp {
    /// TensorFlow's op name.
    pub fn tf_name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "Sum",
            ReduceOp::Mean => "Mean",
            ReduceOp::Max => "Max",
            ReduceOp::Min => "Min",
        }
    }

    /// The opcode shared with the family's WGSL.
    #[cfg(feature = "gpu")]
    pub(crate) fn code(self) -> u32 {
        self as u32
    }
}

/// The ops of the family.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    /// Reduction over `axes` (sorted, unique).
    Reduce {
        /// Sum, mean, max or min.
        op: ReduceOp,
        /// The reduced axes.
        axes: Vec<usize>,
        /// Keep reduced axes with size 1.
        keep_dims: bool,
    },
    /// Index of the maximum along `axis` (int32).
    ArgMax {
        /// The reduced axis.
        axis: usize,
    },
    /// Broadcast input 0 to the run-time shape of input 1; with `mean`, also divide by
    /// the broadcast factor (the gradient of a mean).
    BroadcastLike {
        /// Divide by `numel(output) / numel(input 0)`.
        mean: bool,
    },
    /// Sum input 0 down to the run-time shape of input 1 (the gradient of broadcasting).
    SumLike,
}

impl Graph {
    /// A reduction of `x` over `axes`; an empty `axes` reduces over all axes.
    pub fn reduce(
        &mut self,
        op: ReduceOp,
        x: Tensor,
        axes: &[i64],
        keep_dims: bool,
    ) -> Result<Tensor> {
        self.check(x)?;
        let axes = if axes.is_empty() {
            (0..self.shape(x).len()).collect()
        } else {
            self.norm_axes(x, axes)?
        };
        let r = Reduction::Reduce {
            op,
            axes,
            keep_dims,
        };
        self.add_op(Op::Reduction(r), &[x], op.tf_name())
    }

    /// Sum over `axes` (all axes when empty).
    pub fn reduce_sum(&mut self, x: Tensor, axes: &[i64], keep_dims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, x, axes, keep_dims)
    }

    /// Mean over `axes` (all axes when empty).
    pub fn reduce_mean(&mut self, x: Tensor, axes: &[i64], keep_dims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Mean, x, axes, keep_dims)
    }

    /// Maximum over `axes` (all axes when empty).
    pub fn reduce_max(&mut self, x: Tensor, axes: &[i64], keep_dims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, x, axes, keep_dims)
    }

    /// Minimum over `axes` (all axes when empty).
    pub fn reduce_min(&mut self, x: Tensor, axes: &[i64], keep_dims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, x, axes, keep_dims)
    }

    /// Broadcasts `x` to the run-time shape of `like`.
    pub fn broadcast_like(&mut self, x: Tensor, like: Tensor) -> Result<Tensor> {
        let op = Op::Reduction(Reduction::BroadcastLike { mean: false });
        self.add_op(op, &[x, like], "BroadcastTo")
    }

    /// Sums `x` down to the run-time shape of `like` (undoes broadcasting).
    pub fn sum_like(&mut self, x: Tensor, like: Tensor) -> Result<Tensor> {
        self.add_op(Op::Reduction(Reduction::SumLike), &[x, like], "Sum")
    }

    /// The index of the largest value along `axis`, as int32.
    pub fn argmax(&mut self, x: Tensor, axis: i64) -> Result<Tensor> {
        self.check(x)?;
        let axis = self.norm_axes(x, &[axis])?[0];
        self.add_op(Op::Reduction(Reduction::ArgMax { axis }), &[x], "ArgMax")
    }
}

fn infer_reduce(c: &Check<'_>, op: ReduceOp, axes: &[usize], keep_dims: bool) -> Result<Inferred> {
    c.arity(1)?;
    let dtype = c.dtypes[0];
    let int_ok = matches!(op, ReduceOp::Sum | ReduceOp::Max | ReduceOp::Min) && dtype == DType::I32;
    if dtype != DType::F32 && !int_ok {
        return Err(c.err(format!("unsupported dtype {dtype}")));
    }
    let s = &c.shapes[0];
    if let Some(&a) = axes.iter().find(|&&a| a >= s.len()) {
        return Err(c.err(format!("axis {a} out of range for shape {}", shape_str(s))));
    }
    let shape = s
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| {
            if axes.contains(&i) {
                keep_dims.then_some(1)
            } else {
                Some(d)
            }
        })
        .collect();
    Ok(Inferred { dtype, shape })
}

/// The shape of `x` with `axes` set to 1 (the keep-dims shape of a reduction).
fn keep_dims_of(g: &mut Graph, reduced: Tensor, x: Tensor, axes: &[usize]) -> Result<Tensor> {
    let shape: Vec<i64> = g
        .shape(x)
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect();
    if g.shape(reduced) == shape.as_slice() {
        return Ok(reduced);
    }
    g.reshape(reduced, &shape)
}

fn grad_reduce(
    g: &mut Graph,
    op: ReduceOp,
    axes: &[usize],
    x: Tensor,
    y: Tensor,
    dy: Tensor,
) -> Result<Tensor> {
    let dk = keep_dims_of(g, dy, x, axes)?;
    match op {
        ReduceOp::Sum => g.broadcast_like(dk, x),
        ReduceOp::Mean => {
            let mean = Op::Reduction(Reduction::BroadcastLike { mean: true });
            g.add_op(mean, &[dk, x], "BroadcastTo")
        }
        ReduceOp::Max | ReduceOp::Min => {
            let yk = keep_dims_of(g, y, x, axes)?;
            let yb = g.broadcast_like(yk, x)?;
            let mask = g.equal(x, yb)?;
            let mask = g.cast(mask, DType::F32)?;
            let iaxes: Vec<i64> = axes.iter().map(|&a| a as i64).collect();
            let count = g.reduce_sum(mask, &iaxes, true)?;
            let share = g.div(dk, count)?;
            let share = g.broadcast_like(share, x)?;
            g.mul(share, mask)
        }
    }
}

fn eval_reduce(x: &Value, op: ReduceOp, axes: &[usize], n: usize) -> Vec<f64> {
    let kept: Vec<usize> = (0..x.shape.len())
        .map(|i| if axes.contains(&i) { 1 } else { x.shape[i] })
        .collect();
    let count: usize = axes.iter().map(|&a| x.shape[a]).product();
    let init = match op {
        ReduceOp::Sum | ReduceOp::Mean => 0.0,
        ReduceOp::Max => f64::NEG_INFINITY,
        ReduceOp::Min => f64::INFINITY,
    };
    let mut out = vec![init; n];
    let ks = strides(&kept);
    for (i, &v) in x.data.iter().enumerate() {
        // Position of element i with reduced axes collapsed.
        let mut rem = i;
        let mut o = 0;
        for d in (0..x.shape.len()).rev() {
            let c = rem % x.shape[d];
            rem /= x.shape[d];
            if !axes.contains(&d) {
                o += c * ks[d];
            }
        }
        out[o] = match op {
            ReduceOp::Sum | ReduceOp::Mean => out[o] + v,
            // NaN propagates, as in the kernels.
            _ if v.is_nan() || out[o].is_nan() => f64::NAN,
            ReduceOp::Max => out[o].max(v),
            ReduceOp::Min => out[o].min(v),
        };
    }
    if op == ReduceOp::Mean {
        for v in &mut out {
            *v /= count as f64;
        }
    }
    out
}

fn eval_argmax(x: &Value, axis: usize) -> Vec<f64> {
    let outer: usize = x.shape[..axis].iter().product();
    let len = x.shape[axis];
    let inner: usize = x.shape[axis + 1..].iter().product();
    let mut out = vec![0.0; outer * inner];
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0;
            for k in 1..len {
                if x.data[(o * len + k) * inner + i] > x.data[(o * len + best) * inner + i] {
                    best = k;
                }
            }
            out[o * inner + i] = best as f64;
        }
    }
    out
}

#[cfg(feature = "gpu")]
fn record_argmax(rec: &mut Recorder<'_>, x: &Arg<'_>, out: &Loc, axis: usize) -> Result<()> {
    let outer = numel(&x.shape[..axis]);
    let len = x.shape[axis];
    let inner = numel(&x.shape[axis + 1..]);
    let mut p = ReduceParams::zeroed();
    p.n_out = (outer * inner) as u32;
    p.n_red = len as u32;
    p.out_shape = [outer as u32, inner.max(1) as u32, 1, 1, 1, 1, 1, 1];
    let groups = rec.groups_1d((outer * inner) as u64)?;
    rec.dispatch(
        Shader::Reduce,
        "argmax",
        vec![("DT", dt_code(x.dtype))],
        bytemuck::bytes_of(&p),
        &[(1, x.loc), (3, out)],
        if outer * inner == 0 || len == 0 {
            [0; 3]
        } else {
            groups
        },
    )
}

/// TF's spelling of the gradient of a mean: broadcast, then divide by the elements each
/// value was the mean of.
fn export_mean_broadcast(e: &mut Export<'_>, shape: String) {
    let t = e.t();
    let i32t = || TfAttr::Type(DType::I32);
    let attrs = vec![("T", TfAttr::Type(t)), ("Tidx", i32t())];
    let wide = e.node("BroadcastTo", "BroadcastTo", vec![e.input(0), shape], attrs);
    let all = e.size_of("Size", &e.input(1), e.input_dtype(1));
    let few = e.size_of("Size_1", &e.input(0), t);
    let per = e.node("floordiv", "FloorDiv", vec![all, few], vec![("T", i32t())]);
    let per = e.cast_f32("Cast", per);
    e.op = "RealDiv".into();
    e.inputs = vec![wide, per];
    e.attrs(vec![("T", TfAttr::Type(t))]);
}

/// TF's gradient of a broadcast: the broadcast axes from the two shapes, summed over,
/// then reshaped to the operand's shape.
fn export_sum_like(e: &mut Export<'_>) {
    let t = e.t();
    let i32t = || TfAttr::Type(DType::I32);
    let target = e.shape_of("Shape", &e.input(1), e.input_dtype(1));
    let from = e.shape_of("Shape_1", &e.input(0), t);
    let axes = e.node(
        "BroadcastGradientArgs",
        "BroadcastGradientArgs",
        vec![target.clone(), from],
        vec![("T", i32t())],
    );
    let sum_attrs = vec![
        ("T", TfAttr::Type(t)),
        ("Tidx", i32t()),
        ("keep_dims", TfAttr::Bool(false)),
    ];
    let sum = e.node("Sum", "Sum", vec![e.input(0), axes], sum_attrs);
    e.op = "Reshape".into();
    e.inputs = vec![sum, target];
    e.attrs(vec![("T", TfAttr::Type(t)), ("Tshape", i32t())]);
}

impl Family for Reduction {
    fn tf_name(&self) -> &'static str {
        match self {
            Reduction::Reduce { op, .. } => op.tf_name(),
            Reduction::ArgMax { .. } => "ArgMax",
            Reduction::BroadcastLike { .. } => "BroadcastTo",
            Reduction::SumLike => "Sum",
        }
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(self.tf_name(), dtypes, shapes);
        match self {
            Reduction::Reduce {
                op,
                axes,
                keep_dims,
            } => infer_reduce(&c, *op, axes, *keep_dims),
            Reduction::ArgMax { axis } => {
                c.arity(1)?;
                if !matches!(dtypes[0], DType::F32 | DType::I32) {
                    return Err(c.err(format!("unsupported dtype {}", dtypes[0])));
                }
                let s = &shapes[0];
                if *axis >= s.len() {
                    return Err(c.err(format!(
                        "axis {axis} out of range for shape {}",
                        shape_str(s)
                    )));
                }
                let mut shape = s.clone();
                shape.remove(*axis);
                Ok(Inferred {
                    dtype: DType::I32,
                    shape,
                })
            }
            Reduction::BroadcastLike { .. } | Reduction::SumLike => {
                c.arity(2)?;
                let (small, big) = if let Reduction::SumLike = self {
                    (&shapes[1], &shapes[0])
                } else {
                    (&shapes[0], &shapes[1])
                };
                match broadcast_shapes(small, big) {
                    Some(s) if s.len() == big.len() && compatible(&s, big) => Ok(Inferred {
                        dtype: dtypes[0],
                        shape: shapes[1].clone(),
                    }),
                    _ => Err(c.err(format!(
                        "{} does not broadcast to {}",
                        shape_str(small),
                        shape_str(big)
                    ))),
                }
            }
        }
    }

    fn grad(
        &self,
        g: &mut Graph,
        node: &Node,
        y: Tensor,
        dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let x = node.inputs[0];
        match self {
            Reduction::Reduce { op, axes, .. } => {
                Ok(vec![Some(grad_reduce(g, *op, axes, x, y, dy)?)])
            }
            Reduction::ArgMax { .. } => Ok(vec![None]),
            Reduction::BroadcastLike { mean: false } => Ok(vec![Some(g.sum_like(dy, x)?), None]),
            Reduction::BroadcastLike { mean: true } => Err(Error::unimplemented(
                "gradient of a mean's gradient is not implemented",
            )),
            Reduction::SumLike => Ok(vec![Some(g.broadcast_like(dy, x)?), None]),
        }
    }

    fn eval(&self, ins: &[&Value], _dtype: DType, out_shape: &[usize]) -> Result<Vec<f64>> {
        let n = numel(out_shape);
        let x = ins[0];
        Ok(match self {
            Reduction::Reduce { op, axes, .. } => eval_reduce(x, *op, axes, n),
            Reduction::ArgMax { axis } => eval_argmax(x, *axis),
            Reduction::BroadcastLike { mean } => {
                let st = broadcast_strides(&x.shape, out_shape);
                let factor = if *mean {
                    n as f64 / x.data.len().max(1) as f64
                } else {
                    1.0
                };
                (0..n)
                    .map(|i| x.data[gather_index(i, out_shape, &st)] / factor)
                    .collect()
            }
            Reduction::SumLike => {
                let st = broadcast_strides(out_shape, &x.shape);
                let mut out = vec![0.0; n];
                for (i, &v) in x.data.iter().enumerate() {
                    out[gather_index(i, &x.shape, &st)] += v;
                }
                out
            }
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
        let x = &ins[0];
        match self {
            Reduction::Reduce { op, axes, .. } => rec.reduce(x, out, axes, op.code()),
            Reduction::ArgMax { axis } => record_argmax(rec, x, out, *axis),
            Reduction::BroadcastLike { mean } => {
                let st = broadcast_strides(x.shape, out_shape);
                let n = numel(out_shape);
                let scale = mean.then(|| numel(x.shape) as f32 / n.max(1) as f32);
                rec.gather(x, out, out_shape, st, scale)
            }
            Reduction::SumLike => {
                let like = ins[1].shape;
                let off = x.shape.len() - like.len();
                let axes: Vec<usize> = (0..x.shape.len())
                    .filter(|&d| d < off || (like[d - off] == 1 && x.shape[d] != 1))
                    .collect();
                rec.reduce(x, out, &axes, ReduceOp::Sum.code())
            }
        }
    }

    fn export(&self, e: &mut Export<'_>) {
        let t = e.t();
        let i32t = || TfAttr::Type(DType::I32);
        match self {
            Reduction::Reduce {
                axes, keep_dims, ..
            } => {
                let a: Vec<i64> = axes.iter().map(|&x| x as i64).collect();
                let idx = e.i32s("reduction_indices", &a);
                e.inputs.push(idx);
                e.attrs(vec![
                    ("T", TfAttr::Type(t)),
                    ("Tidx", i32t()),
                    ("keep_dims", TfAttr::Bool(*keep_dims)),
                ]);
            }
            Reduction::ArgMax { axis } => {
                let dim = e.i32("dimension", *axis as i64);
                e.inputs.push(dim);
                e.attrs(vec![
                    ("T", TfAttr::Type(t)),
                    ("Tidx", i32t()),
                    ("output_type", i32t()),
                ]);
            }
            Reduction::BroadcastLike { mean } => {
                let shape = e.shape_of("Shape", &e.input(1), e.input_dtype(1));
                if *mean {
                    export_mean_broadcast(e, shape);
                } else {
                    e.inputs[1] = shape;
                    e.attrs(vec![("T", TfAttr::Type(t)), ("Tidx", i32t())]);
                }
            }
            Reduction::SumLike => export_sum_like(e),
        }
    }

    fn shape_only_input(&self, k: usize) -> bool {
        match self {
            Reduction::BroadcastLike { .. } | Reduction::SumLike => k == 1,
            Reduction::Reduce { .. } | Reduction::ArgMax { .. } => false,
        }
    }
}
