//! [`Executor`]: what hooks, the monitored session and the Saver need of a session —
//! runs, variable I/O, the scalars the host knows — implemented by the wgpu
//! [`Session`] and by the [`Reference`](crate::Reference) interpreter,
//! so host-side logic (schedules, feeds, recovery, checkpoints) runs and is tested
//! without a GPU adapter.

use crate::error::{Error, Result};
use crate::graph::{Graph, Operation, Tensor};
#[cfg(feature = "gpu")]
use crate::runtime::Session;
use crate::tensor::HostTensor;
use crate::worker::Background;
use std::sync::Arc;

mod config;
mod reducer;
mod snapshot;
mod trace;

pub use config::{Backend, PowerPreference, SessionConfig};
pub use reducer::GradientReducer;
pub use snapshot::Snapshot;
pub use trace::{KernelTime, RunMetadata, RunStats};

/// A session's interface: one graph, its variables, and runs over them. See the module
/// doc; the methods mean what [`Session`]'s of the same name do.
pub trait Executor: Send {
    /// The graph.
    fn graph(&self) -> &Graph;

    /// The graph, shared.
    fn graph_arc(&self) -> Arc<Graph>;

    /// What runs the graph, for logs: the adapter's name, or `reference`.
    fn device_name(&self) -> &str;

    /// Feeds `feeds`, returns `fetches` and runs `targets` for their effect.
    fn run(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<Vec<HostTensor>>;

    /// A run whose fetched values arrive later on the [`Snapshot`] (already there for
    /// an executor that computes on the host).
    fn run_async(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<Snapshot> {
        Ok(Snapshot::ready(self.run(feeds, fetches, targets)?))
    }

    /// A run timing every kernel; an executor without kernels returns an empty,
    /// untimed [`RunMetadata`].
    fn run_traced(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<(Vec<HostTensor>, RunMetadata)> {
        Ok((self.run(feeds, fetches, targets)?, RunMetadata::default()))
    }

    /// A run, and the values of the variables `snapshot` after it.
    fn run_and_snapshot(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
        snapshot: &[Tensor],
    ) -> Result<(Vec<HostTensor>, Snapshot)> {
        let out = self.run(feeds, fetches, targets)?;
        Ok((out, self.snapshot_variables(snapshot)?))
    }

    /// The values of variables `vars` (FailedPrecondition for one not initialized).
    fn read_variables(&mut self, vars: &[Tensor]) -> Result<Vec<HostTensor>>;

    /// The values of variables `vars` as they are now, delivered on a [`Snapshot`].
    fn snapshot_variables(&mut self, vars: &[Tensor]) -> Result<Snapshot> {
        Ok(Snapshot::ready(self.read_variables(vars)?))
    }

    /// Writes host values into variables (all validated before any is written).
    fn write_variables(&mut self, values: &[(Tensor, HostTensor)]) -> Result<()>;

    /// The value of int64 scalar variable `var` when the host knows it without a read.
    fn known_scalar(&self, var: Tensor) -> Option<i64>;

    /// The wgpu [`Session`] this executor is, for what only a device has (its
    /// adapter, run statistics, device-loss drills); `None` for the reference.
    #[cfg(feature = "gpu")]
    fn as_session(&mut self) -> Option<&mut Session> {
        None
    }

    /// Whether variable `var` holds a value.
    fn is_initialized(&self, var: Tensor) -> bool;

    /// The executor's background thread, for a coordinator to stop and wait for at
    /// close; `None` without one.
    fn background(&self) -> Option<Arc<dyn Background>>;

    /// Averages the gradients marked in the graph across processes with `reducer`
    /// (`None`: stops). Unimplemented where the executor cannot.
    fn set_gradient_reducer(&mut self, reducer: Option<Arc<dyn GradientReducer>>) -> Result<()>;

    /// Whether gradients are averaged across processes.
    fn has_gradient_reducer(&self) -> bool;

    /// Whether a run of `fetches` and `targets` computes a gradient marked for
    /// averaging.
    fn computes_averaged_gradients(&self, fetches: &[Tensor], targets: &[Operation]) -> bool {
        let marked = self.graph().averaged_gradients();
        if marked.is_empty() {
            return false;
        }
        let g = self.graph();
        let n = g.nodes().len();
        let roots: Vec<usize> = fetches
            .iter()
            .map(|t| t.0)
            .chain(targets.iter().map(|o| o.0))
            .filter(|&i| i < n)
            .collect();
        let order: std::collections::HashSet<usize> =
            g.ancestors(&roots, &|_| false).into_iter().collect();
        marked.iter().any(|m| order.contains(&m.0))
    }
}

/// InvalidArgument unless every value is a tensor of its variable's dtype and shape.
pub(crate) fn check_writes(graph: &Graph, values: &[(Tensor, HostTensor)]) -> Result<()> {
    for (v, t) in values {
        graph.check(*v)?;
        let n = graph.node(*v);
        if !graph.is_variable(*v) {
            return Err(Error::invalid_argument(format!(
                "'{}' is not a variable",
                n.name
            )));
        }
        let want: Vec<usize> = n.shape.iter().map(|&d| d as usize).collect();
        if t.dtype() != n.dtype || t.shape() != want.as_slice() {
            return Err(Error::invalid_argument(format!(
                "cannot write a {} tensor of shape {:?} into variable '{}' of {} {}",
                t.dtype(),
                t.shape(),
                n.name,
                n.dtype,
                crate::tensor::shape_str(&n.shape)
            )));
        }
    }
    Ok(())
}

/// The executor `config` asks for: the [`Reference`](crate::Reference) interpreter for
/// [`Backend::Reference`], a wgpu [`Session`] otherwise.
/// Built without the `gpu` feature, every other backend is Unimplemented.
pub fn create(graph: Arc<Graph>, config: &SessionConfig) -> Result<Box<dyn Executor>> {
    Ok(match config.backend {
        Backend::Reference => Box::new(crate::Reference::new(graph)),
        #[cfg(feature = "gpu")]
        _ => Box::new(Session::new(graph, config.clone())?),
        #[cfg(not(feature = "gpu"))]
        other => {
            return Err(Error::new(
                crate::Code::Unimplemented,
                format!(
                    "the {other:?} backend needs wgtrain-engine's `gpu` feature; \
                     this build has only Backend::Reference"
                ),
            ));
        }
    })
}
