//! GlobalStepWaiterHook.

use super::*;

/// Delays runs until the global step reaches a value (TF's `GlobalStepWaiterHook`),
/// checking every `poll_secs`.
pub struct GlobalStepWaiterHook {
    wait_until: i64,
    poll_secs: f64,
    gs: Option<Tensor>,
    done: bool,
    sleep: Sleep,
}

/// The pause between a waiting hook's checks: given the session and the seconds.
pub type Sleep = Box<dyn FnMut(&mut dyn Executor, f64) -> Result<()> + Send>;

impl GlobalStepWaiterHook {
    /// Waits until the global step is at least `wait_until_step` (<= 0: never waits).
    pub fn new(wait_until_step: i64) -> Self {
        GlobalStepWaiterHook {
            wait_until: wait_until_step,
            poll_secs: 0.5,
            gs: None,
            done: false,
            sleep: Box::new(|_, secs| {
                std::thread::sleep(std::time::Duration::from_secs_f64(secs));
                Ok(())
            }),
        }
    }

    /// Pauses between checks with `sleep` instead of the thread sleeping (TF's test
    /// mocks `time.sleep` the same way).
    pub fn with_sleep(mut self, sleep: Sleep) -> Self {
        self.sleep = sleep;
        self
    }
}

impl SessionRunHook for GlobalStepWaiterHook {
    fn begin(&mut self, g: &mut Graph) -> Result<()> {
        self.gs = Some(global_step_of(g, "GlobalStepWaiterHook")?);
        self.done = self.wait_until <= 0;
        Ok(())
    }

    fn before_run(&mut self, ctx: &mut SessionRunContext) -> Result<Option<SessionRunArgs>> {
        let Some(gs) = self.gs else { return Ok(None) };
        while !self.done {
            let step = read_step(ctx.session, gs)?;
            if step >= self.wait_until {
                self.done = true;
                break;
            }
            // Every rank of a synchronous job holds the chief's step, and it moves only
            // when every rank trains: waiting here would wait forever.
            if let Some(w) = crate::distributed::current_world().filter(|w| w.size > 1) {
                return Err(Error::failed_precondition(format!(
                    "GlobalStepWaiterHook on rank {} waits for global step {}, but the step is {step} and in synchronous training it moves only when every rank trains",
                    w.rank, self.wait_until
                )));
            }
            tracing::info!(step, until = self.wait_until, "waiting for the global step");
            (self.sleep)(ctx.session, self.poll_secs)?;
        }
        Ok(None)
    }
}
