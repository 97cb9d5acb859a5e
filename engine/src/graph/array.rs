//! Builders for slicing, padding, tiling, concatenation, selection, gathers, segment
//! sums, dropout, clipping and the L2 loss.

use super::{Graph, Tensor};
use crate::error::{Error, Result};
use crate::tensor::DType;

impl Graph {
    pub(crate) fn axis_of(&self, x: Tensor, axis: i64) -> Result<usize> {
        let rank = self.shape(x).len() as i64;
        let a = if axis < 0 { axis + rank } else { axis };
        if a < 0 || a >= rank.max(1) {
            return Err(Error::invalid_argument(format!(
                "axis {axis} out of range for '{}' of rank {rank}",
                self.name(x)
            )));
        }
        Ok(a as usize)
    }

    /// `min(max(x, lo), hi)` (TF's `tf.clip_by_value`).
    pub fn clip_by_value(&mut self, x: Tensor, lo: f32, hi: f32) -> Result<Tensor> {
        if lo > hi {
            return Err(Error::invalid_argument(format!(
                "clip_by_value: lower bound {lo} above upper bound {hi}"
            )));
        }
        self.name_scope("clip_by_value", |g| {
            let l = g.scalar(lo)?;
            let h = g.scalar(hi)?;
            let m = g.minimum(x, h)?;
            g.maximum(m, l)
        })
    }

    /// `sum(x * x) / 2` (TF's `tf.nn.l2_loss`).
    pub fn l2_loss(&mut self, x: Tensor) -> Result<Tensor> {
        if self.dtype(x) != DType::F32 {
            return Err(Error::invalid_argument(format!(
                "l2_loss of '{}' of dtype {}",
                self.name(x),
                self.dtype(x)
            )));
        }
        self.name_scope("L2Loss", |g| {
            let sq = g.square(x)?;
            let s = g.reduce_sum(sq, &[], false)?;
            let half = g.scalar(0.5)?;
            g.mul(s, half)
        })
    }
}
