//! The layout family's reference: plain loops over `f64` values.

use super::{LayoutOp, SliceAxis, StridedSpec};
use crate::error::Result;
use crate::reference::Value;
use crate::reference::eval::{cast_value, gather_index, strides};
use crate::tensor::DType;

/// The output of `op` on `ins`.
pub(super) fn eval(op: &LayoutOp, ins: &[&Value], out_shape: &[usize]) -> Result<Vec<f64>> {
    let x = ins[0];
    Ok(match op {
        LayoutOp::Identity | LayoutOp::Reshape(_) | LayoutOp::ReshapeLike => x.data.clone(),
        LayoutOp::Cast(to) => x.data.iter().map(|&v| convert(v, x.dtype, *to)).collect(),
        LayoutOp::Transpose(perm) => transpose(x, perm, out_shape),
        LayoutOp::Slice { begin, size } => {
            strided_slice(x, &StridedSpec::from_slice(begin, size).resolve(&x.shape)?)
        }
        LayoutOp::StridedSlice(spec) => strided_slice(x, &spec.resolve(&x.shape)?),
        LayoutOp::StridedSliceGrad(spec) => strided_slice_grad(&x.shape, spec, ins[1])?,
        LayoutOp::Pad { paddings, value } => pad(x, paddings, f64::from(*value), out_shape),
        LayoutOp::Tile { .. } => tile(x, out_shape),
        LayoutOp::Concat { axis } => concat(ins, *axis, out_shape),
    })
}

/// `x` with its axes permuted.
fn transpose(x: &Value, perm: &[usize], out_shape: &[usize]) -> Vec<f64> {
    let st = strides(&x.shape);
    let pst: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
    let n: usize = out_shape.iter().product();
    (0..n)
        .map(|i| x.data[gather_index(i, out_shape, &pst)])
        .collect()
}

/// Coordinates of flat index `i` in `shape`.
fn coords(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut c = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        let n = shape[d].max(1);
        c[d] = i % n;
        i /= n;
    }
    c
}

/// Converts `v` of dtype `from` to `to` as the device does: integer sources wrap (two's
/// complement truncation), float sources truncate toward zero and saturate.
fn convert(v: f64, from: DType, to: DType) -> f64 {
    if from == to {
        return v;
    }
    if from.is_int() || from == DType::Bool {
        let i = v as i64;
        return match to {
            DType::F32 => i as f32 as f64,
            DType::I32 => f64::from(i as i32),
            DType::U32 => f64::from(i as u32),
            DType::I64 => i as f64,
            DType::Bool => f64::from(u8::from(i != 0)),
        };
    }
    cast_value(v, to)
}

/// The elements of `x` at `start + k * step` per axis (shrunk axes dropped).
pub fn strided_slice(x: &Value, axes: &[SliceAxis]) -> Vec<f64> {
    let full: Vec<usize> = axes.iter().map(|a| a.count).collect();
    let st = strides(&x.shape);
    let n: usize = full.iter().product();
    (0..n)
        .map(|i| {
            let c = coords(i, &full);
            let off: i64 = c
                .iter()
                .zip(axes)
                .zip(&st)
                .map(|((&k, a), &s)| (a.start + k as i64 * a.step) * s as i64)
                .sum();
            x.data[off as usize]
        })
        .collect()
}

/// `dy` scattered into zeros of `x_shape` at the positions of the slice `spec`.
pub fn strided_slice_grad(x_shape: &[usize], spec: &StridedSpec, dy: &Value) -> Result<Vec<f64>> {
    let axes = spec.resolve(x_shape)?;
    let full: Vec<usize> = axes.iter().map(|a| a.count).collect();
    let st = strides(x_shape);
    let mut dx = vec![0.0; x_shape.iter().product()];
    for (i, &v) in dy.data.iter().enumerate() {
        let c = coords(i, &full);
        let off: i64 = c
            .iter()
            .zip(&axes)
            .zip(&st)
            .map(|((&k, a), &s)| (a.start + k as i64 * a.step) * s as i64)
            .sum();
        dx[off as usize] += v;
    }
    Ok(dx)
}

/// Constant padding.
pub fn pad(x: &Value, paddings: &[[usize; 2]], value: f64, out_shape: &[usize]) -> Vec<f64> {
    let n: usize = out_shape.iter().product();
    let st = strides(&x.shape);
    (0..n)
        .map(|i| {
            let c = coords(i, out_shape);
            let mut off = 0;
            for d in 0..c.len() {
                let k = c[d] as i64 - paddings[d][0] as i64;
                if k < 0 || k >= x.shape[d] as i64 {
                    return value;
                }
                off += k as usize * st[d];
            }
            x.data[off]
        })
        .collect()
}

/// Repetition along each axis.
pub fn tile(x: &Value, out_shape: &[usize]) -> Vec<f64> {
    let n: usize = out_shape.iter().product();
    let st = strides(&x.shape);
    (0..n)
        .map(|i| {
            let c = coords(i, out_shape);
            let off: usize = c
                .iter()
                .zip(&x.shape)
                .zip(&st)
                .map(|((&k, &d), &s)| (k % d.max(1)) * s)
                .sum();
            x.data[off]
        })
        .collect()
}

/// Concatenation along `axis`.
pub fn concat(ins: &[&Value], axis: usize, out_shape: &[usize]) -> Vec<f64> {
    let outer: usize = out_shape[..axis].iter().product();
    let inner: usize = out_shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(out_shape.iter().product());
    for o in 0..outer {
        for x in ins {
            let len = x.shape[axis] * inner;
            out.extend_from_slice(&x.data[o * len..(o + 1) * len]);
        }
    }
    out
}
