//! The [`Session`]: plans each distinct run once and replays it on the device.

use super::arena::{ApplyGroup, plan_arenas};
use super::device::{AdapterSummary, Gpu};
use super::kernels::{Loc, Step};
use super::plan::Plan;
use super::readback::{Readback, ReadbackJob, map_and_read, map_bytes, read_back_later};
use crate::error::{Error, Result};
use crate::exec::{schedule, uninitialized};
use crate::executor::{Executor, KernelTime, RunMetadata, RunStats, SessionConfig, Snapshot};
use crate::graph::{Graph, Operation, Tensor};
use crate::ops::{Op, Source};
use crate::rng::initial_value;
use crate::tensor::{DType, HostTensor};
use crate::worker::{Worker, WorkerOptions};
use std::collections::HashMap;
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// Timestamp queries of a traced run.
struct Trace {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    staging: wgpu::Buffer,
    labels: Vec<(String, &'static str)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    feeds: Vec<(usize, Vec<usize>)>,
    fetches: Vec<usize>,
    targets: Vec<usize>,
    snapshot: Vec<usize>,
}

/// A variable's buffer and whether it holds a value.
pub(super) struct VarSlot {
    loc: Loc,
    pub(super) initialized: bool,
}

/// Records on the host what a submitted run did: the variables it assigned now hold a
/// value, and the int64 scalars it changed are advanced (or forgotten).
fn record_effects(
    plan: &Plan,
    vars: &mut HashMap<usize, VarSlot>,
    scalars: &mut HashMap<usize, i64>,
) {
    for v in &plan.assigns {
        if let Some(s) = vars.get_mut(v) {
            s.initialized = true;
        }
    }
    for (v, inc) in &plan.scalar_updates {
        match (inc, scalars.get_mut(v)) {
            (Some(i), Some(x)) => *x = x.wrapping_add(*i),
            _ => {
                scalars.remove(v);
            }
        }
    }
}

/// Records `steps` into `enc`: each kernel in a compute pass of its own (timed when
/// `tracer` has timestamp queries) when `traced`, else consecutive kernels in one pass.
fn encode(
    enc: &mut wgpu::CommandEncoder,
    steps: &[Step],
    traced: bool,
    tracer: &mut Option<Trace>,
    untimed: &mut Vec<KernelTime>,
) {
    let mut i = 0;
    while i < steps.len() {
        match &steps[i] {
            Step::Dispatch {
                pipeline,
                bind_group,
                groups,
                node,
                entry,
            } if traced => {
                if tracer.is_none() {
                    untimed.push(KernelTime {
                        node: node.to_string(),
                        kernel: entry,
                        start_ns: 0.0,
                        duration_ns: 0.0,
                    });
                }
                let timestamp_writes = tracer.as_mut().map(|t| {
                    let k = t.labels.len() as u32;
                    t.labels.push((node.to_string(), *entry));
                    wgpu::ComputePassTimestampWrites {
                        query_set: &t.set,
                        beginning_of_pass_write_index: Some(2 * k),
                        end_of_pass_write_index: Some(2 * k + 1),
                    }
                });
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(entry),
                    timestamp_writes,
                });
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                i += 1;
            }
            Step::Dispatch { .. } => {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                });
                while let Some(Step::Dispatch {
                    pipeline,
                    bind_group,
                    groups,
                    ..
                }) = steps.get(i)
                {
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, bind_group, &[]);
                    pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
                    i += 1;
                }
            }
            Step::Copy {
                src,
                src_offset,
                dst,
                dst_offset,
                size,
            } => {
                enc.copy_buffer_to_buffer(src, *src_offset, dst, *dst_offset, *size);
                i += 1;
            }
            Step::Clear { buf, offset, size } => {
                enc.clear_buffer(buf, *offset, Some(*size));
                i += 1;
            }
        }
    }
}

/// A graph bound to a device: variables live in device buffers between runs.
///
/// See the crate documentation for the contract of [`run`](Session::run).
pub struct Session {
    pub(super) graph: Arc<Graph>,
    pub(super) gpu: Arc<Gpu>,
    pub(super) vars: HashMap<usize, VarSlot>,
    consts: HashMap<usize, Loc>,
    plans: HashMap<PlanKey, Plan>,
    pub(super) groups: Vec<ApplyGroup>,
    placeholder: Option<Loc>,
    stats: RunStats,
    /// Maps and delivers asynchronous readbacks.
    readback: Worker<ReadbackJob>,
    /// The bound on device waits.
    timeout: Option<std::time::Duration>,
    /// Host copies of int64 scalar variables (the global step) known exactly: set when
    /// read or written, moved by the constant increments of each run, forgotten when a
    /// run changes them otherwise.
    pub(super) scalars: HashMap<usize, i64>,
    /// Averages marked gradients across processes, when set.
    pub(super) reducer: Option<Arc<dyn super::GradientReducer>>,
    /// Whether the current run has averaged its gradients.
    reduced: bool,
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

/// Plans kept per session; the least recently used goes first.
const MAX_PLANS: usize = 64;

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

    fn run_planned(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
        snapshot: &[Tensor],
        trace: Option<&mut RunMetadata>,
        async_fetch: bool,
    ) -> Result<(Vec<HostTensor>, Option<Snapshot>)> {
        self.gpu.check_health()?;
        let mut key = PlanKey {
            feeds: feeds
                .iter()
                .map(|(t, v)| (t.0, v.shape().to_vec()))
                .collect(),
            fetches: fetches.iter().map(|t| t.0).collect(),
            targets: targets.iter().map(|t| t.0).collect(),
            snapshot: snapshot.iter().map(|t| t.0).collect(),
        };
        key.feeds.sort();
        if !self.plans.contains_key(&key) {
            let sched = schedule(&self.graph, feeds, fetches, targets)?;
            let plan = self.build_plan(&sched, fetches, targets, snapshot)?;
            // Bounded: a caller varying feed shapes forever must not grow memory forever.
            if self.plans.len() >= MAX_PLANS
                && let Some(oldest) = self
                    .plans
                    .iter()
                    .min_by_key(|(_, p)| p.last_used)
                    .map(|(k, _)| k.clone())
            {
                self.plans.remove(&oldest);
            }
            self.plans.insert(key.clone(), plan);
            self.stats.plans += 1;
        } else {
            // Feed values still need their dtype and shape checked against the graph.
            for (t, v) in feeds {
                let n = self.graph.node(*t);
                if v.dtype() != n.dtype {
                    return Err(Error::invalid_argument(format!(
                        "Cannot feed a {} value for tensor '{}', which has dtype {}",
                        v.dtype(),
                        n.name,
                        n.dtype
                    )));
                }
            }
        }
        self.stats.runs += 1;
        let runs = self.stats.runs;
        let plan = self
            .plans
            .get_mut(&key)
            .ok_or_else(|| Error::internal("planned run missing"))?;
        plan.last_used = runs;
        let plan = &*plan;
        for (node, rows, gather) in &plan.index_checks {
            if let Some((_, v)) = feeds.iter().find(|(t, _)| t.0 == *node) {
                super::plan::check_indices(v, *rows, gather)?;
            }
        }
        for &v in &plan.reads {
            if !self.vars.get(&v).is_some_and(|s| s.initialized) {
                return Err(uninitialized(&self.graph, v));
            }
        }
        let gpu = Arc::clone(&self.gpu);
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        if let Some((buf, size)) = &plan.feed_buffer {
            let mut bytes = vec![0u8; *size as usize];
            for (t, v) in feeds {
                if let Some(loc) = plan.feeds.get(&t.0) {
                    let at = loc.offset as usize;
                    v.write_device_bytes(&mut bytes[at..at + v.device_len()]);
                }
            }
            gpu.queue.write_buffer(buf, 0, &bytes);
        }
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgtrain run"),
            });
        let mut tracer = match &trace {
            Some(_) if gpu.timestamps => {
                let n = plan.dispatches.max(1) as u32 * 2;
                let bytes = u64::from(n) * 8;
                Some(Trace {
                    set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                        label: Some("kernel times"),
                        ty: wgpu::QueryType::Timestamp,
                        count: n,
                    }),
                    resolve: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("kernel times"),
                        size: bytes,
                        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                        mapped_at_creation: false,
                    }),
                    staging: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("kernel times staging"),
                        size: bytes,
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    }),
                    labels: Vec::new(),
                })
            }
            _ => None,
        };
        let mut untimed: Vec<KernelTime> = Vec::new();
        let traced = trace.is_some();
        let split = plan.reduce.as_ref().map_or(plan.steps.len(), |r| r.at);
        encode(
            &mut enc,
            &plan.steps[..split],
            traced,
            &mut tracer,
            &mut untimed,
        );
        let mut submissions = 1;
        let mut reduce_ns = 0u64;
        let mut reduce_bytes = 0u64;
        if let (Some(point), Some(reducer)) = (&plan.reduce, &self.reducer) {
            for (src, from, to, len) in &point.copies {
                enc.copy_buffer_to_buffer(src, *from, &point.staging, *to, *len);
            }
            let index = gpu.queue.submit(Some(enc.finish()));
            submissions += 1;
            let mut grads = map_bytes(&gpu.device, &point.staging, index, self.timeout, |b| {
                point.pack(b)
            })?;
            let started = std::time::Instant::now();
            reducer.all_reduce_mean(&mut grads)?;
            self.reduced = true;
            for (loc, bytes) in point.unpack(&grads) {
                gpu.queue.write_buffer(&loc.buf, loc.offset, bytes);
            }
            reduce_ns = started.elapsed().as_nanos() as u64;
            reduce_bytes = point.bytes();
            enc = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("wgtrain run after the all-reduce"),
                });
        }
        encode(
            &mut enc,
            &plan.steps[split..],
            traced,
            &mut tracer,
            &mut untimed,
        );
        let mut readback = 0u64;
        // An asynchronous fetch reads through a staging buffer of its own, so the next
        // run of the plan does not wait for this one's mapping.
        let async_staging = (async_fetch && plan.gather_checks.is_empty() && snapshot.is_empty())
            .then(|| {
                plan.fetch_staging.as_ref().map(|s| {
                    gpu.device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("async fetch staging"),
                        size: s.size(),
                        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                        mapped_at_creation: false,
                    })
                })
            })
            .flatten();
        if let Some(staging) = async_staging.as_ref().or(plan.fetch_staging.as_ref()) {
            for s in &plan.fetch_slots {
                let len = (s.shape.iter().product::<usize>() * s.dtype.device_size()) as u64;
                if len > 0 {
                    enc.copy_buffer_to_buffer(&s.loc.buf, s.loc.offset, staging, s.offset, len);
                    readback += len;
                }
            }
        }
        let snap_staging = if snapshot.is_empty() {
            None
        } else {
            // A staging buffer from the plan's pool (returned by the readback thread
            // once read), else a new one.
            let reused = plan.snapshot_pool.lock().ok().and_then(|mut p| p.pop());
            let buf = reused.unwrap_or_else(|| {
                gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("snapshot staging"),
                    size: plan.snapshot_size.max(8),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            });
            for (src, from, to, len) in &plan.snapshot_copies {
                enc.copy_buffer_to_buffer(src, *from, &buf, *to, *len);
            }
            Some(buf)
        };
        if let Some(t) = &tracer
            && !t.labels.is_empty()
        {
            let n = t.labels.len() as u32 * 2;
            enc.resolve_query_set(&t.set, 0..n, &t.resolve, 0);
            enc.copy_buffer_to_buffer(&t.resolve, 0, &t.staging, 0, u64::from(n) * 8);
        }
        let index = gpu.queue.submit(Some(enc.finish()));
        if let Some(e) = pollster::block_on(oom.pop()) {
            let _ = pollster::block_on(scope.pop());
            return Err(Error::resource_exhausted(format!(
                "device out of memory: {e}"
            )));
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::internal(format!("wgpu validation error: {e}")));
        }
        let dispatches = plan.dispatches;
        let snap = match snap_staging {
            None => None,
            Some(buf) => Some(read_back_later(
                &self.readback,
                buf,
                &index,
                &plan.snapshot_layout,
                Some(Arc::clone(&plan.snapshot_pool)),
            )?),
        };
        if let Some(buf) = async_staging {
            let pending = read_back_later(&self.readback, buf, &index, &plan.fetch_layout, None)?;
            record_effects(plan, &mut self.vars, &mut self.scalars);
            gpu.check_health()?;
            self.stats.dispatches = dispatches;
            self.stats.submissions = submissions;
            self.stats.readback_bytes = readback;
            self.stats.all_reduce_bytes = reduce_bytes;
            self.stats.all_reduce_ns = reduce_ns;
            return Ok((Vec::new(), Some(pending)));
        }
        let mut outputs = match &plan.fetch_staging {
            None => Vec::new(),
            Some(staging) => map_and_read(
                &gpu.device,
                staging,
                index.clone(),
                &plan.fetch_layout,
                self.timeout,
            )?,
        };
        if !plan.gather_checks.is_empty() {
            let words = outputs
                .pop()
                .map(|t| t.as_u32())
                .transpose()?
                .unwrap_or_default();
            if let (Some(&which), Some(&bad)) = (words.first(), words.get(1))
                && which > 0
            {
                let (name, rows) = plan
                    .gather_checks
                    .get(which as usize - 1)
                    .cloned()
                    .unwrap_or_default();
                return Err(Error::invalid_argument(format!(
                    "an index of {} is not in [0, {rows}) (gather '{name}', indices computed on the device: the run's other effects happened, the gather read zeros)",
                    bad as i32
                )));
            }
        }
        if let Some(meta) = trace {
            meta.timed = tracer.is_some();
            meta.kernels = match tracer.take() {
                Some(t) if !t.labels.is_empty() => {
                    let n = t.labels.len() * 2;
                    let layout = [(0, DType::U32, vec![n * 2])];
                    let words =
                        map_and_read(&gpu.device, &t.staging, index, &layout, self.timeout)?;
                    let ticks: Vec<u64> = words
                        .first()
                        .map(|h| {
                            h.bytes()
                                .chunks_exact(8)
                                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                                .collect()
                        })
                        .unwrap_or_default();
                    let tick = f64::from(gpu.queue.get_timestamp_period());
                    let at = |k: usize| ticks.get(k).copied().unwrap_or(0) as f64 * tick;
                    let origin = at(0);
                    t.labels
                        .into_iter()
                        .enumerate()
                        .map(|(k, (node, kernel))| KernelTime {
                            node,
                            kernel,
                            start_ns: at(2 * k) - origin,
                            duration_ns: (at(2 * k + 1) - at(2 * k)).max(0.0),
                        })
                        .collect()
                }
                _ => untimed,
            };
        }
        record_effects(plan, &mut self.vars, &mut self.scalars);
        // Fetched int64 scalar variables: their values after the run, exactly.
        for (t, value) in fetches.iter().zip(&outputs) {
            let n = self.graph.node(*t);
            if n.op.is_variable()
                && n.dtype == DType::I64
                && n.shape.is_empty()
                && let Ok(v) = value.as_i64()
            {
                self.scalars.insert(t.0, v[0]);
            }
        }
        gpu.check_health()?;
        self.stats.dispatches = dispatches;
        self.stats.submissions = submissions;
        self.stats.readback_bytes = readback;
        self.stats.all_reduce_bytes = reduce_bytes;
        self.stats.all_reduce_ns = reduce_ns;
        Ok((outputs, snap))
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
