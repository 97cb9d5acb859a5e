//! The index family: ops that pick elements by value — select, gathers, segment sums
//! and one-hot encoding (`shaders/gather.wgsl`, `shaders/index.wgsl`, and the
//! broadcasting select of `shaders/remap.wgsl`).

#[cfg(feature = "gpu")]
mod kernel;
mod reference;

use super::Op;
use super::export::{Export, TfAttr};
use super::family::Family;
use super::infer::{Check, Inferred, broadcast_shapes, dims_match};
use crate::autodiff::unbroadcast;
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Tensor};
use crate::reference::Value;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder};
use crate::tensor::{DType, shape_str};

/// The ops of the family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IndexOp {
    /// `cond ? a : b` elementwise with broadcasting: inputs (cond bool, a, b).
    Select,
    /// Rows (slices along `axis`) of input 0 picked by int32 indices (input 1): the
    /// output shape is `params[..axis] + indices + params[axis+1..]`. An index out of
    /// range gives zeros on the device (TF on GPUs); fed or constant indices are
    /// checked before the run (InvalidArgument, as TF on CPUs).
    Gather {
        /// The axis indexed.
        axis: usize,
        /// Whether fed or constant indices are checked (false: out of range gives
        /// zeros, as in the gradient of a segment sum, whose dropped ids gather zeros).
        checked: bool,
    },
    /// Sums of the rows of input 0 by segment id (input 1, int32, shaped as the leading
    /// axes of input 0) into `num_segments` rows; ids out of range are dropped.
    UnsortedSegmentSum {
        /// Rows of the output.
        num_segments: usize,
    },
    /// One-hot encoding of integer indices along a new last axis.
    OneHot {
        /// The size of the new axis.
        depth: usize,
        /// Value at the index.
        on_value: f32,
        /// Value elsewhere.
        off_value: f32,
    },
}

impl Graph {
    fn index(&mut self, op: IndexOp, inputs: &[Tensor], name: &str) -> Result<Tensor> {
        self.add_op(Op::Index(op), inputs, name)
    }

    /// `cond ? a : b` elementwise with broadcasting (TF 2's `tf.where`).
    pub fn select(&mut self, cond: Tensor, a: Tensor, b: Tensor) -> Result<Tensor> {
        self.index(IndexOp::Select, &[cond, a, b], "SelectV2")
    }

    /// Slices of `params` along `axis` picked by int32 `indices` (TF's `tf.gather`).
    /// Fed or constant indices out of range are InvalidArgument when the graph runs.
    pub fn gather(&mut self, params: Tensor, indices: Tensor, axis: i64) -> Result<Tensor> {
        let axis = self.axis_of(params, axis)?;
        let op = IndexOp::Gather {
            axis,
            checked: true,
        };
        self.index(op, &[params, indices], "GatherV2")
    }

    /// Sums of the rows of `data` grouped by int32 `segment_ids` into `num_segments`
    /// rows (TF's `tf.math.unsorted_segment_sum`); ids out of range are dropped.
    pub fn unsorted_segment_sum(
        &mut self,
        data: Tensor,
        segment_ids: Tensor,
        num_segments: usize,
    ) -> Result<Tensor> {
        let op = IndexOp::UnsortedSegmentSum { num_segments };
        self.index(op, &[data, segment_ids], "UnsortedSegmentSum")
    }

    /// One-hot encoding of int indices along a new last axis of size `depth`; indices out
    /// of `[0, depth)` give a row of `off_value`, as in TF.
    pub fn one_hot(
        &mut self,
        indices: Tensor,
        depth: usize,
        on_value: f32,
        off_value: f32,
    ) -> Result<Tensor> {
        let op = IndexOp::OneHot {
            depth,
            on_value,
            off_value,
        };
        self.index(op, &[indices], "one_hot")
    }
}

/// InvalidArgument unless input `k` (called `what`) is int32 (or uint32).
fn int_indices(c: &Check<'_>, k: usize, what: &str) -> Result<()> {
    if !matches!(c.dtypes[k], DType::I32 | DType::U32) {
        return Err(c.err(format!("{what} must be int32, got {}", c.dtypes[k])));
    }
    Ok(())
}

fn infer_select(c: &Check<'_>) -> Result<Inferred> {
    c.arity(3)?;
    let (dtypes, shapes) = (c.dtypes, c.shapes);
    if dtypes[0] != DType::Bool {
        return Err(c.err(format!("condition must be bool, got {}", dtypes[0])));
    }
    c.same_dtype(1, 2)?;
    let ab = broadcast_shapes(&shapes[1], &shapes[2]);
    match ab.and_then(|s| broadcast_shapes(&shapes[0], &s)) {
        Some(shape) => Ok(Inferred {
            dtype: dtypes[1],
            shape,
        }),
        None => Err(c.err(format!(
            "shapes {}, {} and {} do not broadcast",
            shape_str(&shapes[0]),
            shape_str(&shapes[1]),
            shape_str(&shapes[2])
        ))),
    }
}

fn infer_gather(c: &Check<'_>, axis: usize) -> Result<Inferred> {
    c.arity(2)?;
    int_indices(c, 1, "indices")?;
    let p = &c.shapes[0];
    if axis >= p.len() {
        return Err(c.err(format!(
            "axis {axis} out of range for params of shape {}",
            shape_str(p)
        )));
    }
    let mut shape = p[..axis].to_vec();
    shape.extend_from_slice(&c.shapes[1]);
    shape.extend_from_slice(&p[axis + 1..]);
    Ok(Inferred {
        dtype: c.dtypes[0],
        shape,
    })
}

fn infer_segment_sum(c: &Check<'_>, num_segments: usize) -> Result<Inferred> {
    c.arity(2)?;
    c.float_only(0)?;
    int_indices(c, 1, "segment ids")?;
    let (d, ids) = (&c.shapes[0], &c.shapes[1]);
    let prefix = ids.len() <= d.len() && ids.iter().zip(d).all(|(&a, &b)| dims_match(a, b));
    if !prefix {
        return Err(c.err(format!(
            "segment ids of shape {} must be a prefix of the data shape {}",
            shape_str(ids),
            shape_str(d)
        )));
    }
    let mut shape = vec![num_segments as i64];
    shape.extend_from_slice(&d[ids.len()..]);
    Ok(Inferred {
        dtype: DType::F32,
        shape,
    })
}

impl Family for IndexOp {
    fn tf_name(&self) -> &'static str {
        match self {
            IndexOp::Select => "SelectV2",
            IndexOp::Gather { .. } => "GatherV2",
            IndexOp::UnsortedSegmentSum { .. } => "UnsortedSegmentSum",
            IndexOp::OneHot { .. } => "OneHot",
        }
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(self.tf_name(), dtypes, shapes);
        match self {
            IndexOp::Select => infer_select(&c),
            IndexOp::Gather { axis, .. } => infer_gather(&c, *axis),
            IndexOp::UnsortedSegmentSum { num_segments } => infer_segment_sum(&c, *num_segments),
            IndexOp::OneHot { depth, .. } => {
                c.arity(1)?;
                if !matches!(dtypes[0], DType::I32 | DType::U32) {
                    return Err(c.err(format!(
                        "indices must be int32 or uint32, got {}",
                        dtypes[0]
                    )));
                }
                let mut shape = shapes[0].clone();
                shape.push(*depth as i64);
                Ok(Inferred {
                    dtype: DType::F32,
                    shape,
                })
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
        let x = |k: usize| node.inputs[k];
        match self {
            IndexOp::Select => {
                let zero = g.scalar(0.0)?;
                let ga = g.select(x(0), dy, zero)?;
                let gb = g.select(x(0), zero, dy)?;
                Ok(vec![
                    None,
                    Some(unbroadcast(g, ga, x(1), y)?),
                    Some(unbroadcast(g, gb, x(2), y)?),
                ])
            }
            IndexOp::Gather { axis: 0, .. } => {
                let rows = g.shape(x(0))[0];
                if rows < 0 {
                    return Err(Error::unimplemented(format!(
                        "gradient of Gather ('{}') over params of unknown rows",
                        node.name
                    )));
                }
                let d = g.unsorted_segment_sum(dy, x(1), rows as usize)?;
                Ok(vec![Some(d), None])
            }
            IndexOp::Gather { .. } => Err(Error::unimplemented(format!(
                "gradient of Gather ('{}') along an axis other than 0",
                node.name
            ))),
            IndexOp::UnsortedSegmentSum { .. } => {
                // Rows of dropped ids get zeros: an unchecked gather.
                let op = IndexOp::Gather {
                    axis: 0,
                    checked: false,
                };
                Ok(vec![Some(g.index(op, &[dy, x(1)], "GatherV2")?), None])
            }
            // Integer indices: no gradient flows to them.
            IndexOp::OneHot { .. } => Ok(vec![None]),
        }
    }

    fn eval(&self, ins: &[&Value], _dtype: DType, out_shape: &[usize]) -> Result<Vec<f64>> {
        Ok(reference::eval(self, ins, out_shape))
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
        kernel::record(self, rec, ins, out, out_shape)
    }

    fn export(&self, e: &mut Export<'_>) {
        let t = e.t();
        let i32t = || TfAttr::Type(DType::I32);
        match self {
            IndexOp::Select => e.attrs(vec![("T", TfAttr::Type(e.dtype()))]),
            IndexOp::Gather { axis, .. } => {
                let a = e.i32("axis", *axis as i64);
                e.inputs.push(a);
                e.attrs(vec![
                    ("Tparams", TfAttr::Type(t)),
                    ("Tindices", i32t()),
                    ("Taxis", i32t()),
                    ("batch_dims", TfAttr::Int(0)),
                ]);
            }
            IndexOp::UnsortedSegmentSum { num_segments } => {
                let n = e.i32("num_segments", *num_segments as i64);
                e.inputs.push(n);
                e.attrs(vec![
                    ("T", TfAttr::Type(DType::F32)),
                    ("Tindices", i32t()),
                    ("Tnumsegments", i32t()),
                ]);
            }
            IndexOp::OneHot {
                depth,
                on_value,
                off_value,
            } => {
                let d = e.i32("depth", *depth as i64);
                let on = e.f32("on_value", *on_value);
                let off = e.f32("off_value", *off_value);
                e.inputs.extend([d, on, off]);
                e.attrs(vec![
                    ("T", TfAttr::Type(DType::F32)),
                    ("TI", TfAttr::Type(t)),
                    ("axis", TfAttr::Int(-1)),
                ]);
            }
        }
    }
}
