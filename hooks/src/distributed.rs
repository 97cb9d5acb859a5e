//! The distributed contract of a monitored session (`master("mpi")`, cargo feature
//! `mpi`): synchronous data-parallel training, one rank per process.
//!
//! - **One chief.** `is_chief` defaults to rank 0; an explicit value wins; anything but
//!   exactly one chief is InvalidArgument on every rank. The ranks meet for that within
//!   `max_wait_secs` too. Only the chief restores,
//!   initializes, saves checkpoints (and the `checkpoint` state file, `graph.pbtxt`,
//!   `.meta`), writes summaries and runs `chief_only_hooks` and the default hooks; a
//!   worker's `checkpoint_dir` stays untouched.
//! - **The same start on every rank.** After the chief restores or initializes, every
//!   global variable it holds (trainables, optimizer slots, beta powers, the global step,
//!   moving statistics) is broadcast to every rank, again after every re-creation of the
//!   session. A worker waits for it at most `max_wait_secs` (a non-blocking broadcast,
//!   polled) and then fails with DeadlineExceeded naming the chief's rank. Local
//!   variables (metrics) stay each rank's own and are initialized by each rank.
//! - **Averaged gradients.** Every gradient an optimizer applies (marked with
//!   `Graph::average_across_replicas`) is summed over the ranks in one all-reduce per
//!   training step and divided by their number, after the backward pass and before
//!   clipping and the update: np ranks at batch B train as one process at batch np·B.
//!   Batch normalization's statistics are each rank's own (not synchronized).
//! - **One step, one stop.** After every run the ranks agree, in one small all-reduce,
//!   on whether to stop (a hook's `request_stop`, `StopAtStepHook`, input run out), on
//!   an error (every rank then fails after the same step, naming the first failing rank)
//!   and on a recovery (every rank re-creates its session from the chief's latest
//!   checkpoint). Collectives happen only at these fixed points — never because of a
//!   clock — so no rank can wait in a collective another skips. Every rank must make the
//!   same sequence of monitored runs (MPI's SPMD rule).
//! - **Failure never hangs.** A rank that fails while its peers wait in a collective (an
//!   error before the gradient all-reduce — a bad feed, a hook's `before_run`, a device
//!   lost at the start of a step — or a panic) prints one line naming its rank and the
//!   cause and ends the job with `MPI_Abort`; so does a rank whose monitored session is
//!   dropped without `close()` while the others may still train. A killed rank ends the
//!   job through the launcher. Inside `run_step_fn`, an error of the caller's code
//!   before a training run is agreed on after the function returns, so such code must
//!   fail on every rank alike. Running the same launch line again resumes from the chief's latest
//!   checkpoint, with any number of ranks (checkpoints hold no per-rank state).

// Without the `mpi` feature only the tests use the agreement's encoding.
#![cfg_attr(not(feature = "mpi"), allow(dead_code))]

use crate::scaffold::{Scaffold, SessionCreator};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use wgtrain_engine::{Code, Error, SessionConfig};

/// Where a monitored session runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Master {
    /// This process (`""`).
    #[default]
    Local,
    /// One rank per process over `MPI_COMM_WORLD` (`"mpi"`; cargo feature `mpi`).
    Mpi,
    /// Anything else: not supported (creating the session says so).
    Other(String),
}

impl From<&str> for Master {
    fn from(s: &str) -> Master {
        match s {
            "" => Master::Local,
            "mpi" => Master::Mpi,
            other => Master::Other(other.to_string()),
        }
    }
}

impl From<String> for Master {
    fn from(s: String) -> Master {
        Master::from(s.as_str())
    }
}

/// What the builder gives a rank's session creator.
pub(crate) struct RankSettings {
    pub scaffold: Arc<Scaffold>,
    pub config: SessionConfig,
    /// The chief's checkpoint directory (a worker never reads or writes it).
    pub checkpoint_dir: Option<PathBuf>,
    pub max_wait_secs: f64,
}

/// This process's part in a distributed job, as the builder needs it: whether it is
/// the chief, how to make its session creator, and its peers.
pub(crate) struct Rank {
    pub is_chief: bool,
    pub creator: Box<dyn FnOnce(RankSettings) -> Box<dyn SessionCreator>>,
    pub replicas: Arc<dyn Replicas>,
}

/// Where this process stands in a distributed job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct World {
    /// This process's rank in `MPI_COMM_WORLD`.
    pub rank: usize,
    /// The number of ranks.
    pub size: usize,
    /// The rank among the processes of this node (which adapter it opens).
    pub local_rank: usize,
}

static WORLD: OnceLock<World> = OnceLock::new();

/// The distributed job this process belongs to, once a distributed session started it;
/// `None` in a single-process run.
pub fn current_world() -> Option<World> {
    WORLD.get().copied()
}

/// Whether an MPI launcher (`mpiexec` of Open MPI or MPICH, Slurm's `srun` with PMI
/// or PMIx) started this process, from the variables they set.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

pub(crate) fn set_world(world: World) {
    let _ = WORLD.set(world);
}

/// What one rank brings to the agreement after a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StepState {
    /// The rank wants to stop (a hook asked, or its input ran out).
    pub stop: bool,
    /// The rank's run failed with a recoverable error.
    pub recover: bool,
    /// The rank's run failed with this code.
    pub error: Option<Code>,
}

/// What every rank decided together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// Every rank stops after this run.
    pub stop: bool,
    /// Every rank re-creates its session and runs again.
    pub recover: bool,
    /// The lowest failing rank and its code: every rank fails.
    pub error: Option<(usize, Code)>,
}

impl StepState {
    /// What a rank brings after a run that gave `ran`, wanting to stop with `stop`: an
    /// input run out is a stop, a recoverable error a recovery, another error its code.
    pub(crate) fn of<T>(ran: &Result<T, Error>, stop: bool) -> StepState {
        match ran {
            Ok(_) => StepState {
                stop,
                ..Default::default()
            },
            Err(e) if e.code == Code::OutOfRange => StepState {
                stop: true,
                ..Default::default()
            },
            Err(e) if e.code.is_recoverable() => StepState {
                recover: true,
                ..Default::default()
            },
            Err(e) => StepState {
                error: Some(e.code),
                ..Default::default()
            },
        }
    }
}

impl Agreed {
    /// This rank's result once every rank agreed: its own error unless recoverable, else
    /// the first failing rank's, else its own, else Aborted (`recover_why`) when another
    /// rank must recover, so every rank takes the same path.
    pub(crate) fn outcome<T>(self, ran: Result<T, Error>, recover_why: &str) -> Result<T, Error> {
        match (ran, self.error) {
            (Err(e), _) if !e.code.is_recoverable() => Err(e),
            (_, Some((rank, code))) => Err(peer_failed(rank, code)),
            (Err(e), None) => Err(e),
            (Ok(_), None) if self.recover => Err(Error::aborted(recover_why.to_string())),
            (Ok(v), None) => Ok(v),
        }
    }
}

const CODES: i32 = 32;

/// Packs a rank's state into words whose elementwise maximum over ranks is the
/// agreement: [stop, recover, (size - rank) * 32 + code of a failing rank].
pub(crate) fn encode(state: StepState, world: World) -> [i32; 3] {
    let err = state
        .error
        .map_or(0, |c| (world.size - world.rank) as i32 * CODES + c.value());
    [i32::from(state.stop), i32::from(state.recover), err]
}

/// The agreement from the maximum of every rank's words.
pub(crate) fn decode(words: [i32; 3], world: World) -> Agreed {
    let error = (words[2] > 0).then(|| {
        let rank = world.size - (words[2] / CODES) as usize;
        (rank, code_of(words[2] % CODES))
    });
    Agreed {
        stop: words[0] > 0,
        recover: words[1] > 0,
        error,
    }
}

/// The code whose TF value is `value` (Unknown for none).
pub(crate) fn code_of(value: i32) -> Code {
    Code::from_value(value).unwrap_or(Code::Unknown)
}

/// The collectives a distributed monitored session needs between steps.
pub(crate) trait Replicas: Send + Sync {
    /// The agreement of every rank after a run (one small all-reduce).
    fn agree(&self, mine: StepState) -> Agreed;
    /// Gradient all-reduces made so far by this process.
    fn reductions(&self) -> u64;
    /// Ends the job: this rank failed where its peers wait in a collective.
    fn abandon(&self, error: &Error) -> !;
    /// This rank's session ended while the others may still train: when the runtime is
    /// let go, end the job (`why` names the cause) instead of finalizing, which would
    /// wait for them forever.
    fn leave_uncleanly(&self, why: String);
}

/// The error a rank reports when another rank failed in the same step.
pub(crate) fn peer_failed(rank: usize, code: Code) -> Error {
    Error::new(
        code,
        format!(
            "rank {rank} failed in this step with {}; every rank stops after it (rank {rank}'s log has the cause)",
            code.name()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agreement_names_the_lowest_failing_rank_and_its_code() {
        let world = |rank| World {
            rank,
            size: 4,
            local_rank: rank,
        };
        let states = [
            StepState::default(),
            StepState {
                error: Some(Code::DataLoss),
                ..Default::default()
            },
            StepState {
                stop: true,
                ..Default::default()
            },
            StepState {
                error: Some(Code::Internal),
                recover: true,
                ..Default::default()
            },
        ];
        let mut max = [0i32; 3];
        for (r, s) in states.iter().enumerate() {
            for (m, w) in max.iter_mut().zip(encode(*s, world(r))) {
                *m = (*m).max(w);
            }
        }
        let agreed = decode(max, world(0));
        assert_eq!(
            agreed,
            Agreed {
                stop: true,
                recover: true,
                error: Some((1, Code::DataLoss)),
            }
        );
        assert_eq!(decode([0, 0, 0], world(2)), Agreed::default());
    }
}
