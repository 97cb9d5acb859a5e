//! Evaluation of one pure op on `f64` values: plain loops, the oracle of the kernels.

use super::Value;
use crate::error::{Error, Result};
use crate::ops::{BinaryOp, Family, Op, StridedSpec};
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

pub(super) fn cast_value(v: f64, to: DType) -> f64 {
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

/// Evaluates one non-source, non-stateful op on input values.
pub fn eval_op(op: &Op, ins: &[&Value], dtype: DType, out_shape: &[usize]) -> Result<Value> {
    let n: usize = out_shape.iter().product();
    let data: Vec<f64> = match op {
        Op::Identity | Op::Reshape(_) | Op::ReshapeLike => ins[0].data.clone(),
        Op::Unary(u) => u.eval(ins, out_shape)?,
        Op::Binary(b) => b.eval(ins, out_shape)?,
        Op::BiasAdd => elementwise2(ins[0], ins[1], out_shape, |x, y| {
            crate::ops::elementwise::binary(BinaryOp::Add, x, y, dtype)
        }),
        Op::Compare(c) => c.eval(ins, out_shape)?,
        Op::Cast(to) => ins[0]
            .data
            .iter()
            .map(|&x| convert(x, ins[0].dtype, *to))
            .collect(),
        Op::MatMul(m) => m.eval(ins, out_shape)?,
        Op::Reduction(r) => r.eval(ins, out_shape)?,
        Op::Transpose(perm) => {
            let x = ins[0];
            let st = strides(&x.shape);
            let pst: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
            (0..n)
                .map(|i| x.data[gather_index(i, out_shape, &pst)])
                .collect()
        }
        Op::OneHot {
            depth,
            on_value,
            off_value,
        } => {
            let mut out = vec![f64::from(*off_value); n];
            for (i, &idx) in ins[0].data.iter().enumerate() {
                if idx >= 0.0 && (idx as usize) < *depth {
                    out[i * depth + idx as usize] = f64::from(*on_value);
                }
            }
            out
        }
        Op::Softmax(s) => s.eval(ins, out_shape)?,
        Op::Slice { begin, size } => {
            let axes = StridedSpec::from_slice(begin, size).resolve(&ins[0].shape)?;
            super::index::strided_slice(ins[0], &axes)
        }
        Op::StridedSlice(spec) => {
            super::index::strided_slice(ins[0], &spec.resolve(&ins[0].shape)?)
        }
        Op::StridedSliceGrad(spec) => {
            super::index::strided_slice_grad(&ins[0].shape, spec, ins[1])?
        }
        Op::Pad { paddings, value } => {
            super::index::pad(ins[0], paddings, f64::from(*value), out_shape)
        }
        Op::Tile { .. } => super::index::tile(ins[0], out_shape),
        Op::Concat { axis } => super::index::concat(ins, *axis, out_shape),
        Op::Select => super::index::select(ins[0], ins[1], ins[2], out_shape),
        Op::Gather { axis, .. } => super::index::gather(ins[0], ins[1], *axis),
        Op::UnsortedSegmentSum { num_segments } => {
            super::index::unsorted_segment_sum(ins[0], ins[1], *num_segments)
        }
        Op::Dropout { rate, seed } => {
            super::index::dropout(ins[0], *rate, *seed, ins[1].data[0] as i64)
        }
        Op::Conv(c) => c.eval(ins, out_shape)?,
        _ => {
            return Err(Error::internal(format!(
                "reference: {} is not a pure op",
                op.tf_name()
            )));
        }
    };
    debug_assert_eq!(data.len(), n);
    Ok(Value {
        dtype,
        shape: out_shape.to_vec(),
        data,
    })
}
