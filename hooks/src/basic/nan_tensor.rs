//! NanTensorHook.

use super::*;

/// Fails (or stops) when the loss is NaN (TF's `NanTensorHook`).
pub struct NanTensorHook {
    loss: Tensor,
    fail_on_nan_loss: bool,
}

impl NanTensorHook {
    /// Watches `loss`; with `fail_on_nan_loss` a NaN is an error, else a stop request.
    pub fn new(loss: Tensor, fail_on_nan_loss: bool) -> Self {
        NanTensorHook {
            loss,
            fail_on_nan_loss,
        }
    }
}

impl SessionRunHook for NanTensorHook {
    fn before_run(&mut self, _: &mut SessionRunContext) -> Result<Option<SessionRunArgs>> {
        Ok(Some(SessionRunArgs::fetches(&[self.loss])))
    }

    fn after_run(&mut self, ctx: &mut SessionRunContext, v: &SessionRunValues) -> Result<()> {
        let nan = v
            .results
            .first()
            .map(|t| t.to_f64().iter().any(|x| x.is_nan()))
            .unwrap_or(false);
        if nan {
            if self.fail_on_nan_loss {
                return Err(Error::invalid_argument("NaN loss during training."));
            }
            tracing::warn!("NaN loss during training; stopping.");
            ctx.request_stop();
        }
        Ok(())
    }
}
