//! One run of a [`Session`]: the plan for what it is asked, the checks of its inputs,
//! the feeds written, the steps encoded (in two submissions around an all-reduce), the
//! fetched values read back and the host's record of what the run changed.

use super::device::Gpu;
use super::encode::{Tracer, encode};
use super::plan::{Plan, check_indices};
use super::readback::{map_and_read, map_bytes, read_back_later};
use super::session::{PlanKey, Session};
use crate::error::{Error, Result};
use crate::exec::{schedule, uninitialized};
use crate::executor::{RunMetadata, Snapshot};
use crate::graph::{Operation, Tensor};
use crate::tensor::{DType, HostTensor};
use std::sync::Arc;

/// Plans kept per session; the least recently used goes first.
const MAX_PLANS: usize = 64;

/// A plan cached by a session, with the run counter when it last ran (for eviction).
pub(super) struct Cached {
    plan: Arc<Plan>,
    last_used: u64,
}

/// What a run did on the device, for [`RunStats`](crate::RunStats).
#[derive(Default)]
struct Counts {
    submissions: usize,
    readback: u64,
    reduce_bytes: u64,
    reduce_ns: u64,
}

/// A buffer the host maps to read.
fn staging(gpu: &Gpu, label: &str, size: u64) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Writes the fed values into the plan's feed buffer.
fn write_feeds(gpu: &Gpu, plan: &Plan, feeds: &[(Tensor, HostTensor)]) {
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
}

/// Records the copies of the fetched tensors into `staging`; the bytes copied.
fn copy_fetches(enc: &mut wgpu::CommandEncoder, plan: &Plan, staging: &wgpu::Buffer) -> u64 {
    let mut bytes = 0;
    for s in &plan.fetch_slots {
        let len = (s.shape.iter().product::<usize>() * s.dtype.device_size()) as u64;
        if len > 0 {
            enc.copy_buffer_to_buffer(&s.loc.buf, s.loc.offset, staging, s.offset, len);
            bytes += len;
        }
    }
    bytes
}

/// Records the device copy of the snapshotted variables into a staging buffer from
/// the plan's pool (returned by the readback thread once read), else a new one.
fn copy_snapshot(gpu: &Gpu, enc: &mut wgpu::CommandEncoder, plan: &Plan) -> wgpu::Buffer {
    let reused = plan.snapshot_pool.lock().ok().and_then(|mut p| p.pop());
    let buf = reused.unwrap_or_else(|| staging(gpu, "snapshot staging", plan.snapshot_size.max(8)));
    for (src, from, to, len) in &plan.snapshot_copies {
        enc.copy_buffer_to_buffer(src, *from, &buf, *to, *len);
    }
    buf
}

/// InvalidArgument when a gather of the run read an index out of range (the plan's
/// check word, the last fetched tensor, says which), which it takes off `outputs`.
fn check_gathers(plan: &Plan, outputs: &mut Vec<HostTensor>) -> Result<()> {
    if plan.gather_checks.is_empty() {
        return Ok(());
    }
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
    Ok(())
}

impl Session {
    /// The plan for a run of `fetches` and `targets` with `feeds`, built the first time
    /// and kept (at most [`MAX_PLANS`]).
    fn plan_for(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
        snapshot: &[Tensor],
    ) -> Result<Arc<Plan>> {
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
        let runs = self.stats.runs + 1;
        if let Some(cached) = self.plans.get_mut(&key) {
            // Feed values still need their dtype checked against the graph.
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
            cached.last_used = runs;
            self.stats.runs = runs;
            return Ok(Arc::clone(&cached.plan));
        }
        let sched = schedule(&self.graph, feeds, fetches, targets)?;
        let plan = Arc::new(self.build_plan(&sched, fetches, targets, snapshot)?);
        // Bounded: a caller varying feed shapes forever must not grow memory forever.
        if self.plans.len() >= MAX_PLANS
            && let Some(oldest) = self
                .plans
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone())
        {
            self.plans.remove(&oldest);
        }
        self.plans.insert(
            key,
            Cached {
                plan: Arc::clone(&plan),
                last_used: runs,
            },
        );
        self.stats.plans += 1;
        self.stats.runs = runs;
        Ok(plan)
    }

    /// InvalidArgument for a fed index out of range, FailedPrecondition for a read of
    /// an uninitialized variable.
    fn check_inputs(&self, plan: &Plan, feeds: &[(Tensor, HostTensor)]) -> Result<()> {
        for (node, rows, gather) in &plan.index_checks {
            if let Some((_, v)) = feeds.iter().find(|(t, _)| t.0 == *node) {
                check_indices(v, *rows, gather)?;
            }
        }
        for &v in &plan.reads {
            if !self.vars.get(&v).is_some_and(|s| s.initialized) {
                return Err(uninitialized(&self.graph, v));
            }
        }
        Ok(())
    }

    /// Records the plan's steps into a new encoder; with a reducer and a reduce point,
    /// submits the backward pass, averages the gradients and writes them back first.
    /// Returns the encoder of what is left to submit.
    fn encode_steps(
        &mut self,
        gpu: &Gpu,
        plan: &Plan,
        mut tracer: Option<&mut Tracer>,
        counts: &mut Counts,
    ) -> Result<wgpu::CommandEncoder> {
        let encoder = |label| {
            gpu.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
        };
        let mut enc = encoder("wgtrain run");
        let split = plan.reduce.as_ref().map_or(plan.steps.len(), |r| r.at);
        encode(&mut enc, &plan.steps[..split], tracer.as_deref_mut());
        if let (Some(point), Some(reducer)) = (&plan.reduce, &self.reducer) {
            for (src, from, to, len) in &point.copies {
                enc.copy_buffer_to_buffer(src, *from, &point.staging, *to, *len);
            }
            let index = gpu.queue.submit(Some(enc.finish()));
            counts.submissions += 1;
            let mut grads = map_bytes(&gpu.device, &point.staging, index, self.timeout, |b| {
                point.pack(b)
            })?;
            let started = std::time::Instant::now();
            reducer.all_reduce_mean(&mut grads)?;
            self.reduced = true;
            for (loc, bytes) in point.unpack(&grads) {
                gpu.queue.write_buffer(&loc.buf, loc.offset, bytes);
            }
            counts.reduce_ns = started.elapsed().as_nanos() as u64;
            counts.reduce_bytes = point.bytes();
            enc = encoder("wgtrain run after the all-reduce");
        }
        encode(&mut enc, &plan.steps[split..], tracer);
        Ok(enc)
    }

    /// Records on the host what a submitted run did: the variables it assigned now
    /// hold a value, the int64 scalars it changed are advanced (or forgotten), and the
    /// fetched int64 scalar variables are known exactly; the run's counters.
    fn record_effects(
        &mut self,
        plan: &Plan,
        fetches: &[Tensor],
        outputs: &[HostTensor],
        counts: Counts,
    ) -> Result<()> {
        for v in &plan.assigns {
            if let Some(s) = self.vars.get_mut(v) {
                s.initialized = true;
            }
        }
        for (v, inc) in &plan.scalar_updates {
            match (inc, self.scalars.get_mut(v)) {
                (Some(i), Some(x)) => *x = x.wrapping_add(*i),
                _ => {
                    self.scalars.remove(v);
                }
            }
        }
        for (t, value) in fetches.iter().zip(outputs) {
            let n = self.graph.node(*t);
            if n.op.is_variable()
                && n.dtype == DType::I64
                && n.shape.is_empty()
                && let Ok(v) = value.as_i64()
            {
                self.scalars.insert(t.0, v[0]);
            }
        }
        self.gpu.check_health()?;
        self.stats.dispatches = plan.dispatches;
        self.stats.submissions = counts.submissions;
        self.stats.readback_bytes = counts.readback;
        self.stats.all_reduce_bytes = counts.reduce_bytes;
        self.stats.all_reduce_ns = counts.reduce_ns;
        Ok(())
    }

    /// A run: what [`run_inner`](Session::run_inner) does, once it has noted the
    /// reducer.
    pub(super) fn run_planned(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
        snapshot: &[Tensor],
        trace: Option<&mut RunMetadata>,
        async_fetch: bool,
    ) -> Result<(Vec<HostTensor>, Option<Snapshot>)> {
        self.gpu.check_health()?;
        let plan = self.plan_for(feeds, fetches, targets, snapshot)?;
        self.check_inputs(&plan, feeds)?;
        let gpu = Arc::clone(&self.gpu);
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        write_feeds(&gpu, &plan, feeds);
        let mut tracer = trace.is_some().then(|| Tracer::new(&gpu, plan.dispatches));
        let mut counts = Counts {
            submissions: 1,
            ..Counts::default()
        };
        let mut enc = self.encode_steps(&gpu, &plan, tracer.as_mut(), &mut counts)?;
        // An asynchronous fetch reads through a staging buffer of its own, so the next
        // run of the plan does not wait for this one's mapping.
        let async_staging = (async_fetch && plan.gather_checks.is_empty() && snapshot.is_empty())
            .then(|| {
                (plan.fetch_staging.as_ref())
                    .map(|s| staging(&gpu, "async fetch staging", s.size()))
            })
            .flatten();
        if let Some(buf) = async_staging.as_ref().or(plan.fetch_staging.as_ref()) {
            counts.readback = copy_fetches(&mut enc, &plan, buf);
        }
        let snap_staging = (!snapshot.is_empty()).then(|| copy_snapshot(&gpu, &mut enc, &plan));
        if let Some(t) = &tracer {
            t.resolve(&mut enc);
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
            self.record_effects(&plan, &[], &[], counts)?;
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
        check_gathers(&plan, &mut outputs)?;
        if let (Some(meta), Some(t)) = (trace, tracer) {
            *meta = t.finish(&gpu, index, self.timeout)?;
        }
        self.record_effects(&plan, fetches, &outputs, counts)?;
        Ok((outputs, snap))
    }
}
