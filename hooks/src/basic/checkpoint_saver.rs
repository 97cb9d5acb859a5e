//! CheckpointSaverHook and its listeners.

use super::*;

/// Called around the checkpoint hook's saves (TF's `CheckpointSaverListener`).
pub trait CheckpointSaverListener: Send {
    /// Before the first save.
    fn begin(&mut self) -> Result<()> {
        Ok(())
    }
    /// Before each save.
    fn before_save(&mut self, _sess: &mut dyn Executor, _step: i64) -> Result<()> {
        Ok(())
    }
    /// After each save; `true` asks training to stop.
    fn after_save(&mut self, _sess: &mut dyn Executor, _step: i64) -> Result<bool> {
        Ok(false)
    }
    /// At the end.
    fn end(&mut self, _sess: &mut dyn Executor, _step: i64) -> Result<()> {
        Ok(())
    }
}

/// Saves checkpoints (TF's `CheckpointSaverHook`): once when the session is created,
/// then every N steps or seconds, and at the end when the last step was not saved;
/// each save logs a `SessionLog CHECKPOINT` event and, with `save_graph_def`, writes
/// `graph.pbtxt` (once) and a `.meta` per checkpoint.
pub struct CheckpointSaverHook {
    dir: PathBuf,
    basename: String,
    timer: SecondOrStepTimer,
    scaffold: Option<Arc<Scaffold>>,
    /// A saver given to the hook, or the default one it made at `begin`.
    own_saver: Option<Arc<Mutex<Saver>>>,
    listeners: Vec<Box<dyn CheckpointSaverListener>>,
    save_graph_def: bool,
    gs: Option<Tensor>,
    writer: Option<Arc<EventWriter>>,
    graph: Option<Arc<Graph>>,
    /// The step a snapshot was taken with the run for, when the save was foreseen.
    predicted: Option<i64>,
    /// Every step saved, in order (for tests and logs).
    pub saved: Arc<Mutex<Vec<i64>>>,
}

impl CheckpointSaverHook {
    /// A hook saving into `dir` on `timer`'s schedule with the scaffold's saver.
    pub fn with_timer(dir: PathBuf, timer: SecondOrStepTimer, scaffold: Arc<Scaffold>) -> Self {
        Self::saving_with(dir, timer, Some(scaffold), None)
    }

    /// A hook saving with `saver`, else the scaffold's (else a default one at `begin`).
    fn saving_with(
        dir: PathBuf,
        timer: SecondOrStepTimer,
        scaffold: Option<Arc<Scaffold>>,
        saver: Option<Saver>,
    ) -> Self {
        CheckpointSaverHook {
            dir,
            basename: "model.ckpt".into(),
            timer,
            scaffold,
            own_saver: saver.map(|s| Arc::new(Mutex::new(s))),
            listeners: Vec::new(),
            save_graph_def: true,
            gs: None,
            writer: None,
            graph: None,
            predicted: None,
            saved: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// TF's constructor: saves every `save_steps` steps or `save_secs` seconds (exactly
    /// one) with `saver`, or the `scaffold`'s saver (at most one of the two), or else a
    /// default saver over the global variables made at `begin` (TF takes the one in
    /// the SAVERS collection).
    pub fn new(
        dir: impl Into<PathBuf>,
        save_secs: Option<f64>,
        save_steps: Option<i64>,
        saver: Option<Saver>,
        scaffold: Option<Arc<Scaffold>>,
    ) -> Result<Self> {
        if saver.is_some() && scaffold.is_some() {
            return Err(Error::invalid_argument(
                "You cannot provide both saver and scaffold.",
            ));
        }
        let timer = SecondOrStepTimer::new(save_secs, save_steps, Arc::new(SystemClock))?;
        Ok(Self::saving_with(dir.into(), timer, scaffold, saver))
    }

    /// The saver: the hook's own, else the scaffold's.
    fn saver(&self) -> Option<Arc<Mutex<Saver>>> {
        match &self.own_saver {
            Some(s) => Some(Arc::clone(s)),
            None => self.scaffold.as_ref().and_then(|s| s.get_saver()),
        }
    }

    /// Adds a listener.
    pub fn listener(mut self, l: Box<dyn CheckpointSaverListener>) -> Self {
        self.listeners.push(l);
        self
    }

    /// Sets `save_graph_def`.
    pub fn save_graph_def(mut self, on: bool) -> Self {
        self.save_graph_def = on;
        self
    }

    fn save(&mut self, sess: &mut dyn Executor, step: i64) -> Result<bool> {
        self.save_with(sess, step, None)
    }

    fn save_with(
        &mut self,
        sess: &mut dyn Executor,
        step: i64,
        snapshot: Option<Snapshot>,
    ) -> Result<bool> {
        tracing::info!(
            step,
            "Saving checkpoints for {step} into {}",
            self.dir.display()
        );
        for l in &mut self.listeners {
            l.before_save(sess, step)?;
        }
        let Some(saver) = self.saver() else {
            return Ok(false);
        };
        // The SessionLog CHECKPOINT event is written once the checkpoint is durable,
        // by the saver's writer thread (TF writes it after its synchronous save).
        let log: Option<OnWritten> = self.writer.clone().map(|w| {
            Box::new(move |path: &std::path::Path| {
                w.add(events::session_log(step, 3, &path.display().to_string()))
            }) as OnWritten
        });
        {
            let mut s = saver
                .lock()
                .map_err(|_| Error::internal("saver lock poisoned"))?;
            let prefix = self.dir.join(&self.basename);
            match snapshot {
                Some(snap) => s.save_from_snapshot_then(snap, prefix, Some(step), log)?,
                None => s.save_then(sess, prefix, Some(step), log)?,
            };
        }
        if let Ok(mut v) = self.saved.lock() {
            v.push(step);
        }
        let mut stop = false;
        for l in &mut self.listeners {
            stop |= l.after_save(sess, step)?;
        }
        Ok(stop)
    }
}

impl SessionRunHook for CheckpointSaverHook {
    fn begin(&mut self, g: &mut Graph) -> Result<()> {
        self.gs = Some(global_step_of(g, "CheckpointSaverHook")?);
        if self.scaffold.is_none() && self.own_saver.is_none() {
            self.own_saver = Some(Arc::new(Mutex::new(Saver::new(
                g,
                SaverOptions::default(),
            )?)));
        }
        for l in &mut self.listeners {
            l.begin()?;
        }
        Ok(())
    }

    fn after_create_session(&mut self, sess: &mut dyn Executor, coord: &Coordinator) -> Result<()> {
        self.writer = Some(coord.event_writer(&self.dir)?);
        let gs = self.gs.ok_or_else(|| Error::internal("begin not called"))?;
        let step = read_step(sess, gs)?;
        if self.save_graph_def && self.graph.is_none() {
            let g = sess.graph_arc();
            graph_export::write_graph_pbtxt(&self.dir, &g)?;
            if let Some(w) = &self.writer {
                for e in graph_export::graph_events(&g) {
                    w.add(e)?;
                }
            }
            if let Some(saver) = self.saver() {
                let mut s = saver
                    .lock()
                    .map_err(|_| Error::internal("saver lock poisoned"))?;
                // The .meta carries this saver's variables and retention.
                let opts = s.options().clone();
                let vars = s.var_list().to_vec();
                s.set_meta_exporter(Some(graph_export::meta_exporter(
                    Arc::clone(&g),
                    &vars,
                    i32::try_from(opts.max_to_keep).unwrap_or(i32::MAX),
                    opts.keep_checkpoint_every_n_hours as f32,
                )))?;
            }
            self.graph = Some(g);
        }
        if let Some(saver) = self.saver() {
            let bg = saver
                .lock()
                .map_err(|_| Error::internal("saver lock poisoned"))?
                .background()?;
            coord.register_worker(bg);
        }
        // TF saves at creation, before the first step (model.ckpt-0 on a fresh run).
        self.save(sess, step)?;
        self.timer.update_last_triggered_step(step);
        Ok(())
    }

    fn before_run(&mut self, ctx: &mut SessionRunContext) -> Result<Option<SessionRunArgs>> {
        // A save foreseen for this run (a train op moves the step by one) takes its
        // snapshot with the run's own submission.
        self.predicted = None;
        let (Some(gs), Some(saver)) = (self.gs, self.saver()) else {
            return Ok(None);
        };
        let Some(now) = ctx.session.known_scalar(gs) else {
            return Ok(None);
        };
        if !self.timer.should_trigger_for_step(now + 1) {
            return Ok(None);
        }
        let vars: Vec<Tensor> = saver
            .lock()
            .map_err(|_| Error::internal("saver lock poisoned"))?
            .var_list()
            .iter()
            .map(|(_, v)| *v)
            .collect();
        self.predicted = Some(now + 1);
        Ok(Some(SessionRunArgs {
            snapshot: vars,
            ..Default::default()
        }))
    }

    fn after_run(&mut self, ctx: &mut SessionRunContext, v: &SessionRunValues) -> Result<()> {
        let gs = self.gs.ok_or_else(|| Error::internal("begin not called"))?;
        let step = step_now(ctx.session, gs)?;
        if self.timer.should_trigger_for_step(step) {
            self.timer.update_last_triggered_step(step);
            let snap = if self.predicted == Some(step) {
                v.snapshot.as_ref().map(|s| s.clone_handle())
            } else {
                None
            };
            if self.save_with(ctx.session, step, snap)? {
                ctx.request_stop();
            }
        }
        Ok(())
    }

    fn end(&mut self, sess: &mut dyn Executor) -> Result<()> {
        let gs = self.gs.ok_or_else(|| Error::internal("begin not called"))?;
        let step = read_step(sess, gs)?;
        if self.timer.last_triggered_step() != Some(step) {
            self.save(sess, step)?;
        }
        for l in &mut self.listeners {
            l.end(sess, step)?;
        }
        if let Some(saver) = self.saver() {
            saver
                .lock()
                .map_err(|_| Error::internal("saver lock poisoned"))?
                .flush()?;
        }
        if let Some(w) = &self.writer {
            w.flush()?;
        }
        Ok(())
    }
}
