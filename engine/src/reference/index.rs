//! Reference slicing, padding, tiling, concatenation, selection, gathers, segment sums
//! and dropout, as plain loops in `f64`.

use super::Value;
use super::eval::{broadcast_strides, strides};
use crate::error::Result;
use crate::ops::{SliceAxis, StridedSpec};
use crate::rng::dropout_keeps;

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

/// `cond ? a : b` with broadcasting.
pub fn select(c: &Value, a: &Value, b: &Value, out_shape: &[usize]) -> Vec<f64> {
    let (sc, sa, sb) = (
        broadcast_strides(&c.shape, out_shape),
        broadcast_strides(&a.shape, out_shape),
        broadcast_strides(&b.shape, out_shape),
    );
    let n: usize = out_shape.iter().product();
    let at = |i: usize, st: &[usize]| -> usize {
        coords(i, out_shape)
            .iter()
            .zip(st)
            .map(|(&k, &s)| k * s)
            .sum()
    };
    (0..n)
        .map(|i| {
            if c.data[at(i, &sc)] != 0.0 {
                a.data[at(i, &sa)]
            } else {
                b.data[at(i, &sb)]
            }
        })
        .collect()
}

/// Rows of `p` along `axis` picked by `idx` (zeros for an index out of range).
pub fn gather(p: &Value, idx: &Value, axis: usize) -> Vec<f64> {
    let outer: usize = p.shape[..axis].iter().product();
    let len = p.shape[axis];
    let inner: usize = p.shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * idx.data.len() * inner);
    for o in 0..outer {
        for &k in &idx.data {
            if k >= 0.0 && (k as usize) < len {
                let at = (o * len + k as usize) * inner;
                out.extend_from_slice(&p.data[at..at + inner]);
            } else {
                out.extend(std::iter::repeat_n(0.0, inner));
            }
        }
    }
    out
}

/// Sums of the rows of `data` by segment id into `segments` rows (ids out of range
/// dropped).
pub fn unsorted_segment_sum(data: &Value, ids: &Value, segments: usize) -> Vec<f64> {
    let rows = ids.data.len();
    let inner = data.data.len().checked_div(rows).unwrap_or(0);
    let mut out = vec![0.0; segments * inner];
    for (r, &s) in ids.data.iter().enumerate() {
        if s >= 0.0 && (s as usize) < segments {
            let s = s as usize;
            for k in 0..inner {
                out[s * inner + k] += data.data[r * inner + k];
            }
        }
    }
    out
}

/// Dropout with the device's mask for `step`.
pub fn dropout(x: &Value, rate: f32, seed: (u64, u64), step: i64) -> Vec<f64> {
    let scale = 1.0 / (1.0 - f64::from(rate));
    x.data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if dropout_keeps(seed, i as u32, step, rate) {
                // As the device: the scale rounded to f32 first.
                v * f64::from(scale as f32)
            } else {
                0.0
            }
        })
        .collect()
}
