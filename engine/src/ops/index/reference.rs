//! The index family's reference: plain loops over `f64` values.

use super::IndexOp;
use crate::reference::Value;
use crate::reference::eval::{broadcast_strides, gather_index};

/// The output of `op` on `ins`.
pub(super) fn eval(op: &IndexOp, ins: &[&Value], out_shape: &[usize]) -> Vec<f64> {
    match op {
        IndexOp::Select => select(ins[0], ins[1], ins[2], out_shape),
        IndexOp::Gather { axis, .. } => gather(ins[0], ins[1], *axis),
        IndexOp::UnsortedSegmentSum { num_segments } => {
            unsorted_segment_sum(ins[0], ins[1], *num_segments)
        }
        IndexOp::OneHot {
            depth,
            on_value,
            off_value,
        } => one_hot(ins[0], *depth, *on_value, *off_value),
    }
}

/// Rows of `depth` elements, `on_value` at each index and `off_value` elsewhere.
fn one_hot(idx: &Value, depth: usize, on_value: f32, off_value: f32) -> Vec<f64> {
    let mut out = vec![f64::from(off_value); idx.data.len() * depth];
    for (i, &k) in idx.data.iter().enumerate() {
        if k >= 0.0 && (k as usize) < depth {
            out[i * depth + k as usize] = f64::from(on_value);
        }
    }
    out
}

/// `cond ? a : b` with broadcasting.
pub(super) fn select(c: &Value, a: &Value, b: &Value, out_shape: &[usize]) -> Vec<f64> {
    let (sc, sa, sb) = (
        broadcast_strides(&c.shape, out_shape),
        broadcast_strides(&a.shape, out_shape),
        broadcast_strides(&b.shape, out_shape),
    );
    let n: usize = out_shape.iter().product();
    let at = |i: usize, st: &[usize]| gather_index(i, out_shape, st);
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
pub(super) fn gather(p: &Value, idx: &Value, axis: usize) -> Vec<f64> {
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
pub(super) fn unsorted_segment_sum(data: &Value, ids: &Value, segments: usize) -> Vec<f64> {
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
