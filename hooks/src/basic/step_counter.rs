//! StepCounterHook.

use super::*;

/// Logs `global_step/sec` (through `tracing`) and writes it as a summary (TF's
/// `StepCounterHook`).
pub struct StepCounterHook {
    timer: SecondOrStepTimer,
    dir: Option<PathBuf>,
    gs: Option<Tensor>,
    tag: String,
    writer: Option<Arc<EventWriter>>,
    /// (step, steps per second) of the rates written (the most recent [`HISTORY`] at
    /// least).
    pub rates: Arc<Mutex<Vec<(i64, f64)>>>,
    /// Runs after which the global step had not moved (each logs a warning, as TF).
    pub not_increased: Arc<Mutex<usize>>,
    last_step: Option<i64>,
}

impl StepCounterHook {
    /// A counter on `timer`'s schedule, writing summaries into `dir` if given.
    pub fn with_timer(timer: SecondOrStepTimer, dir: Option<PathBuf>) -> Self {
        StepCounterHook {
            timer,
            dir,
            gs: None,
            tag: String::new(),
            writer: None,
            rates: Arc::new(Mutex::new(Vec::new())),
            not_increased: Arc::new(Mutex::new(0)),
            last_step: None,
        }
    }

    /// A counter every `every_n_steps` steps (TF's default 100).
    pub fn new(every_n_steps: i64, dir: Option<PathBuf>, clock: SharedClock) -> Result<Self> {
        Ok(Self::with_timer(
            SecondOrStepTimer::new(None, Some(every_n_steps), clock)?,
            dir,
        ))
    }
}

impl SessionRunHook for StepCounterHook {
    fn begin(&mut self, g: &mut Graph) -> Result<()> {
        let gs = global_step_of(g, "StepCounterHook")?;
        // TF's tag: the global step's name and "/sec" ("global_step/sec").
        self.tag = format!("{}/sec", g.name(gs));
        self.gs = Some(gs);
        Ok(())
    }

    fn after_create_session(&mut self, _: &mut dyn Executor, coord: &Coordinator) -> Result<()> {
        if let Some(d) = &self.dir {
            self.writer = Some(coord.event_writer(d)?);
        }
        Ok(())
    }

    fn after_run(&mut self, ctx: &mut SessionRunContext, _: &SessionRunValues) -> Result<()> {
        let gs = self.gs.ok_or_else(|| Error::internal("begin not called"))?;
        let step = step_now(ctx.session, gs)?;
        if self.last_step == Some(step) {
            tracing::warn!(
                step,
                "It seems that global step has not been increased. Current value: {step}"
            );
            if let Ok(mut n) = self.not_increased.lock() {
                *n += 1;
            }
        }
        self.last_step = Some(step);
        if self.timer.should_trigger_for_step(step) {
            let (secs, steps) = self.timer.update_last_triggered_step(step);
            if let (Some(secs), Some(steps)) = (secs, steps)
                && secs > 0.0
            {
                let rate = steps as f64 / secs;
                tracing::info!(step, "{}: {rate:.4}", self.tag);
                if let Ok(mut r) = self.rates.lock() {
                    push_recent(&mut r, (step, rate));
                }
                let mut values = vec![events::scalar(&self.tag, rate as f32)];
                // In a distributed job, the examples of every rank: the leading dimension
                // of the first feed is a rank's batch.
                let world = crate::distributed::current_world().filter(|w| w.size > 1);
                let batch = ctx
                    .original_args
                    .feeds
                    .first()
                    .and_then(|(_, v)| v.shape().first());
                if let (Some(w), Some(&b)) = (world, batch) {
                    let examples = rate * (b * w.size) as f64;
                    tracing::info!(step, "examples/sec: {examples:.1} ({} ranks)", w.size);
                    values.push(events::scalar("examples/sec", examples as f32));
                }
                if let Some(w) = &self.writer {
                    w.add_summary(step, values)?;
                }
            }
        }
        Ok(())
    }

    fn end(&mut self, _: &mut dyn Executor) -> Result<()> {
        // Everything on disk when close() returns (TF's are not: §17 of the notes).
        if let Some(w) = &self.writer {
            w.flush()?;
        }
        Ok(())
    }
}
