//! Builders for sources, casts, matmul, reductions and layout ops.

use super::{Graph, Tensor};
use crate::error::{Error, Result};
use crate::ops::Op;
use crate::tensor::{DType, HostTensor, shape_str};

impl Graph {
    /// A value fed at run time. `shape` may hold `-1` for dimensions known only then
    /// (the batch dimension).
    pub fn placeholder(&mut self, name: &str, dtype: DType, shape: &[i64]) -> Result<Tensor> {
        if shape.iter().any(|&d| d < -1) {
            return Err(Error::invalid_argument(format!(
                "placeholder '{name}': invalid shape {}",
                shape_str(shape)
            )));
        }
        self.push_node(Op::Placeholder, vec![], dtype, shape.to_vec(), name, true)
    }

    /// A constant tensor named `name`.
    pub fn constant(&mut self, value: HostTensor, name: &str) -> Result<Tensor> {
        let shape = value.shape().iter().map(|&d| d as i64).collect();
        let dtype = value.dtype();
        self.push_node(Op::Const(value), vec![], dtype, shape, name, true)
    }

    /// A scalar `f32` constant.
    pub fn scalar(&mut self, value: f32) -> Result<Tensor> {
        self.constant(HostTensor::scalar_f32(value), "Const")
    }

    /// A copy of `x` (TF's `tf.identity`); with control dependencies it reads `x` at a
    /// chosen point of the run.
    pub fn identity(&mut self, x: Tensor, name: &str) -> Result<Tensor> {
        self.add_op(Op::Identity, &[x], name)
    }

    /// `x * c` for a scalar `c`.
    pub fn scale(&mut self, x: Tensor, c: f32) -> Result<Tensor> {
        let c = self.scalar(c)?;
        self.mul(x, c)
    }

    /// Converts `x` to `dtype` (TF's `tf.cast`: floats truncate toward zero into ints,
    /// non-zero becomes `true`).
    pub fn cast(&mut self, x: Tensor, dtype: DType) -> Result<Tensor> {
        self.add_op(Op::Cast(dtype), &[x], "Cast")
    }

    /// Normalizes possibly negative axes against rank `rank`; sorted and unique.
    pub(crate) fn norm_axes(&self, x: Tensor, axes: &[i64]) -> Result<Vec<usize>> {
        let rank = self.shape(x).len() as i64;
        let mut out = Vec::with_capacity(axes.len());
        for &a in axes {
            let n = if a < 0 { a + rank } else { a };
            if n < 0 || n >= rank {
                return Err(Error::invalid_argument(format!(
                    "axis {a} is out of range for '{}' of rank {rank}",
                    self.name(x)
                )));
            }
            out.push(n as usize);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The same data with a new shape; one dimension may be `-1` (inferred).
    pub fn reshape(&mut self, x: Tensor, shape: &[i64]) -> Result<Tensor> {
        self.check(x)?;
        // With an unknown input dimension, keep the unknown in the target when it is the
        // only one; the run-time shape resolves it.
        self.add_op(Op::Reshape(shape.to_vec()), &[x], "Reshape")
    }

    /// Permutes the axes of `x`.
    pub fn transpose(&mut self, x: Tensor, perm: &[usize]) -> Result<Tensor> {
        self.add_op(Op::Transpose(perm.to_vec()), &[x], "transpose")
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
        self.add_op(Op::Reshape(target), &[x], name)
    }

    /// Reshapes `x` to the run-time shape of `like`.
    pub fn reshape_like(&mut self, x: Tensor, like: Tensor) -> Result<Tensor> {
        self.add_op(Op::ReshapeLike, &[x, like], "Reshape")
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
        self.add_op(
            Op::OneHot {
                depth,
                on_value,
                off_value,
            },
            &[indices],
            "one_hot",
        )
    }

    /// Adds the rank-1 `bias` along the last axis of `value`.
    pub fn bias_add(&mut self, value: Tensor, bias: Tensor) -> Result<Tensor> {
        self.add_op(Op::BiasAdd, &[value, bias], "BiasAdd")
    }
}
