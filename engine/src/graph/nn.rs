//! Builders for softmax and the cross-entropy losses.

use super::{Graph, Tensor};
use crate::error::Result;
use crate::ops::Op;

impl Graph {
    /// Softmax over the last axis.
    pub fn softmax(&mut self, logits: Tensor) -> Result<Tensor> {
        self.add_op(Op::Softmax, &[logits], "Softmax")
    }

    /// Log-softmax over the last axis (computed stably as `x - max - log(sum(exp))`).
    pub fn log_softmax(&mut self, logits: Tensor) -> Result<Tensor> {
        self.add_op(Op::LogSoftmax, &[logits], "LogSoftmax")
    }

    /// Per-example cross-entropy between `labels` (a distribution per row) and the softmax
    /// of `logits`, both `[batch, classes]`; the result is `[batch]`. Numerically stable.
    pub fn softmax_cross_entropy_with_logits(
        &mut self,
        labels: Tensor,
        logits: Tensor,
    ) -> Result<Tensor> {
        self.add_op(
            Op::SoftmaxXent,
            &[logits, labels],
            "softmax_cross_entropy_with_logits",
        )
    }

    /// Per-example cross-entropy between int class `labels` `[batch]` and `logits`
    /// `[batch, classes]`. A label outside `[0, classes)` gives NaN for that example (TF's
    /// behaviour on GPUs).
    pub fn sparse_softmax_cross_entropy_with_logits(
        &mut self,
        labels: Tensor,
        logits: Tensor,
    ) -> Result<Tensor> {
        self.add_op(
            Op::SparseSoftmaxXent,
            &[logits, labels],
            "SparseSoftmaxCrossEntropyWithLogits",
        )
    }

    /// The mean over the batch of [`sparse_softmax_cross_entropy_with_logits`](Self::sparse_softmax_cross_entropy_with_logits).
    pub fn sparse_softmax_cross_entropy_mean(
        &mut self,
        logits: Tensor,
        labels: Tensor,
    ) -> Result<Tensor> {
        let per = self.sparse_softmax_cross_entropy_with_logits(labels, logits)?;
        self.reduce_mean(per, &[], false)
    }
}
