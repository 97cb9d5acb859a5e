//! Binding of `optim.wgsl`: optimizer updates, per variable or over a whole arena.

use super::params::*;
use super::{Loc, Recorder};
use crate::error::{Error, Result};
use crate::ops::Op;
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

impl Recorder<'_> {
    /// Records one optimizer update of `n` parameters: `var` and its `slots` (arena
    /// views or whole arenas), the gradient, the learning rate and Adam's beta powers.
    ///
    /// With `finish` the fused entry point also does the step's bookkeeping in the book
    /// (see `optim.wgsl`); Adam's powers must then be bound from a copy of their old
    /// values, not from the book.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        op: &Op,
        var: &Loc,
        slots: &[&Loc],
        grad: &Loc,
        lr: &Loc,
        powers: Option<(&Loc, &Loc)>,
        n: usize,
        finish: Option<Bookkeeping>,
    ) -> Result<()> {
        let groups = self.groups_1d(n as u64)?;
        let (entry, flag, h) = match op {
            Op::ApplyGradientDescent => ("sgd", 0, [0.0; 4]),
            Op::ApplyMomentum { momentum, nesterov } => {
                ("momentum", u32::from(*nesterov), [*momentum, 0.0, 0.0, 0.0])
            }
            Op::ApplyAdam {
                beta1,
                beta2,
                epsilon,
                weight_decay,
            } => ("adam", 0, [*beta1, *beta2, *epsilon, *weight_decay]),
            Op::ApplyRmsProp {
                rho,
                momentum,
                epsilon,
            } => ("rmsprop", 0, [*rho, *momentum, *epsilon, 0.0]),
            _ => {
                return Err(Error::internal(format!(
                    "{} is not an optimizer update",
                    op.tf_name()
                )));
            }
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
        let mut bindings: Vec<(u32, &Loc)> = vec![(1, var), (4, grad), (5, lr)];
        for (k, s) in slots.iter().enumerate() {
            bindings.push((2 + k as u32, s));
        }
        if let Some((b1p, b2p)) = powers {
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
                let fused = match entry {
                    "sgd" => "sgd_fused",
                    "momentum" => "momentum_fused",
                    "adam" => "adam_fused",
                    _ => "rmsprop_fused",
                };
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
