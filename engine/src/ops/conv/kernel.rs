//! Binding of `conv.wgsl`: convolutions and pooling.

use super::{ConvOp, Window};
use crate::error::{Error, Result};
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder};
#[cfg(feature = "gpu")]
use crate::runtime::shaders::Shader;
use crate::tensor::num_elements as numel;
#[cfg(feature = "gpu")]
use bytemuck::{Pod, Zeroable};

/// Mirrors `Geo` in `conv.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct GeoParams {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub oh: u32,
    pub ow: u32,
    pub oc: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    pub dh: u32,
    pub dw: u32,
    pub pt: u32,
    pub pl: u32,
    pub pad: u32,
}

fn geo(w: &Window, c: usize, oc: usize) -> GeoParams {
    let u = |v: usize| v as u32;
    GeoParams {
        n: u(w.n),
        h: u(w.h),
        w: u(w.w),
        c: u(c),
        oh: u(w.oh),
        ow: u(w.ow),
        oc: u(oc),
        kh: u(w.k[0]),
        kw: u(w.k[1]),
        sh: u(w.s[0]),
        sw: u(w.s[1]),
        dh: u(w.d[0]),
        dw: u(w.d[1]),
        pt: u(w.pad[0]),
        pl: u(w.pad[1]),
        pad: 0,
    }
}

/// The workgroups of a `rows x cols` output in 32x32 tiles.
fn tiles(rec: &Recorder<'_>, rows: usize, cols: usize, what: &str) -> Result<[u32; 3]> {
    let max = rec.gpu.limits.max_compute_workgroups_per_dimension as usize;
    let g = [cols.div_ceil(32), rows.div_ceil(32)];
    if g.iter().any(|&v| v > max) {
        return Err(Error::resource_exhausted(format!(
            "{what} of {rows}x{cols} needs {g:?} workgroups; the device allows {max} per dimension"
        )));
    }
    Ok([g[0] as u32, g[1] as u32, 1])
}

/// Records `op` with inputs `ins` (as the graph gives them) into `out` of `out_shape`.
pub(super) fn record(
    op: &ConvOp,
    rec: &mut Recorder<'_>,
    ins: &[Arg<'_>],
    out: &Loc,
    out_shape: &[usize],
) -> Result<()> {
    if numel(out_shape) == 0 {
        return Ok(());
    }
    match op {
        ConvOp::Conv2D(_) | ConvOp::Conv2DBackpropInput(_) | ConvOp::Conv2DBackpropFilter(_) => {
            conv(op, rec, ins, out)
        }
        ConvOp::DepthwiseConv2D(_)
        | ConvOp::DepthwiseConv2DBackpropInput(_)
        | ConvOp::DepthwiseConv2DBackpropFilter(_) => depthwise(op, rec, ins, out, out_shape),
        ConvOp::MaxPool(_)
        | ConvOp::AvgPool(_)
        | ConvOp::MaxPoolGrad(_)
        | ConvOp::AvgPoolGrad(_) => pool(op, rec, ins, out, out_shape),
    }
}

/// The window of convolution `op` over its input and filter (inputs 0 and 1, as the
/// graph gives them), or `None` when the op reaches nothing (an empty input, filter or
/// output: a gradient of zeros).
fn conv_window(op: &ConvOp, ins: &[Arg<'_>]) -> Result<Option<Window>> {
    let (x, f) = (ins[0].shape, ins[1].shape);
    let c = op
        .conv()
        .ok_or_else(|| Error::internal("conv: not a convolution"))?;
    let w = Window::new(x, [f[0], f[1]], c.strides, c.dilations, c.padding)?;
    let empty = numel(x) == 0 || numel(f) == 0 || w.oh * w.ow == 0;
    Ok((!empty).then_some(w))
}

/// A depthwise convolution or one of its gradients: one invocation per output element,
/// each summing over the window's taps (and, for the filter gradient, over the batch
/// and output pixels; for the input gradient, over the channel's filters).
fn depthwise(
    op: &ConvOp,
    rec: &mut Recorder<'_>,
    ins: &[Arg<'_>],
    out: &Loc,
    out_shape: &[usize],
) -> Result<()> {
    let f_shape = ins[1].shape;
    let Some(w) = conv_window(op, ins)? else {
        rec.clear(out);
        return Ok(());
    };
    let p = geo(&w, f_shape[2], f_shape[2] * f_shape[3]);
    let (entry, a, b) = match op {
        ConvOp::DepthwiseConv2DBackpropInput(_) => {
            ("depthwise_backprop_input", ins[2].loc, ins[1].loc)
        }
        ConvOp::DepthwiseConv2DBackpropFilter(_) => {
            ("depthwise_backprop_filter", ins[0].loc, ins[2].loc)
        }
        _ => ("depthwise", ins[0].loc, ins[1].loc),
    };
    let groups = rec.groups_1d(numel(out_shape) as u64)?;
    rec.dispatch(
        Shader::Conv,
        entry,
        vec![],
        bytemuck::bytes_of(&p),
        &[(1, a), (2, b), (3, out)],
        groups,
    )
}

/// A convolution or one of its gradients: an implicit matrix product in 32x32 tiles.
fn conv(op: &ConvOp, rec: &mut Recorder<'_>, ins: &[Arg<'_>], out: &Loc) -> Result<()> {
    let f_shape = ins[1].shape;
    let Some(w) = conv_window(op, ins)? else {
        rec.clear(out);
        return Ok(());
    };
    let p = geo(&w, f_shape[2], f_shape[3]);
    let (entry, a, b, rows, cols) = match op {
        ConvOp::Conv2DBackpropInput(_) => (
            "conv2d_backprop_input",
            ins[2].loc,
            ins[1].loc,
            w.n * w.h * w.w,
            f_shape[2],
        ),
        ConvOp::Conv2DBackpropFilter(_) => (
            "conv2d_backprop_filter",
            ins[0].loc,
            ins[2].loc,
            f_shape[0] * f_shape[1] * f_shape[2],
            f_shape[3],
        ),
        _ => (
            "conv2d",
            ins[0].loc,
            ins[1].loc,
            w.n * w.oh * w.ow,
            f_shape[3],
        ),
    };
    let groups = tiles(rec, rows, cols, super::Family::tf_name(op))?;
    rec.dispatch(
        Shader::Conv,
        entry,
        vec![],
        bytemuck::bytes_of(&p),
        &[(1, a), (2, b), (3, out)],
        groups,
    )
}

/// A pooling op or its gradient: one invocation per output element.
fn pool(
    op: &ConvOp,
    rec: &mut Recorder<'_>,
    ins: &[Arg<'_>],
    out: &Loc,
    out_shape: &[usize],
) -> Result<()> {
    let p = op
        .pool()
        .ok_or_else(|| Error::internal("pool: not a pooling op"))?;
    let x_shape = ins[0].shape;
    let w = Window::new(x_shape, p.ksize, p.strides, [1, 1], p.padding)?;
    let params = geo(&w, x_shape[3], x_shape[3]);
    let groups = rec.groups_1d(numel(out_shape) as u64)?;
    let (entry, defs, binds): (_, _, &[(u32, &Loc)]) = match op {
        ConvOp::MaxPool(_) => ("pool", vec![("POOL", 0)], &[(1, ins[0].loc), (3, out)]),
        ConvOp::AvgPool(_) => ("pool", vec![("POOL", 1)], &[(1, ins[0].loc), (3, out)]),
        ConvOp::MaxPoolGrad(_) => (
            "max_pool_grad",
            vec![],
            &[(1, ins[0].loc), (2, ins[1].loc), (3, out)],
        ),
        _ => (
            "avg_pool_grad",
            vec![],
            &[(1, ins[0].loc), (2, ins[1].loc), (3, out)],
        ),
    };
    rec.dispatch(
        Shader::Conv,
        entry,
        defs,
        bytemuck::bytes_of(&params),
        binds,
        groups,
    )
}
