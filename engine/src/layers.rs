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
