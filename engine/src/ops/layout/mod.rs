//! The layout family: ops that move elements without computing on them — copies,
//! casts, reshapes, transposes, slices, padding, tiling and concatenation
//! (`shaders/remap.wgsl` and `shaders/layout.wgsl`; casts are `convert` in
//! `shaders/elementwise.wgsl`).
//!
//! `spec.rs` resolves strided-slice specs and reshape targets for the shape rule, the
//! reference (`reference.rs`) and the kernel binding (`kernel.rs`) alike.

#[cfg(feature = "gpu")]
mod kernel;
mod reference;
mod spec;

pub(crate) use spec::known_numel;
pub use spec::{SliceAxis, StridedSpec, reshape_target};

use super::Op;
use super::export::{Export, TfAttr};
use super::family::Family;
use super::infer::{Check, Inferred, dims_match};
use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Tensor};
use crate::reference::Value;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder};
use crate::tensor::{DType, HostTensor, shape_str};

/// The ops of the family.
#[derive(Clone, Debug, PartialEq)]
pub enum LayoutOp {
    /// A copy of the input.
    Identity,
    /// Dtype conversion.
    Cast(DType),
    /// Same data, new shape (one `-1` is inferred).
    Reshape(Vec<i64>),
    /// Reshape input 0 to the run-time shape of input 1 (read for its shape only).
    ReshapeLike,
    /// Axis permutation.
    Transpose(Vec<usize>),
    /// A slice: `begin` and `size` per axis (`size` -1: to the end).
    Slice {
        /// First index per axis.
        begin: Vec<i64>,
        /// Elements per axis, -1 for the rest.
        size: Vec<i64>,
    },
    /// Python-style `x[b:e:s, ...]` per axis (see [`StridedSpec`]).
    StridedSlice(StridedSpec),
    /// The gradient of a slice ([`LayoutOp::Slice`] as a spec, or
    /// [`LayoutOp::StridedSlice`]): dy (input 1) scattered into zeros of the shape of
    /// input 0 (read for its shape only).
    StridedSliceGrad(StridedSpec),
    /// Constant padding: `(before, after)` per axis.
    Pad {
        /// Elements added before and after, per axis.
        paddings: Vec<[usize; 2]>,
        /// The value of the added elements.
        value: f32,
    },
    /// Repeats the input `multiples[d]` times along each axis.
    Tile {
        /// Repetitions per axis.
        multiples: Vec<usize>,
    },
    /// Joins the inputs (same dtype, same shape but along `axis`) along `axis`.
    Concat {
        /// The joined axis.
        axis: usize,
    },
}

impl Graph {
    /// A node of the layout family.
    fn layout(&mut self, op: LayoutOp, inputs: &[Tensor], name: &str) -> Result<Tensor> {
        self.add_op(Op::Layout(op), inputs, name)
    }

    /// A copy of `x` (TF's `tf.identity`); with control dependencies it reads `x` at a
    /// chosen point of the run.
    pub fn identity(&mut self, x: Tensor, name: &str) -> Result<Tensor> {
        self.layout(LayoutOp::Identity, &[x], name)
    }

    /// Converts `x` to `dtype` (TF's `tf.cast`: floats truncate toward zero into ints,
    /// non-zero becomes `true`).
    pub fn cast(&mut self, x: Tensor, dtype: DType) -> Result<Tensor> {
        self.layout(LayoutOp::Cast(dtype), &[x], "Cast")
    }

    /// The same data with a new shape; one dimension may be `-1` (inferred).
    pub fn reshape(&mut self, x: Tensor, shape: &[i64]) -> Result<Tensor> {
        self.check(x)?;
        // With an unknown input dimension, keep the unknown in the target when it is the
        // only one; the run-time shape resolves it.
        self.layout(LayoutOp::Reshape(shape.to_vec()), &[x], "Reshape")
    }

    /// Reshapes `x` to the run-time shape of `like`.
    pub fn reshape_like(&mut self, x: Tensor, like: Tensor) -> Result<Tensor> {
        self.layout(LayoutOp::ReshapeLike, &[x, like], "Reshape")
    }

    /// Permutes the axes of `x`.
    pub fn transpose(&mut self, x: Tensor, perm: &[usize]) -> Result<Tensor> {
        self.layout(LayoutOp::Transpose(perm.to_vec()), &[x], "transpose")
    }

    /// Inserts a size-1 axis at `axis` (negative counts from the end, as in TF).
    pub fn expand_dims(&mut self, x: Tensor, axis: i64) -> Result<Tensor> {
        self.check(x)?;
        let s = self.shape(x).to_vec();
        let rank = s.len() as i64;
        let a = if axis < 0 { axis + rank + 1 } else { axis };
        if a < 0 || a > rank {
            return Err(Error::invalid_argument(format!(
                "ExpandDims: axis {axis} out of range for '{}' of rank {rank}",
                self.name(x)
            )));
        }
        let mut t = s;
        t.insert(a as usize, 1);
        self.reshape_keeping_unknown(x, t, "ExpandDims")
    }

    /// Removes size-1 axes: `axes`, or every size-1 axis when empty.
    pub fn squeeze(&mut self, x: Tensor, axes: &[i64]) -> Result<Tensor> {
        self.check(x)?;
        let s = self.shape(x).to_vec();
        let axes = if axes.is_empty() {
            (0..s.len()).filter(|&i| s[i] == 1).collect()
        } else {
            self.norm_axes(x, axes)?
        };
        if let Some(&a) = axes.iter().find(|&&a| s[a] != 1) {
            return Err(Error::invalid_argument(format!(
                "Squeeze: cannot squeeze dimension {a} of '{}' with shape {}",
                self.name(x),
                shape_str(&s)
            )));
        }
        let t = s
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect();
        self.reshape_keeping_unknown(x, t, "Squeeze")
    }

    fn reshape_keeping_unknown(
        &mut self,
        x: Tensor,
        target: Vec<i64>,
        name: &str,
    ) -> Result<Tensor> {
        if target.iter().filter(|&&d| d < 0).count() > 1 {
            return Err(Error::unimplemented(format!(
                "{name} of '{}' with more than one unknown dimension",
                self.name(x)
            )));
        }
        self.layout(LayoutOp::Reshape(target), &[x], name)
    }

    /// `size[d]` elements from `begin[d]` along each axis (`size` -1: to the end), as
    /// TF's `tf.slice`.
    pub fn slice(&mut self, x: Tensor, begin: &[i64], size: &[i64]) -> Result<Tensor> {
        let op = LayoutOp::Slice {
            begin: begin.to_vec(),
            size: size.to_vec(),
        };
        self.layout(op, &[x], "Slice")
    }

    /// Python-style strided slicing (TF's `tf.strided_slice` with its masks).
    pub fn strided_slice(&mut self, x: Tensor, spec: StridedSpec) -> Result<Tensor> {
        self.layout(LayoutOp::StridedSlice(spec), &[x], "StridedSlice")
    }

    /// Pads with `value`: `paddings[d] = [before, after]` (TF's `tf.pad`, CONSTANT).
    pub fn pad(&mut self, x: Tensor, paddings: &[[usize; 2]], value: f32) -> Result<Tensor> {
        let op = LayoutOp::Pad {
            paddings: paddings.to_vec(),
            value,
        };
        self.layout(op, &[x], "Pad")
    }

    /// Repeats `x` `multiples[d]` times along each axis (TF's `tf.tile`).
    pub fn tile(&mut self, x: Tensor, multiples: &[usize]) -> Result<Tensor> {
        let op = LayoutOp::Tile {
            multiples: multiples.to_vec(),
        };
        self.layout(op, &[x], "Tile")
    }

    /// Joins `xs` along `axis` (negative counts from the end), as TF's `tf.concat`.
    pub fn concat(&mut self, xs: &[Tensor], axis: i64) -> Result<Tensor> {
        let Some(&first) = xs.first() else {
            return Err(Error::invalid_argument("concat of no tensors"));
        };
        let axis = self.axis_of(first, axis)?;
        self.layout(LayoutOp::Concat { axis }, xs, "concat")
    }
}

/// The shape kept by the axes of a resolved slice (`-1` where the input's is unknown).
fn sliced_shape(axes: &[SliceAxis], unknown: &[bool]) -> Vec<i64> {
    axes.iter()
        .zip(unknown)
        .filter(|(a, _)| !a.shrink)
        .map(|(a, &u)| if u { -1 } else { a.count as i64 })
        .collect()
}

fn infer_slice(c: &Check<'_>, begin: &[i64], size: &[i64]) -> Result<Vec<i64>> {
    let x = &c.shapes[0];
    if begin.len() != x.len() || size.len() != x.len() {
        return Err(c.err(format!(
            "begin {begin:?} and size {size:?} must have one entry per axis of {}",
            shape_str(x)
        )));
    }
    let mut shape = Vec::with_capacity(x.len());
    for d in 0..x.len() {
        let (b, z, n) = (begin[d], size[d], x[d]);
        let fits = b >= 0 && z >= -1 && (n < 0 || (z < 0 && b <= n) || b + z <= n);
        if !fits {
            return Err(c.err(format!(
                "begin {b} and size {z} of axis {d} do not fit in shape {}",
                shape_str(x)
            )));
        }
        shape.push(if z >= 0 {
            z
        } else if n < 0 {
            -1
        } else {
            n - b
        });
    }
    Ok(shape)
}

fn infer_concat(c: &Check<'_>, axis: usize) -> Result<Vec<i64>> {
    if c.dtypes.is_empty() {
        return Err(c.err("needs at least one input".into()));
    }
    let first = &c.shapes[0];
    if axis >= first.len() {
        return Err(c.err(format!(
            "axis {axis} out of range for shape {}",
            shape_str(first)
        )));
    }
    let mut shape = first.clone();
    for (k, sh) in c.shapes.iter().enumerate().skip(1) {
        c.same_dtype(0, k)?;
        let ok = sh.len() == first.len()
            && (0..sh.len()).all(|d| d == axis || dims_match(sh[d], first[d]));
        if !ok {
            return Err(c.err(format!(
                "input {k} of shape {} does not match input 0 of shape {} but along axis {axis}",
                shape_str(sh),
                shape_str(first)
            )));
        }
        shape[axis] = if shape[axis] < 0 || sh[axis] < 0 {
            -1
        } else {
            shape[axis] + sh[axis]
        };
        for d in 0..sh.len() {
            if d != axis && shape[d] < 0 {
                shape[d] = sh[d];
            }
        }
    }
    Ok(shape)
}

/// The shape of `x` changed per axis by `f(size, k)` (`-1` stays unknown), checking one
/// entry of `what` per axis.
fn per_axis<T>(c: &Check<'_>, v: &[T], what: &str, f: impl Fn(i64, &T) -> i64) -> Result<Vec<i64>> {
    let x = &c.shapes[0];
    if v.len() != x.len() {
        return Err(c.err(format!(
            "{} {what} for a tensor of rank {}",
            v.len(),
            x.len()
        )));
    }
    Ok(x.iter()
        .zip(v)
        .map(|(&n, k)| if n < 0 { -1 } else { f(n, k) })
        .collect())
}

fn infer_transpose(c: &Check<'_>, perm: &[usize]) -> Result<Vec<i64>> {
    let s = &c.shapes[0];
    let mut seen = vec![false; s.len()];
    if perm.len() != s.len()
        || perm
            .iter()
            .any(|&p| p >= s.len() || std::mem::replace(&mut seen[p], true))
    {
        return Err(c.err(format!(
            "perm {perm:?} is not a permutation of the axes of {}",
            shape_str(s)
        )));
    }
    Ok(perm.iter().map(|&p| s[p]).collect())
}

/// The spec slicing `[before, size - after)` out of each axis: the gradient of padding.
fn unpad_spec(paddings: &[[usize; 2]]) -> StridedSpec {
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
    StridedSpec {
        begin: paddings.iter().map(|p| p[0] as i64).collect(),
        end,
        strides: vec![1; paddings.len()],
        begin_mask: 0,
        end_mask,
        shrink_axis_mask: 0,
    }
}

fn grad_tile(g: &mut Graph, node: &Node, multiples: &[usize], dy: Tensor) -> Result<Tensor> {
    let xs = g.shape(node.inputs[0]).to_vec();
    if xs.iter().any(|&d| d < 0) {
        return Err(Error::unimplemented(format!(
            "gradient of Tile ('{}') over an input of unknown shape",
            node.name
        )));
    }
    let split: Vec<i64> = multiples
        .iter()
        .zip(&xs)
        .flat_map(|(&m, &d)| [m as i64, d])
        .collect();
    let r = g.reshape(dy, &split)?;
    let axes: Vec<i64> = (0..xs.len() as i64).map(|d| 2 * d).collect();
    g.reduce_sum(r, &axes, false)
}

/// Each input's part of `dy`, sliced along `axis`.
fn grad_concat(g: &mut Graph, node: &Node, axis: usize, dy: Tensor) -> Result<Vec<Option<Tensor>>> {
    let mut at = 0i64;
    let mut grads = Vec::with_capacity(node.inputs.len());
    for t in &node.inputs {
        let len = g.shape(*t)[axis];
        if len < 0 {
            return Err(Error::unimplemented(format!(
                "gradient of Concat ('{}') with an unknown size along the axis",
                node.name
            )));
        }
        let rank = g.shape(*t).len();
        let all = (1u64 << rank) - 1;
        let bit = 1u64 << axis;
        let mut begin = vec![0; rank];
        let mut end = vec![0; rank];
        begin[axis] = at;
        end[axis] = at + len;
        let spec = StridedSpec {
            begin,
            end,
            strides: vec![1; rank],
            begin_mask: all & !bit,
            end_mask: all & !bit,
            shrink_axis_mask: 0,
        };
        grads.push(Some(g.layout(
            LayoutOp::StridedSlice(spec),
            &[dy],
            "Slice",
        )?));
        at += len;
    }
    Ok(grads)
}

/// The attrs of a strided slice (TF's masks; no ellipsis, no new axes).
fn strided_attrs(spec: &StridedSpec, t: DType) -> Vec<(&'static str, TfAttr)> {
    let m = |v: u64| TfAttr::Int(v as i64);
    vec![
        ("T", TfAttr::Type(t)),
        ("Index", TfAttr::Type(DType::I32)),
        ("begin_mask", m(spec.begin_mask)),
        ("end_mask", m(spec.end_mask)),
        ("ellipsis_mask", m(0)),
        ("new_axis_mask", m(0)),
        ("shrink_axis_mask", m(spec.shrink_axis_mask)),
    ]
}

fn export_pad(e: &mut Export<'_>, paddings: &[[usize; 2]], value: f32) {
    let t = e.t();
    let flat: Vec<i32> = paddings
        .iter()
        .flat_map(|p| [p[0] as i32, p[1] as i32])
        .collect();
    let p = HostTensor::from_i32(&[paddings.len(), 2], flat)
        .unwrap_or_else(|_| HostTensor::zeros(DType::I32, &[0, 2]));
    let p = e.constant("paddings", &p);
    e.inputs.push(p);
    let v = HostTensor::from_f64(t, &[], &[f64::from(value)])
        .unwrap_or_else(|_| HostTensor::zeros(t, &[]));
    let v = e.constant("constant_values", &v);
    e.inputs.push(v);
    e.attrs(vec![
        ("T", TfAttr::Type(t)),
        ("Tpaddings", TfAttr::Type(DType::I32)),
    ]);
}

impl Family for LayoutOp {
    fn tf_name(&self) -> &'static str {
        match self {
            LayoutOp::Identity => "Identity",
            LayoutOp::Cast(_) => "Cast",
            LayoutOp::Reshape(_) | LayoutOp::ReshapeLike => "Reshape",
            LayoutOp::Transpose(_) => "Transpose",
            LayoutOp::Slice { .. } => "Slice",
            LayoutOp::StridedSlice(_) => "StridedSlice",
            LayoutOp::StridedSliceGrad(_) => "StridedSliceGrad",
            LayoutOp::Pad { .. } => "PadV2",
            LayoutOp::Tile { .. } => "Tile",
            LayoutOp::Concat { .. } => "ConcatV2",
        }
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(self.tf_name(), dtypes, shapes);
        let out = |dtype: DType, shape: Vec<i64>| Ok(Inferred { dtype, shape });
        let arity = match self {
            LayoutOp::Concat { .. } => None,
            LayoutOp::ReshapeLike | LayoutOp::StridedSliceGrad(_) => Some(2),
            LayoutOp::Identity
            | LayoutOp::Cast(_)
            | LayoutOp::Reshape(_)
            | LayoutOp::Transpose(_)
            | LayoutOp::Slice { .. }
            | LayoutOp::StridedSlice(_)
            | LayoutOp::Pad { .. }
            | LayoutOp::Tile { .. } => Some(1),
        };
        if let Some(n) = arity {
            c.arity(n)?;
        }
        let x = || &shapes[0];
        match self {
            LayoutOp::Identity => out(dtypes[0], x().clone()),
            LayoutOp::Cast(to) => out(*to, x().clone()),
            LayoutOp::Reshape(target) => out(dtypes[0], reshape_target(x(), target)?),
            LayoutOp::ReshapeLike => {
                if let (Some(a), Some(b)) = (known_numel(x()), known_numel(&shapes[1]))
                    && a != b
                {
                    return Err(c.err(format!(
                        "cannot reshape {} to {}",
                        shape_str(x()),
                        shape_str(&shapes[1])
                    )));
                }
                out(dtypes[0], shapes[1].clone())
            }
            LayoutOp::Transpose(perm) => out(dtypes[0], infer_transpose(&c, perm)?),
            LayoutOp::Slice { begin, size } => out(dtypes[0], infer_slice(&c, begin, size)?),
            LayoutOp::StridedSlice(spec) => {
                let (axes, unknown) = spec::resolve_unknown(self.tf_name(), spec, x())?;
                out(dtypes[0], sliced_shape(&axes, &unknown))
            }
            LayoutOp::StridedSliceGrad(spec) => {
                let dy = &shapes[1];
                let (axes, unknown) = spec::resolve_unknown(self.tf_name(), spec, x())?;
                let want = sliced_shape(&axes, &unknown);
                if want.len() != dy.len() || !want.iter().zip(dy).all(|(&a, &b)| dims_match(a, b)) {
                    return Err(c.err(format!(
                        "gradient of shape {} does not match the slice {} of {}",
                        shape_str(dy),
                        shape_str(&want),
                        shape_str(x())
                    )));
                }
                out(dtypes[1], x().clone())
            }
            LayoutOp::Pad { paddings, .. } => {
                let shape = per_axis(&c, paddings, "paddings", |n, p| n + (p[0] + p[1]) as i64)?;
                out(dtypes[0], shape)
            }
            LayoutOp::Tile { multiples } => {
                let shape = per_axis(&c, multiples, "multiples", |n, &m| n * m as i64)?;
                out(dtypes[0], shape)
            }
            LayoutOp::Concat { axis } => {
                let shape = infer_concat(&c, *axis)?;
                out(dtypes[0], shape)
            }
        }
    }

    fn grad(
        &self,
        g: &mut Graph,
        node: &Node,
        _y: Tensor,
        dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let x = node.inputs[0];
        let one = |t: Tensor| Ok(vec![Some(t)]);
        match self {
            LayoutOp::Identity => one(dy),
            LayoutOp::Cast(_) => {
                let from = g.dtype(x);
                if from.is_float() {
                    one(g.cast(dy, from)?)
                } else {
                    Ok(vec![None])
                }
            }
            LayoutOp::Reshape(_) => one(g.reshape_like(dy, x)?),
            LayoutOp::ReshapeLike => Ok(vec![Some(g.reshape_like(dy, x)?), None]),
            LayoutOp::Transpose(perm) => {
                let mut inv = vec![0; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    inv[p] = i;
                }
                one(g.transpose(dy, &inv)?)
            }
            LayoutOp::Slice { begin, size } => {
                let spec = StridedSpec::from_slice(begin, size);
                one(g.layout(LayoutOp::StridedSliceGrad(spec), &[x, dy], "SliceGrad")?)
            }
            LayoutOp::StridedSlice(spec) => one(g.layout(
                LayoutOp::StridedSliceGrad(spec.clone()),
                &[x, dy],
                "StridedSliceGrad",
            )?),
            LayoutOp::StridedSliceGrad(spec) => Ok(vec![
                None,
                Some(g.layout(LayoutOp::StridedSlice(spec.clone()), &[dy], "StridedSlice")?),
            ]),
            LayoutOp::Pad { paddings, .. } => {
                one(g.layout(LayoutOp::StridedSlice(unpad_spec(paddings)), &[dy], "Slice")?)
            }
            LayoutOp::Tile { multiples } => one(grad_tile(g, node, multiples, dy)?),
            LayoutOp::Concat { axis } => grad_concat(g, node, *axis, dy),
        }
    }

    fn eval(&self, ins: &[&Value], _dtype: DType, out_shape: &[usize]) -> Result<Vec<f64>> {
        reference::eval(self, ins, out_shape)
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
        let shape_attrs = |t| vec![("T", TfAttr::Type(t)), ("Tshape", i32t())];
        match self {
            LayoutOp::Identity => e.attrs(vec![("T", TfAttr::Type(t))]),
            LayoutOp::Cast(to) => e.attrs(vec![
                ("SrcT", TfAttr::Type(t)),
                ("DstT", TfAttr::Type(*to)),
                ("Truncate", TfAttr::Bool(false)),
            ]),
            LayoutOp::Reshape(target) => {
                let s = e.i32s("shape", target);
                e.inputs.push(s);
                e.attrs(shape_attrs(t));
            }
            LayoutOp::ReshapeLike => {
                e.inputs[1] = e.shape_of("Shape", &e.input(1), e.input_dtype(1));
                e.attrs(shape_attrs(t));
            }
            LayoutOp::Transpose(perm) => {
                let p: Vec<i64> = perm.iter().map(|&x| x as i64).collect();
                let p = e.i32s("perm", &p);
                e.inputs.push(p);
                e.attrs(vec![("T", TfAttr::Type(t)), ("Tperm", i32t())]);
            }
            LayoutOp::Slice { begin, size } => {
                let b = e.i32s("begin", begin);
                let s = e.i32s("size", size);
                e.inputs.extend([b, s]);
                e.attrs(vec![("T", TfAttr::Type(t)), ("Index", i32t())]);
            }
            LayoutOp::StridedSlice(spec) => {
                let b = e.i32s("stack", &spec.begin);
                let end = e.i32s("stack_1", &spec.end);
                let s = e.i32s("stack_2", &spec.strides);
                e.inputs.extend([b, end, s]);
                e.attrs(strided_attrs(spec, t));
            }
            LayoutOp::StridedSliceGrad(spec) => {
                let shape = e.shape_of("Shape", &e.input(0), t);
                let b = e.i32s("stack", &spec.begin);
                let end = e.i32s("stack_1", &spec.end);
                let s = e.i32s("stack_2", &spec.strides);
                e.inputs = vec![shape, b, end, s, e.input(1)];
                e.attrs(strided_attrs(spec, e.input_dtype(1)));
            }
            LayoutOp::Pad { paddings, value } => export_pad(e, paddings, *value),
            LayoutOp::Tile { multiples } => {
                let m: Vec<i64> = multiples.iter().map(|&x| x as i64).collect();
                let m = e.i32s("multiples", &m);
                e.inputs.push(m);
                e.attrs(vec![("T", TfAttr::Type(t)), ("Tmultiples", i32t())]);
            }
            LayoutOp::Concat { axis } => {
                let a = e.i32("axis", *axis as i64);
                let n = e.inputs.len() as i64;
                e.inputs.push(a);
                e.attrs(vec![
                    ("T", TfAttr::Type(t)),
                    ("N", TfAttr::Int(n)),
                    ("Tidx", i32t()),
                ]);
            }
        }
    }

    fn shape_only_input(&self, k: usize) -> bool {
        match self {
            LayoutOp::ReshapeLike => k == 1,
            LayoutOp::StridedSliceGrad(_) => k == 0,
            LayoutOp::Identity
            | LayoutOp::Cast(_)
            | LayoutOp::Reshape(_)
            | LayoutOp::Transpose(_)
            | LayoutOp::Slice { .. }
            | LayoutOp::StridedSlice(_)
            | LayoutOp::Pad { .. }
            | LayoutOp::Tile { .. }
            | LayoutOp::Concat { .. } => false,
        }
    }
}
