//! [`MonitoredSession`] and the [`MonitoredTrainingSession`] builder: TF's monitored
//! session with its layers — recoverable (re-create the session on Aborted or
//! Unavailable, a bounded number of times with back-off) → coordinated (stop requests
//! and background errors) → hooked (hooks around every run).

use crate::coordinator::Coordinator;
pub use crate::distributed::Master;
use crate::distributed::{Replicas, StepState};
use crate::hook::{SessionRunArgs, SessionRunContext, SessionRunHook, SessionRunValues};
use crate::scaffold::{Scaffold, SessionCreator};
use std::sync::Arc;
use std::time::Duration;

mod training;

pub use training::{Every, MonitoredTrainingSession, SingularMonitoredSession};
use wgtrain_engine::{
    Code, Error, Executor, Graph, HostTensor, Operation, Result, RunMetadata, Tensor,
};

/// How many times, and how patiently, a monitored session re-creates its session after
/// a recoverable error (Aborted, Unavailable). TF retries forever without pause.
#[derive(Clone, Debug)]
pub struct RecoveryPolicy {
    /// Re-creations at most for one call (0 disables recovery).
    pub max_attempts: usize,
    /// The first pause; doubled after each further attempt.
    pub backoff: Duration,
    /// The longest pause.
    pub max_backoff: Duration,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        RecoveryPolicy {
            max_attempts: 10,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

fn recoverable(e: &Error) -> bool {
    matches!(e.code, Code::Aborted | Code::Unavailable)
}

/// What one device run gave: the fetched values (the caller's, then each hook's), the
/// trace, the snapshot and the hook it is for, each hook's pending values.
struct Ran {
    outputs: Vec<HostTensor>,
    meta: Option<RunMetadata>,
    snapshot: Option<(usize, wgtrain_engine::Snapshot)>,
    pending: Vec<Option<wgtrain_engine::Snapshot>>,
}

/// A session wrapped with hooks, a coordinator and recovery (TF's `MonitoredSession`).
pub struct MonitoredSession {
    graph: Arc<Graph>,
    /// Whether the graph was finalized when it was given (it stays so when handed back).
    graph_was_finalized: bool,
    scaffold: Arc<Scaffold>,
    creator: Box<dyn SessionCreator>,
    hooks: Vec<Box<dyn SessionRunHook>>,
    sess: Option<Box<dyn Executor>>,
    coord: Coordinator,
    stop: bool,
    closed: bool,
    recovery: RecoveryPolicy,
    stop_grace: Duration,
    recoveries: usize,
    /// The other ranks of a distributed job, agreed with after every run.
    replicas: Option<Arc<dyn Replicas>>,
    agreement: AgreementStats,
    /// Every rank agreed to stop (or failed together): this one may end.
    agreed_end: bool,
    /// Whether SIGTERM and SIGINT stop this session (see [`crate::signals`]).
    signals: bool,
    /// Whether the stop a signal asked for was logged.
    signal_logged: std::sync::atomic::AtomicBool,
}

/// What the agreements of a distributed monitored session cost so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgreementStats {
    /// Agreements made (one per run).
    pub count: u64,
    /// Nanoseconds spent in them (the all-reduce of three words, waiting for the
    /// slowest rank included).
    pub nanos: u64,
}

impl MonitoredSession {
    /// Calls `begin` on every hook, finalizes the scaffold (and the graph), creates the
    /// session through `creator` and calls every hook's `after_create_session`.
    pub fn new(
        graph: Graph,
        scaffold: Arc<Scaffold>,
        creator: Box<dyn SessionCreator>,
        hooks: Vec<Box<dyn SessionRunHook>>,
        recovery: RecoveryPolicy,
        stop_grace: Duration,
    ) -> Result<MonitoredSession> {
        Self::with_replicas(graph, scaffold, creator, hooks, recovery, stop_grace, None)
    }

    /// [`new`](Self::new) for one rank of a distributed job.
    fn with_replicas(
        mut graph: Graph,
        scaffold: Arc<Scaffold>,
        creator: Box<dyn SessionCreator>,
        mut hooks: Vec<Box<dyn SessionRunHook>>,
        recovery: RecoveryPolicy,
        stop_grace: Duration,
        replicas: Option<Arc<dyn Replicas>>,
    ) -> Result<MonitoredSession> {
        let graph_was_finalized = graph.is_finalized();
        for h in &mut hooks {
            h.begin(&mut graph)?;
        }
        scaffold.finalize(&mut graph)?;
        tracing::info!("Graph was finalized.");
        let mut ms = MonitoredSession {
            graph: Arc::new(graph),
            graph_was_finalized,
            scaffold,
            creator,
            hooks,
            sess: None,
            coord: Coordinator::new(),
            stop: false,
            closed: false,
            recovery,
            stop_grace,
            recoveries: 0,
            replicas,
            agreement: AgreementStats::default(),
            agreed_end: false,
            signals: false,
            signal_logged: std::sync::atomic::AtomicBool::new(false),
        };
        ms.create_with_recovery()?;
        Ok(ms)
    }

    /// The (finalized) graph.
    pub fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    /// The coordinator.
    pub fn coordinator(&self) -> &Coordinator {
        &self.coord
    }

    /// What the agreements after each run cost (distributed jobs; zero otherwise).
    pub fn agreement_stats(&self) -> AgreementStats {
        self.agreement
    }

    /// Sessions re-created after recoverable errors so far.
    pub fn recoveries(&self) -> usize {
        self.recoveries
    }

    /// The session underneath (runs on it skip the hooks); `None` after close.
    pub fn raw_session(&mut self) -> Option<&mut dyn Executor> {
        match &mut self.sess {
            Some(s) => Some(&mut **s),
            None => None,
        }
    }

    fn create(&mut self) -> Result<()> {
        let mut sess = self.creator.create_session(&self.graph)?;
        // The failed session's threads and workers are stopped and joined; the event
        // writers carry over.
        self.coord = self.coord.successor(self.stop_grace);
        if let Some(b) = sess.background() {
            self.coord.register_worker(b);
        }
        for h in &mut self.hooks {
            h.after_create_session(&mut *sess, &self.coord)?;
        }
        self.sess = Some(sess);
        Ok(())
    }

    fn pause(&self, attempt: usize) {
        let factor = 1u32 << attempt.min(16) as u32;
        let d = self
            .recovery
            .backoff
            .saturating_mul(factor)
            .min(self.recovery.max_backoff);
        std::thread::sleep(d);
    }

    fn create_with_recovery(&mut self) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.create() {
                Ok(()) => return Ok(()),
                Err(e) if recoverable(&e) && attempt < self.recovery.max_attempts => {
                    tracing::warn!(error = %e, attempt, "creating the session failed; retrying");
                    self.sess = None;
                    self.pause(attempt);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the loop should stop: a hook or the coordinator asked, or the session is
    /// closed. Never fails: an error is reported by the next `run`.
    pub fn should_stop(&self) -> bool {
        // A recoverable error reported to the coordinator (a lost device seen by a
        // background thread) does not stop: the next run re-creates the session.
        let recoverable_stop = self.coord.error().is_some_and(|e| recoverable(&e));
        self.closed
            || self.sess.is_none()
            || self.stop
            || (self.coord.should_stop() && !recoverable_stop)
            || (self.replicas.is_none() && self.signalled())
    }

    /// Whether a signal asked this session to stop (logged once).
    fn signalled(&self) -> bool {
        let Some(sig) = self.signals.then(crate::signals::received).flatten() else {
            return false;
        };
        if !self
            .signal_logged
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tracing::warn!(
                "{sig} received: stopping after this step (a final checkpoint is saved at close)"
            );
        }
        true
    }

    /// Runs one step with the hooks (as [`Executor::run`]): recoverable errors re-create
    /// the session (restoring the latest checkpoint) and retry the same call. OutOfRange
    /// (the input ran out) is returned and stops the loop; `close()` after it is clean.
    pub fn run(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<Vec<HostTensor>> {
        self.run_args(&SessionRunArgs::new(feeds, fetches, targets))
    }

    /// [`run`](Self::run) with [`SessionRunArgs`].
    pub fn run_args(&mut self, args: &SessionRunArgs) -> Result<Vec<HostTensor>> {
        self.run_with_metadata(args).map(|(out, _)| out)
    }

    /// [`run_args`](Self::run_args) that also returns the run's metadata when the
    /// caller or a hook asked for a trace (TF's `run_metadata` argument).
    pub fn run_with_metadata(
        &mut self,
        args: &SessionRunArgs,
    ) -> Result<(Vec<HostTensor>, Option<RunMetadata>)> {
        self.check_open()?;
        let mut attempt = 0;
        loop {
            if self.sess.is_none() {
                self.create_with_recovery()?;
            }
            let reduced = self.replicas.as_ref().map_or(0, |r| r.reductions());
            let ran = self.hooked_run(args);
            // Walked only for a failed run: whether its peers wait in an all-reduce.
            let would_reduce = ran.is_err()
                && self.sess.as_ref().is_some_and(|s| {
                    s.has_gradient_reducer()
                        && s.computes_averaged_gradients(&args.fetches, &args.targets)
                });
            match self.agree(ran, reduced, would_reduce) {
                // The input ran out: the loop ends cleanly (TF's OutOfRangeError).
                Err(e) if e.code == Code::OutOfRange => {
                    self.stop = true;
                    return Err(e);
                }
                Err(e) if self.drop_for_retry(&e, &mut attempt) => {}
                r => return r,
            }
        }
    }

    /// In a distributed job, the agreement of every rank after a run (see
    /// [`distributed`](crate::distributed)): every rank stops when one asks, fails when
    /// one failed, re-creates its session when one must. A run that failed before the
    /// gradient all-reduce it would have joined (`reduced` all-reduces before it) ends
    /// the job: the other ranks wait in it.
    fn agree<T>(&mut self, ran: Result<T>, reduced: u64, would_reduce: bool) -> Result<T> {
        let Some(rep) = self.replicas.clone() else {
            return ran;
        };
        if let Err(e) = &ran
            && would_reduce
            && rep.reductions() == reduced
        {
            rep.abandon(e);
        }
        let stop = ran.is_ok() && (self.stop || self.coord.should_stop() || self.signalled());
        let mine = StepState::of(&ran, stop);
        let started = std::time::Instant::now();
        let agreed = rep.agree(mine);
        self.agreement.count += 1;
        self.agreement.nanos += started.elapsed().as_nanos() as u64;
        // A rank failing for another one's error stops (its own error stands otherwise).
        let own_error_stands = ran.as_ref().err().is_some_and(|e| !recoverable(e));
        self.stop |= agreed.stop || (agreed.error.is_some() && !own_error_stands);
        self.agreed_end |= agreed.stop || agreed.error.is_some();
        agreed.outcome(
            ran,
            "another rank must re-create its session: every rank restores the chief's latest checkpoint and runs again",
        )
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::new(
                Code::FailedPrecondition,
                "Run called on a closed MonitoredSession.",
            ));
        }
        Ok(())
    }

    /// After `e` on attempt `attempt`: when `e` is recoverable and attempts remain,
    /// drops the session (the next attempt re-creates it), pauses and returns true.
    fn drop_for_retry(&mut self, e: &Error, attempt: &mut usize) -> bool {
        if !recoverable(e) || *attempt >= self.recovery.max_attempts {
            return false;
        }
        tracing::warn!(error = %e, attempt = *attempt, "recoverable error; re-creating the session");
        self.sess = None;
        self.recoveries += 1;
        self.pause(*attempt);
        *attempt += 1;
        true
    }

    /// The coordinated and hooked layers of one run.
    fn hooked_run(
        &mut self,
        args: &SessionRunArgs,
    ) -> Result<(Vec<HostTensor>, Option<RunMetadata>)> {
        self.coord.raise_requested_exception()?;
        if self.stop || self.coord.should_stop() {
            return Err(Error::new(
                Code::FailedPrecondition,
                "Run called even after should_stop requested.",
            ));
        }
        let Some(sess) = self.sess.as_mut() else {
            return Err(Error::internal("no session"));
        };
        let mut stop = false;
        let mut extra: Vec<Option<SessionRunArgs>> = Vec::with_capacity(self.hooks.len());
        for h in &mut self.hooks {
            let mut ctx = SessionRunContext::new(args, &mut **sess, &mut stop);
            extra.push(h.before_run(&mut ctx)?);
        }
        // Merge: the caller's fetches first, then each hook's.
        let mut fetches = args.fetches.clone();
        let mut targets = args.targets.clone();
        // The caller's feeds are copied only when a hook adds its own.
        let mut feeds = std::borrow::Cow::Borrowed(args.feeds.as_slice());
        let mut trace = args.trace;
        let mut ranges = Vec::with_capacity(extra.len());
        let mut snapshot_for: Option<(usize, Vec<Tensor>)> = None;
        let mut pending_for: Vec<usize> = Vec::new();
        for (k, e) in extra.iter().enumerate() {
            let start = fetches.len();
            if let Some(e) = e {
                if !e.pending.is_empty() {
                    pending_for.push(k);
                }
                fetches.extend_from_slice(&e.fetches);
                targets.extend_from_slice(&e.targets);
                trace |= e.trace;
                if !e.snapshot.is_empty() {
                    if snapshot_for.is_some() {
                        return Err(Error::invalid_argument(
                            "two hooks asked for a variable snapshot in one run",
                        ));
                    }
                    snapshot_for = Some((k, e.snapshot.clone()));
                }
                for (t, v) in &e.feeds {
                    if args.feeds.iter().any(|(u, _)| u == t) {
                        return Err(Error::invalid_argument(format!(
                            "Same tensor is fed by a SessionRunHook and user: '{}' ({})",
                            self.graph.name(*t),
                            self.hooks[k].name()
                        )));
                    }
                    if feeds.iter().any(|(u, _)| u == t) {
                        return Err(Error::invalid_argument(format!(
                            "Same tensor is fed by two hooks: '{}'",
                            self.graph.name(*t)
                        )));
                    }
                    feeds.to_mut().push((*t, v.clone()));
                }
            }
            ranges.push(start..fetches.len());
        }
        // Pending fetches: read back on the readback thread when they are all the run
        // fetches (one hook's, no snapshot, no trace); else fetched with the rest.
        // One slot per hook, allocated only in runs where a hook asked.
        let mut pending: Vec<Option<wgtrain_engine::Snapshot>> = Vec::new();
        if !pending_for.is_empty() {
            pending.resize_with(extra.len(), || None);
        }
        if let [k] = pending_for[..]
            && fetches.is_empty()
            && snapshot_for.is_none()
            && !trace
            && let Some(e) = &extra[k]
        {
            let snap = match sess.run_async(&feeds, &e.pending, &targets) {
                Ok(s) => s,
                Err(e) => return Err(self.root_cause(e)),
            };
            pending[k] = Some(snap);
            let ran = Ran {
                outputs: Vec::new(),
                meta: None,
                snapshot: None,
                pending,
            };
            return self.after_runs(args, ran, &ranges, stop);
        }
        let mut pending_ranges = Vec::with_capacity(pending_for.len());
        for &k in &pending_for {
            if let Some(e) = &extra[k] {
                let start = fetches.len();
                fetches.extend_from_slice(&e.pending);
                pending_ranges.push((k, start..fetches.len()));
            }
        }
        let mut snapshot = None;
        let ran = if trace {
            sess.run_traced(&feeds, &fetches, &targets)
                .map(|(o, m)| (o, Some(m)))
        } else if let Some((_, vars)) = &snapshot_for {
            sess.run_and_snapshot(&feeds, &fetches, &targets, vars)
                .map(|(o, snap)| {
                    snapshot = Some(snap);
                    (o, None)
                })
        } else {
            sess.run(&feeds, &fetches, &targets).map(|o| (o, None))
        };
        let (outputs, meta) = match ran {
            Ok(r) => r,
            Err(e) => return Err(self.root_cause(e)),
        };
        for (k, r) in pending_ranges {
            pending[k] = Some(wgtrain_engine::Snapshot::ready(outputs[r].to_vec()));
        }
        let ran = Ran {
            outputs,
            meta,
            snapshot: snapshot_for.map(|(k, _)| k).zip(snapshot),
            pending,
        };
        self.after_runs(args, ran, &ranges, stop)
    }

    /// A run that failed while a background thread reported a preemption: the
    /// preemption is the root cause (TF's coordinated session raises it).
    fn root_cause(&self, e: Error) -> Error {
        match self.coord.error() {
            Some(root) if recoverable(&root) && !recoverable(&e) => root,
            _ => e,
        }
    }

    /// Calls every hook's `after_run` with its share of the run's results; returns the
    /// caller's.
    fn after_runs(
        &mut self,
        args: &SessionRunArgs,
        mut ran: Ran,
        ranges: &[std::ops::Range<usize>],
        mut stop: bool,
    ) -> Result<(Vec<HostTensor>, Option<RunMetadata>)> {
        let Some(sess) = self.sess.as_mut() else {
            return Err(Error::internal("no session"));
        };
        for (k, h) in self.hooks.iter_mut().enumerate() {
            let mut ctx = SessionRunContext::new(args, &mut **sess, &mut stop);
            let values = SessionRunValues {
                results: ran
                    .outputs
                    .get(ranges[k].clone())
                    .map(<[HostTensor]>::to_vec)
                    .unwrap_or_default(),
                run_metadata: ran.meta.clone(),
                snapshot: match ran.snapshot.take() {
                    Some((hook, snap)) if hook == k => Some(snap),
                    other => {
                        ran.snapshot = other;
                        None
                    }
                },
                pending: ran.pending.get_mut(k).and_then(Option::take),
            };
            h.after_run(&mut ctx, &values)?;
        }
        ran.outputs.truncate(args.fetches.len());
        self.stop |= stop;
        Ok((ran.outputs, ran.meta))
    }

    /// Runs `step_fn` with a [`StepContext`] (its `session` runs skip the hooks,
    /// `run_with_hooks` goes through them); recoverable errors re-create the session and
    /// run the whole `step_fn` again.
    pub fn run_step_fn<T>(
        &mut self,
        mut step_fn: impl FnMut(&mut StepContext) -> Result<T>,
    ) -> Result<T> {
        self.check_open()?;
        let mut attempt = 0;
        loop {
            // A preemption a background thread reported: re-create the session before
            // the step, even when it only uses the raw session (TF does it in
            // `should_stop`).
            if self.sess.is_some() && self.coord.error().is_some_and(|e| recoverable(&e)) {
                tracing::warn!("a preemption was reported; re-creating the session");
                self.sess = None;
                self.recoveries += 1;
            }
            if self.sess.is_none() {
                self.create_with_recovery()?;
            }
            let reduced = self.replicas.as_ref().map_or(0, |r| r.reductions());
            let mut ctx = StepContext {
                ms: self,
                stop: false,
            };
            let r = step_fn(&mut ctx);
            let stop = ctx.stop;
            self.stop |= stop;
            let r = r.map_err(|e| self.root_cause(e));
            match self.agree(r, reduced, false) {
                Err(e) if self.drop_for_retry(&e, &mut attempt) => {}
                r => return r,
            }
        }
    }

    /// Ends the session: with `clean` (the loop ended normally or on OutOfRange), every
    /// hook's `end`; then the coordinator is joined (background threads get
    /// `stop_grace_period`) and the session dropped. A second close is
    /// FailedPrecondition ("Session is already closed.").
    pub fn close_with(&mut self, clean: bool) -> Result<()> {
        if self.closed {
            return Err(Error::new(
                Code::FailedPrecondition,
                "Session is already closed.",
            ));
        }
        self.closed = true;
        let mut first: Result<()> = Ok(());
        if clean && let Some(sess) = self.sess.as_mut() {
            for h in &mut self.hooks {
                if let Err(e) = h.end(&mut **sess)
                    && first.is_ok()
                {
                    first = Err(e);
                }
            }
        }
        let deadline = std::time::Instant::now() + self.stop_grace;
        let joined = self.coord.join(self.stop_grace, true);
        // Queued checkpoint writes finish before close returns, clean or not (within
        // the grace period: the coordinator waited for the saver's worker already).
        let flushed = match self.scaffold.get_saver() {
            Some(s) => s
                .lock()
                .map_err(|_| Error::internal("saver lock poisoned"))
                .and_then(|mut s| {
                    s.flush_within(Some(
                        deadline.saturating_duration_since(std::time::Instant::now()),
                    ))
                }),
            None => Ok(()),
        };
        self.sess = None;
        first.and(joined).and(flushed)
    }

    /// [`close_with`](Self::close_with) after a clean loop.
    pub fn close(&mut self) -> Result<()> {
        self.close_with(true)
    }

    /// Whether the session was closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Closes the session (cleanly, if still open) and hands the graph back, no longer
    /// finalized unless it was finalized when given (TF unfinalizes the default graph
    /// when the `with` block ends).
    pub fn into_graph(mut self) -> Result<Graph> {
        let closed = if self.closed { Ok(()) } else { self.close() };
        let arc = std::mem::replace(&mut self.graph, Arc::new(Graph::new()));
        let mut graph = Arc::try_unwrap(arc).unwrap_or_else(|shared| (*shared).clone());
        if !self.graph_was_finalized {
            graph.unfinalize();
        }
        closed.map(|()| graph)
    }
}

impl Drop for MonitoredSession {
    fn drop(&mut self) {
        if let Some(rep) = &self.replicas
            && !self.closed
            && !self.agreed_end
            && self.sess.is_some()
        {
            rep.leave_uncleanly(
                "its monitored session was dropped without close() while the other ranks may still train"
                    .into(),
            );
        }
        if !self.closed
            && let Err(e) = self.close_with(false)
        {
            tracing::error!(error = %e, "closing the monitored session at drop");
        }
    }
}

/// What a `run_step_fn` closure gets.
pub struct StepContext<'a> {
    ms: &'a mut MonitoredSession,
    stop: bool,
}

impl StepContext<'_> {
    /// The raw session: runs skip the hooks.
    pub fn session(&mut self) -> Result<&mut dyn Executor> {
        match &mut self.ms.sess {
            Some(s) => Ok(&mut **s),
            None => Err(Error::internal("no session")),
        }
    }

    /// A run through the hooks, as [`MonitoredSession::run`] (without its recovery:
    /// `run_step_fn` retries the whole function).
    pub fn run_with_hooks(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<Vec<HostTensor>> {
        self.ms
            .hooked_run(&SessionRunArgs::new(feeds, fetches, targets))
            .map(|(out, _)| out)
    }

    /// Asks the session to stop after this step.
    pub fn request_stop(&mut self) {
        self.stop = true;
    }
}
