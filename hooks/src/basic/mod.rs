//! The built-in hooks, with TF's arguments and schedules.
//!
//! The global step: a hook reads its value after the run, exactly, from the session's
//! host copy (kept in step with the train op's constant increment, so no step waits for
//! a device round trip; a read when the copy is unknown). TF's hooks fetch it with the
//! train op, usually before the increment, and add one; that fetch races with the
//! train op, which makes TF's summary steps nondeterministic. Here the schedules are
//! TF's usual ones, deterministically.

use crate::coordinator::Coordinator;
use crate::hook::{
    SecondOrStepTimer, SessionRunArgs, SessionRunContext, SessionRunHook, SessionRunValues,
    SharedClock, SystemClock,
};
use crate::scaffold::Scaffold;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use wgtrain_checkpoint::events::{self, EventWriter};
use wgtrain_checkpoint::graph_export;
use wgtrain_checkpoint::saver::OnWritten;
use wgtrain_checkpoint::{Saver, SaverOptions};
use wgtrain_engine::summary::MergedSummary;
use wgtrain_engine::{Code, Error, Executor, Graph, HostTensor, Result, Snapshot, Tensor};

fn global_step_of(g: &Graph, hook: &str) -> Result<Tensor> {
    g.get_global_step().ok_or_else(|| {
        Error::new(
            Code::FailedPrecondition,
            format!("Global step should be created to use {hook}."),
        )
    })
}

fn read_step(sess: &mut dyn Executor, gs: Tensor) -> Result<i64> {
    sess.read_variables(&[gs])?[0]
        .scalar_value()
        .map(|v| v as i64)
}

/// The global step after the last run: the session's exact host copy when it has one
/// (no device round trip), else a read.
fn step_now(sess: &mut dyn Executor, gs: Tensor) -> Result<i64> {
    match sess.known_scalar(gs) {
        Some(v) => Ok(v),
        None => read_step(sess, gs),
    }
}

mod checkpoint_saver;
mod feed_fn;
mod final_ops;
mod global_step_waiter;
mod logging_tensor;
mod nan_tensor;
mod profiler;
mod step_counter;
mod stop_at_step;
mod summary_saver;

pub use checkpoint_saver::{CheckpointSaverHook, CheckpointSaverListener};
pub use feed_fn::FeedFnHook;
pub use final_ops::FinalOpsHook;
pub use global_step_waiter::{GlobalStepWaiterHook, Sleep};
pub use logging_tensor::{Formatter, LoggingTensorHook, summarize};
pub use nan_tensor::NanTensorHook;
pub use profiler::{ProfilerHook, chrome_trace};
pub use step_counter::StepCounterHook;
pub use stop_at_step::StopAtStepHook;
pub use summary_saver::SummarySaverHook;

/// Entries a hook's record keeps at least (and at most twice as many): a long run's
/// memory stays flat whatever its number of steps.
pub const HISTORY: usize = 10_000;

/// Appends `item`, dropping the oldest [`HISTORY`] entries once there are twice as many
/// (amortized: no per-step shifting).
fn push_recent<T>(v: &mut Vec<T>, item: T) {
    if v.len() >= 2 * HISTORY {
        v.drain(..HISTORY);
    }
    v.push(item);
}

#[cfg(test)]
mod history_tests {
    use super::{HISTORY, push_recent};

    #[test]
    fn a_hook_record_stays_bounded_and_keeps_the_most_recent() {
        let mut v = Vec::new();
        for i in 0..(10 * HISTORY + 7) {
            push_recent(&mut v, i);
            assert!(v.len() <= 2 * HISTORY);
        }
        assert!(v.len() >= HISTORY);
        assert_eq!(v.last(), Some(&(10 * HISTORY + 6)));
        assert!(v.windows(2).all(|w| w[1] == w[0] + 1), "in order, no gaps");
    }
}
