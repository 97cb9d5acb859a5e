//! Summaries as graph nodes (TF 1's `tf.summary.scalar`, `histogram`, `image`, `text`):
//! each names a tensor to fetch and how to turn its value into a TensorBoard summary.
//! The engine only fetches the values; building histograms and PNGs happens where the
//! event file is written (`wgtrain-checkpoint`), off the training thread.

use crate::graph::Tensor;

/// What a summary makes of its tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum SummaryKind {
    /// A scalar (`simple_value`).
    Scalar,
    /// A histogram of every element, TF's default buckets.
    Histogram,
    /// Up to `max_outputs` images of an NHWC batch (float in `[0, 1]` scaled as TF 1,
    /// or integer 0..=255), as PNGs.
    Image {
        /// Images written at most.
        max_outputs: usize,
    },
    /// Fixed text (rendered as markdown by TensorBoard's text plugin).
    Text(String),
}

/// One summary: its tag, its kind and the tensor it reads (none for fixed text).
#[derive(Clone, Debug, PartialEq)]
pub struct SummarySpec {
    /// The tag (the summary node's scoped name).
    pub tag: String,
    /// What to write.
    pub kind: SummaryKind,
    /// The tensor read, if any.
    pub tensor: Option<Tensor>,
}

/// Summaries run together (TF's `merge_all`): fetch [`MergedSummary::fetches`], then
/// turn the values into summary values, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MergedSummary {
    /// The summaries.
    pub specs: Vec<SummarySpec>,
}

impl MergedSummary {
    /// The tensors to fetch, one per spec that reads one, in order.
    pub fn fetches(&self) -> Vec<Tensor> {
        self.specs.iter().filter_map(|s| s.tensor).collect()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
}
