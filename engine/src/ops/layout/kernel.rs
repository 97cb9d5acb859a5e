//! The layout family's kernel bindings: `remap.wgsl` (slices, padding, tiling, the
//! scatter of a slice's gradient, the parts of a concatenation), `layout.wgsl`'s strided
//! gather (transposes) and `elementwise.wgsl`'s `convert` (casts).

use super::{LayoutOp, SliceAxis, StridedSpec};
use crate::error::Result;
use crate::reference::eval::strides;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::params::EwParams;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder, dt_code, pack, rank_ok, words};
#[cfg(feature = "gpu")]
use crate::runtime::shaders::Shader;
use crate::tensor::{DType, num_elements as numel};
#[cfg(feature = "gpu")]
use bytemuck::{Pod, Zeroable};

/// Mirrors `Remap` in `remap.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RemapParams {
    n: u32,
    rank: u32,
    words: u32,
    fill: u32,
    fill_hi: u32,
    pad: [u32; 3],
    out_shape: [u32; 8],
    in_shape: [u32; 8],
    a: [i32; 8],
    b: [i32; 8],
    cnt: [u32; 8],
}

/// `remap.wgsl`'s `MODE`: how an output coordinate finds its input element.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Mode {
    /// `in = a + out * b`.
    Slice = 0,
    /// `in = out - a`, the fill outside.
    Pad = 1,
    /// `in = out mod size`.
    Tile = 2,
    /// `in = (out - a) / b` where that is a whole index below `cnt`, else zero.
    SliceGrad = 3,
}

/// One `remap` dispatch: the output (of `out_shape`) from `src` (of `in_shape`), with
/// the per-axis vectors of its mode.
struct Remap<'a> {
    mode: Mode,
    src: &'a Arg<'a>,
    in_shape: &'a [usize],
    a: Vec<i64>,
    b: Vec<i64>,
    cnt: Vec<usize>,
    fill: f32,
}

impl<'a> Remap<'a> {
    fn new(mode: Mode, src: &'a Arg<'a>) -> Remap<'a> {
        Remap {
            mode,
            src,
            in_shape: src.shape,
            a: Vec::new(),
            b: Vec::new(),
            cnt: Vec::new(),
            fill: 0.0,
        }
    }
}

fn pack_i(v: &[i64]) -> [i32; 8] {
    let mut out = [0i32; 8];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = x as i32;
    }
    out
}

/// The bits of `value` as an element of `dtype` (low word, high word).
fn fill_bits(value: f32, dtype: DType) -> (u32, u32) {
    match dtype {
        DType::F32 => (value.to_bits(), 0),
        DType::I64 => {
            let v = value as i64;
            (v as u32, (v >> 32) as u32)
        }
        DType::Bool => (u32::from(value != 0.0), 0),
        DType::I32 => (value as i32 as u32, 0),
        DType::U32 => (value as u32, 0),
    }
}

fn remap(rec: &mut Recorder<'_>, r: &Remap<'_>, out: &Loc, out_shape: &[usize]) -> Result<()> {
    rank_ok(out_shape.len())?;
    let n = numel(out_shape);
    if n == 0 {
        return Ok(());
    }
    let w = words(r.src.dtype);
    let (fill, fill_hi) = fill_bits(r.fill, r.src.dtype);
    let p = RemapParams {
        n: n as u32,
        rank: out_shape.len() as u32,
        words: w as u32,
        fill,
        fill_hi,
        pad: [0; 3],
        out_shape: pack(out_shape),
        in_shape: pack(r.in_shape),
        a: pack_i(&r.a),
        b: pack_i(&r.b),
        cnt: pack(&r.cnt),
    };
    let groups = rec.groups_1d((n * w) as u64)?;
    rec.dispatch(
        Shader::Remap,
        "remap",
        vec![("MODE", r.mode as u32)],
        bytemuck::bytes_of(&p),
        &[(1, r.src.loc), (3, out)],
        groups,
    )
}

/// The gradient `dy` of the slice `axes` scattered into zeros of the sliced input's
/// shape `out_shape`.
fn slice_grad(
    rec: &mut Recorder<'_>,
    dy: &Arg<'_>,
    axes: &[SliceAxis],
    out: &Loc,
    out_shape: &[usize],
) -> Result<()> {
    let full: Vec<usize> = axes.iter().map(|a| a.count).collect();
    let mut r = Remap::new(Mode::SliceGrad, dy);
    r.in_shape = &full;
    r.a = axes.iter().map(|a| a.start).collect();
    r.b = axes.iter().map(|a| a.step).collect();
    r.cnt = full.clone();
    remap(rec, &r, out, out_shape)
}

/// One `concat_part` dispatch per input: its rows go to their place in the output's.
fn concat(
    rec: &mut Recorder<'_>,
    ins: &[Arg<'_>],
    axis: usize,
    out: &Loc,
    out_shape: &[usize],
) -> Result<()> {
    let inner = numel(&out_shape[axis + 1..]);
    let w = words(ins[0].dtype);
    let whole = out_shape[axis] * inner * w;
    let mut start = 0;
    for x in ins {
        let part = x.shape[axis] * inner * w;
        let count = numel(x.shape) * w;
        if count > 0 {
            let mut p: RemapParams = Zeroable::zeroed();
            p.n = count as u32;
            p.a[0] = part as i32;
            p.a[1] = whole as i32;
            p.a[2] = start as i32;
            let groups = rec.groups_1d(count as u64)?;
            rec.dispatch(
                Shader::Remap,
                "concat_part",
                vec![],
                bytemuck::bytes_of(&p),
                &[(1, x.loc), (3, out)],
                groups,
            )?;
        }
        start += part;
    }
    Ok(())
}

fn cast(rec: &mut Recorder<'_>, x: &Arg<'_>, to: DType, out: &Loc, n: usize) -> Result<()> {
    if x.dtype == to {
        rec.copy(x.loc, out);
        return Ok(());
    }
    let p = EwParams::flat(n);
    let groups = rec.groups_1d(n as u64)?;
    rec.dispatch(
        Shader::Elementwise,
        "convert",
        vec![("SRC", dt_code(x.dtype)), ("DST", dt_code(to))],
        bytemuck::bytes_of(&p),
        &[(1, x.loc), (3, out)],
        groups,
    )
}

/// Records the kernels of `op` computing `out` (of `out_shape`) from `ins`.
pub(super) fn record(
    op: &LayoutOp,
    rec: &mut Recorder<'_>,
    ins: &[Arg<'_>],
    out: &Loc,
    out_shape: &[usize],
) -> Result<()> {
    let x = &ins[0];
    match op {
        // The planner gives a reshape its input's buffer.
        LayoutOp::Reshape(_) | LayoutOp::ReshapeLike => Ok(()),
        LayoutOp::Identity => {
            rec.copy(x.loc, out);
            Ok(())
        }
        LayoutOp::Cast(to) => cast(rec, x, *to, out, numel(out_shape)),
        LayoutOp::Transpose(perm) => {
            let xs = strides(x.shape);
            let st: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
            rec.gather(x, out, out_shape, st, None)
        }
        LayoutOp::Slice { begin, size } => {
            let axes = StridedSpec::from_slice(begin, size).resolve(x.shape)?;
            slice_forward(rec, x, &axes, out)
        }
        LayoutOp::StridedSlice(spec) => slice_forward(rec, x, &spec.resolve(x.shape)?, out),
        LayoutOp::StridedSliceGrad(spec) => {
            let axes = spec.resolve(x.shape)?;
            slice_grad(rec, &ins[1], &axes, out, out_shape)
        }
        LayoutOp::Pad { paddings, value } => {
            let mut r = Remap::new(Mode::Pad, x);
            r.a = paddings.iter().map(|p| p[0] as i64).collect();
            r.fill = *value;
            remap(rec, &r, out, out_shape)
        }
        LayoutOp::Tile { .. } => {
            if numel(x.shape) == 0 {
                return Ok(());
            }
            remap(rec, &Remap::new(Mode::Tile, x), out, out_shape)
        }
        LayoutOp::Concat { axis } => concat(rec, ins, *axis, out, out_shape),
    }
}

/// The slice `axes` of `x` (shrunk axes kept as size 1: the output's layout is the
/// same).
fn slice_forward(rec: &mut Recorder<'_>, x: &Arg<'_>, axes: &[SliceAxis], out: &Loc) -> Result<()> {
    let full: Vec<usize> = axes.iter().map(|a| a.count).collect();
    let mut r = Remap::new(Mode::Slice, x);
    r.a = axes.iter().map(|a| a.start).collect();
    r.b = axes.iter().map(|a| a.step).collect();
    remap(rec, &r, out, &full)
}
