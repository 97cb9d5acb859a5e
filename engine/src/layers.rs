//! Layers as TF 1's `tf.layers`: each call creates its variables under a unique scope
//! (`dense`, `dense_1`, … or the name given) with TF's names (`dense/kernel`,
//! `dense/bias`, `conv2d/kernel`, `batch_normalization/moving_mean`), Glorot-uniform
//! kernels and zero biases, and returns the layer's output.

use crate::error::{Error, Result};
use crate::graph::{Graph, Tensor};
use crate::ops::{Conv, Initializer, Padding, Pool};
use crate::tensor::DType;

/// The nonlinearity applied to a layer's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// None (the identity).
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// The logistic function.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
}

impl Activation {
    fn apply(self, g: &mut Graph, x: Tensor) -> Result<Tensor> {
        match self {
            Activation::Linear => Ok(x),
            Activation::Relu => g.relu(x),
            Activation::Sigmoid => g.sigmoid(x),
            Activation::Tanh => g.tanh(x),
        }
    }
}

fn scope_name<'a>(name: &'a str, default: &'a str) -> &'a str {
    if name.is_empty() { default } else { name }
}

/// A fully connected layer: `activation(x @ kernel + bias)` over the last axis of `x`
/// (rank 2). Variables `<name>/kernel` `[in, units]` and `<name>/bias` `[units]`.
pub fn dense(
    g: &mut Graph,
    x: Tensor,
    units: usize,
    activation: Activation,
    name: &str,
) -> Result<Tensor> {
    let shape = g.shape(x).to_vec();
    if shape.len() != 2 || shape[1] < 1 {
        return Err(Error::invalid_argument(format!(
            "dense: input must be [batch, features] with known features, got {shape:?} (flatten first)"
        )));
    }
    g.name_scope(scope_name(name, "dense"), |g| {
        let k = g.variable(
            "kernel",
            DType::F32,
            &[shape[1], units as i64],
            Initializer::GlorotUniform,
        )?;
        let b = g.variable("bias", DType::F32, &[units as i64], Initializer::Zeros)?;
        let m = g.matmul(x, k)?;
        let a = g.bias_add(m, b)?;
        activation.apply(g, a)
    })
}

/// A 2-D convolution layer over NHWC `x`: `activation(conv2d(x, kernel) + bias)`.
/// Variables `<name>/kernel` `[kh, kw, in, filters]` and `<name>/bias` `[filters]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    g: &mut Graph,
    x: Tensor,
    filters: usize,
    kernel: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
    activation: Activation,
    name: &str,
) -> Result<Tensor> {
    let shape = g.shape(x).to_vec();
    if shape.len() != 4 || shape[3] < 1 {
        return Err(Error::invalid_argument(format!(
            "conv2d: input must be NHWC with known channels, got {shape:?}"
        )));
    }
    g.name_scope(scope_name(name, "conv2d"), |g| {
        let k = g.variable(
            "kernel",
            DType::F32,
            &[kernel[0] as i64, kernel[1] as i64, shape[3], filters as i64],
            Initializer::GlorotUniform,
        )?;
        let b = g.variable("bias", DType::F32, &[filters as i64], Initializer::Zeros)?;
        let c = g.conv2d(x, k, Conv::new(strides, padding))?;
        let a = g.bias_add(c, b)?;
        activation.apply(g, a)
    })
}

/// Max pooling over NHWC `x`.
pub fn max_pool2d(
    g: &mut Graph,
    x: Tensor,
    pool: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
) -> Result<Tensor> {
    g.max_pool(x, Pool::new(pool, strides, padding))
}

/// Average pooling over NHWC `x` (padding not counted).
pub fn avg_pool2d(
    g: &mut Graph,
    x: Tensor,
    pool: [usize; 2],
    strides: [usize; 2],
    padding: Padding,
) -> Result<Tensor> {
    g.avg_pool(x, Pool::new(pool, strides, padding))
}

/// `[batch, d1, d2, …]` to `[batch, d1 * d2 * …]` (the trailing dimensions must be
/// known).
pub fn flatten(g: &mut Graph, x: Tensor) -> Result<Tensor> {
    let shape = g.shape(x).to_vec();
    if shape.is_empty() || shape[1..].iter().any(|&d| d < 0) {
        return Err(Error::invalid_argument(format!(
            "flatten: every dimension but the first must be known, got {shape:?}"
        )));
    }
    let rest: i64 = shape[1..].iter().product();
    g.reshape(x, &[-1, rest])
}

/// Dropout with `rate` while `training` (a bool scalar tensor: a placeholder or a
/// constant) is true, the identity otherwise. The mask is a pure function of the graph
/// seed, the layer's op seed, the global step and the element index (created if the
/// graph has none), so a resumed run draws the same masks.
pub fn dropout(
    g: &mut Graph,
    x: Tensor,
    rate: f32,
    training: Tensor,
    name: &str,
) -> Result<Tensor> {
    check_flag(g, training, "dropout")?;
    let step = g.global_step()?;
    g.name_scope(scope_name(name, "dropout"), |g| {
        let d = g.dropout(x, rate, step, None)?;
        g.select(training, d, x)
    })
}

/// Rows of a `[vocab, dim]` table picked by int32 `ids` (variable
/// `<name>/embeddings`, uniform in ±0.05 as Keras): the output is `ids.shape + [dim]`.
pub fn embedding(
    g: &mut Graph,
    ids: Tensor,
    vocab: usize,
    dim: usize,
    name: &str,
) -> Result<Tensor> {
    g.name_scope(scope_name(name, "embedding"), |g| {
        let table = g.variable(
            "embeddings",
            DType::F32,
            &[vocab as i64, dim as i64],
            Initializer::RandomUniform {
                min: -0.05,
                max: 0.05,
            },
        )?;
        g.gather(table, ids, 0)
    })
}

fn check_flag(g: &Graph, flag: Tensor, what: &str) -> Result<()> {
    if g.dtype(flag) != DType::Bool || !g.shape(flag).is_empty() {
        return Err(Error::invalid_argument(format!(
            "{what}: the training flag '{}' must be a bool scalar, got {} {:?}",
            g.name(flag),
            g.dtype(flag),
            g.shape(flag)
        )));
    }
    Ok(())
}

/// The channels (last axis) of `x`, which must be known.
fn channels(g: &Graph, x: Tensor, what: &str) -> Result<i64> {
    match g.shape(x).last() {
        Some(&c) if c > 0 => Ok(c),
        _ => Err(Error::invalid_argument(format!(
            "{what}: the last axis of '{}' must be known, got {:?}",
            g.name(x),
            g.shape(x)
        ))),
    }
}

/// Layer normalization over the last axis: `(x - mean) / sqrt(var + epsilon) * gamma +
/// beta` with `<name>/gamma` (ones) and `<name>/beta` (zeros) over the last axis.
pub fn layer_norm(g: &mut Graph, x: Tensor, epsilon: f32, name: &str) -> Result<Tensor> {
    let c = channels(g, x, "layer_norm")?;
    g.name_scope(scope_name(name, "LayerNorm"), |g| {
        let beta = g.variable("beta", DType::F32, &[c], Initializer::Zeros)?;
        let gamma = g.variable("gamma", DType::F32, &[c], Initializer::Ones)?;
        let mean = g.reduce_mean(x, &[-1], true)?;
        let centered = g.sub(x, mean)?;
        let sq = g.square(centered)?;
        let var = g.reduce_mean(sq, &[-1], true)?;
        normalize(g, centered, var, epsilon, gamma, beta)
    })
}

/// `centered * rsqrt(var + epsilon) * gamma + beta`.
fn normalize(
    g: &mut Graph,
    centered: Tensor,
    var: Tensor,
    epsilon: f32,
    gamma: Tensor,
    beta: Tensor,
) -> Result<Tensor> {
    let eps = g.scalar(epsilon)?;
    let v = g.add(var, eps)?;
    let inv = g.rsqrt(v)?;
    let n = g.mul(centered, inv)?;
    let s = g.mul(n, gamma)?;
    g.add(s, beta)
}

/// Batch normalization over the last axis (TF 1's `tf.layers.batch_normalization`):
/// with `training` true, normalizes by the batch's mean and (biased) variance over every
/// other axis and moves `<name>/moving_mean` and `<name>/moving_variance` (not
/// trainable) toward them by `1 - momentum` through ops in the update-ops collection,
/// which `minimize` runs with the step; with `training` false, normalizes by the moving
/// statistics and leaves them alone. `<name>/gamma` (ones) and `<name>/beta` (zeros)
/// scale and shift.
pub fn batch_norm(
    g: &mut Graph,
    x: Tensor,
    training: Tensor,
    momentum: f32,
    epsilon: f32,
    name: &str,
) -> Result<Tensor> {
    check_flag(g, training, "batch_norm")?;
    let c = channels(g, x, "batch_norm")?;
    let rank = g.shape(x).len() as i64;
    let axes: Vec<i64> = (0..rank - 1).collect();
    g.name_scope(scope_name(name, "batch_normalization"), |g| {
        let gamma = g.variable("gamma", DType::F32, &[c], Initializer::Ones)?;
        let beta = g.variable("beta", DType::F32, &[c], Initializer::Zeros)?;
        let fixed = crate::graph::VariableOptions {
            trainable: false,
            ..Default::default()
        };
        let moving_mean = g.variable_with(
            "moving_mean",
            DType::F32,
            &[c],
            Initializer::Zeros,
            fixed.clone(),
        )?;
        let moving_var = g.variable_with(
            "moving_variance",
            DType::F32,
            &[c],
            Initializer::Ones,
            fixed,
        )?;
        let mean = g.reduce_mean(x, &axes, false)?;
        let centered_batch = g.sub(x, mean)?;
        let sq = g.square(centered_batch)?;
        let var = g.reduce_mean(sq, &axes, false)?;
        // Moving averages: `moving -= (moving - batch) * (1 - momentum)` when training.
        let zero = g.scalar(0.0)?;
        let decay = g.scalar(1.0 - momentum)?;
        for (moving, batch) in [(moving_mean, mean), (moving_var, var)] {
            let diff = g.sub(moving, batch)?;
            let step = g.mul(diff, decay)?;
            let delta = g.select(training, step, zero)?;
            let update = g.assign_sub(moving, delta)?;
            g.add_to_collection(crate::graph::collections::UPDATE_OPS, update);
        }
        let m = g.select(training, mean, moving_mean)?;
        let v = g.select(training, var, moving_var)?;
        let centered = g.sub(x, m)?;
        normalize(g, centered, v, epsilon, gamma, beta)
    })
}
