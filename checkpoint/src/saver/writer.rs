//! The saver's writer thread: each queued save's bundle written crash-safely, its
//! `.meta`, then retention and the state file.

use super::MetaExporter;
use super::retention::{Retention, delete_checkpoint};
use crate::bundle::write_bundle;
use crate::error::{Error, Result};
use crate::state::{resolve, write_state};
use crate::tensor::Tensor as CkptTensor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wgtrain_engine::Snapshot;

/// Called with a checkpoint's path once it is durable (on the writer thread for
/// asynchronous saves).
pub type OnWritten = Box<dyn FnOnce(&Path) -> Result<()> + Send>;

/// One save for the writer.
pub(super) struct Job {
    pub(super) names: Vec<String>,
    pub(super) values: Snapshot,
    pub(super) prefix: PathBuf,
    pub(super) dir: PathBuf,
    pub(super) state_name: String,
    pub(super) time: f64,
    pub(super) on_written: Option<OnWritten>,
}

/// Writes queued checkpoints (the saver's background worker).
pub(super) struct WriteCheckpoints(pub(super) Arc<Shared>);

impl wgtrain_engine::Task for WriteCheckpoints {
    type Job = Job;

    fn run(&mut self, job: Job) -> Result<()> {
        let prefix = job.prefix.clone();
        write_job(&self.0, job).inspect_err(|e| {
            tracing::error!(prefix = %prefix.display(), error = %e, "checkpoint write failed");
        })
    }
}

/// State shared with the writer thread.
pub(super) struct Shared {
    pub(super) retention: Mutex<Retention>,
    pub(super) meta: Option<MetaExporter>,
    /// The last `.meta` the exporter wrote: later ones (the same bytes) are hard links
    /// to it, which need no data written or synced.
    last_meta: Mutex<Option<PathBuf>>,
}

impl Shared {
    pub(super) fn new(retention: Retention, meta: Option<MetaExporter>) -> Shared {
        Shared {
            retention: Mutex::new(retention),
            meta,
            last_meta: Mutex::new(None),
        }
    }

    /// Writes `<prefix>.meta`: a hard link to the previous one when it still exists,
    /// else through the exporter.
    fn write_meta(&self, prefix: &Path) -> Result<()> {
        let Some(meta) = &self.meta else {
            return Ok(());
        };
        let mut p = prefix.as_os_str().to_owned();
        p.push(".meta");
        let path = PathBuf::from(p);
        let mut last = self
            .last_meta
            .lock()
            .map_err(|_| Error::internal("saver meta lock poisoned"))?;
        let linked = last.as_ref().is_some_and(|prev| {
            let _ = std::fs::remove_file(&path);
            std::fs::hard_link(prev, &path).is_ok()
        });
        if !linked {
            meta(&path)?;
        }
        *last = Some(path);
        Ok(())
    }
}

pub(super) fn write_job(shared: &Shared, job: Job) -> Result<()> {
    let values = job.values.wait()?;
    let tensors: Vec<(String, CkptTensor)> = job
        .names
        .into_iter()
        .zip(values.iter().map(CkptTensor::from_host))
        .collect();
    write_bundle(&job.prefix, &tensors)?;
    shared.write_meta(&job.prefix)?;
    let (state, delete) = {
        let mut r = shared
            .retention
            .lock()
            .map_err(|_| Error::internal("saver retention lock poisoned"))?;
        let delete = r.add(&job.state_name, job.time);
        (r.state(&job.state_name), delete)
    };
    // Retired checkpoints go before the state file stops naming them: a crash in
    // between leaves a state file naming one that is gone (restores and retention
    // skip it), never files no state file names and no retention ever deletes.
    for p in delete {
        delete_checkpoint(&resolve(&job.dir, &p));
    }
    write_state(&job.dir, &state)?;
    match job.on_written {
        Some(f) => f(&job.prefix),
        None => Ok(()),
    }
}
