//! [`GradientReducer`]: the seam a data-parallel job averages its gradients through.

use crate::error::{Error, Result};

/// Averages gradients across the processes of a data-parallel job (an MPI all-reduce).
///
/// A [`Session`](crate::Session) given one calls [`all_reduce_mean`](Self::all_reduce_mean)
/// exactly once in every run that computes a marked gradient, between the backward pass
/// and the first reader of a gradient, on the thread that called `run`. Every process
/// must therefore make the same sequence of training runs (the SPMD contract of MPI and
/// Horovod).
pub trait GradientReducer: Send + Sync {
    /// Replaces `grads` (every marked gradient of the run, packed in the order of the
    /// graph's marks) by its elementwise mean over the processes.
    fn all_reduce_mean(&self, grads: &mut [f32]) -> Result<()>;

    /// Told when a run that would have averaged gradients failed before doing so: the
    /// other processes wait in the all-reduce this one will never join. An MPI reducer
    /// ends the job here (its peers cannot be released otherwise).
    fn abandon(&self, error: &Error);
}
