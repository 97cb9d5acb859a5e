//! The `checkpoint` state file: a text-format `CheckpointState` naming the latest
//! checkpoint and every one kept (oldest first), with paths absolute or relative to the
//! directory.

use crate::bundle::{Fault, NoFault, index_path, sync_dir, write_atomic};
use crate::error::{Error, Result};
use crate::text::{quote_bytes, unquote_bytes};
use std::path::{Path, PathBuf};

/// The state file's name.
pub const STATE_FILE: &str = "checkpoint";

/// `tensorflow.CheckpointState`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointState {
    /// The latest checkpoint's prefix.
    pub model_checkpoint_path: String,
    /// Every kept checkpoint, oldest first (the latest last).
    pub all_model_checkpoint_paths: Vec<String>,
    /// Seconds since the epoch at which each kept checkpoint was saved.
    pub all_model_checkpoint_timestamps: Vec<f64>,
    /// The time of the last checkpoint kept by `keep_checkpoint_every_n_hours`.
    pub last_preserved_timestamp: f64,
}

fn quote(s: &str) -> String {
    quote_bytes(s.as_bytes())
}

/// The string of a quoted value.
fn unquote(s: &str) -> Option<String> {
    unquote_bytes(s.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

impl CheckpointState {
    /// Parses the text format; InvalidArgument naming the line on a malformed one or a
    /// field `CheckpointState` does not have (TF's text parser rejects those too, so a
    /// damaged field name is never read as a shorter list).
    pub fn parse(text: &str) -> Result<CheckpointState> {
        let mut st = CheckpointState::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || {
                Error::invalid_argument(format!(
                    "checkpoint state line {}: cannot parse '{line}'",
                    n + 1
                ))
            };
            let (key, value) = line.split_once(':').ok_or_else(bad)?;
            let value = value.trim();
            match key.trim() {
                "model_checkpoint_path" => {
                    st.model_checkpoint_path = unquote(value).ok_or_else(bad)?
                }
                "all_model_checkpoint_paths" => st
                    .all_model_checkpoint_paths
                    .push(unquote(value).ok_or_else(bad)?),
                "all_model_checkpoint_timestamps" => st
                    .all_model_checkpoint_timestamps
                    .push(value.parse().map_err(|_| bad())?),
                "last_preserved_timestamp" => {
                    st.last_preserved_timestamp = value.parse().map_err(|_| bad())?
                }
                _ => return Err(bad()),
            }
        }
        Ok(st)
    }

    /// The text format, as TF writes it.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "model_checkpoint_path: {}\n",
            quote(&self.model_checkpoint_path)
        );
        for p in &self.all_model_checkpoint_paths {
            s.push_str(&format!("all_model_checkpoint_paths: {}\n", quote(p)));
        }
        for t in &self.all_model_checkpoint_timestamps {
            s.push_str(&format!("all_model_checkpoint_timestamps: {t}\n"));
        }
        if self.last_preserved_timestamp != 0.0 {
            s.push_str(&format!(
                "last_preserved_timestamp: {}\n",
                self.last_preserved_timestamp
            ));
        }
        s
    }
}

/// `path` resolved against `dir` when relative.
pub fn resolve(dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// The state file of `dir`, or `None` when there is none. InvalidArgument when it
/// cannot be parsed.
pub fn read_state(dir: &Path) -> Result<Option<CheckpointState>> {
    let path = dir.join(STATE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => CheckpointState::parse(&text)
            .map(Some)
            .map_err(|e| Error::new(e.code, format!("{}: {}", path.display(), e.message))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path.display(), &e)),
    }
}

/// Replaces the state file of `dir` atomically (temporary file, sync, rename).
pub fn write_state(dir: &Path, st: &CheckpointState) -> Result<()> {
    write_state_with(dir, st, &mut NoFault)
}

/// [`write_state`] with a fault injector.
pub fn write_state_with(dir: &Path, st: &CheckpointState, fault: &mut dyn Fault) -> Result<()> {
    let path = dir.join(STATE_FILE);
    write_atomic(&path, st.to_text().as_bytes(), fault, "checkpoint state")?;
    sync_dir(&path);
    Ok(())
}

/// The prefix of the latest checkpoint in `dir` (TF's `tf.train.latest_checkpoint`):
/// `None` when there is no state file, it cannot be read, or the `.index` it names is
/// missing. A relative path is resolved against `dir`; an absolute one that does not
/// exist (a directory that was moved) is looked for by its file name in `dir`, where TF
/// would give up.
pub fn latest_checkpoint(dir: impl AsRef<Path>) -> Option<PathBuf> {
    let dir = dir.as_ref();
    let st = read_state(dir).ok().flatten()?;
    if st.model_checkpoint_path.is_empty() {
        return None;
    }
    let named = resolve(dir, &st.model_checkpoint_path);
    if index_path(&named).exists() {
        return Some(named);
    }
    let moved = dir.join(named.file_name()?);
    (Path::new(&st.model_checkpoint_path).is_absolute() && index_path(&moved).exists())
        .then_some(moved)
}

/// Every checkpoint of `dir` a restore may use, newest first: the latest the state file
/// names, the others it keeps (newest first), then every other `<prefix>.index` in the
/// directory, by the global step at the end of its name (`model.ckpt-N`), newest
/// first. The directory is scanned too, so a state file that is missing, unreadable or
/// damaged loses no checkpoint. Only prefixes whose `.index` exists are listed.
pub fn checkpoints_newest_first(dir: impl AsRef<Path>) -> Vec<PathBuf> {
    let dir = dir.as_ref();
    let mut out: Vec<PathBuf> = Vec::new();
    let push = |p: PathBuf, out: &mut Vec<PathBuf>| {
        if index_path(&p).exists() && !out.contains(&p) {
            out.push(p);
        }
    };
    let scan: Vec<(i64, PathBuf)> = scan_checkpoints(dir);
    if let Ok(Some(st)) = read_state(dir) {
        // A checkpoint newer than the state file's latest, written after the state file
        // was (or in the same tick): a crash came between its index and the state file
        // naming it. (One older
        // than the state file stays behind the latest: the user may have rolled back.)
        let latest_step = step_of_name(&st.model_checkpoint_path);
        let state_time = std::fs::metadata(dir.join(STATE_FILE))
            .and_then(|m| m.modified())
            .ok();
        for (step, p) in &scan {
            let index_time = std::fs::metadata(index_path(p))
                .and_then(|m| m.modified())
                .ok();
            if latest_step.is_some_and(|l| *step > l)
                // Not before: file times are coarse (a few ms), and saves can be faster.
                && index_time.zip(state_time).is_some_and(|(i, s)| i >= s)
            {
                push(p.clone(), &mut out);
            }
        }
        let named = std::iter::once(&st.model_checkpoint_path)
            .chain(st.all_model_checkpoint_paths.iter().rev())
            .filter(|p| !p.is_empty());
        for p in named {
            push(resolve(dir, p), &mut out);
            // An absolute path of a directory that moved: its file name here.
            if let Some(name) = Path::new(p)
                .file_name()
                .filter(|_| Path::new(p).is_absolute())
            {
                push(dir.join(name), &mut out);
            }
        }
    }
    for (_, p) in scan {
        push(p, &mut out);
    }
    out
}

/// The global step at the end of a checkpoint name (`model.ckpt-N`).
fn step_of_name(name: &str) -> Option<i64> {
    Path::new(name)
        .file_name()?
        .to_str()?
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
}

/// Every `<prefix>.index` of `dir` as (the step its name ends with, or -1; the
/// prefix), newest first.
fn scan_checkpoints(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut scanned: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let prefix = name.strip_suffix(".index")?;
            Some((step_of_name(prefix).unwrap_or(-1), dir.join(prefix)))
        })
        .collect();
    scanned.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    scanned
}

/// Removes what saves interrupted by a crash left in `dir`: temporary files
/// (`*.tempstate<pid>_<n>`) and the data and meta files of a checkpoint whose index
/// was never written (`<name>-<step>.data-*`, `.meta`: unusable without it); returns
/// how many files. Call it only where no save into `dir` is under way (a chief
/// starting).
pub fn remove_stale_temporaries(dir: impl AsRef<Path>) -> usize {
    let dir = dir.as_ref();
    let mut removed = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let prefix = name
            .split_once(".data-")
            .map(|(p, _)| p)
            .or_else(|| name.strip_suffix(".meta"));
        // Files set aside as damaged are kept for whoever looks into them.
        let orphan = !name.ends_with(".damaged")
            && prefix
                .is_some_and(|p| step_of_name(p).is_some() && !index_path(&dir.join(p)).exists());
        if (name.contains(".tempstate") || orphan) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}
