//! Planning one run: buffers for every value (pooled by liveness, variables and
//! constants persistent, arena views for optimizer groups), and the recorded steps
//! replayed by every later run with the same fetches, targets and feed shapes.

mod facts;
mod layout;
mod place;
mod record;

pub(crate) use facts::check_indices;
pub(crate) use layout::{ReadLayout, Slot, StagingCopy};

use super::fusion::Fusion;
use super::kernels::{Loc, Recorder, Step};
use super::reduce::{self, ReducePoint};
use super::session::Session;
use crate::error::Result;
use crate::exec::Schedule;
use crate::graph::{Node, Operation, Tensor};
use crate::tensor::DType;
use layout::{layout, read_layout, snapshot_layout};
use std::collections::HashMap;
use std::sync::Arc;

/// What planning one run reads: the graph's nodes, the run's schedule (reordered for
/// an all-reduce) and the fusion pass's decisions.
pub(super) struct Ctx<'a> {
    nodes: &'a [Node],
    sched: &'a Schedule,
    fusion: &'a Fusion,
}

impl Ctx<'_> {
    /// Whether node `i` is fed.
    fn fed(&self, i: usize) -> bool {
        self.sched.fed.contains(&i)
    }

    /// Device bytes of node `i`'s value in this run.
    fn bytes(&self, i: usize) -> u64 {
        let n = self.sched.shapes[&i].iter().product::<usize>();
        (n * self.nodes[i].dtype.device_size()) as u64
    }
}

/// The buffer every feed of a run is uploaded into, and its size.
pub(crate) type FeedBuffer = (wgpu::Buffer, u64);

/// A planned run.
pub(crate) struct Plan {
    /// Variables that must hold a value before the run.
    pub reads: Vec<usize>,
    /// Variables the run assigns.
    pub assigns: Vec<usize>,
    /// The view of each fed tensor in the feed buffer.
    pub feeds: HashMap<usize, Loc>,
    /// All feeds in one buffer (one upload per run), and its size.
    pub feed_buffer: Option<FeedBuffer>,
    /// Fed index tensors checked before the run: (fed node, rows of the indexed axis,
    /// the gather's name).
    pub index_checks: Vec<(usize, usize, String)>,
    /// Gathers of device-computed indices (name, rows), numbered from 1 in the status
    /// words read back after the fetches (the last slot of the fetch layout).
    pub gather_checks: Vec<(String, usize)>,
    /// Int64 scalar variables the run changes: by a constant increment (`Some`), or
    /// otherwise (`None`, the host copy is forgotten).
    pub scalar_updates: Vec<(usize, Option<i64>)>,
    /// Snapshot staging buffers read back and ready for reuse.
    pub snapshot_pool: Arc<std::sync::Mutex<Vec<wgpu::Buffer>>>,
    /// The recorded device work.
    pub steps: Vec<Step>,
    /// Kernel dispatches among the steps.
    pub dispatches: usize,
    pub fetch_slots: Vec<Slot>,
    /// The staging buffer fetched tensors are copied into.
    pub fetch_staging: Option<wgpu::Buffer>,
    /// `fetch_slots` as the readback reads them.
    pub fetch_layout: Arc<ReadLayout>,
    /// The snapshotted variables as the readback thread reads them.
    pub snapshot_layout: Arc<ReadLayout>,
    pub snapshot_size: u64,
    /// The device copies of a snapshot, one per buffer where its variables lie close
    /// together (an arena).
    pub snapshot_copies: Vec<StagingCopy>,
    /// Where the run averages its gradients across processes (with a reducer).
    pub reduce: Option<ReducePoint>,
}

impl Session {
    /// Plans the run of `sched` fetching `fetches` and snapshotting `snapshot`.
    pub(super) fn build_plan(
        &mut self,
        sched: &Schedule,
        fetches: &[Tensor],
        targets: &[Operation],
        snapshot: &[Tensor],
    ) -> Result<Plan> {
        let graph = Arc::clone(&self.graph);
        let nodes = graph.nodes();
        let gpu = Arc::clone(&self.gpu);
        // With a reducer, the nodes reading averaged gradients go after all others.
        let reordered = match &self.reducer {
            Some(_) => reduce::reorder(nodes, sched, &graph.averaged_gradients())?,
            None => None,
        };
        let (sched, reduced, cut) = match &reordered {
            Some((s, r, cut)) => (s, r.as_slice(), Some(*cut)),
            None => (sched, &[][..], None),
        };
        let fetched: Vec<usize> = fetches.iter().map(|t| t.0).collect();
        let roots: Vec<usize> = fetched
            .iter()
            .copied()
            .chain(targets.iter().map(|o| o.index()))
            .collect();
        let fusion = Fusion::analyze(
            nodes,
            sched,
            &fetched,
            &roots,
            &self.groups,
            gpu.limits.max_storage_buffers_per_shader_stage,
        );
        let ctx = Ctx {
            nodes,
            sched,
            fusion: &fusion,
        };
        let mut rec = Recorder::new(&gpu);
        let (feed_buffer, feeds) = self.feed_buffer(&ctx)?;
        let mut locs = feeds.clone();
        let gathers = self.device_gathers(&ctx, &mut rec)?;
        let cut_step = self.record_nodes(&mut rec, &ctx, &mut locs, &fetched, &gathers, cut)?;
        let reduce = match cut {
            None => None,
            Some(_) => {
                let at = rec.prologue.len() + cut_step.unwrap_or(rec.steps.len());
                self.reduce_point(&ctx, &locs, reduced, at)?
            }
        };
        let mut fetch_slots = Vec::with_capacity(fetches.len() + 1);
        let fetch_size = layout(
            &mut fetch_slots,
            fetched
                .iter()
                .map(|&t| (locs[&t].clone(), nodes[t].dtype, sched.shapes[&t].clone()))
                .chain(
                    gathers
                        .status
                        .iter()
                        .map(|l| (l.clone(), DType::U32, vec![2])),
                ),
        );
        let fetch_staging = (!fetch_slots.is_empty()).then(|| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("fetch staging"),
                size: fetch_size.max(8),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let mut snap = Vec::with_capacity(snapshot.len());
        for &v in snapshot {
            let n = &nodes[v.0];
            snap.push((
                self.var_loc(v.0)?,
                n.dtype,
                n.shape.iter().map(|&d| d as usize).collect(),
            ));
        }
        let (snapshot_slots, snapshot_copies, snapshot_size) = snapshot_layout(snap);
        Ok(Plan {
            snapshot_pool: Arc::new(std::sync::Mutex::new(Vec::new())),
            scalar_updates: facts::scalar_updates(&ctx),
            gather_checks: gathers.checks(&ctx),
            index_checks: facts::index_checks(&ctx)?,
            reads: facts::reads(&ctx, snapshot),
            assigns: sched.assigns.clone(),
            feeds,
            feed_buffer,
            dispatches: rec.dispatches,
            steps: rec.prologue.into_iter().chain(rec.steps).collect(),
            fetch_layout: Arc::new(read_layout(&fetch_slots)),
            fetch_slots,
            fetch_staging,
            snapshot_layout: Arc::new(read_layout(&snapshot_slots)),
            snapshot_copies,
            snapshot_size,
            reduce,
        })
    }

    /// The reduce point of a plan: the locations of the gradients `reduced` (each
    /// buffer range once) copied into one staging buffer after step `at`.
    fn reduce_point(
        &self,
        ctx: &Ctx,
        locs: &HashMap<usize, Loc>,
        reduced: &[usize],
        at: usize,
    ) -> Result<Option<ReducePoint>> {
        let (nodes, sched, fusion) = (ctx.nodes, ctx.sched, ctx.fusion);
        let mut parts: Vec<(Loc, DType, Vec<usize>)> = Vec::new();
        for &i in reduced {
            if fusion.dead.contains(&i) {
                continue;
            }
            let loc = locs.get(&i).ok_or_else(|| {
                crate::error::Error::internal(format!(
                    "gradient '{}' has no buffer to average",
                    nodes[i].name
                ))
            })?;
            let shape = sched.shapes[&i].clone();
            let bytes = (shape.iter().product::<usize>() * 4) as u64;
            let same = parts
                .iter()
                .any(|(l, _, _)| l.buf == loc.buf && l.offset == loc.offset);
            if bytes == 0 || same {
                continue;
            }
            let overlaps = parts.iter().any(|(l, _, s)| {
                let len = (s.iter().product::<usize>() * 4) as u64;
                l.buf == loc.buf && l.offset < loc.offset + bytes && loc.offset < l.offset + len
            });
            if overlaps {
                return Err(crate::error::Error::internal(format!(
                    "gradient '{}' shares device memory with another averaged gradient",
                    nodes[i].name
                )));
            }
            parts.push((loc.clone(), DType::F32, shape));
        }
        if parts.is_empty() {
            return Ok(None);
        }
        let (slots, copies, size) = snapshot_layout(parts);
        let words = slots.iter().map(|s| s.bytes() as usize / 4).sum();
        let staging = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gradient all-reduce staging"),
            size: size.max(8),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Some(ReducePoint {
            at,
            slots,
            copies,
            staging,
            words,
        }))
    }
}
