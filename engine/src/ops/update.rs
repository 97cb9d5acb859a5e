//! The update family: optimizer update rules applied to a variable and its slots
//! (`shaders/optim.wgsl`), TF's `Apply*` ops. An [`crate::optim::Optimizer`] adds one per
//! trainable variable; the planner may fuse those of one rule into one dispatch per
//! arena (`runtime/fusion/`), with the same kernels.

use super::Op;
use super::export::{Export, TfAttr};
use super::family::{Family, not_differentiable};
use super::infer::{Check, Inferred, compatible};
use crate::error::Result;
use crate::graph::{Graph, Node, Tensor};
use crate::reference::Value;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder};
#[cfg(feature = "gpu")]
use crate::tensor::num_elements as numel;
use crate::tensor::{DType, shape_str};

/// The update rule of an optimizer, and the op applying it to one variable.
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    /// Plain gradient descent: `var -= lr * grad`; inputs (var, lr, grad).
    Sgd,
    /// Momentum, optionally Nesterov; inputs (var, accum, lr, grad).
    Momentum {
        /// Momentum coefficient.
        momentum: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// Adam; AdamW when `weight_decay` > 0. Inputs (var, m, v, beta1_power,
    /// beta2_power, lr, grad).
    Adam {
        /// First-moment decay (0.9).
        beta1: f32,
        /// Second-moment decay (0.999).
        beta2: f32,
        /// Epsilon (1e-8).
        epsilon: f32,
        /// Decoupled weight decay, multiplied by the learning rate.
        weight_decay: f32,
    },
    /// RMSProp (TF 1: mean square initialized to ones); inputs (var, ms, mom, lr, grad).
    RmsProp {
        /// Decay of the mean square (0.9).
        rho: f32,
        /// Momentum (0).
        momentum: f32,
        /// Epsilon (1e-10).
        epsilon: f32,
    },
}

/// Input positions of an update op ([`Rule::inputs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateInputs {
    /// The learning rate.
    pub lr: usize,
    /// The gradient.
    pub grad: usize,
    /// Adam's beta powers.
    pub powers: Option<(usize, usize)>,
}

impl Rule {
    /// Where the learning rate, gradient and (Adam) beta powers are among the update's
    /// inputs.
    pub fn inputs(&self) -> UpdateInputs {
        let (lr, grad, powers) = match self {
            Rule::Sgd => (1, 2, None),
            Rule::Momentum { .. } => (2, 3, None),
            Rule::Adam { .. } => (5, 6, Some((3, 4))),
            Rule::RmsProp { .. } => (3, 4, None),
        };
        UpdateInputs { lr, grad, powers }
    }

    /// The inputs, besides input 0, that are slots updated in place.
    pub fn slots(&self) -> &'static [usize] {
        match self {
            Rule::Sgd => &[],
            Rule::Momentum { .. } => &[1],
            Rule::Adam { .. } | Rule::RmsProp { .. } => &[1, 2],
        }
    }

    /// The number of inputs.
    fn arity(&self) -> usize {
        self.inputs().grad + 1
    }
}

impl Graph {
    /// The update of variable `inputs[0]` by `rule` (inputs as the rule lists them).
    pub fn apply_update(&mut self, rule: Rule, inputs: &[Tensor], name: &str) -> Result<Tensor> {
        self.add_op(Op::Apply(rule), inputs, name)
    }
}

/// The new values of the variables `rule` updates: (input index, data), input 0 (the
/// variable) last.
fn reference(rule: &Rule, ins: &[&Value]) -> Vec<(usize, Vec<f64>)> {
    let at = rule.inputs();
    let var = &ins[0].data;
    let grad = &ins[at.grad].data;
    let lr = ins[at.lr].data[0];
    match rule {
        Rule::Sgd => {
            vec![(0, var.iter().zip(grad).map(|(w, g)| w - lr * g).collect())]
        }
        Rule::Momentum { momentum, nesterov } => {
            let m = f64::from(*momentum);
            let acc: Vec<f64> = ins[1]
                .data
                .iter()
                .zip(grad)
                .map(|(a, g)| a * m + g)
                .collect();
            let w = var
                .iter()
                .zip(grad)
                .zip(&acc)
                .map(|((w, g), a)| {
                    if *nesterov {
                        w - g * lr - a * m * lr
                    } else {
                        w - lr * a
                    }
                })
                .collect();
            vec![(1, acc), (0, w)]
        }
        Rule::Adam {
            beta1,
            beta2,
            epsilon,
            weight_decay,
        } => {
            let (b1, b2, eps, wd) = (
                f64::from(*beta1),
                f64::from(*beta2),
                f64::from(*epsilon),
                f64::from(*weight_decay),
            );
            let (b1p, b2p) = at
                .powers
                .map_or((0.0, 0.0), |(a, b)| (ins[a].data[0], ins[b].data[0]));
            let lr_t = lr * (1.0 - b2p).sqrt() / (1.0 - b1p);
            let m: Vec<f64> = ins[1]
                .data
                .iter()
                .zip(grad)
                .map(|(m, g)| m + (g - m) * (1.0 - b1))
                .collect();
            let v: Vec<f64> = ins[2]
                .data
                .iter()
                .zip(grad)
                .map(|(v, g)| v + (g * g - v) * (1.0 - b2))
                .collect();
            let w = var
                .iter()
                .zip(m.iter().zip(&v))
                .map(|(w, (m, v))| w - lr * wd * w - lr_t * m / (v.sqrt() + eps))
                .collect();
            vec![(1, m), (2, v), (0, w)]
        }
        Rule::RmsProp {
            rho,
            momentum,
            epsilon,
        } => {
            let (rho, mo, eps) = (f64::from(*rho), f64::from(*momentum), f64::from(*epsilon));
            let ms: Vec<f64> = ins[1]
                .data
                .iter()
                .zip(grad)
                .map(|(s, g)| s + (g * g - s) * (1.0 - rho))
                .collect();
            let mom: Vec<f64> = ins[2]
                .data
                .iter()
                .zip(grad.iter().zip(&ms))
                .map(|(m, (g, s))| m * mo + lr * g / (s + eps).sqrt())
                .collect();
            let w = var.iter().zip(&mom).map(|(w, m)| w - m).collect();
            vec![(1, ms), (2, mom), (0, w)]
        }
    }
}

impl Family for Rule {
    fn tf_name(&self) -> &'static str {
        match self {
            Rule::Sgd => "ApplyGradientDescent",
            Rule::Momentum { .. } => "ApplyMomentum",
            Rule::Adam { .. } => "ApplyAdam",
            Rule::RmsProp { .. } => "ApplyRMSProp",
        }
    }

    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred> {
        let c = Check::new(self.tf_name(), dtypes, shapes);
        let n = self.arity();
        c.arity(n)?;
        for i in 0..n {
            c.float_only(i)?;
        }
        let (var, grad) = (&shapes[0], &shapes[n - 1]);
        if !compatible(var, grad) {
            return Err(c.err(format!(
                "var and grad do not have the same shape {} {}",
                shape_str(var),
                shape_str(grad)
            )));
        }
        Ok(Inferred {
            dtype: DType::F32,
            shape: var.clone(),
        })
    }

    fn grad(
        &self,
        _g: &mut Graph,
        node: &Node,
        _y: Tensor,
        _dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        Err(not_differentiable(self, node))
    }

    /// The variable's new value.
    fn eval(&self, ins: &[&Value], _dtype: DType, _shape: &[usize]) -> Result<Vec<f64>> {
        let mut ups = reference(self, ins);
        Ok(ups.pop().map(|(_, v)| v).unwrap_or_default())
    }

    fn updates(
        &self,
        ins: &[&Value],
        _dtype: DType,
        _shape: &[usize],
    ) -> Result<Vec<(usize, Vec<f64>)>> {
        Ok(reference(self, ins))
    }

    #[cfg(feature = "gpu")]
    fn record(
        &self,
        rec: &mut Recorder<'_>,
        ins: &[Arg<'_>],
        _out: &Loc,
        _dtype: DType,
        shape: &[usize],
    ) -> Result<()> {
        let at = self.inputs();
        let slots: Vec<&Loc> = self.slots().iter().map(|&k| ins[k].loc).collect();
        let powers = at.powers.map(|(a, b)| (ins[a].loc, ins[b].loc));
        let update = crate::runtime::kernels::Update {
            rule: self,
            var: ins[0].loc,
            slots: &slots,
            grad: ins[at.grad].loc,
            lr: ins[at.lr].loc,
            powers,
            n: numel(shape),
        };
        rec.apply(&update, None)
    }

    fn export(&self, e: &mut Export<'_>) {
        let f32t = || TfAttr::Type(DType::F32);
        let unlocked = || TfAttr::Bool(false);
        match self {
            Rule::Sgd => e.attrs(vec![("T", f32t()), ("use_locking", unlocked())]),
            Rule::RmsProp {
                rho,
                momentum,
                epsilon,
            } => {
                // TF: (var, ms, mom, lr, rho, momentum, epsilon, grad).
                e.before_grad(&[
                    ("rho", *rho),
                    ("momentum", *momentum),
                    ("epsilon", *epsilon),
                ]);
                e.attrs(vec![("T", f32t()), ("use_locking", unlocked())]);
            }
            Rule::Momentum { momentum, nesterov } => {
                // TF: (var, accum, lr, grad, momentum).
                let m = e.f32("momentum", *momentum);
                e.inputs.push(m);
                e.attrs(vec![
                    ("T", f32t()),
                    ("use_locking", unlocked()),
                    ("use_nesterov", TfAttr::Bool(*nesterov)),
                ]);
            }
            Rule::Adam {
                beta1,
                beta2,
                epsilon,
                ..
            } => {
                // TF: (var, m, v, beta1_power, beta2_power, lr, beta1, beta2, epsilon,
                // grad).
                e.before_grad(&[("beta1", *beta1), ("beta2", *beta2), ("epsilon", *epsilon)]);
                e.attrs(vec![
                    ("T", f32t()),
                    ("use_locking", unlocked()),
                    ("use_nesterov", TfAttr::Bool(false)),
                ]);
            }
        }
    }
}
