//! Builders of summary nodes (see [`crate::summary`]).

use super::{Graph, Tensor, collections};
use crate::error::{Error, Result};
use crate::summary::{MergedSummary, SummaryKind, SummarySpec};
use crate::tensor::DType;

impl Graph {
    fn summary(&mut self, name: &str, x: Option<Tensor>, kind: SummaryKind) -> Result<Tensor> {
        let node = match x {
            Some(t) => self.identity(t, name)?,
            None => {
                let c = crate::tensor::HostTensor::scalar_f32(0.0);
                self.constant(c, name)?
            }
        };
        // The tag is the summary node's name, made unique as TF's is (a second "loss"
        // summary is tagged "loss_1").
        let tag = self.name(node).to_string();
        self.summaries.push(SummarySpec {
            tag,
            kind,
            tensor: x.map(|_| node),
        });
        self.add_to_collection(collections::SUMMARIES, node);
        Ok(node)
    }

    /// A scalar summary of `x` (a float32 scalar) under the tag `name` (scoped).
    pub fn scalar_summary(&mut self, name: &str, x: Tensor) -> Result<Tensor> {
        if self.dtype(x) != DType::F32 || !self.shape(x).is_empty() {
            return Err(Error::invalid_argument(format!(
                "scalar_summary '{name}': '{}' must be a float32 scalar, got {} {:?}",
                self.name(x),
                self.dtype(x),
                self.shape(x)
            )));
        }
        self.summary(name, Some(x), SummaryKind::Scalar)
    }

    /// A histogram summary of every element of `x` (float32).
    pub fn histogram_summary(&mut self, name: &str, x: Tensor) -> Result<Tensor> {
        if self.dtype(x) != DType::F32 {
            return Err(Error::invalid_argument(format!(
                "histogram_summary '{name}': '{}' must be float32, got {}",
                self.name(x),
                self.dtype(x)
            )));
        }
        self.summary(name, Some(x), SummaryKind::Histogram)
    }

    /// An image summary of an NHWC batch `x` (1, 3 or 4 channels; float32 in `[0, 1]`,
    /// or int32/uint32 pixels 0..=255), at most `max_outputs` images.
    pub fn image_summary(&mut self, name: &str, x: Tensor, max_outputs: usize) -> Result<Tensor> {
        let s = self.shape(x).to_vec();
        let ok_dtype = matches!(self.dtype(x), DType::F32 | DType::I32 | DType::U32);
        if s.len() != 4 || !matches!(s[3], 1 | 3 | 4) || !ok_dtype || max_outputs == 0 {
            return Err(Error::invalid_argument(format!(
                "image_summary '{name}': '{}' must be NHWC with 1, 3 or 4 channels of float32 or int pixels, got {} {s:?} (max_outputs {max_outputs})",
                self.name(x),
                self.dtype(x)
            )));
        }
        self.summary(name, Some(x), SummaryKind::Image { max_outputs })
    }

    /// A text summary (markdown) under the tag `name`.
    pub fn text_summary(&mut self, name: &str, text: &str) -> Result<Tensor> {
        self.summary(name, None, SummaryKind::Text(text.to_string()))
    }

    /// Every summary created in this graph, in order.
    pub fn summaries(&self) -> &[SummarySpec] {
        &self.summaries
    }

    /// The summaries in the summaries collection, run together (TF's `merge_all`).
    pub fn merge_all_summaries(&self) -> MergedSummary {
        let coll = self.collection(collections::SUMMARIES);
        MergedSummary {
            specs: self
                .summaries
                .iter()
                .filter(|s| s.tensor.is_none_or(|t| coll.contains(&t)))
                .cloned()
                .collect(),
        }
    }
}
