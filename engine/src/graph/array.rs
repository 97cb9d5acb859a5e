//! Builders for slicing, padding, tiling, concatenation, selection, gathers, segment
//! sums, dropout, clipping and the L2 loss.

use super::{Graph, Tensor};
use crate::error::{Error, Result};
use crate::ops::{Op, StridedSpec};
use crate::tensor::DType;

impl Graph {
    fn axis_of(&self, x: Tensor, axis: i64) -> Result<usize> {
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

    /// `size[d]` elements from `begin[d]` along each axis (`size` -1: to the end), as
    /// TF's `tf.slice`.
    pub fn slice(&mut self, x: Tensor, begin: &[i64], size: &[i64]) -> Result<Tensor> {
        let op = Op::Slice {
            begin: begin.to_vec(),
            size: size.to_vec(),
        };
        self.add_op(op, &[x], "Slice")
    }

    /// Python-style strided slicing (TF's `tf.strided_slice` with its masks).
    pub fn strided_slice(&mut self, x: Tensor, spec: StridedSpec) -> Result<Tensor> {
        self.add_op(Op::StridedSlice(spec), &[x], "StridedSlice")
    }

    /// Pads with `value`: `paddings[d] = [before, after]` (TF's `tf.pad`, CONSTANT).
    pub fn pad(&mut self, x: Tensor, paddings: &[[usize; 2]], value: f32) -> Result<Tensor> {
        let op = Op::Pad {
            paddings: paddings.to_vec(),
            value,
        };
        self.add_op(op, &[x], "Pad")
    }

    /// Repeats `x` `multiples[d]` times along each axis (TF's `tf.tile`).
    pub fn tile(&mut self, x: Tensor, multiples: &[usize]) -> Result<Tensor> {
        let op = Op::Tile {
            multiples: multiples.to_vec(),
        };
        self.add_op(op, &[x], "Tile")
    }

    /// Joins `xs` along `axis` (negative counts from the end), as TF's `tf.concat`.
    pub fn concat(&mut self, xs: &[Tensor], axis: i64) -> Result<Tensor> {
        let Some(&first) = xs.first() else {
            return Err(Error::invalid_argument("concat of no tensors"));
        };
        let axis = self.axis_of(first, axis)?;
        self.add_op(Op::Concat { axis }, xs, "concat")
    }

    /// `cond ? a : b` elementwise with broadcasting (TF 2's `tf.where`).
    pub fn select(&mut self, cond: Tensor, a: Tensor, b: Tensor) -> Result<Tensor> {
        self.add_op(Op::Select, &[cond, a, b], "SelectV2")
    }

    /// Slices of `params` along `axis` picked by int32 `indices` (TF's `tf.gather`).
    /// Fed or constant indices out of range are InvalidArgument when the graph runs.
    pub fn gather(&mut self, params: Tensor, indices: Tensor, axis: i64) -> Result<Tensor> {
        let axis = self.axis_of(params, axis)?;
        self.add_op(
            Op::Gather {
                axis,
                checked: true,
            },
            &[params, indices],
            "GatherV2",
        )
    }

    /// Sums of the rows of `data` grouped by int32 `segment_ids` into `num_segments`
    /// rows (TF's `tf.math.unsorted_segment_sum`); ids out of range are dropped.
    pub fn unsorted_segment_sum(
        &mut self,
        data: Tensor,
        segment_ids: Tensor,
        num_segments: usize,
    ) -> Result<Tensor> {
        self.add_op(
            Op::UnsortedSegmentSum { num_segments },
            &[data, segment_ids],
            "UnsortedSegmentSum",
        )
    }

    /// Dropout of `x` with `rate`, its mask a pure function of the graph seed, `seed`
    /// (the op seed; the node index when `None`), the value of the int64 scalar `step`
    /// and the element index. Always applies: see `layers::dropout` for a training flag.
    pub fn dropout(
        &mut self,
        x: Tensor,
        rate: f32,
        step: Tensor,
        seed: Option<u64>,
    ) -> Result<Tensor> {
        let op_seed = seed.unwrap_or(self.nodes().len() as u64);
        let op = Op::Dropout {
            rate,
            seed: (self.seed(), op_seed),
        };
        self.add_op(op, &[x, step], "dropout")
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
