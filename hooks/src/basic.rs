//! The built-in hooks, with TF's arguments and schedules.
//!
//! The global step: a hook reads its value after the run, exactly, from the session's
//! host copy (kept in step with the train op's constant increment, so no step waits for
//! a device round trip; a read when the copy is unknown). TF's hooks fetch it with the
//! train op, usually before the increment, and add one; that fetch races with the
//! train op, which makes TF's summary steps nondeterministic. Here the schedules are
//! TF's usual ones, deterministically.

use crate::coordinator::Coordinator;
use crate::hook::{
    SecondOrStepTimer, SessionRunArgs, SessionRunContext, SessionRunHook, SessionRunValues,
    SharedClock, SystemClock,
};
use crate::scaffold::Scaffold;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wgtrain_checkpoint::events::{self, EventWriter};
use wgtrain_checkpoint::graph_export;
use wgtrain_checkpoint::saver::OnWritten;
use wgtrain_checkpoint::{Saver, SaverOptions};
use wgtrain_engine::summary::MergedSummary;
use wgtrain_engine::{Code, Error, Graph, HostTensor, Result, Session, Snapshot, Tensor};

fn global_step_of(g: &Graph, hook: &str) -> Result<Tensor> {
    g.get_global_step().ok_or_else(|| {
        Error::new(
            Code::FailedPrecondition,
            format!("Global step should be created to use {hook}."),
        )
    })
}

fn read_step(sess: &mut Session, gs: Tensor) -> Result<i64> {
    sess.read_variables(&[gs])?[0]
        .scalar_value()
        .map(|v| v as i64)
}

/// The global step after the last run: the session's exact host copy when it has one
/// (no device round trip), else a read.
fn step_now(sess: &mut Session, gs: Tensor) -> Result<i64> {
    match sess.known_scalar(gs) {
        Some(v) => Ok(v),
        None => read_step(sess, gs),
    }
}

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

    fn after_create_session(&mut self, sess: &mut Session, _: &Coordinator) -> Result<()> {
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

/// Called around the checkpoint hook's saves (TF's `CheckpointSaverListener`).
pub trait CheckpointSaverListener: Send {
    /// Before the first save.
    fn begin(&mut self) -> Result<()> {
        Ok(())
    }
    /// Before each save.
    fn before_save(&mut self, _sess: &mut Session, _step: i64) -> Result<()> {
        Ok(())
    }
    /// After each save; `true` asks training to stop.
    fn after_save(&mut self, _sess: &mut Session, _step: i64) -> Result<bool> {
        Ok(false)
    }
    /// At the end.
    fn end(&mut self, _sess: &mut Session, _step: i64) -> Result<()> {
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

    fn save(&mut self, sess: &mut Session, step: i64) -> Result<bool> {
        self.save_with(sess, step, None)
    }

    fn save_with(
        &mut self,
        sess: &mut Session,
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

    fn after_create_session(&mut self, sess: &mut Session, coord: &Coordinator) -> Result<()> {
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

    fn end(&mut self, sess: &mut Session) -> Result<()> {
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

    fn after_create_session(&mut self, _: &mut Session, coord: &Coordinator) -> Result<()> {
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

    fn end(&mut self, _: &mut Session) -> Result<()> {
        if let Some(w) = &self.writer {
            w.flush()?;
        }
        Ok(())
    }
}

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

    fn after_create_session(&mut self, _: &mut Session, coord: &Coordinator) -> Result<()> {
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

    fn end(&mut self, _: &mut Session) -> Result<()> {
        // Everything on disk when close() returns (TF's are not: §17 of the notes).
        if let Some(w) = &self.writer {
            w.flush()?;
        }
        Ok(())
    }
}

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

/// Formats logged tensors.
pub type Formatter = Box<dyn Fn(&[(String, HostTensor)]) -> String + Send>;

/// Logs tensors every N runs or seconds and/or at the end (TF's `LoggingTensorHook`).
pub struct LoggingTensorHook {
    tensors: Vec<(String, Tensor)>,
    timer: Option<SecondOrStepTimer>,
    at_end: bool,
    formatter: Option<Formatter>,
    iter: i64,
    triggered: bool,
    /// The lines logged, in order (the most recent [`HISTORY`] at least).
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl LoggingTensorHook {
    /// Logs `tensors` (name, tensor) every `every_n_iter` runs or `every_n_secs`
    /// seconds (at most one) and/or `at_end`; InvalidArgument when none is given.
    pub fn new(
        tensors: Vec<(String, Tensor)>,
        every_n_iter: Option<i64>,
        every_n_secs: Option<f64>,
        at_end: bool,
        clock: SharedClock,
    ) -> Result<Self> {
        if every_n_iter.is_none() && every_n_secs.is_none() && !at_end {
            return Err(Error::invalid_argument(
                "Either every_n_iter, every_n_secs or at_end should be provided.",
            ));
        }
        if every_n_iter.is_some_and(|n| n <= 0) {
            return Err(Error::invalid_argument(
                "invalid every_n_iter: it must be positive",
            ));
        }
        let timer = if every_n_iter.is_some() || every_n_secs.is_some() {
            Some(SecondOrStepTimer::new(every_n_secs, every_n_iter, clock)?)
        } else {
            None
        };
        Ok(LoggingTensorHook {
            tensors,
            timer,
            at_end,
            formatter: None,
            iter: 0,
            triggered: false,
            lines: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Formats with `f` instead of `name = value, ...`.
    pub fn formatter(mut self, f: Formatter) -> Self {
        self.formatter = Some(f);
        self
    }

    /// Logs `values`, with the seconds since the last log as TF does (not on the first).
    fn log(&self, values: Vec<HostTensor>, elapsed: Option<f64>) {
        let named: Vec<(String, HostTensor)> = self
            .tensors
            .iter()
            .map(|(n, _)| n.clone())
            .zip(values)
            .collect();
        let line = match &self.formatter {
            Some(f) => f(&named),
            None => {
                let text = named
                    .iter()
                    .map(|(n, v)| format!("{n} = {}", summarize(v)))
                    .collect::<Vec<_>>()
                    .join(", ");
                match elapsed {
                    Some(secs) => format!("{text} ({secs:.3} sec)"),
                    None => text,
                }
            }
        };
        tracing::info!("{line}");
        if let Ok(mut l) = self.lines.lock() {
            push_recent(&mut l, line);
        }
    }
}

/// A short text of a tensor's values.
pub fn summarize(t: &HostTensor) -> String {
    let v = t.to_f64();
    if t.shape().is_empty() {
        return format!("{}", v.first().copied().unwrap_or(0.0));
    }
    let shown: Vec<String> = v.iter().take(6).map(|x| format!("{x}")).collect();
    let more = if v.len() > 6 { " ..." } else { "" };
    format!("[{}{more}]", shown.join(" "))
}

impl SessionRunHook for LoggingTensorHook {
    fn begin(&mut self, _: &mut Graph) -> Result<()> {
        self.iter = 0;
        if let Some(t) = &mut self.timer {
            t.reset();
        }
        Ok(())
    }

    fn before_run(&mut self, _: &mut SessionRunContext) -> Result<Option<SessionRunArgs>> {
        self.triggered = self
            .timer
            .as_ref()
            .is_some_and(|t| t.should_trigger_for_step(self.iter));
        if self.triggered {
            let fetches: Vec<Tensor> = self.tensors.iter().map(|(_, t)| *t).collect();
            return Ok(Some(SessionRunArgs::fetches(&fetches)));
        }
        Ok(None)
    }

    fn after_run(&mut self, _: &mut SessionRunContext, v: &SessionRunValues) -> Result<()> {
        if self.triggered {
            let elapsed = self
                .timer
                .as_mut()
                .and_then(|t| t.update_last_triggered_step(self.iter).0);
            self.log(v.results.clone(), elapsed);
        }
        self.iter += 1;
        Ok(())
    }

    fn end(&mut self, sess: &mut Session) -> Result<()> {
        if self.at_end {
            let fetches: Vec<Tensor> = self.tensors.iter().map(|(_, t)| *t).collect();
            let values = sess.run(&[], &fetches, &[])?;
            self.log(values, None);
        }
        Ok(())
    }
}

/// Entries a hook's record keeps at least (and at most twice as many): a long run's
/// memory stays flat whatever its number of steps.
pub const HISTORY: usize = 10_000;

/// Appends `item`, dropping the oldest [`HISTORY`] entries once there are twice as many
/// (amortized: no per-step shifting).
fn push_recent<T>(v: &mut Vec<T>, item: T) {
    if v.len() >= 2 * HISTORY {
        v.drain(..HISTORY);
    }
    v.push(item);
}

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
pub type Sleep = Box<dyn FnMut(&mut Session, f64) -> Result<()> + Send>;

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

/// Runs ops at the end and keeps their values (TF's `FinalOpsHook`).
pub struct FinalOpsHook {
    final_ops: Vec<Tensor>,
    feeds: Vec<(Tensor, HostTensor)>,
    /// The values at the end.
    pub values: Arc<Mutex<Option<Vec<HostTensor>>>>,
}

impl FinalOpsHook {
    /// Fetches `final_ops` (with `feeds`) at `end`.
    pub fn new(final_ops: Vec<Tensor>, feeds: Vec<(Tensor, HostTensor)>) -> Self {
        FinalOpsHook {
            final_ops,
            feeds,
            values: Arc::new(Mutex::new(None)),
        }
    }
}

impl SessionRunHook for FinalOpsHook {
    fn end(&mut self, sess: &mut Session) -> Result<()> {
        let v = sess.run(&self.feeds, &self.final_ops, &[])?;
        if let Ok(mut g) = self.values.lock() {
            *g = Some(v);
        }
        Ok(())
    }
}

/// Feeds what `feed_fn` returns into every run (TF's `FeedFnHook`).
pub struct FeedFnHook {
    feed_fn: Box<dyn FnMut() -> Vec<(Tensor, HostTensor)> + Send>,
}

impl FeedFnHook {
    /// Calls `feed_fn` before every run.
    pub fn new(feed_fn: Box<dyn FnMut() -> Vec<(Tensor, HostTensor)> + Send>) -> Self {
        FeedFnHook { feed_fn }
    }
}

impl SessionRunHook for FeedFnHook {
    fn before_run(&mut self, _: &mut SessionRunContext) -> Result<Option<SessionRunArgs>> {
        Ok(Some(SessionRunArgs {
            feeds: (self.feed_fn)(),
            ..Default::default()
        }))
    }
}

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

    fn after_create_session(&mut self, _: &mut Session, coord: &Coordinator) -> Result<()> {
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

    fn end(&mut self, _: &mut Session) -> Result<()> {
        if let Some(w) = &self.writer {
            w.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod history_tests {
    use super::{HISTORY, push_recent};

    #[test]
    fn a_hook_record_stays_bounded_and_keeps_the_most_recent() {
        let mut v = Vec::new();
        for i in 0..(10 * HISTORY + 7) {
            push_recent(&mut v, i);
            assert!(v.len() <= 2 * HISTORY);
        }
        assert!(v.len() >= HISTORY);
        assert_eq!(v.last(), Some(&(10 * HISTORY + 6)));
        assert!(v.windows(2).all(|w| w[1] == w[0] + 1), "in order, no gaps");
    }
}
