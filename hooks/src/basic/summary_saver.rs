//! SummarySaverHook.

use super::*;

/// Writes the summary op's values (TF's `SummarySaverHook`): on the first run, then
/// every N steps or seconds, at the global step after the run; a `SessionLog START`
/// at the first run. The values are computed in the step's run and fetched without
/// holding it up (see [`SessionRunArgs::pending`]); the writer thread waits for them
/// and builds histograms and PNGs.
pub struct SummarySaverHook {
    dir: PathBuf,
    timer: SecondOrStepTimer,
    summary: SummarySource,
    gs: Option<Tensor>,
    writer: Option<Arc<EventWriter>>,
    next_step: Option<i64>,
    requested: bool,
    /// The steps written, in order (the most recent [`HISTORY`] at least).
    pub written: Arc<Mutex<Vec<i64>>>,
}

/// Where a summary hook's summary op comes from.
enum SummarySource {
    Scaffold(Arc<Scaffold>),
    Op(MergedSummary),
}

impl SummarySaverHook {
    /// A hook writing the scaffold's summary op into `dir` on `timer`'s schedule.
    pub fn with_timer(timer: SecondOrStepTimer, dir: PathBuf, scaffold: Arc<Scaffold>) -> Self {
        Self::writing(timer, dir, SummarySource::Scaffold(scaffold))
    }

    /// TF's constructor: writes every `save_steps` steps or `save_secs` seconds (exactly
    /// one) into `output_dir`, the `scaffold`'s summary op or `summary_op` (exactly
    /// one), else InvalidArgument.
    pub fn new(
        save_steps: Option<i64>,
        save_secs: Option<f64>,
        output_dir: impl Into<PathBuf>,
        scaffold: Option<Arc<Scaffold>>,
        summary_op: Option<MergedSummary>,
        clock: SharedClock,
    ) -> Result<Self> {
        let summary = match (scaffold, summary_op) {
            (Some(s), None) => SummarySource::Scaffold(s),
            (None, Some(op)) => SummarySource::Op(op),
            _ => {
                return Err(Error::invalid_argument(
                    "Exactly one of scaffold or summary_op must be provided.",
                ));
            }
        };
        let timer = SecondOrStepTimer::new(save_secs, save_steps, clock)?;
        Ok(Self::writing(timer, output_dir.into(), summary))
    }

    fn writing(timer: SecondOrStepTimer, dir: PathBuf, summary: SummarySource) -> Self {
        SummarySaverHook {
            dir,
            timer,
            summary,
            gs: None,
            writer: None,
            next_step: None,
            requested: false,
            written: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl SummarySaverHook {
    fn summary_op(&self) -> MergedSummary {
        match &self.summary {
            SummarySource::Scaffold(s) => s.get_summary_op(),
            SummarySource::Op(op) => op.clone(),
        }
    }
}

impl SessionRunHook for SummarySaverHook {
    fn begin(&mut self, g: &mut Graph) -> Result<()> {
        self.gs = Some(global_step_of(g, "SummarySaverHook")?);
        self.next_step = None;
        Ok(())
    }

    fn after_create_session(&mut self, _: &mut dyn Executor, coord: &Coordinator) -> Result<()> {
        self.writer = Some(coord.event_writer(&self.dir)?);
        Ok(())
    }

    fn before_run(&mut self, _: &mut SessionRunContext) -> Result<Option<SessionRunArgs>> {
        self.requested = self
            .next_step
            .is_none_or(|s| self.timer.should_trigger_for_step(s));
        if !self.requested {
            return Ok(None);
        }
        // Fetched without holding up the step: the writer thread waits for the values.
        Ok(Some(SessionRunArgs {
            pending: self.summary_op().fetches(),
            ..Default::default()
        }))
    }

    fn after_run(&mut self, ctx: &mut SessionRunContext, v: &SessionRunValues) -> Result<()> {
        let gs = self.gs.ok_or_else(|| Error::internal("begin not called"))?;
        let step = step_now(ctx.session, gs)?;
        let Some(w) = &self.writer else {
            return Ok(());
        };
        if self.next_step.is_none() {
            w.add(events::session_log(step, 1, ""))?;
        }
        if self.requested {
            self.timer.update_last_triggered_step(step);
            let merged = self.summary_op();
            if !merged.is_empty() {
                let values = v.pending.as_ref().ok_or_else(|| {
                    Error::internal("the summary values did not come with the run")
                })?;
                w.add_pending(step, merged, values.clone_handle())?;
                if let Ok(mut l) = self.written.lock() {
                    push_recent(&mut l, step);
                }
            }
        }
        self.next_step = Some(step + 1);
        Ok(())
    }

    fn end(&mut self, _: &mut dyn Executor) -> Result<()> {
        if let Some(w) = &self.writer {
            w.flush()?;
        }
        Ok(())
    }
}
