//! The [`SessionRunHook`] contract, its run arguments and values, and the timers that
//! schedule hooks (with an injectable [`Clock`]).

use crate::coordinator::Coordinator;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wgtrain_engine::{Error, Executor, Graph, HostTensor, Operation, Result, RunMetadata, Tensor};

/// What one run computes: tensors to fetch, ops to run, values to feed, and whether to
/// time every kernel (TF's `RunOptions(trace_level=FULL_TRACE)`).
#[derive(Clone, Debug, Default)]
pub struct SessionRunArgs {
    /// Tensors to fetch.
    pub fetches: Vec<Tensor>,
    /// Ops to run for their effect.
    pub targets: Vec<Operation>,
    /// Values fed.
    pub feeds: Vec<(Tensor, HostTensor)>,
    /// Trace the run (the profiler hook asks for it).
    pub trace: bool,
    /// Variables to copy from the device with the run's own submission (the checkpoint
    /// hook's save); at most one hook asks per run.
    pub snapshot: Vec<Tensor>,
    /// Tensors fetched without making the run wait for them (the summary hook's): they
    /// arrive on [`SessionRunValues::pending`]. When nothing else in the run is fetched
    /// they are read back on the readback thread, so the step is not held up;
    /// otherwise they come with the other fetches.
    pub pending: Vec<Tensor>,
}

impl SessionRunArgs {
    /// Arguments of a plain run: `feeds`, `fetches`, `targets`.
    pub fn new(
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> SessionRunArgs {
        SessionRunArgs {
            fetches: fetches.to_vec(),
            targets: targets.to_vec(),
            feeds: feeds.to_vec(),
            ..Default::default()
        }
    }

    /// Arguments fetching `fetches`.
    pub fn fetches(fetches: &[Tensor]) -> SessionRunArgs {
        SessionRunArgs {
            fetches: fetches.to_vec(),
            ..Default::default()
        }
    }
}

/// A hook's share of a run's results.
#[derive(Default)]
pub struct SessionRunValues {
    /// The values of the tensors the hook asked for, in its order.
    pub results: Vec<HostTensor>,
    /// Kernel times when the run was traced.
    pub run_metadata: Option<RunMetadata>,
    /// The values of the variables the hook asked to snapshot, on their way.
    pub snapshot: Option<wgtrain_engine::Snapshot>,
    /// The values of the hook's `pending` tensors, on their way.
    pub pending: Option<wgtrain_engine::Snapshot>,
}

/// The run a hook is called around: the caller's arguments, the session (runs on it
/// do not go through the hooks), and the stop request.
pub struct SessionRunContext<'a> {
    /// What the caller asked for.
    pub original_args: &'a SessionRunArgs,
    /// The session.
    pub session: &'a mut dyn Executor,
    stop_requested: &'a mut bool,
}

impl<'a> SessionRunContext<'a> {
    /// A context over `session` for a run of `args`.
    pub fn new(
        original_args: &'a SessionRunArgs,
        session: &'a mut dyn Executor,
        stop_requested: &'a mut bool,
    ) -> SessionRunContext<'a> {
        SessionRunContext {
            original_args,
            session,
            stop_requested,
        }
    }

    /// Asks the monitored session to stop after this run (`should_stop()` turns true).
    pub fn request_stop(&mut self) {
        *self.stop_requested = true;
    }

    /// Whether a hook asked to stop.
    pub fn stop_requested(&self) -> bool {
        *self.stop_requested
    }
}

/// A hook around every run of a monitored session (TF's `SessionRunHook`).
///
/// Contract, in call order:
/// - `begin(graph)` once, before the session exists, while the graph may still grow
///   (a hook adds the ops it needs here);
/// - `after_create_session(session, coord)` after every creation of the session,
///   including each re-creation after a recoverable error; the graph is finalized;
/// - around each `run`: `before_run` returns the hook's extra fetches, targets and feeds
///   (merged into the caller's; a tensor fed twice is an error), and after the one
///   device run `after_run` receives the hook's own results. `after_run` is not called
///   when the run failed; a hook may `request_stop`;
/// - `end(session)` once at `close()` after a clean loop (or out-of-range), not after
///   another error.
pub trait SessionRunHook: Send {
    /// The hook's name (in transcripts and errors).
    fn name(&self) -> String {
        std::any::type_name::<Self>()
            .rsplit("::")
            .next()
            .unwrap_or("hook")
            .to_string()
    }

    /// Called once before the session is created.
    fn begin(&mut self, _graph: &mut Graph) -> Result<()> {
        Ok(())
    }

    /// Called after every (re)creation of the session.
    fn after_create_session(
        &mut self,
        _session: &mut dyn Executor,
        _coord: &Coordinator,
    ) -> Result<()> {
        Ok(())
    }

    /// Called before each run: what to add to it.
    fn before_run(&mut self, _ctx: &mut SessionRunContext) -> Result<Option<SessionRunArgs>> {
        Ok(None)
    }

    /// Called after each successful run with this hook's results.
    fn after_run(
        &mut self,
        _ctx: &mut SessionRunContext,
        _values: &SessionRunValues,
    ) -> Result<()> {
        Ok(())
    }

    /// Called once at the end of a clean session.
    fn end(&mut self, _session: &mut dyn Executor) -> Result<()> {
        Ok(())
    }
}

/// Time for timers: the system clock, or a manual one in tests.
pub trait Clock: Send + Sync {
    /// Seconds since some fixed origin.
    fn now(&self) -> f64;
}

/// The system clock (seconds since the epoch).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

/// A clock tests set by hand.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    t: Arc<Mutex<f64>>,
}

impl ManualClock {
    /// A clock at `t` seconds.
    pub fn at(t: f64) -> ManualClock {
        ManualClock {
            t: Arc::new(Mutex::new(t)),
        }
    }

    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: f64) {
        if let Ok(mut g) = self.t.lock() {
            *g += secs;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> f64 {
        self.t.lock().map(|g| *g).unwrap_or(0.0)
    }
}

/// A monotonic clock for measuring elapsed time.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }
}

/// The shared clock type of hooks.
pub type SharedClock = Arc<dyn Clock>;

/// Triggers every N seconds or every N steps (TF's `SecondOrStepTimer`), exactly TF's
/// rules: the first query triggers; never twice for the same step; else when the time
/// or the steps since the last trigger reach the period.
#[derive(Clone)]
pub struct SecondOrStepTimer {
    every_secs: Option<f64>,
    every_steps: Option<i64>,
    last: Option<(f64, i64)>,
    clock: SharedClock,
}

impl std::fmt::Debug for SecondOrStepTimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondOrStepTimer")
            .field("every_secs", &self.every_secs)
            .field("every_steps", &self.every_steps)
            .field("last", &self.last)
            .finish()
    }
}

/// `secs` of the setting `name` as a duration: InvalidArgument unless it is a finite
/// number of seconds, at least 0 (so no user value can make a duration panic).
pub fn seconds(name: &str, secs: f64) -> Result<Duration> {
    if !secs.is_finite() || !(0.0..=1e12).contains(&secs) {
        return Err(Error::invalid_argument(format!(
            "{name} must be a finite number of seconds, at least 0 (got {secs})"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl SecondOrStepTimer {
    /// A timer of exactly one of `every_secs` and `every_steps` (InvalidArgument with
    /// both or neither, as TF's ValueError).
    pub fn new(
        every_secs: Option<f64>,
        every_steps: Option<i64>,
        clock: SharedClock,
    ) -> Result<Self> {
        match (every_secs, every_steps) {
            (Some(_), Some(_)) => Err(Error::invalid_argument(
                "Can not provide both every_secs and every_steps.",
            )),
            (None, None) => Err(Error::invalid_argument(
                "Either every_secs or every_steps should be provided.",
            )),
            (Some(secs), None) => {
                seconds("every_secs", secs)?;
                Ok(SecondOrStepTimer {
                    every_secs,
                    every_steps,
                    last: None,
                    clock,
                })
            }
            _ => Ok(SecondOrStepTimer {
                every_secs,
                every_steps,
                last: None,
                clock,
            }),
        }
    }

    /// Whether `step` should trigger.
    pub fn should_trigger_for_step(&self, step: i64) -> bool {
        let Some((t, s)) = self.last else {
            return true;
        };
        if s == step {
            return false;
        }
        if let Some(secs) = self.every_secs
            && self.clock.now() >= t + secs
        {
            return true;
        }
        if let Some(n) = self.every_steps
            && step >= s + n
        {
            return true;
        }
        false
    }

    /// Records a trigger at `step`; returns the seconds and steps since the last one.
    pub fn update_last_triggered_step(&mut self, step: i64) -> (Option<f64>, Option<i64>) {
        let now = self.clock.now();
        let elapsed = self.last.map(|(t, s)| (now - t, step - s));
        self.last = Some((now, step));
        (elapsed.map(|e| e.0), elapsed.map(|e| e.1))
    }

    /// The step of the last trigger.
    pub fn last_triggered_step(&self) -> Option<i64> {
        self.last.map(|(_, s)| s)
    }

    /// Forgets the last trigger.
    pub fn reset(&mut self) {
        self.last = None;
    }
}
