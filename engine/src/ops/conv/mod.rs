//! The convolution family: 2-D convolutions and pooling over NHWC tensors, with their
//! gradients (`shaders/conv.wgsl`).
//!
//! `geometry.rs` holds the window arithmetic the shape rule, the reference
//! (`reference.rs`) and the kernel binding (`kernel.rs`) share, so the three agree on
//! every output size and padding.

mod geometry;
#[cfg(feature = "gpu")]
mod kernel;
mod reference;

pub use geometry::{Axis, Conv, Padding, Pool, Window, axis};

use super::Op;
use super::export::{Export, TfAttr};
use super::family::Family;
use super::infer::{Check, Inferred, dims_match};
use crate::error::Result;
use crate::graph::{Graph, Node, Tensor};
use crate::reference::Value;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder};
use crate::tensor::{DType, shape_str};

/// The ops of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvOp {
    /// 2-D convolution of an NHWC input (input 0) with an HWIO filter (input 1).
    Conv2D(Conv),
    /// The gradient of [`ConvOp::Conv2D`] with respect to its input: inputs (input, read
    /// for its shape only; filter; dy).
    Conv2DBackpropInput(Conv),
    /// The gradient of [`ConvOp::Conv2D`] with respect to its filter: inputs (input;
    /// filter, read for its shape only; dy).
    Conv2DBackpropFilter(Conv),
    /// Depthwise 2-D convolution of an NHWC input (input 0, `c` channels) with a filter
    /// `[h, w, c, m]` (input 1): each channel convolved with its own `m` filters, output
    /// channel `k * m + j` from input channel `k` and filter `j` (TF's
    /// `DepthwiseConv2dNative`).
    DepthwiseConv2D(Conv),
    /// The gradient of [`ConvOp::DepthwiseConv2D`] with respect to its input: inputs
    /// (input, read for its shape only; filter; dy).
    DepthwiseConv2DBackpropInput(Conv),
    /// The gradient of [`ConvOp::DepthwiseConv2D`] with respect to its filter: inputs
    /// (input; filter, read for its shape only; dy).
    DepthwiseConv2DBackpropFilter(Conv),
    /// Maximum over windows of an NHWC input (padding never wins).
    MaxPool(Pool),
    /// The gradient of [`ConvOp::MaxPool`]: inputs (input, dy); each window's gradient
    /// goes to its first maximum, as in TF.
    MaxPoolGrad(Pool),
    /// Mean over windows of an NHWC input (padding not counted).
    AvgPool(Pool),
    /// The gradient of [`ConvOp::AvgPool`]: inputs (input, read for its shape only; dy).
    AvgPoolGrad(Pool),
}

impl ConvOp {
    /// The convolution attrs of a convolution op.
    fn conv(&self) -> Option<&Conv> {
        match self {
            ConvOp::Conv2D(c)
            | ConvOp::Conv2DBackpropInput(c)
            | ConvOp::Conv2DBackpropFilter(c)
            | ConvOp::DepthwiseConv2D(c)
            | ConvOp::DepthwiseConv2DBackpropInput(c)
            | ConvOp::DepthwiseConv2DBackpropFilter(c) => Some(c),
            ConvOp::MaxPool(_)
            | ConvOp::MaxPoolGrad(_)
            | ConvOp::AvgPool(_)
            | ConvOp::AvgPoolGrad(_) => None,
        }
    }

    /// Whether the op is a depthwise convolution or one of its gradients.
    fn depthwise(&self) -> bool {
        matches!(
            self,
            ConvOp::DepthwiseConv2D(_)
                | ConvOp::DepthwiseConv2DBackpropInput(_)
                | ConvOp::DepthwiseConv2DBackpropFilter(_)
        )
    }

    /// Whether the op is a forward convolution (not a gradient).
    fn forward(&self) -> bool {
        matches!(self, ConvOp::Conv2D(_) | ConvOp::DepthwiseConv2D(_))
    }

    /// The window attrs of a pooling op.
    fn pool(&self) -> Option<&Pool> {
        match self {
            ConvOp::MaxPool(p)
            | ConvOp::MaxPoolGrad(p)
            | ConvOp::AvgPool(p)
            | ConvOp::AvgPoolGrad(p) => Some(p),
            ConvOp::Conv2D(_)
            | ConvOp::Conv2DBackpropInput(_)
            | ConvOp::Conv2DBackpropFilter(_)
            | ConvOp::DepthwiseConv2D(_)
            | ConvOp::DepthwiseConv2DBackpropInput(_)
            | ConvOp::DepthwiseConv2DBackpropFilter(_) => None,
        }
    }
}

impl Graph {
    /// 2-D convolution of NHWC `x` with HWIO `filter` (TF's `tf.nn.conv2d`).
    /// InvalidArgument when the channels disagree or a VALID window does not fit.
    pub fn conv2d(&mut self, x: Tensor, filter: Tensor, conv: Conv) -> Result<Tensor> {
        self.add_op(Op::Conv(ConvOp::Conv2D(conv)), &[x, filter], "Conv2D")
    }

    /// Depthwise 2-D convolution of NHWC `x` (`c` channels) with `filter` of shape
    /// `[h, w, c, m]`: `c * m` output channels (TF's `tf.nn.depthwise_conv2d`).
    /// InvalidArgument when the channels disagree or a VALID window does not fit.
    pub fn depthwise_conv2d(&mut self, x: Tensor, filter: Tensor, conv: Conv) -> Result<Tensor> {
        let op = Op::Conv(ConvOp::DepthwiseConv2D(conv));
        self.add_op(op, &[x, filter], "DepthwiseConv2dNative")
    }

    /// Max pooling over NHWC `x` (TF's `tf.nn.max_pool2d`).
    pub fn max_pool(&mut self, x: Tensor, pool: Pool) -> Result<Tensor> {
        self.add_op(Op::Conv(ConvOp::MaxPool(pool)), &[x], "MaxPool")
    }

    /// Average pooling over NHWC `x`, padding not counted (TF's `tf.nn.avg_pool2d`).
    pub fn avg_pool(&mut self, x: Tensor, pool: Pool) -> Result<Tensor> {
        self.add_op(Op::Conv(ConvOp::AvgPool(pool)), &[x], "AvgPool")
    }
}

/// Output height and width of a window over NHWC `x` (`-1` where the input's is unknown).
fn spatial(
    c: &Check<'_>,
    x: &[i64],
    k: [usize; 2],
    strides: [usize; 2],
    dilations: [usize; 2],
    padding: Padding,
) -> Result<(i64, i64)> {
    let one = |d: i64, i: usize| -> Result<i64> {
        // An unknown size still has its attrs checked, against a size any window fits.
        let known = if d < 0 {
            k[i] * dilations[i].max(1)
        } else {
            d as usize
        };
        let a = axis(known, k[i], strides[i], dilations[i], padding)
            .map_err(|e| c.err(format!("input of shape {}: {}", shape_str(x), e.message)))?;
        Ok(if d < 0 { -1 } else { a.out as i64 })
    };
    Ok((one(x[1], 0)?, one(x[2], 1)?))
}

/// Checks that `dy` matches the output shape `want` of the forward op.
fn check_dy(c: &Check<'_>, dy: &[i64], want: &[i64], of: String) -> Result<()> {
    if dy.len() != want.len() || !want.iter().zip(dy).all(|(&a, &b)| dims_match(a, b)) {
        return Err(c.err(format!(
            "gradient of shape {} does not match the {of}",
            shape_str(dy),
        )));
    }
    Ok(())
}

fn infer_conv(c: &Check<'_>, op: &ConvOp, conv: &Conv) -> Result<Inferred> {
    let s = c.shapes;
    if op.forward() {
        c.arity(2)?;
        c.float_only(0)?;
        c.float_only(1)?;
    } else {
        c.arity(3)?;
        c.float_only(2)?;
    }
    let (x, f) = (&s[0], &s[1]);
    c.rank4(0, "input")?;
    c.rank4(1, "filter")?;
    if op.forward() {
        if f.iter().any(|&d| d < 1) {
            return Err(c.err(format!(
                "filter shape {} must be known and positive",
                shape_str(f)
            )));
        }
        if !dims_match(x[3], f[2]) {
            return Err(c.err(format!(
                "input of shape {} has {} channels but the filter of shape {} expects {}",
                shape_str(x),
                x[3],
                shape_str(f),
                f[2]
            )));
        }
    }
    let k = [f[0].max(1) as usize, f[1].max(1) as usize];
    let (oh, ow) = spatial(c, x, k, conv.strides, conv.dilations, conv.padding)?;
    let channels = if !op.depthwise() {
        f[3]
    } else if f[2] < 0 || f[3] < 0 {
        -1
    } else {
        f[2] * f[3]
    };
    let y = vec![x[0], oh, ow, channels];
    let shape = match op {
        ConvOp::Conv2DBackpropInput(_)
        | ConvOp::Conv2DBackpropFilter(_)
        | ConvOp::DepthwiseConv2DBackpropInput(_)
        | ConvOp::DepthwiseConv2DBackpropFilter(_) => {
            c.rank4(2, "gradient")?;
            let of = format!(
                "output {} of input {} and filter {}",
                shape_str(&y),
                shape_str(x),
                shape_str(f)
            );
            check_dy(c, &s[2], &y, of)?;
            if let ConvOp::Conv2DBackpropInput(_) | ConvOp::DepthwiseConv2DBackpropInput(_) = op {
                x.clone()
            } else {
                f.clone()
            }
        }
        ConvOp::Conv2D(_)
        | ConvOp::DepthwiseConv2D(_)
        | ConvOp::MaxPool(_)
        | ConvOp::MaxPoolGrad(_)
        | ConvOp::AvgPool(_)
        | ConvOp::AvgPoolGrad(_) => y,
    };
    Ok(Inferred {
        dtype: DType::F32,
        shape,
    })
}

fn infer_pool(c: &Check<'_>, op: &ConvOp, p: &Pool) -> Result<Inferred> {
    let grad = matches!(op, ConvOp::MaxPoolGrad(_) | ConvOp::AvgPoolGrad(_));
    c.arity(if grad { 2 } else { 1 })?;
    c.float_only(if grad { 1 } else { 0 })?;
    let x = &c.shapes[0];
    c.rank4(0, "input")?;
    let (oh, ow) = spatial(c, x, p.ksize, p.strides, [1, 1], p.padding)?;
    let y = vec![x[0], oh, ow, x[3]];
    let shape = if grad {
        let of = format!("pooled shape {} of input {}", shape_str(&y), shape_str(x));
        check_dy(c, &c.shapes[1], &y, of)?;
        x.clone()
    } else {
        y
    };
    Ok(Inferred {
        dtype: DType::F32,
        shape,
    })
}

impl Family for ConvOp {
    fn tf_name(&self) -> &'static str {
        match self {
            ConvOp::Conv2D(_) => "Conv2D",
            ConvOp::Conv2DBackpropInput(_) => "Conv2DBackpropInput",
            ConvOp::Conv2DBackpropFilter(_) => "Conv2DBackpropFilter",
            ConvOp::DepthwiseConv2D(_) => "DepthwiseConv2dNative",
            ConvOp::DepthwiseConv2DBackpropInput(_) => "DepthwiseConv2dNativeBackpropInput",
            ConvOp::DepthwiseConv2DBackpropFilter(_) => "DepthwiseConv2dNativeBackpropFilter",
            ConvOp::MaxPool(_) => "MaxPool",
            ConvOp::MaxPoolGrad(_) => "MaxPoolGrad",
            ConvOp::AvgPool(_) => "AvgPool",
            ConvOp::AvgPoolGrad(_) => "AvgPoolGrad",
        }
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(self.tf_name(), dtypes, shapes);
        match self {
            ConvOp::Conv2D(k)
            | ConvOp::Conv2DBackpropInput(k)
            | ConvOp::Conv2DBackpropFilter(k)
            | ConvOp::DepthwiseConv2D(k)
            | ConvOp::DepthwiseConv2DBackpropInput(k)
            | ConvOp::DepthwiseConv2DBackpropFilter(k) => infer_conv(&c, self, k),
            ConvOp::MaxPool(p)
            | ConvOp::MaxPoolGrad(p)
            | ConvOp::AvgPool(p)
            | ConvOp::AvgPoolGrad(p) => infer_pool(&c, self, p),
        }
    }

    fn grad(
        &self,
        g: &mut Graph,
        node: &Node,
        _y: Tensor,
        dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let x = &node.inputs;
        let op = |o: ConvOp| Op::Conv(o);
        match self {
            ConvOp::Conv2D(c) => {
                let ins = [x[0], x[1], dy];
                let dx = g.add_op(
                    op(ConvOp::Conv2DBackpropInput(*c)),
                    &ins,
                    "Conv2DBackpropInput",
                )?;
                let df = g.add_op(
                    op(ConvOp::Conv2DBackpropFilter(*c)),
                    &ins,
                    "Conv2DBackpropFilter",
                )?;
                Ok(vec![Some(dx), Some(df)])
            }
            ConvOp::DepthwiseConv2D(c) => {
                let ins = [x[0], x[1], dy];
                let dx = op(ConvOp::DepthwiseConv2DBackpropInput(*c));
                let dx = g.add_op(dx, &ins, "DepthwiseConv2dNativeBackpropInput")?;
                let df = op(ConvOp::DepthwiseConv2DBackpropFilter(*c));
                let df = g.add_op(df, &ins, "DepthwiseConv2dNativeBackpropFilter")?;
                Ok(vec![Some(dx), Some(df)])
            }
            ConvOp::MaxPool(p) => Ok(vec![Some(g.add_op(
                op(ConvOp::MaxPoolGrad(*p)),
                &[x[0], dy],
                "MaxPoolGrad",
            )?)]),
            ConvOp::AvgPool(p) => Ok(vec![Some(g.add_op(
                op(ConvOp::AvgPoolGrad(*p)),
                &[x[0], dy],
                "AvgPoolGrad",
            )?)]),
            ConvOp::Conv2DBackpropInput(_)
            | ConvOp::Conv2DBackpropFilter(_)
            | ConvOp::DepthwiseConv2DBackpropInput(_)
            | ConvOp::DepthwiseConv2DBackpropFilter(_)
            | ConvOp::MaxPoolGrad(_)
            | ConvOp::AvgPoolGrad(_) => Err(super::family::not_differentiable(self, node)),
        }
    }

    fn eval(&self, ins: &[&Value], _dtype: DType, _out_shape: &[usize]) -> Result<Vec<f64>> {
        reference::eval(self, ins)
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
        let nhwc = |v: [usize; 2]| TfAttr::Ints(vec![1, v[0] as i64, v[1] as i64, 1]);
        let padding = |p: Padding| TfAttr::Str(p.tf_name().into());
        // TF's gradients take shapes where wgtrain's read an input for its shape.
        for k in 0..3 {
            if self.shape_only_input(k) {
                let shape = e.shape_of("Shape", &e.input(k), e.input_dtype(k));
                e.inputs[k] = shape;
            }
        }
        if let Some(c) = self.conv() {
            e.attrs(vec![
                ("T", TfAttr::Type(DType::F32)),
                ("strides", nhwc(c.strides)),
                ("dilations", nhwc(c.dilations)),
                ("padding", padding(c.padding)),
                ("data_format", TfAttr::Str("NHWC".into())),
            ]);
            if !self.depthwise() {
                e.attrs(vec![("use_cudnn_on_gpu", TfAttr::Bool(true))]);
            }
        }
        if let Some(p) = self.pool() {
            let attrs = vec![
                ("T", TfAttr::Type(DType::F32)),
                ("ksize", nhwc(p.ksize)),
                ("strides", nhwc(p.strides)),
                ("padding", padding(p.padding)),
                ("data_format", TfAttr::Str("NHWC".into())),
            ];
            if let ConvOp::MaxPoolGrad(_) = self {
                // TF's MaxPoolGrad takes the pooled output too: pooled again here.
                let pooled = e.node("MaxPool", "MaxPool", vec![e.input(0)], attrs.clone());
                e.inputs = vec![e.input(0), pooled, e.input(1)];
            }
            e.attrs(attrs);
        }
    }

    fn shape_only_input(&self, k: usize) -> bool {
        match self {
            ConvOp::Conv2DBackpropInput(_)
            | ConvOp::DepthwiseConv2DBackpropInput(_)
            | ConvOp::AvgPoolGrad(_) => k == 0,
            ConvOp::Conv2DBackpropFilter(_) | ConvOp::DepthwiseConv2DBackpropFilter(_) => k == 1,
            ConvOp::Conv2D(_)
            | ConvOp::DepthwiseConv2D(_)
            | ConvOp::MaxPool(_)
            | ConvOp::MaxPoolGrad(_)
            | ConvOp::AvgPool(_) => false,
        }
    }
}
