//! Binding of `optim.wgsl`: optimizer updates, per variable or over a whole arena.

use super::params::*;
use super::{Loc, Recorder};
use crate::error::Result;
use crate::ops::update::Rule;
use crate::runtime::shaders::Shader;

/// The step's scalar bookkeeping done by a fused update, in its group's book buffer.
pub(crate) struct Bookkeeping<'a> {
    /// The book: the group's beta powers and global step.
    pub book: &'a Loc,
    /// Word offsets of beta1_power, beta2_power and the step in the book.
    pub words: [u32; 3],
    /// Bit 0: update the beta powers; bit 1: increment the step.
    pub bits: u32,
    /// The step increment.
    pub increment: i64,
}

/// One optimizer update of `n` parameters: `var` and its `slots` (arena views or whole
/// arenas), the gradient, the learning rate and Adam's beta powers.
pub(crate) struct Update<'a> {
    /// The rule and its hyperparameters.
    pub rule: &'a Rule,
    /// The parameters.
    pub var: &'a Loc,
    /// The rule's slots, in [`Rule::slots`] order.
    pub slots: &'a [&'a Loc],
    /// The gradient.
    pub grad: &'a Loc,
    /// The learning rate (a scalar).
    pub lr: &'a Loc,
    /// Adam's beta1 and beta2 powers.
    pub powers: Option<(&'a Loc, &'a Loc)>,
    /// Parameters updated.
    pub n: usize,
}

impl Recorder<'_> {
    /// Records the update `u`.
    ///
    /// With `finish` the fused entry point also does the step's bookkeeping in the book
    /// (see `optim.wgsl`); Adam's powers must then be bound from a copy of their old
    /// values, not from the book.
    pub fn apply(&mut self, u: &Update<'_>, finish: Option<Bookkeeping>) -> Result<()> {
        let n = u.n;
        let groups = self.groups_1d(n as u64)?;
        let ((entry, fused), flag, h) = match *u.rule {
            Rule::Sgd => (("sgd", "sgd_fused"), 0, [0.0; 4]),
            Rule::Momentum { momentum, nesterov } => (
                ("momentum", "momentum_fused"),
                u32::from(nesterov),
                [momentum, 0.0, 0.0, 0.0],
            ),
            Rule::Adam {
                beta1,
                beta2,
                epsilon,
                weight_decay,
            } => (
                ("adam", "adam_fused"),
                0,
                [beta1, beta2, epsilon, weight_decay],
            ),
            Rule::RmsProp {
                rho,
                momentum,
                epsilon,
            } => (
                ("rmsprop", "rmsprop_fused"),
                0,
                [rho, momentum, epsilon, 0.0],
            ),
        };
        let mut p = OptParams {
            n: n as u32,
            flag,
            pad: [0; 2],
            h,
            book: [0; 4],
            inc: [0; 2],
            pad2: [0; 2],
        };
        let mut bindings: Vec<(u32, &Loc)> = vec![(1, u.var), (4, u.grad), (5, u.lr)];
        for (k, s) in u.slots.iter().enumerate() {
            bindings.push((2 + k as u32, s));
        }
        if let Some((b1p, b2p)) = u.powers {
            bindings.push((6, b1p));
            bindings.push((7, b2p));
        }
        match finish {
            None => self.dispatch(
                Shader::Optim,
                entry,
                vec![],
                bytemuck::bytes_of(&p),
                &bindings,
                groups,
            ),
            Some(f) => {
                p.book = [f.words[0], f.words[1], f.words[2], f.bits];
                p.inc = [f.increment as u32, (f.increment >> 32) as u32];
                bindings.push((8, f.book));
                // Invocation 0 must exist even for an empty update.
                let groups = if n == 0 { [1, 1, 1] } else { groups };
                self.dispatch(
                    Shader::Optim,
                    fused,
                    vec![],
                    bytemuck::bytes_of(&p),
                    &bindings,
                    groups,
                )
            }
        }
    }
}
