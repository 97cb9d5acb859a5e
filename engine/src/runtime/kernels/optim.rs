//! Binding of `optim.wgsl`: optimizer updates, per variable or over a whole arena.

use super::params::*;
use super::{Loc, Recorder};
use crate::error::{Error, Result};
use crate::ops::Op;
use crate::runtime::shaders::Shader;

impl Recorder<'_> {
    /// Records one optimizer update of `n` parameters: `var` and its `slots` (arena
    /// views or whole arenas), the gradient, the learning rate and Adam's beta powers.
    ///
    /// With `finish` (FINISH bits of `optim.wgsl`, scratch buffer) the fused entry point
    /// also computes the step's scalar bookkeeping into the scratch buffer.
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
        finish: Option<(u32, &Loc)>,
    ) -> Result<()> {
        let groups = if n == 0 {
            [0; 3]
        } else {
            self.groups_1d(n as u64)?
        };
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
        let p = OptParams {
            n: n as u32,
            flag,
            pad: [0; 2],
            h,
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
            Some((bits, scratch)) => {
                bindings.push((8, scratch));
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
                    vec![("FINISH", bits)],
                    bytemuck::bytes_of(&p),
                    &bindings,
                    groups,
                )
            }
        }
    }
}
