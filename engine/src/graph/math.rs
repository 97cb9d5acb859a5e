//! Builders for sources, casts, matmul, reductions and layout ops.

use super::{Graph, Tensor};
use crate::error::{Error, Result};
use crate::tensor::HostTensor;

impl Graph {
    /// A scalar `f32` constant.
    pub fn scalar(&mut self, value: f32) -> Result<Tensor> {
        self.constant(HostTensor::scalar_f32(value), "Const")
    }

    /// `x * c` for a scalar `c`.
    pub fn scale(&mut self, x: Tensor, c: f32) -> Result<Tensor> {
        let c = self.scalar(c)?;
        self.mul(x, c)
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
}
