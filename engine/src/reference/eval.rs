//! Evaluation of one pure op on `f64` values: plain loops, the oracle of the kernels.

use super::Value;
use crate::error::Result;
use crate::ops::Op;
use crate::tensor::DType;

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Strides of `shape` read as if broadcast to `out` (0 where broadcast).
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let st = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 && out[i] != 1 {
                0
            } else {
                st[i - off]
            }
        })
        .collect()
}

pub(crate) fn gather_index(mut i: usize, out: &[usize], st: &[usize]) -> usize {
    let mut off = 0;
    for d in (0..out.len()).rev() {
        let c = i % out[d].max(1);
        i /= out[d].max(1);
        off += c * st[d];
    }
    off
}

pub(crate) fn cast_value(v: f64, to: DType) -> f64 {
    match to {
        DType::F32 => v as f32 as f64,
        DType::I32 => (v as i32) as f64,
        DType::U32 => (v as u32) as f64,
        DType::I64 => (v as i64) as f64,
        DType::Bool => f64::from(u8::from(v != 0.0)),
    }
}

/// `f` of the broadcast pairs of `a` and `b`, over the output shape `out`.
pub(crate) fn elementwise2(
    a: &Value,
    b: &Value,
    out: &[usize],
    f: impl Fn(f64, f64) -> f64,
) -> Vec<f64> {
    let sa = broadcast_strides(&a.shape, out);
    let sb = broadcast_strides(&b.shape, out);
    let n: usize = out.iter().product();
    (0..n)
        .map(|i| {
            f(
                a.data[gather_index(i, out, &sa)],
                b.data[gather_index(i, out, &sb)],
            )
        })
        .collect()
}

/// Evaluates one op on input values: for an op that writes variables, the variable's
/// new value.
pub fn eval_op(op: &Op, ins: &[&Value], dtype: DType, out_shape: &[usize]) -> Result<Value> {
    let data = op.family().eval(ins, dtype, out_shape)?;
    debug_assert_eq!(data.len(), out_shape.iter().product::<usize>());
    Ok(Value {
        dtype,
        shape: out_shape.to_vec(),
        data,
    })
}
