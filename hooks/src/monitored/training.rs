//! The [`MonitoredTrainingSession`] builder (TF's arguments and defaults, the chief's
//! hooks) and [`SingularMonitoredSession`].

use super::{MonitoredSession, RecoveryPolicy};
pub use crate::distributed::Master;
use crate::distributed::{Rank, RankSettings};
use crate::hook::{SecondOrStepTimer, SessionRunHook, SharedClock, SystemClock};
use crate::scaffold::{ChiefSessionCreator, Scaffold, SessionCreator, WorkerSessionCreator};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wgtrain_engine::{Error, Graph, Result, SessionConfig};

/// How a save or summary schedule was given: never, every N steps, every N seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Every {
    /// Not at all.
    Never,
    /// Every N global steps.
    Steps(i64),
    /// Every N seconds.
    Secs(f64),
}

impl Every {
    /// Every `n` global steps; 0 or less is never.
    fn steps(n: i64) -> Self {
        if n > 0 { Every::Steps(n) } else { Every::Never }
    }

    /// Every `secs` seconds; 0 or less is never (NaN is kept, for `create` to refuse).
    fn secs(secs: f64) -> Self {
        if secs > 0.0 || secs.is_nan() {
            Every::Secs(secs)
        } else {
            Every::Never
        }
    }
}

/// Builds a [`MonitoredSession`] with TF's `MonitoredTrainingSession` arguments and
/// defaults: summaries every 100 steps, checkpoints every 600 s, the step counter every
/// 100 steps; `summary_dir` falls back to `checkpoint_dir`. The chief's hooks are, in
/// order: `chief_only_hooks`, StepCounterHook, SummarySaverHook, CheckpointSaverHook,
/// then `hooks`; a worker gets `hooks` only. Setting a schedule in steps replaces the
/// one in seconds and the other way round (TF raises when both are given; here the last
/// call wins, which is what its documentation describes).
pub struct MonitoredTrainingSession {
    graph: Graph,
    /// `master`: where the session runs.
    pub master: Master,
    /// Whether this process is the chief (`None`: the only process, or rank 0 of a
    /// distributed job).
    pub is_chief: Option<bool>,
    /// Where checkpoints are saved and restored from.
    pub checkpoint_dir: Option<PathBuf>,
    /// The scaffold.
    pub scaffold: Scaffold,
    hooks: Vec<Box<dyn SessionRunHook>>,
    chief_only_hooks: Vec<Box<dyn SessionRunHook>>,
    /// The checkpoint schedule.
    pub save_checkpoints: Every,
    /// The summary schedule.
    pub save_summaries: Every,
    /// The engine's session config.
    pub config: SessionConfig,
    /// Grace for background threads at close.
    pub stop_grace_period_secs: f64,
    /// Steps between `global_step/sec` lines (0: none).
    pub log_step_count_steps: i64,
    /// How long a worker waits for the chief.
    pub max_wait_secs: f64,
    /// A worker's time between readiness checks.
    pub recovery_wait_secs: f64,
    /// Where summaries go (default: `checkpoint_dir`).
    pub summary_dir: Option<PathBuf>,
    /// Write graph.pbtxt and a .meta per checkpoint.
    pub save_graph_def: bool,
    /// When no checkpoint of `checkpoint_dir` restores, set them aside and start from
    /// scratch instead of failing (default false).
    pub start_fresh_if_unrestorable: bool,
    /// Recovery bound and back-off.
    pub recovery: RecoveryPolicy,
    /// The clock of the default hooks' timers.
    pub clock: SharedClock,
    /// Whether SIGTERM and SIGINT stop training after the current step, with a final
    /// checkpoint at `close()` (a second signal exits at once); see [`crate::signals`].
    pub handle_signals: bool,
}

impl MonitoredTrainingSession {
    /// The builder over `graph`, with TF's defaults.
    pub fn new(graph: Graph) -> MonitoredTrainingSession {
        MonitoredTrainingSession {
            graph,
            master: Master::Local,
            is_chief: None,
            checkpoint_dir: None,
            scaffold: Scaffold::new(),
            hooks: Vec::new(),
            chief_only_hooks: Vec::new(),
            save_checkpoints: Every::Secs(600.0),
            save_summaries: Every::Steps(100),
            config: SessionConfig::default(),
            stop_grace_period_secs: 120.0,
            log_step_count_steps: 100,
            max_wait_secs: 7200.0,
            recovery_wait_secs: 30.0,
            summary_dir: None,
            save_graph_def: true,
            start_fresh_if_unrestorable: false,
            recovery: RecoveryPolicy::default(),
            clock: Arc::new(SystemClock),
            handle_signals: true,
        }
    }

    /// Sets whether SIGTERM and SIGINT stop training after the current step (default
    /// on; a final checkpoint is saved at `close()`).
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// Sets `checkpoint_dir`.
    pub fn checkpoint_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.checkpoint_dir = Some(dir.into());
        self
    }

    /// Sets `is_chief` (in a distributed job, an explicit value wins over rank 0).
    pub fn is_chief(mut self, chief: bool) -> Self {
        self.is_chief = Some(chief);
        self
    }

    /// Sets `master`: `""` or [`Master::Local`] (this process), `"mpi"` or
    /// [`Master::Mpi`] (one rank per process over `MPI_COMM_WORLD`, cargo feature
    /// `mpi`).
    pub fn master(mut self, master: impl Into<Master>) -> Self {
        self.master = master.into();
        self
    }

    /// Adds user hooks (run on every process, after the default ones).
    pub fn hooks(mut self, hooks: impl IntoIterator<Item = Box<dyn SessionRunHook>>) -> Self {
        self.hooks.extend(hooks);
        self
    }

    /// Adds hooks only the chief runs (before the default ones).
    pub fn chief_only_hooks(
        mut self,
        hooks: impl IntoIterator<Item = Box<dyn SessionRunHook>>,
    ) -> Self {
        self.chief_only_hooks.extend(hooks);
        self
    }

    /// Sets the scaffold.
    pub fn scaffold(mut self, scaffold: Scaffold) -> Self {
        self.scaffold = scaffold;
        self
    }

    /// Saves a checkpoint every `secs` seconds (0 disables).
    pub fn save_checkpoint_secs(mut self, secs: f64) -> Self {
        self.save_checkpoints = Every::secs(secs);
        self
    }

    /// Saves a checkpoint every `steps` global steps (0 disables).
    pub fn save_checkpoint_steps(mut self, steps: i64) -> Self {
        self.save_checkpoints = Every::steps(steps);
        self
    }

    /// Writes summaries every `steps` global steps (0 disables).
    pub fn save_summaries_steps(mut self, steps: i64) -> Self {
        self.save_summaries = Every::steps(steps);
        self
    }

    /// Writes summaries every `secs` seconds (0 disables).
    pub fn save_summaries_secs(mut self, secs: f64) -> Self {
        self.save_summaries = Every::secs(secs);
        self
    }

    /// Sets the engine's session config.
    pub fn config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// Starts from scratch (the damaged checkpoints set aside with suffix `.damaged`)
    /// when checkpoints exist but none restores; by default that is an error, so a run
    /// never silently loses its progress.
    pub fn start_fresh_if_unrestorable(mut self, on: bool) -> Self {
        self.start_fresh_if_unrestorable = on;
        self
    }

    /// Sets `stop_grace_period_secs`.
    pub fn stop_grace_period_secs(mut self, secs: f64) -> Self {
        self.stop_grace_period_secs = secs;
        self
    }

    /// Sets `log_step_count_steps` (0: no step counter).
    pub fn log_step_count_steps(mut self, steps: i64) -> Self {
        self.log_step_count_steps = steps;
        self
    }

    /// Sets `max_wait_secs` (a worker's wait for the chief).
    pub fn max_wait_secs(mut self, secs: f64) -> Self {
        self.max_wait_secs = secs;
        self
    }

    /// Sets the worker's time between readiness checks (TF's fixed 30 s).
    pub fn recovery_wait_secs(mut self, secs: f64) -> Self {
        self.recovery_wait_secs = secs;
        self
    }

    /// Sets `summary_dir`.
    pub fn summary_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.summary_dir = Some(dir.into());
        self
    }

    /// Sets `save_graph_def`.
    pub fn save_graph_def(mut self, save: bool) -> Self {
        self.save_graph_def = save;
        self
    }

    /// Sets the recovery policy.
    pub fn recovery(mut self, policy: RecoveryPolicy) -> Self {
        self.recovery = policy;
        self
    }

    /// Uses `clock` for the default hooks' timers.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the hooks, creates (restores or initializes) the session.
    /// InvalidArgument for a duration that is negative, infinite or NaN.
    pub fn create(self) -> Result<MonitoredSession> {
        for (name, secs) in [
            ("stop_grace_period_secs", self.stop_grace_period_secs),
            ("max_wait_secs", self.max_wait_secs),
            ("recovery_wait_secs", self.recovery_wait_secs),
        ] {
            crate::hook::seconds(name, secs)?;
        }
        for (name, every) in [
            ("save_checkpoint_secs", self.save_checkpoints),
            ("save_summaries_secs", self.save_summaries),
        ] {
            if let Every::Secs(secs) = every {
                crate::hook::seconds(name, secs)?;
            }
        }
        match &self.master {
            Master::Local => self.create_with(None),
            Master::Mpi => self.create_mpi(),
            Master::Other(m) => Err(Error::unimplemented(format!(
                "master '{m}' is not supported: use \"\" (this process) or \"mpi\" (one rank per process over MPI, cargo feature `mpi`)"
            ))),
        }
    }

    #[cfg(not(feature = "mpi"))]
    fn create_mpi(self) -> Result<MonitoredSession> {
        Err(Error::unimplemented(
            "master \"mpi\" needs wgtrain built with the cargo feature `mpi` (cargo build --features mpi; Open MPI or MPICH installed)",
        ))
    }

    #[cfg(feature = "mpi")]
    fn create_mpi(self) -> Result<MonitoredSession> {
        let rank = crate::mpi::join(self.is_chief, self.max_wait_secs)?;
        self.create_with(Some(rank))
    }

    /// Creates the session of this process, or of one rank of a distributed job.
    fn create_with(self, rank: Option<Rank>) -> Result<MonitoredSession> {
        let is_chief = match &rank {
            None => self.is_chief.unwrap_or(true),
            Some(r) => r.is_chief,
        };
        let scaffold = Arc::new(self.scaffold);
        let summary_dir = self.summary_dir.clone().or(self.checkpoint_dir.clone());
        let mut hooks: Vec<Box<dyn SessionRunHook>> = Vec::new();
        let creator: Box<dyn SessionCreator> = if is_chief {
            hooks.extend(self.chief_only_hooks);
            if let Some(dir) = &summary_dir {
                if self.log_step_count_steps > 0 {
                    let timer = SecondOrStepTimer::new(
                        None,
                        Some(self.log_step_count_steps),
                        Arc::clone(&self.clock),
                    )?;
                    hooks.push(Box::new(crate::basic::StepCounterHook::with_timer(
                        timer,
                        Some(dir.clone()),
                    )));
                }
                if let Some(timer) = timer_of(self.save_summaries, &self.clock)? {
                    hooks.push(Box::new(crate::basic::SummarySaverHook::with_timer(
                        timer,
                        dir.clone(),
                        Arc::clone(&scaffold),
                    )));
                }
            }
            if let (Some(dir), Some(timer)) = (
                &self.checkpoint_dir,
                timer_of(self.save_checkpoints, &self.clock)?,
            ) {
                hooks.push(Box::new(
                    crate::basic::CheckpointSaverHook::with_timer(
                        dir.clone(),
                        timer,
                        Arc::clone(&scaffold),
                    )
                    .save_graph_def(self.save_graph_def),
                ));
            }
            hooks.extend(self.hooks);
            Box::new(ChiefSessionCreator {
                scaffold: Arc::clone(&scaffold),
                checkpoint_dir: self.checkpoint_dir.clone(),
                checkpoint_filename_with_path: None,
                start_fresh_if_unrestorable: self.start_fresh_if_unrestorable,
                config: self.config.clone(),
            })
        } else {
            hooks.extend(self.hooks);
            Box::new(WorkerSessionCreator {
                scaffold: Arc::clone(&scaffold),
                config: self.config.clone(),
                max_wait_secs: self.max_wait_secs,
                recovery_wait_secs: self.recovery_wait_secs,
            })
        };
        let stop_grace =
            crate::hook::seconds("stop_grace_period_secs", self.stop_grace_period_secs)?;
        if self.handle_signals {
            crate::signals::install()?;
        }
        let handle_signals = self.handle_signals;
        // A rank's creator replaces the single-process one.
        let (creator, replicas) = match rank {
            None => (creator, None),
            Some(r) => {
                drop(creator);
                let settings = RankSettings {
                    scaffold: Arc::clone(&scaffold),
                    config: self.config.clone(),
                    checkpoint_dir: self.checkpoint_dir.clone(),
                    max_wait_secs: self.max_wait_secs,
                };
                ((r.creator)(settings), Some(r.replicas))
            }
        };
        let mut ms = MonitoredSession::with_replicas(
            self.graph,
            scaffold,
            creator,
            hooks,
            self.recovery,
            stop_grace,
            replicas,
        )?;
        ms.signals = handle_signals;
        Ok(ms)
    }
}

fn timer_of(every: Every, clock: &SharedClock) -> Result<Option<SecondOrStepTimer>> {
    Ok(match every {
        Every::Never => None,
        Every::Steps(n) => Some(SecondOrStepTimer::new(None, Some(n), Arc::clone(clock))?),
        Every::Secs(s) => Some(SecondOrStepTimer::new(Some(s), None, Arc::clone(clock))?),
    })
}

/// TF's `SingularMonitoredSession`: always the chief, hooks as given, and no recovery
/// (an Aborted or Unavailable error comes back to the caller); the raw session is
/// reachable through [`MonitoredSession::raw_session`].
pub struct SingularMonitoredSession;

impl SingularMonitoredSession {
    /// Creates the session over `graph`, restoring the latest checkpoint of
    /// `checkpoint_dir` if given, else initializing.
    pub fn create(
        graph: Graph,
        hooks: Vec<Box<dyn SessionRunHook>>,
        scaffold: Scaffold,
        checkpoint_dir: Option<PathBuf>,
        config: SessionConfig,
    ) -> Result<MonitoredSession> {
        let scaffold = Arc::new(scaffold);
        let creator = Box::new(ChiefSessionCreator {
            scaffold: Arc::clone(&scaffold),
            checkpoint_dir,
            checkpoint_filename_with_path: None,
            start_fresh_if_unrestorable: false,
            config,
        });
        MonitoredSession::new(
            graph,
            scaffold,
            creator,
            hooks,
            RecoveryPolicy {
                max_attempts: 0,
                ..Default::default()
            },
            Duration::from_secs(120),
        )
    }
}
