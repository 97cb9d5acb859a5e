//! # wgtrain-hooks
//!
//! The monitored training session of wgtrain: the [`SessionRunHook`] contract and
//! timers ([`hook`]), the [`Coordinator`], the built-in hooks ([`basic`]), the
//! [`Scaffold`] and session creators ([`scaffold`]), and [`MonitoredSession`] with the
//! [`MonitoredTrainingSession`] builder ([`monitored`]), and a progress bar hook for
//! terminals ([`progress`]).
//!
//! This layer sees the session only through the engine's public run and variable API,
//! and files only through `wgtrain-checkpoint`.
//!
//! With the cargo feature `mpi`, `MonitoredTrainingSession::master("mpi")` trains one
//! rank per process over MPI: synchronous data
//! parallelism with one chief, the chief's variables broadcast at every (re)creation,
//! gradients averaged in every step, one agreement per run on stopping, errors and
//! recovery, and failures that end the job instead of hanging it. The contract is
//! stated in [`distributed`].

pub mod basic;
pub mod coordinator;
pub mod distributed;
pub mod hook;
pub mod monitored;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod progress;
pub mod scaffold;
pub mod signals;

pub use basic::{
    CheckpointSaverHook, CheckpointSaverListener, FeedFnHook, FinalOpsHook, GlobalStepWaiterHook,
    LoggingTensorHook, NanTensorHook, ProfilerHook, StepCounterHook, StopAtStepHook,
    SummarySaverHook,
};
pub use coordinator::Coordinator;
pub use hook::{
    Clock, ManualClock, SecondOrStepTimer, SessionRunArgs, SessionRunContext, SessionRunHook,
    SessionRunValues, SystemClock,
};
pub use monitored::{
    AgreementStats, Every, Master, MonitoredSession, MonitoredTrainingSession, RecoveryPolicy,
    SingularMonitoredSession, StepContext,
};
pub use progress::ProgressBarHook;
pub use scaffold::{ChiefSessionCreator, Scaffold, SessionCreator, WorkerSessionCreator};
pub use wgtrain_engine::{Executor, Operation, Tensor};
