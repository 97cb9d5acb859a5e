//! The [`Session`]: plans each distinct run once and replays it on the device.

use super::arena::{ApplyGroup, plan_arenas};
use super::device::{AdapterSummary, Gpu};
use super::kernels::Loc;
use super::readback::{Readback, ReadbackJob};
use super::run::Cached;
use crate::error::{Error, Result};
use crate::executor::{Executor, RunMetadata, RunStats, SessionConfig, Snapshot};
use crate::graph::{Graph, Operation, Tensor};
use crate::ops::{Op, Source};
use crate::rng::initial_value;
use crate::tensor::HostTensor;
use crate::worker::{Worker, WorkerOptions};
use std::collections::HashMap;
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// What a plan is for: the fed tensors with their shapes, the fetches, the targets
/// and the snapshotted variables.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PlanKey {
    pub(super) feeds: Vec<(usize, Vec<usize>)>,
    pub(super) fetches: Vec<usize>,
    pub(super) targets: Vec<usize>,
    pub(super) snapshot: Vec<usize>,
}

/// A variable's buffer and whether it holds a value.
pub(super) struct VarSlot {
    pub(super) loc: Loc,
    pub(super) initialized: bool,
}

/// A graph bound to a device: variables live in device buffers between runs.
///
/// See the crate documentation for the contract of [`run`](Session::run).
pub struct Session {
    pub(super) graph: Arc<Graph>,
    pub(super) gpu: Arc<Gpu>,
    pub(super) vars: HashMap<usize, VarSlot>,
    consts: HashMap<usize, Loc>,
    pub(super) plans: HashMap<PlanKey, Cached>,
    pub(super) groups: Vec<ApplyGroup>,
    placeholder: Option<Loc>,
    pub(super) stats: RunStats,
    /// Maps and delivers asynchronous readbacks.
    pub(super) readback: Worker<ReadbackJob>,
    /// The bound on device waits.
    pub(super) timeout: Option<std::time::Duration>,
    /// Host copies of int64 scalar variables (the global step) known exactly: set when
    /// read or written, moved by the constant increments of each run, forgotten when a
    /// run changes them otherwise.
    pub(super) scalars: HashMap<usize, i64>,
    /// Averages marked gradients across processes, when set.
    pub(super) reducer: Option<Arc<dyn super::GradientReducer>>,
    /// Whether the current run has averaged its gradients.
    pub(super) reduced: bool,
}

impl Drop for Session {
    /// Waits for the readbacks still queued, within the session's device wait bound;
    /// when a coordinator closed the worker already (and waited as long as it would),
    /// the thread is left to finish.
    fn drop(&mut self) {
        if self.readback.is_open()
            && let Err(e) = self.readback.close(self.timeout)
        {
            tracing::warn!(error = %e, "closing the session's readback worker");
        }
    }
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

impl Session {
    /// A session running `graph` on the device chosen by `config`.
    ///
    /// Fails with NotFound (and how to get an adapter) when there is none.
    /// InvalidArgument for [`Backend::Reference`](super::Backend::Reference), which has
    /// no device (see [`executor::create`](crate::executor::create)).
    pub fn new(graph: impl Into<Arc<Graph>>, config: SessionConfig) -> Result<Session> {
        if config.backend == super::Backend::Reference {
            return Err(Error::invalid_argument(
                "Session::new: the reference backend has no device; executor::create makes it",
            ));
        }
        let gpu = Gpu::shared(&config)?;
        let timeout = config.operation_timeout();
        let readback = Worker::spawn(
            "readback",
            WorkerOptions::default(),
            Readback {
                device: gpu.device.clone(),
                timeout,
            },
        )?;
        let mut sess = Session {
            graph: graph.into(),
            gpu,
            vars: HashMap::new(),
            consts: HashMap::new(),
            plans: HashMap::new(),
            groups: Vec::new(),
            placeholder: None,
            stats: RunStats::default(),
            readback,
            timeout,
            scalars: HashMap::new(),
            reducer: None,
            reduced: false,
        };
        sess.plan_arenas()?;
        Ok(sess)
    }

    /// The graph this session runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The graph, shared.
    pub fn graph_arc(&self) -> Arc<Graph> {
        Arc::clone(&self.graph)
    }

    /// The adapter the session runs on.
    pub fn adapter(&self) -> &AdapterSummary {
        &self.gpu.adapter
    }

    /// The readback worker, for a coordinator to stop and wait for at close.
    pub fn background(&self) -> Arc<dyn crate::Background> {
        self.readback.background()
    }

    /// Counters of the last run and totals.
    pub fn stats(&self) -> RunStats {
        self.stats
    }

    /// Averages the gradients marked in the graph
    /// ([`Graph::average_across_replicas`]) across processes with `reducer` in every
    /// later run that computes them (data-parallel training); `None` stops averaging.
    /// Such a run is two submissions around the reducer's all-reduce. Plans made
    /// before are dropped.
    pub fn set_gradient_reducer(&mut self, reducer: Option<Arc<dyn super::GradientReducer>>) {
        self.reducer = reducer;
        self.plans.clear();
    }

    /// Whether gradients are averaged across processes.
    pub fn has_gradient_reducer(&self) -> bool {
        self.reducer.is_some()
    }

    pub(super) fn buffer(&self, what: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let max = self
            .gpu
            .limits
            .max_storage_buffer_binding_size
            .min(self.gpu.limits.max_buffer_size);
        if bytes > max {
            return Err(Error::resource_exhausted(format!(
                "{what} needs {bytes} bytes; the device binds at most {max} bytes per buffer"
            )));
        }
        Ok(self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size: bytes.max(4),
            usage: storage_usage(),
            mapped_at_creation: false,
        }))
    }

    fn plan_arenas(&mut self) -> Result<()> {
        let graph = Arc::clone(&self.graph);
        let arenas = plan_arenas(&graph, &self.gpu, |label, bytes| self.buffer(label, bytes))?;
        for (var, loc) in arenas.views {
            self.vars.insert(
                var,
                VarSlot {
                    loc,
                    initialized: false,
                },
            );
        }
        self.groups = arenas.groups;
        Ok(())
    }

    /// A 4-byte buffer standing for values no kernel reads.
    pub(super) fn placeholder_loc(&mut self) -> Result<Loc> {
        if self.placeholder.is_none() {
            self.placeholder = Some(Loc::whole(self.buffer("unread value", 4)?, 4));
        }
        self.placeholder
            .clone()
            .ok_or_else(|| Error::internal("placeholder buffer"))
    }

    pub(super) fn var_loc(&mut self, id: usize) -> Result<Loc> {
        if let Some(v) = self.vars.get(&id) {
            return Ok(v.loc.clone());
        }
        let n = &self.graph.nodes()[id];
        let size = n.shape.iter().product::<i64>() as u64 * n.dtype.device_size() as u64;
        let buf = self.buffer(&n.name, size)?;
        let loc = Loc::whole(buf, size);
        self.vars.insert(
            id,
            VarSlot {
                loc: loc.clone(),
                initialized: false,
            },
        );
        Ok(loc)
    }

    pub(super) fn const_loc(&mut self, id: usize, shape: &[usize]) -> Result<Loc> {
        if let Some(l) = self.consts.get(&id) {
            return Ok(l.clone());
        }
        let n = &self.graph.nodes()[id];
        let value = match &n.op {
            Op::Source(Source::Const(v)) => v.clone(),
            Op::Source(Source::InitialValue { init, seed }) => {
                initial_value(init, n.dtype, shape, *seed)
                    .map_err(|e| e.context(format!("initial value of '{}'", n.name)))?
            }
            _ => return Err(Error::internal("const_loc on a non-constant")),
        };
        let mut bytes = value.device_bytes();
        let size = bytes.len() as u64;
        let max = self.gpu.limits.max_storage_buffer_binding_size;
        if size > max {
            return Err(Error::resource_exhausted(format!(
                "constant '{}' needs {size} bytes; the device binds at most {max}",
                n.name
            )));
        }
        if bytes.len() < 4 {
            bytes.resize(4, 0);
        }
        let buf = self
            .gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&n.name),
                contents: &bytes,
                usage: storage_usage(),
            });
        let loc = Loc::whole(buf, size);
        self.consts.insert(id, loc.clone());
        Ok(loc)
    }

    /// Runs the graph: feeds `feeds`, computes and returns `fetches` (host tensors in the
    /// same order), and runs `targets` for their effect.
    ///
    /// Errors: InvalidArgument for a wrong feed dtype or shape, a missing feed, an unknown
    /// fetch; FailedPrecondition for reading an uninitialized variable; Internal for a
    /// device validation error; Aborted when the device was lost.
    ///
    /// A variable fetched together with an op that updates it returns the value after
    /// the update.
    pub fn run(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<Vec<HostTensor>> {
        Ok(self.run_inner(feeds, fetches, targets, &[], None, false)?.0)
    }

    /// Like [`run`](Self::run) without waiting for the fetched values: they arrive on
    /// the returned [`Snapshot`] once the device is done (the mapping and the copy to
    /// host memory happen on the readback thread), so the caller's next step is never
    /// held up by them. Summary writers use this. Errors of the run itself (bad feeds,
    /// uninitialized variables) are returned at once. A run whose gathers index with
    /// values computed on the device is read back before returning, to report an index
    /// out of range as the run's error.
    pub fn run_async(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<Snapshot> {
        let (out, snap) = self.run_inner(feeds, fetches, targets, &[], None, true)?;
        Ok(snap.unwrap_or_else(|| Snapshot::ready(out)))
    }

    /// Like [`run`](Self::run), timing every kernel on the device (each in its own
    /// compute pass, so a traced run is slower than a plain one): what TF returns in
    /// `RunMetadata.step_stats` for `RunOptions(trace_level=FULL_TRACE)`, and what the
    /// profiler hook writes as a timeline.
    pub fn run_traced(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<(Vec<HostTensor>, RunMetadata)> {
        let mut meta = RunMetadata::default();
        let out = self
            .run_inner(feeds, fetches, targets, &[], Some(&mut meta), false)?
            .0;
        Ok((out, meta))
    }

    /// Like [`run`](Self::run), and records in the same submission a device copy of
    /// `snapshot` variables (their values after the run), delivered asynchronously.
    pub fn run_and_snapshot(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
        snapshot: &[Tensor],
    ) -> Result<(Vec<HostTensor>, Snapshot)> {
        for &v in snapshot {
            self.graph.check(v)?;
            if !self.graph.is_variable(v) {
                return Err(Error::invalid_argument(format!(
                    "'{}' is not a variable",
                    self.graph.name(v)
                )));
            }
        }
        let (out, snap) = self.run_inner(feeds, fetches, targets, snapshot, None, false)?;
        let snap = snap.ok_or_else(|| Error::internal("snapshot missing"))?;
        Ok((out, snap))
    }

    /// A run; with a reducer, one that fails before averaging the gradients it
    /// computes tells the reducer (its peers wait in the all-reduce).
    fn run_inner(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
        snapshot: &[Tensor],
        trace: Option<&mut RunMetadata>,
        async_fetch: bool,
    ) -> Result<(Vec<HostTensor>, Option<Snapshot>)> {
        self.reduced = false;
        let r = self.run_planned(feeds, fetches, targets, snapshot, trace, async_fetch);
        if let (Err(e), Some(reducer)) = (&r, &self.reducer)
            && !self.reduced
            && self.computes_averaged_gradients(fetches, targets)
        {
            reducer.abandon(e);
        }
        r
    }

    /// Destroys the device under this session, as a driver reset or a removed GPU would:
    /// every session on it then fails with Aborted, and a new session gets a fresh device.
    /// For testing recovery.
    #[doc(hidden)]
    pub fn simulate_device_loss(&self) {
        self.gpu.device.destroy();
        let _ = self.gpu.device.poll(wgpu::PollType::Poll);
        self.gpu
            .lost
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
