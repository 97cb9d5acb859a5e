//! Optimizers, learning-rate schedules and gradient clipping, built as graph ops.
//!
//! An [`Optimizer`] adds the gradient graph ([`gradients`]) and one TF-named apply op per
//! variable (`ApplyAdam`, ...). Slots (Adam's `m` and `v`, momentum accumulators) are
//! ordinary non-trainable global variables named as TF names them
//! (`hidden/kernel/Adam`, `hidden/kernel/Adam_1`, `beta1_power`), so checkpoints carry
//! them. `minimize` runs the graph's update ops (batch-norm statistics) with the step and
//! increments the global step after every update.

use crate::autodiff::gradients;
use crate::error::{Error, Result};
use crate::graph::{Graph, Operation, Tensor, VariableOptions, collections};
use crate::ops::Initializer;
use crate::tensor::{DType, HostTensor};

/// A learning rate: a constant or a schedule driven by the global step.
#[derive(Clone, Debug, PartialEq)]
pub enum LearningRate {
    /// A fixed rate.
    Constant(f32),
    /// `initial * rate^(step / decay_steps)` (floored exponent when `staircase`).
    ExponentialDecay {
        /// Rate at step 0.
        initial: f32,
        /// Steps per decay period.
        decay_steps: u64,
        /// Factor per period.
        decay_rate: f32,
        /// Decay in whole periods.
        staircase: bool,
    },
    /// `values[0]` while `step <= boundaries[0]`, `values[1]` while `step <= boundaries[1]`,
    /// ..., `values[n]` after (TF's `piecewise_constant`).
    PiecewiseConstant {
        /// Increasing step boundaries.
        boundaries: Vec<i64>,
        /// One more value than boundaries.
        values: Vec<f32>,
    },
    /// `initial * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps)) + alpha)`.
    CosineDecay {
        /// Rate at step 0.
        initial: f32,
        /// Steps over which to decay.
        decay_steps: u64,
        /// Final fraction of `initial`.
        alpha: f32,
    },
}

impl From<f32> for LearningRate {
    fn from(v: f32) -> Self {
        LearningRate::Constant(v)
    }
}

impl LearningRate {
    /// Builds the scalar f32 learning-rate tensor.
    pub fn build(&self, g: &mut Graph, global_step: Option<Tensor>) -> Result<Tensor> {
        if let LearningRate::Constant(v) = self {
            return g.constant(HostTensor::scalar_f32(*v), "learning_rate");
        }
        let step = global_step.ok_or_else(|| {
            Error::invalid_argument("a learning-rate schedule needs a global step")
        })?;
        g.name_scope("learning_rate", |g| {
            let s = g.cast(step, DType::F32)?;
            match self {
                LearningRate::Constant(_) => unreachable_lr(),
                LearningRate::ExponentialDecay {
                    initial,
                    decay_steps,
                    decay_rate,
                    staircase,
                } => {
                    if *decay_steps == 0 {
                        return Err(Error::invalid_argument("exponential decay: decay_steps must be > 0"));
                    }
                    let mut p = g.scale(s, 1.0 / *decay_steps as f32)?;
                    if *staircase {
                        p = g.floor(p)?;
                    }
                    let rate = g.scalar(*decay_rate)?;
                    let f = g.pow(rate, p)?;
                    g.scale(f, *initial)
                }
                LearningRate::PiecewiseConstant { boundaries, values } => {
                    if values.len() != boundaries.len() + 1 || boundaries.windows(2).any(|w| w[0] >= w[1]) {
                        return Err(Error::invalid_argument(format!(
                            "piecewise constant: {} values for {} increasing boundaries expected, got {values:?} and {boundaries:?}",
                            boundaries.len() + 1,
                            boundaries.len()
                        )));
                    }
                    let mut lr = g.scalar(values[0])?;
                    for (i, &b) in boundaries.iter().enumerate() {
                        let bt = g.scalar(b as f32)?;
                        let past = g.greater(s, bt)?;
                        let past = g.cast(past, DType::F32)?;
                        let d = g.scale(past, values[i + 1] - values[i])?;
                        lr = g.add(lr, d)?;
                    }
                    Ok(lr)
                }
                LearningRate::CosineDecay {
                    initial,
                    decay_steps,
                    alpha,
                } => {
                    if *decay_steps == 0 {
                        return Err(Error::invalid_argument("cosine decay: decay_steps must be > 0"));
                    }
                    let cap = g.scalar(*decay_steps as f32)?;
                    let s = g.minimum(s, cap)?;
                    let a = g.scale(s, std::f32::consts::PI / *decay_steps as f32)?;
                    let c = g.cos(a)?;
                    let one = g.scalar(1.0)?;
                    let c = g.add(c, one)?;
                    let c = g.scale(c, 0.5 * (1.0 - alpha))?;
                    let al = g.scalar(*alpha)?;
                    let d = g.add(c, al)?;
                    g.scale(d, *initial)
                }
            }
        })
    }
}

fn unreachable_lr() -> Result<Tensor> {
    Err(Error::internal("constant learning rate handled above"))
}

/// Scales `grads` so that their global norm is at most `clip_norm` (TF's
/// `clip_by_global_norm`); returns the clipped gradients and the global norm.
pub fn clip_by_global_norm(
    g: &mut Graph,
    grads: &[Tensor],
    clip_norm: f32,
) -> Result<(Vec<Tensor>, Tensor)> {
    g.name_scope("clip_by_global_norm", |g| {
        let mut total: Option<Tensor> = None;
        for &gr in grads {
            let sq = g.square(gr)?;
            let s = g.reduce_sum(sq, &[], false)?;
            total = Some(match total {
                None => s,
                Some(t) => g.add(t, s)?,
            });
        }
        let total = match total {
            Some(t) => t,
            None => g.scalar(0.0)?,
        };
        let norm = g.sqrt(total)?;
        let c = g.scalar(clip_norm)?;
        let denom = g.maximum(norm, c)?;
        let scale = g.div(c, denom)?;
        let clipped = grads
            .iter()
            .map(|&gr| g.mul(gr, scale))
            .collect::<Result<Vec<_>>>()?;
        Ok((clipped, norm))
    })
}

pub use crate::ops::update::Rule;

/// A gradient-descent optimizer: an update [`Rule`], a [`LearningRate`], optional
/// clipping by global norm.
#[derive(Clone, Debug)]
pub struct Optimizer {
    rule: Rule,
    lr: LearningRate,
    clip_norm: Option<f32>,
    name: String,
}

/// Constructors named as TF's optimizers.
macro_rules! ctor {
    ($ty:ident, $doc:literal, $name:literal, $rule:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug)]
        pub struct $ty;
        impl $ty {
            #[doc = concat!("A ", $name, " optimizer with learning rate `lr`.")]
            #[allow(clippy::new_ret_no_self)]
            pub fn new(lr: impl Into<LearningRate>) -> Optimizer {
                Optimizer {
                    rule: $rule,
                    lr: lr.into(),
                    clip_norm: None,
                    name: $name.to_string(),
                }
            }
        }
    };
}

ctor!(
    Sgd,
    "Plain gradient descent (TF's `GradientDescentOptimizer`).",
    "GradientDescent",
    Rule::Sgd
);
ctor!(
    Momentum,
    "Momentum with coefficient 0.9; see [`Optimizer::momentum`] (TF's `MomentumOptimizer`).",
    "Momentum",
    Rule::Momentum {
        momentum: 0.9,
        nesterov: false
    }
);
ctor!(
    Adam,
    "Adam with TF's defaults (TF's `AdamOptimizer`).",
    "Adam",
    Rule::Adam {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.0
    }
);
ctor!(
    AdamW,
    "Adam with decoupled weight decay 0.004 (Keras' `AdamW` default); see [`Optimizer::weight_decay`].",
    "AdamW",
    Rule::Adam {
        beta1: 0.9,
        beta2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.004
    }
);
ctor!(
    RmsProp,
    "RMSProp with TF 1's defaults (TF's `RMSPropOptimizer`).",
    "RMSProp",
    Rule::RmsProp {
        rho: 0.9,
        momentum: 0.0,
        epsilon: 1e-10
    }
);

impl Optimizer {
    /// Sets the momentum coefficient (Momentum and RMSProp).
    pub fn momentum(mut self, m: f32) -> Self {
        match &mut self.rule {
            Rule::Momentum { momentum, .. } | Rule::RmsProp { momentum, .. } => *momentum = m,
            _ => {}
        }
        self
    }

    /// Uses Nesterov momentum (Momentum).
    pub fn nesterov(mut self, on: bool) -> Self {
        if let Rule::Momentum { nesterov, .. } = &mut self.rule {
            *nesterov = on;
        }
        self
    }

    /// Sets Adam's betas.
    pub fn betas(mut self, b1: f32, b2: f32) -> Self {
        if let Rule::Adam { beta1, beta2, .. } = &mut self.rule {
            (*beta1, *beta2) = (b1, b2);
        }
        self
    }

    /// Sets epsilon (Adam, RMSProp).
    pub fn epsilon(mut self, e: f32) -> Self {
        match &mut self.rule {
            Rule::Adam { epsilon, .. } | Rule::RmsProp { epsilon, .. } => *epsilon = e,
            _ => {}
        }
        self
    }

    /// Sets RMSProp's decay `rho`.
    pub fn rho(mut self, r: f32) -> Self {
        if let Rule::RmsProp { rho, .. } = &mut self.rule {
            *rho = r;
        }
        self
    }

    /// Sets the decoupled weight decay (Adam becomes AdamW).
    pub fn weight_decay(mut self, wd: f32) -> Self {
        if let Rule::Adam { weight_decay, .. } = &mut self.rule {
            *weight_decay = wd;
        }
        self
    }

    /// Clips gradients by global norm before applying them.
    pub fn clip_by_global_norm(mut self, clip_norm: f32) -> Self {
        self.clip_norm = Some(clip_norm);
        self
    }

    /// The update rule.
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// Gradients of `loss` for `var_list` (the trainable variables when `None`); pairs
    /// of (gradient, variable), skipping variables the loss does not depend on.
    pub fn compute_gradients(
        &self,
        g: &mut Graph,
        loss: Tensor,
        var_list: Option<&[Tensor]>,
    ) -> Result<Vec<(Tensor, Tensor)>> {
        let vars = match var_list {
            Some(v) => v.to_vec(),
            None => g.trainable_variables(),
        };
        if vars.is_empty() {
            return Err(Error::invalid_argument("No variables to optimize."));
        }
        let grads = gradients(g, &[loss], &vars, None)?;
        let pairs: Vec<(Tensor, Tensor)> = grads
            .into_iter()
            .zip(vars)
            .filter_map(|(gr, v)| gr.map(|gr| (gr, v)))
            .collect();
        if pairs.is_empty() {
            return Err(Error::invalid_argument(format!(
                "No gradients provided for any variable: '{}' does not depend on any of them",
                g.name(loss)
            )));
        }
        Ok(pairs)
    }

    /// `compute_gradients` then `apply_gradients`, with the graph's update ops (the
    /// `update_ops` collection) run before the updates. The loss joins the `losses`
    /// collection and the train op `train_op`, where TF's tools find them in an
    /// imported graph.
    pub fn minimize(
        &self,
        g: &mut Graph,
        loss: Tensor,
        global_step: impl Into<Option<Tensor>>,
    ) -> Result<Operation> {
        let global_step = global_step.into();
        let gv = self.compute_gradients(g, loss, None)?;
        let updates: Vec<Operation> = g
            .collection(collections::UPDATE_OPS)
            .iter()
            .map(|t| t.op())
            .collect();
        let train =
            g.control_dependencies(&updates, |g| self.apply_gradients(g, &gv, global_step))?;
        g.add_to_collection(collections::LOSSES, loss);
        g.add_to_collection(collections::TRAIN_OP, train);
        Ok(train)
    }

    /// Adds one update op per (gradient, variable) and, when given, increments the global
    /// step after all of them. Returns the train op.
    pub fn apply_gradients(
        &self,
        g: &mut Graph,
        grads_and_vars: &[(Tensor, Tensor)],
        global_step: Option<Tensor>,
    ) -> Result<Operation> {
        for &(gr, v) in grads_and_vars {
            if !g.is_variable(v) {
                return Err(Error::invalid_argument(format!(
                    "'{}' is not a variable",
                    g.name(v)
                )));
            }
            if g.dtype(gr) != DType::F32 || g.shape(gr) != g.shape(v) {
                return Err(Error::invalid_argument(format!(
                    "gradient '{}' ({} {}) does not match variable '{}' ({} {})",
                    g.name(gr),
                    g.dtype(gr),
                    crate::tensor::shape_str(g.shape(gr)),
                    g.name(v),
                    g.dtype(v),
                    crate::tensor::shape_str(g.shape(v))
                )));
            }
        }
        let name = self.name.clone();
        let mut grads: Vec<Tensor> = grads_and_vars.iter().map(|p| p.0).collect();
        // Data-parallel training averages these across processes, before clipping.
        for &gr in &grads {
            g.average_across_replicas(gr)?;
        }
        if let Some(c) = self.clip_norm {
            grads = clip_by_global_norm(g, &grads, c)?.0;
        }
        let lr = self.lr.build(g, global_step)?;
        let slot = |g: &mut Graph, v: Tensor, suffix: &str, init: Initializer| -> Result<Tensor> {
            let vname = format!("{}/{suffix}", g.name(v));
            let shape = g.shape(v).to_vec();
            g.root_scope(|g| {
                g.variable_with(
                    &vname,
                    DType::F32,
                    &shape,
                    init,
                    VariableOptions {
                        trainable: false,
                        ..Default::default()
                    },
                )
            })
        };
        let mut applies = Vec::with_capacity(grads.len());
        let mut powers = None;
        if let Rule::Adam { beta1, beta2, .. } = self.rule {
            let scalar = |g: &mut Graph, n: &str, v: f32| {
                g.root_scope(|g| {
                    g.variable_with(
                        n,
                        DType::F32,
                        &[],
                        Initializer::Constant(f64::from(v)),
                        VariableOptions {
                            trainable: false,
                            ..Default::default()
                        },
                    )
                })
            };
            powers = Some((
                scalar(g, "beta1_power", beta1)?,
                scalar(g, "beta2_power", beta2)?,
            ));
        }
        g.name_scope(&name, |g| {
            for (&gr, &(_, v)) in grads.iter().zip(grads_and_vars) {
                let short = g.name(v).to_string();
                let op_name = format!("update_{}/{}", short.replace('/', "_"), "apply");
                let inputs = match self.rule {
                    Rule::Sgd => vec![v, lr, gr],
                    Rule::Momentum { .. } => {
                        let acc = slot(g, v, "Momentum", Initializer::Zeros)?;
                        vec![v, acc, lr, gr]
                    }
                    Rule::Adam { .. } => {
                        let m = slot(g, v, &name, Initializer::Zeros)?;
                        let s = slot(g, v, &format!("{name}_1"), Initializer::Zeros)?;
                        let (b1p, b2p) = powers.ok_or_else(|| Error::internal("adam powers"))?;
                        vec![v, m, s, b1p, b2p, lr, gr]
                    }
                    Rule::RmsProp { .. } => {
                        let ms = slot(g, v, "RMSProp", Initializer::Ones)?;
                        let mom = slot(g, v, "RMSProp_1", Initializer::Zeros)?;
                        vec![v, ms, mom, lr, gr]
                    }
                };
                let t = g.apply_update(self.rule.clone(), &inputs, &op_name)?;
                applies.push(t.op());
            }
            let mut done: Vec<Operation> = applies.clone();
            if let (Some((b1p, b2p)), Rule::Adam { beta1, beta2, .. }) = (powers, &self.rule) {
                let (beta1, beta2) = (*beta1, *beta2);
                let finish = g.control_dependencies(&applies, |g| {
                    let n1 = g.scale(b1p, beta1)?;
                    let u1 = g.assign(b1p, n1)?;
                    let n2 = g.scale(b2p, beta2)?;
                    let u2 = g.assign(b2p, n2)?;
                    g.group(&[u1.op(), u2.op()], "finish")
                })?;
                done = vec![finish];
            }
            match global_step {
                Some(step) => {
                    if g.dtype(step) != DType::I64 && g.dtype(step) != DType::I32 {
                        return Err(Error::invalid_argument(
                            "global_step must be an integer variable",
                        ));
                    }
                    g.control_dependencies(&done, |g| {
                        let one =
                            g.constant(HostTensor::from_f64(g.dtype(step), &[], &[1.0])?, "one")?;
                        Ok(g.assign_add(step, one)?.op())
                    })
                }
                None => g.group(&done, "train"),
            }
        })
    }
}
