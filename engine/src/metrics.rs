//! Streaming metrics as TF 1's `tf.metrics`: each returns a value and an update, with
//! its accumulators as *local* variables (in the local-variables collection, not saved
//! in checkpoints, initialized by `local_variables_initializer`).

use crate::error::{Error, Result};
use crate::graph::{Graph, Tensor, VariableOptions, collections};
use crate::ops::Initializer;
use crate::tensor::DType;

/// Collection of every metric's accumulators (TF's `METRIC_VARIABLES`).
pub const METRIC_VARIABLES: &str = "metric_variables";

/// A streaming metric: `value` reads the accumulators; running `update` adds a batch
/// and gives the value after it.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// The metric over every batch so far (0 before the first).
    pub value: Tensor,
    /// Accumulates one batch; its value is the metric after that batch.
    pub update: Tensor,
}

fn local(g: &mut Graph, name: &str, shape: &[i64]) -> Result<Tensor> {
    let v = g.variable_with(
        name,
        DType::F32,
        shape,
        Initializer::Zeros,
        VariableOptions {
            trainable: false,
            local: true,
            seed: None,
        },
    )?;
    g.add_to_collection(METRIC_VARIABLES, v);
    Ok(v)
}

/// `total / count`, 0 where `count` is 0 (TF's `div_no_nan`).
fn ratio(g: &mut Graph, total: Tensor, count: Tensor) -> Result<Tensor> {
    let zero = g.scalar(0.0)?;
    let any = g.greater(count, zero)?;
    let one = g.scalar(1.0)?;
    let safe = g.select(any, count, one)?;
    let r = g.div(total, safe)?;
    g.select(any, r, zero)
}

/// The mean of every element of `values` over all batches (`<name>/total`,
/// `<name>/count`; default name `mean`).
pub fn mean(g: &mut Graph, values: Tensor, name: &str) -> Result<Metric> {
    if g.dtype(values) != DType::F32 {
        return Err(Error::invalid_argument(format!(
            "mean: '{}' must be float32, got {}",
            g.name(values),
            g.dtype(values)
        )));
    }
    let scope = if name.is_empty() { "mean" } else { name };
    g.name_scope(scope, |g| mean_in_scope(g, values))
}

/// The fraction of `predictions` equal to `labels` over all batches (same shape and
/// dtype; `<name>/total`, `<name>/count`; default name `accuracy`).
pub fn accuracy(g: &mut Graph, labels: Tensor, predictions: Tensor, name: &str) -> Result<Metric> {
    if g.dtype(labels) != g.dtype(predictions) {
        return Err(Error::invalid_argument(format!(
            "accuracy: labels '{}' are {} but predictions '{}' are {}",
            g.name(labels),
            g.dtype(labels),
            g.name(predictions),
            g.dtype(predictions)
        )));
    }
    let scope = if name.is_empty() { "accuracy" } else { name };
    g.name_scope(scope, |g| {
        let eq = g.equal(labels, predictions)?;
        let hit = g.cast(eq, DType::F32)?;
        mean_in_scope(g, hit)
    })
}

/// The accumulators `total` and `count` of the mean of `values`, in the current scope.
fn mean_in_scope(g: &mut Graph, values: Tensor) -> Result<Metric> {
    let total = local(g, "total", &[])?;
    let count = local(g, "count", &[])?;
    let value = ratio(g, total, count)?;
    let sum = g.reduce_sum(values, &[], false)?;
    let one = g.scalar(1.0)?;
    let ones = g.broadcast_like(one, values)?;
    let n = g.reduce_sum(ones, &[], false)?;
    let t = g.assign_add(total, sum)?;
    let c = g.assign_add(count, n)?;
    let update = ratio(g, t, c)?;
    Ok(Metric { value, update })
}

/// The elementwise mean of `values` over all batches (its shape must be known;
/// `<name>/total_tensor`, `<name>/count_tensor`; default name `mean`).
pub fn mean_tensor(g: &mut Graph, values: Tensor, name: &str) -> Result<Metric> {
    let shape = g.shape(values).to_vec();
    if g.dtype(values) != DType::F32 || shape.iter().any(|&d| d < 0) {
        return Err(Error::invalid_argument(format!(
            "mean_tensor: '{}' must be float32 of known shape, got {} {:?}",
            g.name(values),
            g.dtype(values),
            shape
        )));
    }
    let scope = if name.is_empty() { "mean" } else { name };
    g.name_scope(scope, |g| {
        let total = local(g, "total_tensor", &shape)?;
        let count = local(g, "count_tensor", &shape)?;
        let value = ratio(g, total, count)?;
        let one = g.scalar(1.0)?;
        let ones = g.broadcast_like(one, values)?;
        let t = g.assign_add(total, values)?;
        let c = g.assign_add(count, ones)?;
        let update = ratio(g, t, c)?;
        Ok(Metric { value, update })
    })
}

/// Whether `t` is a local variable (not saved).
pub fn is_local(g: &Graph, t: Tensor) -> bool {
    g.collection(collections::LOCAL_VARIABLES).contains(&t)
}
