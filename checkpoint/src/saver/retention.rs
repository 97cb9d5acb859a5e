//! Which checkpoints a [`Saver`](super::Saver) keeps (TF's retention rules), the files
//! of one, and what to keep tracking after a restart.

use crate::bundle;
use crate::state::{CheckpointState, read_state, resolve};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// Which checkpoints to keep: TF's `Saver._MaybeDeleteOldCheckpoints` as a pure state
/// machine (times in seconds since the epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct Retention {
    /// Checkpoints kept.
    pub max_to_keep: usize,
    /// Seconds between preserved checkpoints.
    pub keep_every_secs: f64,
    /// Kept checkpoints (prefix as named in the state file, save time), oldest first.
    pub kept: Vec<(String, f64)>,
    /// A checkpoint saved after this time is preserved when it leaves `kept`.
    pub next_preserve: f64,
}

impl Retention {
    /// Fresh retention starting at time `start`.
    pub fn new(max_to_keep: usize, keep_every_hours: f64, start: f64) -> Retention {
        let secs = keep_every_hours * 3600.0;
        Retention {
            max_to_keep,
            keep_every_secs: secs,
            kept: Vec::new(),
            next_preserve: start + secs,
        }
    }

    /// Records a checkpoint saved at `time`; returns the prefixes to delete.
    pub fn add(&mut self, prefix: &str, time: f64) -> Vec<String> {
        self.kept.retain(|(p, _)| p != prefix);
        self.kept.push((prefix.to_string(), time));
        if self.max_to_keep == 0 {
            return Vec::new();
        }
        let mut delete = Vec::new();
        while self.kept.len() > self.max_to_keep {
            let (p, t) = self.kept.remove(0);
            if t > self.next_preserve {
                self.next_preserve += self.keep_every_secs;
                continue;
            }
            delete.push(p);
        }
        delete
    }

    /// The state file naming `latest` and the kept checkpoints.
    pub fn state(&self, latest: &str) -> CheckpointState {
        let kept: Vec<&(String, f64)> = if self.max_to_keep == 0 {
            self.kept.iter().filter(|(p, _)| p == latest).collect()
        } else {
            self.kept.iter().collect()
        };
        CheckpointState {
            model_checkpoint_path: latest.to_string(),
            all_model_checkpoint_paths: kept.iter().map(|(p, _)| p.clone()).collect(),
            all_model_checkpoint_timestamps: kept.iter().map(|(_, t)| *t).collect(),
            last_preserved_timestamp: self.next_preserve - self.keep_every_secs,
        }
    }
}

/// The files of a checkpoint: index, data, meta graph.
fn checkpoint_files(prefix: &Path) -> [PathBuf; 3] {
    let mut meta = prefix.as_os_str().to_owned();
    meta.push(".meta");
    [
        bundle::index_path(prefix),
        bundle::data_path(prefix, 0, 1),
        PathBuf::from(meta),
    ]
}

/// Removes a checkpoint's files (missing ones are fine).
pub(super) fn delete_checkpoint(prefix: &Path) {
    for f in checkpoint_files(prefix) {
        let _ = std::fs::remove_file(f);
    }
}

/// Moves the files of a checkpoint that cannot be restored aside (`<file>.damaged`), so
/// that no restore picks it again and no later save overwrites what is left of it.
/// Returns the new names.
pub fn set_aside(prefix: &Path) -> Vec<PathBuf> {
    let mut moved = Vec::new();
    for f in checkpoint_files(prefix) {
        let mut to = f.as_os_str().to_owned();
        to.push(".damaged");
        let to = PathBuf::from(to);
        if f.exists() && std::fs::rename(&f, &to).is_ok() {
            moved.push(to);
        }
    }
    moved
}

/// The file name of a checkpoint path as the state file may write it (relative or not).
pub(super) fn file_name_of(p: &str) -> String {
    Path::new(p)
        .file_name()
        .map_or_else(|| p.to_string(), |n| n.to_string_lossy().into_owned())
}

/// The global step at the end of a checkpoint name (`model.ckpt-N`).
pub(super) fn step_of(name: &str) -> Option<i64> {
    name.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// The checkpoints to keep tracking in `dir` after a restart: the state file's when it
/// can be trusted (it parses, every checkpoint it names exists, once, and none newer
/// than its oldest is missing from it), else those it names that exist, every
/// checkpoint of the directory newer than them and the older ones saved when a name
/// that is not there was (all of them when the state file is unreadable), oldest
/// first; `None`
/// when there is neither a state file nor a checkpoint. Older checkpoints a state file
/// left out (kept every N hours) stay out.
pub(super) fn trusted_state(dir: &Path) -> Option<CheckpointState> {
    let on_disk: Vec<String> = crate::state::checkpoints_newest_first(dir)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let (st, why) = match read_state(dir) {
        // TF lists the latest among all kept: a file without it was cut short.
        Ok(Some(st))
            if !st
                .all_model_checkpoint_paths
                .iter()
                .any(|p| file_name_of(p) == file_name_of(&st.model_checkpoint_path)) =>
        {
            let why = "it does not list its latest checkpoint among those kept".to_string();
            (st, Some(why))
        }
        Ok(Some(st)) => (st, None),
        Ok(None) if on_disk.is_empty() => return None,
        Ok(None) => (
            CheckpointState::default(),
            Some("there is none".to_string()),
        ),
        Err(e) => (CheckpointState::default(), Some(e.to_string())),
    };
    let mut listed: Vec<(String, Option<f64>)> = Vec::new();
    // The recorded save times of names that are not there (damaged, or repeated).
    let mut lost: Vec<f64> = Vec::new();
    for (i, p) in st.all_model_checkpoint_paths.iter().enumerate() {
        let time = st.all_model_checkpoint_timestamps.get(i).copied();
        let exists = bundle::index_path(&resolve(dir, p)).exists();
        if exists
            && !listed
                .iter()
                .any(|(q, _)| file_name_of(q) == file_name_of(p))
        {
            listed.push((p.clone(), time));
        } else if let Some(t) = time {
            lost.push(t);
        }
    }
    let oldest = match why {
        Some(_) => None,
        None => listed
            .iter()
            .filter_map(|(p, _)| step_of(&file_name_of(p)))
            .min(),
    };
    let index_time = |n: &str| {
        std::fs::metadata(bundle::index_path(&dir.join(n)))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
    };
    let newer = |n: &str| step_of(n).zip(oldest).is_some_and(|(s, o)| s > o);
    // An older checkpoint the list lost a name of is the one saved when that name was
    // (a checkpoint kept every N hours, older by far, stays out).
    let renamed = |n: &str| index_time(n).is_some_and(|t| lost.iter().any(|l| (t - l).abs() < 2.0));
    let extra: Vec<String> = on_disk
        .iter()
        .filter(|n| !listed.iter().any(|(p, _)| file_name_of(p) == **n))
        .filter(|n| why.is_some() || newer(n) || renamed(n))
        .cloned()
        .collect();
    if why.is_none() && extra.is_empty() && listed.len() == st.all_model_checkpoint_paths.len() {
        return Some(st);
    }
    let why = why.unwrap_or_else(|| {
        "it names checkpoints that are not there, or twice, or misses newer ones".to_string()
    });
    let mut all = listed;
    all.extend(extra.into_iter().map(|n| (n, None)));
    all.sort_by_key(|(p, _)| step_of(&file_name_of(p)).unwrap_or(-1));
    tracing::warn!(
        error = %why,
        kept = all.len(),
        "the checkpoint state file cannot be trusted; keeping the checkpoints found in the directory"
    );
    let times: Vec<f64> = all
        .iter()
        .map(|(p, t)| {
            t.unwrap_or_else(|| {
                std::fs::metadata(bundle::index_path(&resolve(dir, p)))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0.0, |d| d.as_secs_f64())
            })
        })
        .collect();
    let paths: Vec<String> = all.into_iter().map(|(p, _)| p).collect();
    Some(CheckpointState {
        model_checkpoint_path: paths.last().cloned().unwrap_or_default(),
        all_model_checkpoint_paths: paths,
        all_model_checkpoint_timestamps: times,
        last_preserved_timestamp: st.last_preserved_timestamp,
    })
}
