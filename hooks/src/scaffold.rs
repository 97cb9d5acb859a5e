//! The [`Scaffold`] (what a monitored session needs to start: init ops, the saver, the
//! summary op) and the session creators that initialize or restore (TF's
//! `SessionManager.prepare_session`) or wait for a chief (`wait_for_session`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use wgtrain_checkpoint::{
    Saver, SaverOptions, checkpoints_newest_first, remove_stale_temporaries, saver::set_aside,
};
use wgtrain_engine::summary::MergedSummary;
use wgtrain_engine::{
    Code, Error, Executor, Graph, HostTensor, Operation, Result, SessionConfig, Tensor,
};

/// A function run after the init op when a session is initialized (not restored),
/// e.g. a warm start.
pub type InitFn = Arc<dyn Fn(&Scaffold, &mut dyn Executor) -> Result<()> + Send + Sync>;

/// What a monitored session needs to start (TF's `Scaffold`). Fields left empty are
/// filled by [`Scaffold::finalize`] from the graph: the init op runs every global
/// variable's initializer, the local init op every local one, the summary op merges
/// the summaries collection, the saver saves every global variable (max_to_keep 5).
/// Readiness is "every variable initialized" (ready) and "every global variable
/// initialized" (ready for local init), unless other variable lists are given.
///
/// As TF, the default init and local init ops are cached in the graph's `init_op` and
/// `local_init_op` collections, so a second scaffold over the same graph uses the
/// same ops; more than one op in such a collection is an error. The default saver is
/// the scaffold's own (savers are not graph nodes here).
#[derive(Default)]
pub struct Scaffold {
    init_op: OnceLock<Option<Operation>>,
    /// Fed when the init op runs.
    pub init_feeds: Vec<(Tensor, HostTensor)>,
    /// Run after the init op (not after a restore).
    pub init_fn: Option<InitFn>,
    local_init_op: OnceLock<Option<Operation>>,
    summary_op: OnceLock<MergedSummary>,
    saver: OnceLock<Option<Arc<Mutex<Saver>>>>,
    saver_options: SaverOptions,
    given: Given,
}

#[derive(Clone, Default)]
struct Given {
    init_op: Option<Operation>,
    local_init_op: Option<Operation>,
    ready: Option<Vec<Tensor>>,
    ready_for_local_init: Option<Vec<Tensor>>,
    summary_op: Option<MergedSummary>,
    saver: Option<Arc<Mutex<Saver>>>,
    no_saver: bool,
}

impl Scaffold {
    /// An empty scaffold: everything from the graph's defaults.
    pub fn new() -> Scaffold {
        Scaffold::default()
    }

    /// Uses `op` as the init op.
    pub fn init_op(mut self, op: Operation) -> Scaffold {
        self.given.init_op = Some(op);
        self
    }

    /// The model is ready when every variable of `vars` is initialized (TF's `ready_op`,
    /// `report_uninitialized_variables(vars)`); default: every variable.
    pub fn ready_op(mut self, vars: Vec<Tensor>) -> Scaffold {
        self.given.ready = Some(vars);
        self
    }

    /// The local init op may run when every variable of `vars` is initialized (TF's
    /// `ready_for_local_init_op`); default: every global variable. Giving it needs a
    /// local init op (given, or the default one over local variables).
    pub fn ready_for_local_init_op(mut self, vars: Vec<Tensor>) -> Scaffold {
        self.given.ready_for_local_init = Some(vars);
        self
    }

    /// Uses `op` as the local init op.
    pub fn local_init_op(mut self, op: Operation) -> Scaffold {
        self.given.local_init_op = Some(op);
        self
    }

    /// Uses `summary` as the summary op.
    pub fn summary_op(mut self, summary: MergedSummary) -> Scaffold {
        self.given.summary_op = Some(summary);
        self
    }

    /// Uses `saver` (shared with the checkpoint hook).
    pub fn saver(mut self, saver: Saver) -> Scaffold {
        self.given.saver = Some(Arc::new(Mutex::new(saver)));
        self
    }

    /// No saver at all: nothing is restored or saved.
    pub fn without_saver(mut self) -> Scaffold {
        self.given.no_saver = true;
        self
    }

    /// Options of the default saver.
    pub fn saver_options(mut self, opts: SaverOptions) -> Scaffold {
        self.saver_options = opts;
        self
    }

    /// Runs `f` after the init op when the session is initialized rather than restored.
    pub fn init_fn(mut self, f: InitFn) -> Scaffold {
        self.init_fn = Some(f);
        self
    }

    /// A new scaffold with the fields given to `other` (not its finalized defaults):
    /// TF's `copy_from_scaffold`. Fields set on the result afterwards win.
    pub fn copy_from(other: &Scaffold) -> Scaffold {
        Scaffold {
            init_feeds: other.init_feeds.clone(),
            init_fn: other.init_fn.clone(),
            saver_options: other.saver_options.clone(),
            given: other.given.clone(),
            ..Scaffold::default()
        }
    }

    /// Fills the empty fields from `graph` and finalizes it (no node can be added after).
    pub fn finalize(&self, graph: &mut Graph) -> Result<()> {
        if self.init_op.get().is_none() {
            let op = match self.given.init_op {
                Some(op) => Some(op),
                None => cached(graph, INIT_OP, |g| {
                    g.global_variables_initializer().map(Some)
                })?,
            };
            let _ = self.init_op.set(op);
        }
        if self.local_init_op.get().is_none() {
            let op = match self.given.local_init_op {
                Some(op) => Some(op),
                None => cached(graph, LOCAL_INIT_OP, |g| {
                    if g.local_variables().is_empty() {
                        Ok(None)
                    } else {
                        g.local_variables_initializer().map(Some)
                    }
                })?,
            };
            if op.is_none() && self.given.ready_for_local_init.is_some() {
                return Err(Error::invalid_argument(
                    "If you pass a ready_for_local_init_op you must also pass a local_init_op.",
                ));
            }
            let _ = self.local_init_op.set(op);
        }
        if self.summary_op.get().is_none() {
            let s = self
                .given
                .summary_op
                .clone()
                .unwrap_or_else(|| graph.merge_all_summaries());
            let _ = self.summary_op.set(s);
        }
        if self.saver.get().is_none() {
            let saver = if self.given.no_saver {
                None
            } else if let Some(s) = &self.given.saver {
                Some(Arc::clone(s))
            } else {
                Some(Arc::new(Mutex::new(Saver::new(
                    graph,
                    self.saver_options.clone(),
                )?)))
            };
            let _ = self.saver.set(saver);
        }
        graph.finalize();
        Ok(())
    }

    /// Whether [`finalize`](Self::finalize) ran.
    pub fn is_finalized(&self) -> bool {
        self.saver.get().is_some()
    }

    /// The init op (after finalize).
    pub fn get_init_op(&self) -> Option<Operation> {
        self.init_op.get().copied().flatten()
    }

    /// The local init op (after finalize).
    pub fn get_local_init_op(&self) -> Option<Operation> {
        self.local_init_op.get().copied().flatten()
    }

    /// The summary op (after finalize).
    pub fn get_summary_op(&self) -> MergedSummary {
        self.summary_op.get().cloned().unwrap_or_default()
    }

    /// The variables whose initialization makes the model ready.
    pub fn ready_vars(&self, graph: &Graph) -> Vec<Tensor> {
        match &self.given.ready {
            Some(v) => v.clone(),
            None => all_vars(graph),
        }
    }

    /// The variables that must be initialized before the local init op runs.
    pub fn ready_for_local_init_vars(&self, graph: &Graph) -> Vec<Tensor> {
        match &self.given.ready_for_local_init {
            Some(v) => v.clone(),
            None => graph.global_variables(),
        }
    }

    /// The saver (after finalize), shared.
    pub fn get_saver(&self) -> Option<Arc<Mutex<Saver>>> {
        self.saver.get().cloned().flatten()
    }
}

/// TF's `GraphKeys.INIT_OP`.
pub const INIT_OP: &str = "init_op";
/// TF's `GraphKeys.LOCAL_INIT_OP`.
pub const LOCAL_INIT_OP: &str = "local_init_op";

/// The op cached in collection `key`, else `make`'s (cached when there is one); more
/// than one op there is FailedPrecondition (TF's "More than one item").
fn cached(
    graph: &mut Graph,
    key: &str,
    make: impl FnOnce(&mut Graph) -> Result<Option<Operation>>,
) -> Result<Option<Operation>> {
    let items = graph.collection(key);
    match items.as_slice() {
        [] => {
            let op = make(graph)?;
            if let Some(op) = op {
                graph.add_to_collection(key, op);
            }
            Ok(op)
        }
        [one] => Ok(Some(one.op())),
        _ => Err(Error::new(
            Code::FailedPrecondition,
            format!(
                "More than one item in collection {key}. Please indicate which one to use by passing it to the constructor."
            ),
        )),
    }
}

/// Names of the variables not yet initialized ("Variables not initialized: a, b").
pub(crate) fn not_ready(sess: &dyn Executor, vars: &[Tensor]) -> Option<String> {
    let g = sess.graph();
    let missing: Vec<&str> = vars
        .iter()
        .filter(|v| !sess.is_initialized(**v))
        .map(|v| g.name(*v))
        .collect();
    (!missing.is_empty()).then(|| format!("Variables not initialized: {}", missing.join(", ")))
}

fn all_vars(g: &Graph) -> Vec<Tensor> {
    let mut v = g.global_variables();
    v.extend(g.local_variables());
    v
}

/// Makes a ready session (TF's `SessionCreator`).
pub trait SessionCreator: Send {
    /// A new session over `graph`, initialized or restored.
    fn create_session(&mut self, graph: &Arc<Graph>) -> Result<Box<dyn Executor>>;
}

/// The chief's creator: restores the latest checkpoint of `checkpoint_dir` (or a given
/// prefix) or runs the init op and init fn, then the local init op, then checks that
/// every variable is initialized (TF's `ChiefSessionCreator`).
pub struct ChiefSessionCreator {
    /// The scaffold (finalized).
    pub scaffold: Arc<Scaffold>,
    /// Where to look for a checkpoint to restore.
    pub checkpoint_dir: Option<PathBuf>,
    /// A checkpoint to restore instead.
    pub checkpoint_filename_with_path: Option<PathBuf>,
    /// When checkpoints exist in `checkpoint_dir` and none restores: false (TF's
    /// behaviour made safe) fails naming the newest one's damage; true sets them all
    /// aside (suffix `.damaged`) and initializes the model from scratch.
    pub start_fresh_if_unrestorable: bool,
    /// The engine's session config.
    pub config: SessionConfig,
}

impl SessionCreator for ChiefSessionCreator {
    fn create_session(&mut self, graph: &Arc<Graph>) -> Result<Box<dyn Executor>> {
        if self.checkpoint_dir.is_some() && self.checkpoint_filename_with_path.is_some() {
            return Err(Error::invalid_argument(
                "Can not provide both checkpoint_dir and checkpoint_filename_with_path.",
            ));
        }
        let mut sess = wgtrain_engine::executor::create(Arc::clone(graph), &self.config)?;
        let sc = &self.scaffold;
        // Saves still queued (a recovery right after a save) finish first, so the
        // latest checkpoint is the last one saved; a failed write is reported here.
        if let Some(saver) = sc.get_saver() {
            saver
                .lock()
                .map_err(|_| Error::internal("saver lock poisoned"))?
                .flush()?;
        }
        let given = self.checkpoint_filename_with_path.is_some();
        let candidates: Vec<PathBuf> = match (
            &self.checkpoint_filename_with_path,
            &self.checkpoint_dir,
        ) {
            (Some(p), _) => vec![p.clone()],
            (None, Some(d)) => {
                let removed = remove_stale_temporaries(d);
                if removed > 0 {
                    tracing::info!(removed, dir = %d.display(), "removed the temporary files of interrupted saves");
                }
                checkpoints_newest_first(d)
            }
            _ => Vec::new(),
        };
        let mut restored = false;
        if let (false, Some(saver)) = (candidates.is_empty(), sc.get_saver()) {
            let mut s = saver
                .lock()
                .map_err(|_| Error::internal("saver lock poisoned"))?;
            let fresh = self.start_fresh_if_unrestorable && !given;
            if let Some(prefix) = restore_newest(&mut s, &mut *sess, &candidates, given, fresh)? {
                if let Some(dir) = prefix.parent() {
                    s.recover_last_checkpoints(dir)?;
                }
                restored = true;
            }
        }
        if !restored {
            let init = sc.get_init_op();
            if init.is_none() && sc.init_fn.is_none() && sc.get_local_init_op().is_none() {
                return Err(Error::new(
                    Code::FailedPrecondition,
                    "Model is not initialized and no init_op or init_fn or local_init_op was given",
                ));
            }
            if let Some(op) = init {
                sess.run(&sc.init_feeds, &[], &[op])?;
            }
            if let Some(f) = &sc.init_fn {
                f(sc, &mut *sess)?;
            }
        }
        let g = sess.graph_arc();
        if let Some(op) = sc.get_local_init_op() {
            if let Some(msg) = not_ready(&*sess, &sc.ready_for_local_init_vars(&g)) {
                return Err(Error::new(
                    Code::FailedPrecondition,
                    format!("Init operations did not make model ready for local_init: {msg}"),
                ));
            }
            tracing::info!("Running local_init_op.");
            sess.run(&[], &[], &[op])?;
        }
        if let Some(msg) = not_ready(&*sess, &sc.ready_vars(&g)) {
            return Err(Error::new(
                Code::FailedPrecondition,
                format!("Init operations did not make model ready: {msg}"),
            ));
        }
        Ok(sess)
    }
}

/// Restores the newest of `candidates` (newest first) that restores; one that is
/// damaged or incomplete (DataLoss, NotFound) is warned about, set aside and the next
/// one tried, unless it was `given` by the caller. None restoring is an error naming the
/// newest's cause (the session never starts from scratch while checkpoints exist), or,
/// when the user asked for a `fresh` start, `None` with every one set aside.
fn restore_newest(
    saver: &mut Saver,
    sess: &mut dyn Executor,
    candidates: &[PathBuf],
    given: bool,
    fresh: bool,
) -> Result<Option<PathBuf>> {
    let mut failed: Vec<(PathBuf, Error)> = Vec::new();
    for prefix in candidates {
        tracing::info!(prefix = %prefix.display(), "Restoring parameters");
        match saver.restore(sess, prefix) {
            Ok(()) => {
                for (bad, e) in &failed {
                    let moved = set_aside(bad);
                    tracing::warn!(
                        damaged = %bad.display(),
                        error = %e,
                        restored = %prefix.display(),
                        "a newer checkpoint cannot be restored: restored {} instead; its files were moved aside ({} files, suffix .damaged)",
                        prefix.display(),
                        moved.len()
                    );
                }
                return Ok(Some(prefix.clone()));
            }
            Err(e) if !given && matches!(e.code, Code::DataLoss | Code::NotFound) => {
                tracing::warn!(prefix = %prefix.display(), error = %e, "cannot restore this checkpoint; trying the one before it");
                failed.push((prefix.clone(), e));
            }
            Err(e) => return Err(e),
        }
    }
    if fresh && !failed.is_empty() {
        for (bad, e) in &failed {
            let moved = set_aside(bad);
            tracing::warn!(damaged = %bad.display(), error = %e, moved = moved.len(), "set aside (suffix .damaged)");
        }
        tracing::warn!(
            checkpoints = failed.len(),
            "no checkpoint restores; starting from scratch as asked (start_fresh_if_unrestorable)"
        );
        return Ok(None);
    }
    let Some((newest, e)) = failed.into_iter().next() else {
        return Err(Error::internal("no checkpoint to restore"));
    };
    Err(Error::new(
        e.code,
        format!(
            "none of the {} checkpoints beside {} can be restored (the newest: {}); move them away or set start_fresh_if_unrestorable to start from scratch",
            candidates.len(),
            newest.display(),
            e.message
        ),
    ))
}

/// A worker's creator: never initializes or restores; waits until the model is ready
/// (the chief initialized it) at most `max_wait_secs`, checking every
/// `recovery_wait_secs`, then fails with DeadlineExceeded (TF's
/// `WorkerSessionCreator`). In one process there is no chief to wait for, so a worker
/// there times out, as in TF with `master=""`.
pub struct WorkerSessionCreator {
    /// The scaffold (finalized).
    pub scaffold: Arc<Scaffold>,
    /// The engine's session config.
    pub config: SessionConfig,
    /// The longest wait.
    pub max_wait_secs: f64,
    /// Time between checks (TF's 30 s).
    pub recovery_wait_secs: f64,
}

impl SessionCreator for WorkerSessionCreator {
    fn create_session(&mut self, graph: &Arc<Graph>) -> Result<Box<dyn Executor>> {
        let start = Instant::now();
        loop {
            let mut sess = wgtrain_engine::executor::create(Arc::clone(graph), &self.config)?;
            let g = sess.graph_arc();
            let sc = &self.scaffold;
            let mut reason = not_ready(&*sess, &sc.ready_for_local_init_vars(&g));
            if reason.is_none() {
                if let Some(op) = sc.get_local_init_op() {
                    sess.run(&[], &[], &[op])?;
                }
                reason = not_ready(&*sess, &sc.ready_vars(&g));
                if reason.is_none() {
                    return Ok(sess);
                }
            }
            let waited = start.elapsed().as_secs_f64();
            if self.max_wait_secs - waited - self.recovery_wait_secs < 0.0 {
                return Err(Error::new(
                    Code::DeadlineExceeded,
                    format!(
                        "Session was not ready after waiting {} secs: waited for the chief to initialize the model ({})",
                        waited.round(),
                        reason.unwrap_or_default()
                    ),
                ));
            }
            tracing::info!(
                reason = reason.as_deref().unwrap_or(""),
                "Waiting for model to be ready."
            );
            drop(sess);
            std::thread::sleep(crate::hook::seconds(
                "recovery_wait_secs",
                self.recovery_wait_secs,
            )?);
        }
    }
}
