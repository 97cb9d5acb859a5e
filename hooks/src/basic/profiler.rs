//! ProfilerHook.

use super::*;

/// Traces a run every N steps or seconds and writes `timeline-<step>.json` in Chrome's
/// trace format: one event per kernel with its device time and the node it ran for,
/// so a step opens in Perfetto or chrome://tracing (TF's `ProfilerHook`).
pub struct ProfilerHook {
    dir: PathBuf,
    timer: SecondOrStepTimer,
    gs: Option<Tensor>,
    next_step: Option<i64>,
    requested: bool,
    writer: Option<Arc<EventWriter>>,
    /// The timelines written, in order (the most recent [`HISTORY`] at least).
    pub written: Arc<Mutex<Vec<PathBuf>>>,
}

impl ProfilerHook {
    /// Traces every `save_steps` steps or `save_secs` seconds into `dir`.
    pub fn new(
        dir: impl Into<PathBuf>,
        save_secs: Option<f64>,
        save_steps: Option<i64>,
        clock: SharedClock,
    ) -> Result<Self> {
        Ok(ProfilerHook {
            dir: dir.into(),
            timer: SecondOrStepTimer::new(save_secs, save_steps, clock)?,
            gs: None,
            next_step: None,
            requested: false,
            writer: None,
            written: Arc::new(Mutex::new(Vec::new())),
        })
    }
}

/// A Chrome trace of a traced run.
pub fn chrome_trace(meta: &wgtrain_engine::RunMetadata) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let events: Vec<String> = meta
        .kernels
        .iter()
        .map(|k| {
            format!(
                "{{\"name\":\"{}\",\"cat\":\"kernel\",\"ph\":\"X\",\"pid\":0,\"tid\":0,\"ts\":{:.3},\"dur\":{:.3},\"args\":{{\"node\":\"{}\",\"kernel\":\"{}\"}}}}",
                esc(&k.node),
                k.start_ns / 1e3,
                k.duration_ns / 1e3,
                esc(&k.node),
                esc(k.kernel)
            )
        })
        .collect();
    format!(
        "{{\"traceEvents\":[{{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":0,\"args\":{{\"name\":\"wgtrain device\"}}}},{}],\"displayTimeUnit\":\"ns\"}}",
        events.join(",")
    )
}

impl SessionRunHook for ProfilerHook {
    fn begin(&mut self, g: &mut Graph) -> Result<()> {
        self.gs = Some(global_step_of(g, "ProfilerHook")?);
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(self.dir.display(), &e))?;
        Ok(())
    }

    fn after_create_session(&mut self, _: &mut dyn Executor, coord: &Coordinator) -> Result<()> {
        self.writer = Some(coord.event_writer(&self.dir)?);
        Ok(())
    }

    fn before_run(&mut self, _: &mut SessionRunContext) -> Result<Option<SessionRunArgs>> {
        // As TF: never the first run; then every N steps or seconds from it.
        self.requested = self
            .next_step
            .is_some_and(|s| self.timer.should_trigger_for_step(s));
        Ok(Some(SessionRunArgs {
            trace: self.requested,
            ..Default::default()
        }))
    }

    fn after_run(&mut self, ctx: &mut SessionRunContext, v: &SessionRunValues) -> Result<()> {
        let gs = self.gs.ok_or_else(|| Error::internal("begin not called"))?;
        let step = step_now(ctx.session, gs)?;
        if self.next_step.is_none() {
            // The timer starts at the step before the first run (TF's stale read).
            self.timer.update_last_triggered_step(step - 1);
        }
        if self.requested
            && let Some(meta) = &v.run_metadata
        {
            self.timer.update_last_triggered_step(step);
            let path = self.dir.join(format!("timeline-{step}.json"));
            std::fs::write(&path, chrome_trace(meta)).map_err(|e| Error::io(path.display(), &e))?;
            if let Ok(mut w) = self.written.lock() {
                push_recent(&mut w, path);
            }
            // As TF, the run metadata also goes to the event file, tagged "step_<N>".
            if let Some(w) = &self.writer {
                w.add(events::run_metadata(step, &format!("step_{step}"), meta))?;
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
