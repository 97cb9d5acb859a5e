//! The [`Saver`]: TF 1's `tf.train.Saver` over a wgtrain [`Executor`] (the wgpu session or the reference) — saves variables
//! as V2 bundles named `<prefix>-<step>`, keeps the newest `max_to_keep` (and one every
//! `keep_checkpoint_every_n_hours`), maintains the `checkpoint` state file, and restores
//! all-or-nothing.
//!
//! Saves never stall a step: the session records a device copy of the variables with
//! the next submission ([`Executor::snapshot_variables`]), and a writer thread receives
//! the bytes over a bounded channel, writes the bundle crash-safely, then replaces the
//! state file and deletes what retention lets go. At most `max_in_flight` saves are
//! queued; a further `save` blocks until one finishes (a requested checkpoint is never
//! dropped). A write error comes back from the next `save`, `flush` or `close`.

use crate::bundle::{self, BundleReader};
use crate::error::{Code, Error, Result};
use crate::state::resolve;
use crate::tensor::TfDType;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wgtrain_engine::{Executor, Graph, Snapshot, Tensor, Worker, WorkerOptions};

mod retention;
mod writer;

use retention::trusted_state;
pub use retention::{Retention, set_aside};
pub use writer::OnWritten;
use writer::{Job, Shared, WriteCheckpoints, write_job};

/// Options of a [`Saver`] (TF's defaults).
#[derive(Clone, Debug)]
pub struct SaverOptions {
    /// Checkpoints kept (oldest deleted first); 0 keeps every file and names only the
    /// latest in the state file, as TF.
    pub max_to_keep: usize,
    /// Also keep one checkpoint every this many hours.
    pub keep_checkpoint_every_n_hours: f64,
    /// Write on a background thread (the default); false writes on the caller's thread.
    pub asynchronous: bool,
    /// Saves queued at most before `save` blocks.
    pub max_in_flight: usize,
    /// Name checkpoints in the state file relative to its directory (so the directory
    /// can move); false writes absolute paths, as TF's default.
    pub relative_paths: bool,
}

impl Default for SaverOptions {
    fn default() -> Self {
        SaverOptions {
            max_to_keep: 5,
            keep_checkpoint_every_n_hours: 10_000.0,
            asynchronous: true,
            max_in_flight: 2,
            relative_paths: true,
        }
    }
}

/// Writes `<prefix>.meta` next to a checkpoint (the graph exporter).
pub type MetaExporter = Arc<dyn Fn(&Path) -> Result<()> + Send + Sync>;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Saves and restores a set of variables (see the module doc).
pub struct Saver {
    /// (name in the checkpoint, variable).
    vars: Vec<(String, Tensor)>,
    opts: SaverOptions,
    shared: Arc<Shared>,
    /// Writes asynchronous saves (started with the first).
    worker: Option<Worker<Job>>,
    /// Directories already created.
    made: std::collections::HashSet<PathBuf>,
}

impl Saver {
    /// A saver of every global variable under its own name (TF's default `var_list`).
    pub fn new(graph: &Graph, opts: SaverOptions) -> Result<Saver> {
        let vars: Vec<(String, Tensor)> = graph
            .global_variables()
            .into_iter()
            .map(|v| (graph.name(v).to_string(), v))
            .collect();
        Saver::with_names(graph, vars, opts)
    }

    /// A saver of `vars` under their own names.
    pub fn with_vars(graph: &Graph, vars: &[Tensor], opts: SaverOptions) -> Result<Saver> {
        if let Some(v) = vars.iter().find(|v| !graph.contains(**v)) {
            return Err(Error::invalid_argument(format!(
                "saver: tensor #{} does not belong to this graph",
                v.index()
            )));
        }
        let named = vars
            .iter()
            .map(|&v| (graph.name(v).to_string(), v))
            .collect();
        Saver::with_names(graph, named, opts)
    }

    /// A saver with an explicit name map: (name in the checkpoint, variable).
    pub fn with_names(
        graph: &Graph,
        vars: Vec<(String, Tensor)>,
        opts: SaverOptions,
    ) -> Result<Saver> {
        let mut seen = std::collections::HashSet::new();
        for (name, v) in &vars {
            if !graph.contains(*v) {
                return Err(Error::invalid_argument(format!(
                    "saver: '{name}' (tensor #{}) does not belong to this graph",
                    v.index()
                )));
            }
            if !graph.is_variable(*v) {
                return Err(Error::invalid_argument(format!(
                    "saver: '{}' is not a variable",
                    graph.name(*v)
                )));
            }
            if name.is_empty() || !seen.insert(name.clone()) {
                return Err(Error::invalid_argument(format!(
                    "saver: checkpoint name '{name}' is empty or given twice"
                )));
            }
        }
        let retention = Retention::new(opts.max_to_keep, opts.keep_checkpoint_every_n_hours, now());
        Ok(Saver {
            vars,
            shared: Arc::new(Shared::new(retention, None)),
            opts,
            worker: None,
            made: std::collections::HashSet::new(),
        })
    }

    /// Writes `<checkpoint>.meta` with every save through `exporter`.
    pub fn with_meta_exporter(mut self, exporter: MetaExporter) -> Saver {
        if let Some(s) = Arc::get_mut(&mut self.shared) {
            s.meta = Some(exporter);
        }
        self
    }

    /// Sets or clears the `.meta` exporter of later saves (waits for queued saves).
    pub fn set_meta_exporter(&mut self, exporter: Option<MetaExporter>) -> Result<()> {
        // The writer worker shares the old state: it finishes, the next save starts one.
        if let Some(w) = self.worker.take() {
            w.close(None)?;
        }
        let retention = self
            .shared
            .retention
            .lock()
            .map_err(|_| Error::internal("saver retention lock poisoned"))?
            .clone();
        self.shared = Arc::new(Shared::new(retention, exporter));
        Ok(())
    }

    /// The options the saver was made with.
    pub fn options(&self) -> &SaverOptions {
        &self.opts
    }

    /// The (checkpoint name, variable) pairs saved.
    pub fn var_list(&self) -> &[(String, Tensor)] {
        &self.vars
    }

    /// The checkpoints kept, oldest first, as the state file names them.
    pub fn last_checkpoints(&self) -> Vec<String> {
        self.shared
            .retention
            .lock()
            .map(|r| r.kept.iter().map(|(p, _)| p.clone()).collect())
            .unwrap_or_default()
    }

    /// Rebuilds retention from the state file in `dir` after a restart: the
    /// checkpoints it lists that still exist, with their recorded save times (else the
    /// index file's modification time), as TF's `recover_last_checkpoints`.
    pub fn recover_last_checkpoints(&mut self, dir: &Path) -> Result<()> {
        let st = match trusted_state(dir) {
            Some(st) => st,
            None => return Ok(()),
        };
        let mut r = self
            .shared
            .retention
            .lock()
            .map_err(|_| Error::internal("saver retention lock poisoned"))?;
        r.kept.clear();
        for (i, p) in st.all_model_checkpoint_paths.iter().enumerate() {
            let idx = bundle::index_path(&resolve(dir, p));
            let Ok(meta) = std::fs::metadata(&idx) else {
                continue;
            };
            let time = st
                .all_model_checkpoint_timestamps
                .get(i)
                .copied()
                .unwrap_or_else(|| {
                    meta.modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0)
                });
            r.kept.push((p.clone(), time));
        }
        if st.last_preserved_timestamp > 0.0 {
            r.next_preserve = st.last_preserved_timestamp + r.keep_every_secs;
        }
        Ok(())
    }

    fn take_error(&self) -> Result<()> {
        match &self.worker {
            Some(w) => w.take_error(),
            None => Ok(()),
        }
    }

    /// The writer worker, started when there is none or a coordinator closed it.
    fn writer(&mut self) -> Result<&Worker<Job>> {
        if let Some(old) = self.worker.take_if(|w| !w.is_open()) {
            old.take_error()?;
        }
        if self.worker.is_none() {
            self.worker = Some(Worker::spawn(
                "saver",
                WorkerOptions {
                    capacity: self.opts.max_in_flight.max(1) - 1,
                    flush_every: None,
                    low_priority: true,
                },
                WriteCheckpoints(Arc::clone(&self.shared)),
            )?);
        }
        self.worker
            .as_ref()
            .ok_or_else(|| Error::internal("saver worker missing"))
    }

    /// The writer worker of asynchronous saves, once one started, for a coordinator
    /// to stop and wait for at close.
    pub fn background(&mut self) -> Result<Arc<dyn wgtrain_engine::Background>> {
        Ok(self.writer()?.background())
    }

    /// Saves the variables as `<prefix>-<global_step>` (or `<prefix>` without a step)
    /// and returns that path. The values are those after the session's last submitted
    /// run. Asynchronous by default: returns once the device copy is recorded.
    pub fn save(
        &mut self,
        sess: &mut dyn Executor,
        prefix: impl AsRef<Path>,
        global_step: Option<i64>,
    ) -> Result<PathBuf> {
        self.save_then(sess, prefix, global_step, None)
    }

    /// [`save`](Self::save), calling `on_written` once the checkpoint is durable (on
    /// the writer thread when asynchronous): the checkpoint hook logs its
    /// `SessionLog CHECKPOINT` event there, off the training thread.
    pub fn save_then(
        &mut self,
        sess: &mut dyn Executor,
        prefix: impl AsRef<Path>,
        global_step: Option<i64>,
        on_written: Option<OnWritten>,
    ) -> Result<PathBuf> {
        self.take_error()?;
        let (path, dir, state_name) = self.paths(prefix.as_ref(), global_step)?;
        let vars: Vec<Tensor> = self.vars.iter().map(|(_, v)| *v).collect();
        let snapshot = sess.snapshot_variables(&vars)?;
        self.save_snapshot(snapshot, &path, dir, state_name, on_written)
    }

    /// Saves `snapshot` (of [`var_list`](Self::var_list)'s variables, in order, taken
    /// with a step's own submission by `Session::run_and_snapshot`) as
    /// `<prefix>-<global_step>`: the step pays no extra submission.
    pub fn save_from_snapshot(
        &mut self,
        snapshot: Snapshot,
        prefix: impl AsRef<Path>,
        global_step: Option<i64>,
    ) -> Result<PathBuf> {
        self.save_from_snapshot_then(snapshot, prefix, global_step, None)
    }

    /// [`save_from_snapshot`](Self::save_from_snapshot), calling `on_written` once the
    /// checkpoint is durable.
    pub fn save_from_snapshot_then(
        &mut self,
        snapshot: Snapshot,
        prefix: impl AsRef<Path>,
        global_step: Option<i64>,
        on_written: Option<OnWritten>,
    ) -> Result<PathBuf> {
        self.take_error()?;
        let (path, dir, state_name) = self.paths(prefix.as_ref(), global_step)?;
        self.save_snapshot(snapshot, &path, dir, state_name, on_written)
    }

    fn paths(
        &mut self,
        prefix: &Path,
        global_step: Option<i64>,
    ) -> Result<(PathBuf, PathBuf, String)> {
        let path = match global_step {
            Some(s) => {
                let mut p = prefix.as_os_str().to_owned();
                p.push(format!("-{s}"));
                PathBuf::from(p)
            }
            None => prefix.to_path_buf(),
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        if !self.made.contains(&dir) {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), &e))?;
            self.made.insert(dir.clone());
        }
        let file_name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .ok_or_else(|| Error::invalid_argument("a checkpoint prefix needs a file name"))?;
        let state_name = if self.opts.relative_paths {
            file_name
        } else {
            std::path::absolute(&path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string()
        };
        Ok((path, dir, state_name))
    }

    fn save_snapshot(
        &mut self,
        snapshot: Snapshot,
        path: &Path,
        dir: PathBuf,
        state_name: String,
        on_written: Option<OnWritten>,
    ) -> Result<PathBuf> {
        let path = path.to_path_buf();
        let job = Job {
            names: self.vars.iter().map(|(n, _)| n.clone()).collect(),
            values: snapshot,
            prefix: path.clone(),
            dir,
            state_name,
            time: now(),
            on_written,
        };
        if self.opts.asynchronous {
            self.writer()?.submit(job)?;
        } else {
            write_job(&self.shared, job)?;
        }
        Ok(path)
    }

    /// Waits for every queued save; returns the first write error since the last call.
    pub fn flush(&mut self) -> Result<()> {
        self.flush_within(None)
    }

    /// [`flush`](Self::flush), waiting at most `timeout` (then DeadlineExceeded; the
    /// writes still queued finish on their own).
    pub fn flush_within(&mut self, timeout: Option<Duration>) -> Result<()> {
        match &self.worker {
            Some(w) if w.is_open() => w.flush(timeout),
            // Closed by a coordinator: what it queued is done or past its deadline.
            Some(_) => self.worker.take().map_or(Ok(()), |w| w.close(timeout)),
            None => Ok(()),
        }
    }

    /// Drains and joins the writer; returns the first write error.
    pub fn close(mut self) -> Result<()> {
        self.flush()
    }

    /// Restores every variable from the checkpoint at `prefix`, all or nothing:
    /// NotFound listing every variable the checkpoint lacks, InvalidArgument naming a
    /// variable whose dtype or shape differs (both given), DataLoss for damaged data —
    /// each before any variable is written.
    pub fn restore(&self, sess: &mut dyn Executor, prefix: impl AsRef<Path>) -> Result<()> {
        restore_map(sess, prefix.as_ref(), &self.vars)
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "checkpoint write failed (reported at drop)");
        }
    }
}

/// Restores `(checkpoint name, variable)` pairs from `prefix` into the session, all or
/// nothing (see [`Saver::restore`]).
pub fn restore_map(sess: &mut dyn Executor, prefix: &Path, map: &[(String, Tensor)]) -> Result<()> {
    let r = BundleReader::open(prefix)?;
    let graph = sess.graph_arc();
    let missing: Vec<&str> = map
        .iter()
        .filter(|(n, _)| !r.contains(n))
        .map(|(n, _)| n.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::new(
            Code::NotFound,
            format!(
                "{} variable(s) not found in checkpoint {}: {}",
                missing.len(),
                prefix.display(),
                missing.join(", ")
            ),
        ));
    }
    for (name, v) in map {
        let node = graph.node(*v);
        let want_shape: Vec<usize> = node.shape.iter().map(|&d| d.max(0) as usize).collect();
        let want_dtype = TfDType::of(node.dtype);
        let Some(e) = r.entry(name) else { continue };
        if e.dtype != want_dtype || e.shape != want_shape {
            return Err(Error::invalid_argument(format!(
                "variable '{}' is {} {:?} but checkpoint {} holds '{name}' as {} {:?}",
                node.name,
                want_dtype,
                want_shape,
                prefix.display(),
                e.dtype,
                e.shape
            )));
        }
    }
    let mut values = Vec::with_capacity(map.len());
    for (name, v) in map {
        values.push((*v, r.get(name)?.to_host()?));
    }
    sess.write_variables(&values)
}

/// Warm start (TF's `tf.train.init_from_checkpoint`): restores the variables of
/// `map` (checkpoint name → variable) from the checkpoint at `prefix` — including one
/// TensorFlow wrote — all or nothing.
pub fn init_from_checkpoint(
    sess: &mut dyn Executor,
    prefix: impl AsRef<Path>,
    map: &[(&str, Tensor)],
) -> Result<()> {
    let owned: Vec<(String, Tensor)> = map.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    restore_map(sess, prefix.as_ref(), &owned)
}
