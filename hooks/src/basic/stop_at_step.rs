//! StopAtStepHook.

use super::*;

/// Requests a stop at a global step (TF's `StopAtStepHook`): after `num_steps` more
/// steps than the step at session creation, or at `last_step`.
pub struct StopAtStepHook {
    num_steps: Option<i64>,
    last_step: Option<i64>,
    gs: Option<Tensor>,
}

impl StopAtStepHook {
    /// TF's constructor: exactly one of `num_steps` and `last_step`, else
    /// InvalidArgument.
    pub fn new(num_steps: Option<i64>, last_step: Option<i64>) -> Result<StopAtStepHook> {
        match (num_steps, last_step) {
            (Some(n), None) => Ok(Self::num_steps(n)),
            (None, Some(l)) => Ok(Self::last_step(l)),
            (Some(_), Some(_)) => Err(Error::invalid_argument(
                "Only one of num_steps or last_step can be specified.",
            )),
            (None, None) => Err(Error::invalid_argument(
                "One of num_steps or last_step must be specified.",
            )),
        }
    }

    /// Stops `num_steps` steps after the session is created.
    pub fn num_steps(n: i64) -> StopAtStepHook {
        StopAtStepHook {
            num_steps: Some(n),
            last_step: None,
            gs: None,
        }
    }

    /// Stops at global step `last`.
    pub fn last_step(last: i64) -> StopAtStepHook {
        StopAtStepHook {
            num_steps: None,
            last_step: Some(last),
            gs: None,
        }
    }

    /// Boxed, for hook lists.
    pub fn boxed(self) -> Box<dyn SessionRunHook> {
        Box::new(self)
    }
}

impl SessionRunHook for StopAtStepHook {
    fn begin(&mut self, g: &mut Graph) -> Result<()> {
        self.gs = Some(global_step_of(g, "StopAtStepHook")?);
        Ok(())
    }

    fn after_create_session(&mut self, sess: &mut dyn Executor, _: &Coordinator) -> Result<()> {
        if let (None, Some(n), Some(gs)) = (self.last_step, self.num_steps, self.gs) {
            self.last_step = Some(read_step(sess, gs)? + n);
        }
        Ok(())
    }

    fn after_run(&mut self, ctx: &mut SessionRunContext, _: &SessionRunValues) -> Result<()> {
        if let (Some(last), Some(gs)) = (self.last_step, self.gs)
            && step_now(ctx.session, gs)? >= last
        {
            ctx.request_stop();
        }
        Ok(())
    }
}
