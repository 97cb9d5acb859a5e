//! Planning one run: buffers for every value (pooled by liveness, variables and
//! constants persistent, arena views for optimizer groups), and the recorded steps
//! replayed by every later run with the same fetches, targets and feed shapes.

use super::fusion::{Action, Fusion};
use super::kernels::{Arg, Bookkeeping, Loc, Recorder, Step};
use super::reduce::{self, ReducePoint};
use super::session::Session;
use crate::error::Result;
use crate::exec::Schedule;
use crate::graph::Tensor;
use crate::ops::{AssignOp, MatMul, Op, SoftmaxOp};
use crate::tensor::DType;
use std::collections::HashMap;
use std::sync::Arc;

/// Where one fetched or snapshotted tensor is copied to in a staging buffer.
pub(crate) struct Slot {
    pub loc: Loc,
    pub offset: u64,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl Slot {
    /// Device bytes of the tensor.
    pub fn bytes(&self) -> u64 {
        (self.shape.iter().product::<usize>() * self.dtype.device_size()) as u64
    }
}

/// Where each tensor sits in a staging buffer: (offset, dtype, shape).
pub(crate) type ReadLayout = Vec<(u64, DType, Vec<usize>)>;

fn read_layout(slots: &[Slot]) -> ReadLayout {
    slots
        .iter()
        .map(|s| (s.offset, s.dtype, s.shape.clone()))
        .collect()
}

/// InvalidArgument when an index of `indices` is outside `[0, rows)`.
pub(crate) fn check_indices(
    indices: &crate::tensor::HostTensor,
    rows: usize,
    gather: &str,
) -> Result<()> {
    for k in 0..indices.len() {
        let v = indices.get_f64(k);
        if v < 0.0 || v >= rows as f64 {
            return Err(crate::error::Error::invalid_argument(format!(
                "indices[{k}] = {v} is not in [0, {rows}) (gather '{gather}')"
            )));
        }
    }
    Ok(())
}

/// A planned run.
pub(crate) struct Plan {
    /// Variables that must hold a value before the run.
    pub reads: Vec<usize>,
    /// Variables the run assigns.
    pub assigns: Vec<usize>,
    /// The view of each fed tensor in the feed buffer.
    pub feeds: HashMap<usize, Loc>,
    /// All feeds in one buffer (one upload per run), and its size.
    pub feed_buffer: Option<(wgpu::Buffer, u64)>,
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
    /// The run counter when the plan last ran (for eviction).
    pub last_used: u64,
    /// Where the run averages its gradients across processes (with a reducer).
    pub reduce: Option<ReducePoint>,
}

fn align8(x: u64) -> u64 {
    x.div_ceil(8) * 8
}

/// Lays out `slots` for `tensors` one after another (8-byte aligned); returns the total.
fn layout(slots: &mut Vec<Slot>, tensors: impl Iterator<Item = (Loc, DType, Vec<usize>)>) -> u64 {
    let mut offset = 0;
    for (loc, dtype, shape) in tensors {
        let slot = Slot {
            loc,
            offset,
            dtype,
            shape,
        };
        offset += align8(slot.bytes());
        slots.push(slot);
    }
    offset
}

/// A device copy into a staging buffer: (source buffer, source offset, staging offset,
/// bytes).
pub(crate) type StagingCopy = (wgpu::Buffer, u64, u64, u64);

/// Lays out a snapshot's variables so that those sharing a buffer (an arena's views)
/// are copied with one command: each buffer's span from its first to its last
/// snapshotted byte lands in the staging buffer as it lies on the device, unless the
/// span is mostly other tensors, when each variable is copied alone. Returns the
/// slots (in the given order), the copies and the staging size.
fn snapshot_layout(vars: Vec<(Loc, DType, Vec<usize>)>) -> (Vec<Slot>, Vec<StagingCopy>, u64) {
    let mut slots: Vec<Slot> = vars
        .into_iter()
        .map(|(loc, dtype, shape)| Slot {
            loc,
            offset: 0,
            dtype,
            shape,
        })
        .collect();
    // Group the slots by buffer, in order of first appearance.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in 0..slots.len() {
        match groups
            .iter_mut()
            .find(|g| slots[g[0]].loc.buf == slots[i].loc.buf)
        {
            Some(g) => g.push(i),
            None => groups.push(vec![i]),
        }
    }
    let mut copies = Vec::new();
    let mut base = 0u64;
    let mut copy = |buf: &wgpu::Buffer, src: u64, len: u64, base: &mut u64| {
        let len = len.div_ceil(4) * 4;
        copies.push((buf.clone(), src, *base, len));
        let at = *base;
        *base += align8(len);
        at
    };
    for g in groups {
        let lo = g.iter().map(|&i| slots[i].loc.offset).min().unwrap_or(0);
        let hi = g
            .iter()
            .map(|&i| slots[i].loc.offset + slots[i].bytes())
            .max()
            .unwrap_or(0);
        let used: u64 = g.iter().map(|&i| slots[i].bytes()).sum();
        if g.len() > 1 && hi - lo <= 2 * used + 4096 {
            let buf = slots[g[0]].loc.buf.clone();
            let at = copy(&buf, lo, hi - lo, &mut base);
            for &i in &g {
                slots[i].offset = at + slots[i].loc.offset - lo;
            }
        } else {
            for &i in &g {
                let (buf, src, len) = (
                    slots[i].loc.buf.clone(),
                    slots[i].loc.offset,
                    slots[i].bytes(),
                );
                if len > 0 {
                    slots[i].offset = copy(&buf, src, len, &mut base);
                } else {
                    slots[i].offset = base;
                }
            }
        }
    }
    (slots, copies, base)
}

impl Session {
    /// Plans the run of `sched` fetching `fetches` and snapshotting `snapshot`.
    pub(super) fn build_plan(
        &mut self,
        sched: &Schedule,
        fetches: &[Tensor],
        targets: &[crate::graph::Operation],
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
        let (sched, reduced, cut_pos) = match &reordered {
            Some((s, r, cut)) => (s, r.as_slice(), Some(*cut)),
            None => (sched, &[][..], None),
        };
        let mut cut_step = None;
        let mut rec = Recorder::new(&gpu);
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
        let pos: HashMap<usize, usize> = sched
            .order
            .iter()
            .enumerate()
            .map(|(p, &i)| (i, p))
            .collect();
        let fed = |i: usize| sched.fed.contains(&i);
        // The node whose buffer a value lives in (reshapes and updates alias).
        let mut root: HashMap<usize, usize> = HashMap::new();
        for &i in &sched.order {
            let n = &nodes[i];
            let r = match n.op {
                _ if fed(i) => i,
                _ if n.op.is_reshape() => root[&n.inputs[0].0],
                _ if n.op.mutates_variable() => n.inputs[0].0,
                _ => i,
            };
            root.insert(i, r);
        }
        // The last position at which each buffer is read.
        let mut last_use: HashMap<usize, usize> = HashMap::new();
        for (p, &i) in sched.order.iter().enumerate() {
            if fed(i) {
                continue;
            }
            let at = fusion.runs_at.get(&i).map_or(p, |t| pos[t]);
            for t in &nodes[i].inputs {
                let e = last_use.entry(root[&t.0]).or_insert(at);
                *e = (*e).max(at);
            }
        }
        for &t in &fetched {
            last_use.insert(root[&t], usize::MAX);
        }
        let mut locs: HashMap<usize, Loc> = HashMap::new();
        // Every feed in one buffer, at aligned offsets: one upload per run.
        let align = u64::from(gpu.limits.min_storage_buffer_offset_alignment.max(4));
        let mut fed_nodes: Vec<usize> = sched.fed.clone();
        fed_nodes.sort_unstable();
        let mut feed_end = 0u64;
        let mut feed_offsets = Vec::with_capacity(fed_nodes.len());
        for &i in &fed_nodes {
            let bytes =
                (sched.shapes[&i].iter().product::<usize>() * nodes[i].dtype.device_size()) as u64;
            let offset = feed_end.div_ceil(align) * align;
            feed_offsets.push((i, offset, bytes.max(4)));
            feed_end = offset + bytes.max(4);
        }
        let feed_buffer = match feed_end {
            0 => None,
            size => Some((self.buffer("feeds", size)?, size)),
        };
        let mut feeds = HashMap::new();
        if let Some((buf, _)) = &feed_buffer {
            for &(i, offset, size) in &feed_offsets {
                let loc = Loc {
                    buf: buf.clone(),
                    offset,
                    size,
                };
                feeds.insert(i, loc.clone());
                locs.insert(i, loc);
            }
        }
        // Gathers of indices computed on the device report a bad index through the
        // plan's status words, read back with the run.
        let device_gathers: Vec<usize> = sched
            .order
            .iter()
            .copied()
            .filter(|&i| {
                let n = &nodes[i];
                let idx = n.inputs.get(1).map(|t| t.0);
                n.op.checked_gather_axis().is_some()
                    && !fusion.dead.contains(&i)
                    && idx.is_some_and(|k| !fed(k) && nodes[k].op.as_const().is_none())
            })
            .collect();
        let status = if device_gathers.is_empty() {
            None
        } else {
            let loc = Loc::whole(self.buffer("gather status", 8)?, 8);
            rec.prologue.push(Step::Clear {
                buf: loc.buf.clone(),
                offset: 0,
                size: 8,
            });
            Some(loc)
        };
        let mut pooled: HashMap<usize, wgpu::Buffer> = HashMap::new();
        let mut free: Vec<(u64, wgpu::Buffer)> = Vec::new();
        for (p, &i) in sched.order.iter().enumerate() {
            if cut_pos == Some(p) {
                cut_step = Some(rec.steps.len());
            }
            let n = &nodes[i];
            let shape = &sched.shapes[&i];
            let bytes = (shape.iter().product::<usize>() * n.dtype.device_size()) as u64;
            if fed(i) {
                continue;
            }
            let loc = match &n.op {
                // Read for their shape only: any buffer serves as their location.
                _ if fusion.dead.contains(&i) => Some(self.placeholder_loc()?),
                _ if fusion.no_buffer.contains(&i) => None,
                _ if n.op.is_variable() => Some(self.var_loc(i)?),
                _ if n.op.is_constant() => Some(self.const_loc(i, shape)?),
                Op::NoOp => None,
                op if op.is_reshape() => locs.get(&n.inputs[0].0).cloned(),
                op if op.mutates_variable() => Some(self.var_loc(n.inputs[0].0)?),
                _ if fusion.preplaced.contains_key(&i) => fusion.preplaced.get(&i).cloned(),
                _ => {
                    // Best fit among free buffers, else a new one.
                    let best = free
                        .iter()
                        .enumerate()
                        .filter(|(_, (s, _))| *s >= bytes.max(4))
                        .min_by_key(|(_, (s, _))| *s)
                        .map(|(k, _)| k);
                    let buf = match best {
                        Some(k) => free.swap_remove(k).1,
                        None => self.buffer(&n.name, bytes)?,
                    };
                    pooled.insert(i, buf.clone());
                    Some(Loc::whole(buf, bytes))
                }
            };
            if let Some(loc) = &loc {
                locs.insert(i, loc.clone());
            }
            rec.node = Arc::from(n.name.as_str());
            rec.status = match (&status, device_gathers.iter().position(|&g| g == i)) {
                (Some(loc), Some(k)) => Some((loc.clone(), k as u32 + 1)),
                _ => None,
            };
            self.record(&mut rec, &fusion, &locs, sched, i, loc.as_ref())
                .map_err(|e| e.context(format!("node '{}'", n.name)))?;
            // Release buffers whose last reader has been recorded.
            for t in n
                .inputs
                .iter()
                .map(|t| root[&t.0])
                .chain(std::iter::once(root[&i]))
            {
                let done = last_use.get(&t).is_none_or(|&l| l <= p);
                if done && let Some(buf) = pooled.remove(&t) {
                    free.push((buf.size(), buf));
                }
            }
        }
        let reduce = match cut_pos {
            None => None,
            Some(_) => {
                let at = rec.prologue.len() + cut_step.unwrap_or(rec.steps.len());
                self.reduce_point(nodes, sched, &fusion, &locs, reduced, at)?
            }
        };
        let mut fetch_slots = Vec::with_capacity(fetches.len() + 1);
        let fetch_size = layout(
            &mut fetch_slots,
            fetched
                .iter()
                .map(|&t| (locs[&t].clone(), nodes[t].dtype, sched.shapes[&t].clone()))
                .chain(status.iter().map(|l| (l.clone(), DType::U32, vec![2]))),
        );
        let gather_checks: Vec<(String, usize)> = device_gathers
            .iter()
            .map(|&i| {
                let n = &nodes[i];
                let axis = n.op.checked_gather_axis().unwrap_or(0);
                (n.name.clone(), sched.shapes[&n.inputs[0].0][axis])
            })
            .collect();
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
        let mut reads = sched.reads_uninit_checked.clone();
        for v in snapshot {
            if !sched.assigns.contains(&v.0) && !reads.contains(&v.0) {
                reads.push(v.0);
            }
        }
        // Indices of gathers: fed ones are checked at every run, constant ones now.
        let mut index_checks = Vec::new();
        for &i in &sched.order {
            let n = &nodes[i];
            let Some(axis) = n.op.checked_gather_axis() else {
                continue;
            };
            if fusion.dead.contains(&i) {
                continue;
            }
            let (params, idx) = (n.inputs[0].0, n.inputs[1].0);
            let rows = sched.shapes[&params][axis];
            if fed(idx) {
                index_checks.push((idx, rows, n.name.clone()));
            } else if let Some(v) = nodes[idx].op.as_const() {
                check_indices(v, rows, &n.name)?;
            }
        }
        let mut scalar_updates: Vec<(usize, Option<i64>)> = Vec::new();
        for &i in &sched.order {
            let n = &nodes[i];
            if !n.op.mutates_variable() || fusion.dead.contains(&i) {
                continue;
            }
            let v = n.inputs[0].0;
            let vn = &nodes[v];
            if vn.dtype != DType::I64 || !vn.shape.is_empty() {
                continue;
            }
            let c = nodes[n.inputs[1].0].op.const_scalar();
            let inc = match (&n.op, c) {
                (Op::Assign(AssignOp::Add), Some(c)) => Some(c as i64),
                (Op::Assign(AssignOp::Sub), Some(c)) => Some(-(c as i64)),
                _ => None,
            };
            match scalar_updates.iter_mut().find(|(u, _)| *u == v) {
                Some((_, acc)) => *acc = acc.zip(inc).map(|(a, b)| a + b),
                None => scalar_updates.push((v, inc)),
            }
        }
        Ok(Plan {
            snapshot_pool: Arc::new(std::sync::Mutex::new(Vec::new())),
            scalar_updates,
            gather_checks,
            index_checks,
            reads,
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
            last_used: 0,
            reduce,
        })
    }

    /// The reduce point of a plan: the locations of the gradients `reduced` (each
    /// buffer range once) copied into one staging buffer after step `at`.
    fn reduce_point(
        &self,
        nodes: &[crate::graph::Node],
        sched: &Schedule,
        fusion: &Fusion,
        locs: &HashMap<usize, Loc>,
        reduced: &[usize],
        at: usize,
    ) -> Result<Option<ReducePoint>> {
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

    /// Records the work at node `i` as `fusion` decided.
    fn record(
        &mut self,
        rec: &mut Recorder,
        fusion: &Fusion,
        locs: &HashMap<usize, Loc>,
        sched: &Schedule,
        i: usize,
        out: Option<&Loc>,
    ) -> Result<()> {
        let graph = Arc::clone(&self.graph);
        let nodes = graph.nodes();
        let n = &nodes[i];
        let arg = |t: usize| Arg {
            loc: &locs[&t],
            dtype: nodes[t].dtype,
            shape: &sched.shapes[&t],
        };
        match fusion.actions.get(&i) {
            Some(Action::Skip) => Ok(()),
            Some(&Action::Epilogue { matmul, aux, code }) => {
                let m = &nodes[matmul];
                let (
                    Op::MatMul(MatMul {
                        transpose_a,
                        transpose_b,
                    }),
                    Some(out),
                ) = (&m.op, out)
                else {
                    return Ok(());
                };
                rec.matmul(
                    &arg(m.inputs[0].0),
                    &arg(m.inputs[1].0),
                    *transpose_a,
                    *transpose_b,
                    out,
                    &sched.shapes[&i],
                    Some((code, &locs[&aux])),
                )
            }
            Some(&Action::ColSum { matmul, reduce }) => {
                let m = &nodes[matmul];
                rec.matmul(
                    &arg(m.inputs[0].0),
                    &arg(m.inputs[1].0),
                    true,
                    false,
                    &locs[&matmul],
                    &sched.shapes[&matmul],
                    Some((4, &locs[&reduce])),
                )
            }
            Some(&Action::HeadXentGrad {
                matmul,
                bias,
                xent,
                hidden,
            }) => {
                let (m, xn) = (&nodes[matmul], &nodes[xent]);
                let (Op::Softmax(SoftmaxOp::XentGrad { sparse, dy }), Some(out)) = (&xn.op, out)
                else {
                    return Ok(());
                };
                let (labels, dy_loc) = (&locs[&xn.inputs[1].0], &locs[&xn.inputs[2].0]);
                match hidden {
                    None => rec.matmul_xent_grad(
                        &arg(m.inputs[0].0),
                        &arg(m.inputs[1].0),
                        &locs[&bias],
                        labels,
                        dy_loc,
                        *sparse,
                        dy.code(),
                        out,
                    ),
                    Some(h) => {
                        let m0 = &nodes[h.matmul];
                        rec.mlp_head_xent_grad(
                            &arg(m0.inputs[0].0),
                            &arg(m0.inputs[1].0),
                            &locs[&h.bias],
                            h.code,
                            &locs[&h.out],
                            &arg(m.inputs[1].0),
                            &locs[&bias],
                            labels,
                            dy_loc,
                            *sparse,
                            dy.code(),
                            out,
                        )
                    }
                }
            }
            Some(&Action::DenseBackward {
                matmul,
                reduce,
                dx,
                mask,
                dx_out,
                lower,
            }) => {
                let (m, d) = (&nodes[matmul], &nodes[dx]);
                let lower_x = lower.map(|(m1, _)| arg(nodes[m1].inputs[0].0));
                rec.dense_backward(
                    &arg(m.inputs[0].0),
                    &arg(m.inputs[1].0),
                    &arg(d.inputs[1].0),
                    &locs[&matmul],
                    &locs[&reduce],
                    &locs[&dx_out],
                    mask.map(|y| &locs[&y]),
                    lower
                        .zip(lower_x.as_ref())
                        .map(|((m1, r1), x1)| (x1, &locs[&m1], &locs[&r1])),
                )
            }
            Some(&Action::Optimizer { group, finish }) => {
                let grp = self.groups[group].clone();
                for (gnode, view) in fusion.grad_copies.get(&i).map(Vec::as_slice).unwrap_or(&[]) {
                    rec.copy(&locs[gnode], view);
                }
                let slots: Vec<&Loc> = grp.slot_arenas.iter().collect();
                let (Some(f), Some(book)) = (finish, grp.book.as_ref()) else {
                    let powers = grp.powers.map(|(a, b)| (&locs[&a], &locs[&b]));
                    return rec.apply(&grp.update(&slots, &locs[&grp.lr], powers), None);
                };
                // Adam reads the old powers from a copy, as invocation 0 replaces them in
                // the book (which is bound for writing, so not for reading).
                let old = match book.powers {
                    Some(_) => {
                        let bytes = book.stride + 4;
                        let copy = Loc::whole(self.buffer("old beta powers", bytes)?, bytes);
                        // Nothing in the run changes the powers before this update.
                        rec.prologue_copy(&book.buf.buf, 0, &copy.buf, 0, bytes);
                        Some((
                            Loc {
                                size: 4,
                                ..copy.clone()
                            },
                            Loc {
                                offset: book.stride,
                                size: 4,
                                ..copy
                            },
                        ))
                    }
                    None => None,
                };
                let increment = f
                    .step
                    .and_then(|(_, inc)| nodes[inc].op.const_scalar())
                    .map(|c| c as i64);
                let word = |bytes: u64| (bytes / 4) as u32;
                let bookkeeping = Bookkeeping {
                    book: &book.buf,
                    words: [0, word(book.stride), word(book.step_offset)],
                    bits: f.bits,
                    increment: increment.unwrap_or(0),
                };
                let powers = old.as_ref().map(|(a, b)| (a, b));
                rec.apply(
                    &grp.update(&slots, &locs[&grp.lr], powers),
                    Some(bookkeeping),
                )
            }
            None => match out {
                Some(out) => {
                    let args: Vec<Arg> = n.inputs.iter().map(|t| arg(t.0)).collect();
                    rec.node(&n.op, &args, out, n.dtype, &sched.shapes[&i])
                }
                None => Ok(()),
            },
        }
    }
}
