//! The [`Session`]: plans each distinct run once and replays it on the device.

use super::device::{AdapterSummary, Gpu, SessionConfig};
use super::kernels::{Arg, Loc, Recorder, Step};
use crate::error::{Error, Result};
use crate::exec::{Schedule, schedule, uninitialized};
use crate::graph::{Graph, Operation, Tensor};
use crate::ops::Op;
use crate::rng::initial_value;
use crate::tensor::{DType, HostTensor};
use crossbeam_channel::{Receiver, Sender};
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use wgpu::util::DeviceExt;

/// Counters of device work, for benchmarks and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Kernel dispatches recorded by the last run.
    pub dispatches: usize,
    /// Queue submissions made by the last run.
    pub submissions: usize,
    /// Bytes read back to the host by the last run.
    pub readback_bytes: u64,
    /// Distinct plans built so far.
    pub plans: usize,
    /// Runs so far.
    pub runs: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PlanKey {
    feeds: Vec<(usize, Vec<usize>)>,
    fetches: Vec<usize>,
    targets: Vec<usize>,
    snapshot: Vec<usize>,
}

struct Slot {
    loc: Loc,
    offset: u64,
    dtype: DType,
    shape: Vec<usize>,
}

struct Plan {
    reads: Vec<usize>,
    assigns: Vec<usize>,
    feeds: HashMap<usize, Loc>,
    steps: Vec<Step>,
    dispatches: usize,
    fetch_slots: Vec<Slot>,
    fetch_staging: Option<(wgpu::Buffer, u64)>,
    snapshot_slots: Vec<Slot>,
    snapshot_size: u64,
}

/// Optimizer updates of one kind sharing hyperparameters, learning rate and beta powers,
/// whose variables, slots and gradients live in arenas with one layout: when a run
/// contains all of them, they run as one dispatch over the arenas.
#[derive(Clone)]
struct ApplyGroup {
    members: Vec<usize>,
    template: Op,
    lr: usize,
    powers: Option<(usize, usize)>,
    var_arena: Loc,
    slot_arenas: Vec<Loc>,
    grad_arena: Loc,
    /// Gradient view of each member, in member order.
    grad_views: Vec<Loc>,
    /// 32-bit words covered by the fused update (padding included).
    words: usize,
}

/// Input positions of (learning rate, gradient, beta powers) of an optimizer update.
fn apply_inputs(op: &Op) -> Option<(usize, usize, Option<(usize, usize)>)> {
    match op {
        Op::ApplyGradientDescent => Some((1, 2, None)),
        Op::ApplyMomentum { .. } => Some((2, 3, None)),
        Op::ApplyAdam { .. } => Some((5, 6, Some((3, 4)))),
        Op::ApplyRmsProp { .. } => Some((3, 4, None)),
        _ => None,
    }
}

struct VarSlot {
    loc: Loc,
    initialized: bool,
}

/// Bytes of variables on their way from the device, delivered by the readback thread.
///
/// Created by [`Session::snapshot_variables`] or [`Session::run_and_snapshot`]: the device
/// copy is recorded with the submission, the mapping and the copy to host memory happen
/// on another thread, so the training thread never waits for them.
pub struct Snapshot {
    rx: Receiver<Result<Vec<HostTensor>>>,
}

impl Snapshot {
    /// Blocks until the bytes arrive.
    pub fn wait(self) -> Result<Vec<HostTensor>> {
        self.rx
            .recv()
            .map_err(|_| Error::aborted("the snapshot's readback thread stopped"))?
    }

    /// The bytes if they have arrived.
    pub fn try_get(&self) -> Option<Result<Vec<HostTensor>>> {
        self.rx.try_recv().ok()
    }

    /// The channel the bytes arrive on (for `select!`).
    pub fn receiver(&self) -> &Receiver<Result<Vec<HostTensor>>> {
        &self.rx
    }
}

struct ReadbackJob {
    staging: wgpu::Buffer,
    index: wgpu::SubmissionIndex,
    layout: Vec<(u64, DType, Vec<usize>)>,
    reply: Sender<Result<Vec<HostTensor>>>,
}

fn map_and_read(
    device: &wgpu::Device,
    staging: &wgpu::Buffer,
    index: wgpu::SubmissionIndex,
    layout: &[(u64, DType, Vec<usize>)],
) -> Result<Vec<HostTensor>> {
    let slice = staging.slice(..);
    let (tx, rx) = crossbeam_channel::bounded(1);
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: None,
        })
        .map_err(|e| Error::aborted(format!("waiting for the device: {e}")))?;
    rx.recv()
        .map_err(|_| Error::aborted("buffer mapping was dropped"))?
        .map_err(|e| Error::aborted(format!("mapping a readback buffer: {e}")))?;
    let out = {
        let data = slice
            .get_mapped_range()
            .map_err(|e| Error::internal(format!("reading a mapped buffer: {e}")))?;
        layout
            .iter()
            .map(|(off, dtype, shape)| {
                let len = (shape.iter().product::<usize>() * dtype.device_size()) as u64;
                let bytes = &data[*off as usize..(*off + len) as usize];
                HostTensor::from_device_bytes(*dtype, shape, bytes)
            })
            .collect()
    };
    staging.unmap();
    Ok(out)
}

/// A graph bound to a device: variables live in device buffers between runs.
///
/// See the crate documentation for the contract of [`run`](Session::run).
pub struct Session {
    graph: Arc<Graph>,
    gpu: Arc<Gpu>,
    vars: HashMap<usize, VarSlot>,
    consts: HashMap<usize, Loc>,
    plans: HashMap<PlanKey, Plan>,
    groups: Vec<ApplyGroup>,
    stats: RunStats,
    jobs: Option<Sender<ReadbackJob>>,
    worker: Option<JoinHandle<()>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

fn storage_usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

fn align8(x: u64) -> u64 {
    x.div_ceil(8) * 8
}

impl Session {
    /// A session running `graph` on the device chosen by `config`.
    ///
    /// Fails with NotFound (and how to get an adapter) when there is none.
    pub fn new(graph: impl Into<Arc<Graph>>, config: SessionConfig) -> Result<Session> {
        let gpu = Gpu::shared(&config)?;
        let (tx, rx) = crossbeam_channel::bounded::<ReadbackJob>(64);
        let device = gpu.device.clone();
        let worker = std::thread::Builder::new()
            .name("wgtrain-readback".into())
            .spawn(move || {
                for job in rx {
                    let r = map_and_read(&device, &job.staging, job.index, &job.layout);
                    let _ = job.reply.send(r);
                }
            })
            .map_err(|e| Error::resource_exhausted(format!("starting the readback thread: {e}")))?;
        let mut sess = Session {
            graph: graph.into(),
            gpu,
            vars: HashMap::new(),
            consts: HashMap::new(),
            plans: HashMap::new(),
            groups: Vec::new(),
            stats: RunStats::default(),
            jobs: Some(tx),
            worker: Some(worker),
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

    /// Counters of the last run and totals.
    pub fn stats(&self) -> RunStats {
        self.stats
    }

    fn buffer(&self, what: &str, bytes: u64) -> Result<wgpu::Buffer> {
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

    /// Lays out the variables, slots and gradients of each group of optimizer updates in
    /// arenas (one buffer each, views aligned to the device's storage offset alignment).
    fn plan_arenas(&mut self) -> Result<()> {
        let graph = Arc::clone(&self.graph);
        let nodes = graph.nodes();
        let mut claimed: std::collections::HashSet<usize> = std::collections::HashSet::new();
        let mut keyed: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let Some((lr, _, powers)) = apply_inputs(&n.op) else { continue };
            let owned: Vec<usize> = std::iter::once(0).chain(n.op.mutated_slots().iter().copied()).map(|k| n.inputs[k].0).collect();
            if owned.iter().any(|v| claimed.contains(v)) || owned.iter().collect::<std::collections::HashSet<_>>().len() != owned.len() {
                continue;
            }
            claimed.extend(owned);
            let key = format!("{:?} lr={} powers={:?}", n.op, n.inputs[lr].0, powers.map(|(a, b)| (n.inputs[a].0, n.inputs[b].0)));
            match keyed.iter_mut().find(|(k, _)| *k == key) {
                Some((_, m)) => m.push(i),
                None => keyed.push((key, vec![i])),
            }
        }
        let align = u64::from(self.gpu.limits.min_storage_buffer_offset_alignment.max(4));
        let max = self.gpu.limits.max_storage_buffer_binding_size.min(self.gpu.limits.max_buffer_size);
        for (_, members) in keyed {
            let first = &nodes[members[0]];
            let Some((lr, _, powers)) = apply_inputs(&first.op) else { continue };
            let mut offsets = Vec::with_capacity(members.len());
            let mut end = 0u64;
            for &m in &members {
                let var = &nodes[nodes[m].inputs[0].0];
                let bytes = (var.shape.iter().product::<i64>() as u64 * 4).max(4);
                let off = end.div_ceil(align) * align;
                offsets.push((off, bytes));
                end = off + bytes;
            }
            if end > max {
                continue;
            }
            let arena = |label: &str| -> Result<wgpu::Buffer> { self.buffer(label, end) };
            let var_arena = Loc::whole(arena("parameter arena")?, end);
            let slot_count = first.op.mutated_slots().len();
            let slot_arenas = (0..slot_count).map(|_| arena("slot arena").map(|b| Loc::whole(b, end))).collect::<Result<Vec<_>>>()?;
            let grad_arena = Loc::whole(arena("gradient arena")?, end);
            let view = |a: &Loc, (off, bytes): (u64, u64)| Loc { buf: a.buf.clone(), offset: off, size: bytes };
            let mut grad_views = Vec::with_capacity(members.len());
            for (&m, &o) in members.iter().zip(&offsets) {
                let n = &nodes[m];
                self.vars.insert(n.inputs[0].0, VarSlot { loc: view(&var_arena, o), initialized: false });
                for (s, &k) in n.op.mutated_slots().iter().enumerate() {
                    self.vars.insert(n.inputs[k].0, VarSlot { loc: view(&slot_arenas[s], o), initialized: false });
                }
                grad_views.push(view(&grad_arena, o));
            }
            self.groups.push(ApplyGroup {
                template: first.op.clone(),
                lr: first.inputs[lr].0,
                powers: powers.map(|(a, b)| (first.inputs[a].0, first.inputs[b].0)),
                members,
                var_arena,
                slot_arenas,
                grad_arena,
                grad_views,
                words: (end / 4) as usize,
            });
        }
        Ok(())
    }

    fn var_loc(&mut self, id: usize) -> Result<Loc> {
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

    fn const_loc(&mut self, id: usize, shape: &[usize]) -> Result<Loc> {
        if let Some(l) = self.consts.get(&id) {
            return Ok(l.clone());
        }
        let n = &self.graph.nodes()[id];
        let value = match &n.op {
            Op::Const(v) => v.clone(),
            Op::InitialValue { init, seed } => initial_value(init, n.dtype, shape, *seed),
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

    fn build_plan(
        &mut self,
        sched: &Schedule,
        fetches: &[Tensor],
        snapshot: &[Tensor],
    ) -> Result<Plan> {
        let graph = Arc::clone(&self.graph);
        let nodes = graph.nodes();
        let gpu = Arc::clone(&self.gpu);
        let mut rec = Recorder::new(&gpu);
        let pos: HashMap<usize, usize> = sched.order.iter().enumerate().map(|(p, &i)| (i, p)).collect();
        // The node whose buffer a value lives in.
        let mut root: HashMap<usize, usize> = HashMap::new();
        for &i in &sched.order {
            let n = &nodes[i];
            let r = if sched.fed.contains(&i) {
                i
            } else {
                match n.op {
                    Op::Reshape(_) | Op::ReshapeLike => root[&n.inputs[0].0],
                    _ if n.op.mutates_variable() => n.inputs[0].0,
                    _ => i,
                }
            };
            root.insert(i, r);
        }
        // Matmul epilogues: MatMul -> BiasAdd [-> Relu] and MatMul -> ReluGrad run as one
        // kernel at the chain's last node when no one else reads the values in between.
        let fed = |i: usize| sched.fed.contains(&i);
        let fetched: std::collections::HashSet<usize> = fetches.iter().map(|t| t.0).collect();
        let mut readers: HashMap<usize, Vec<usize>> = HashMap::new();
        for &i in &sched.order {
            if !fed(i) {
                for t in &nodes[i].inputs {
                    readers.entry(t.0).or_default().push(i);
                }
            }
        }
        let sole_reader = |i: usize| -> Option<usize> {
            match readers.get(&i).map(Vec::as_slice) {
                Some([r]) if !fetched.contains(&i) && !fed(*r) => Some(*r),
                _ => None,
            }
        };
        let mut epilogue: HashMap<usize, (usize, usize, u32)> = HashMap::new();
        let mut inner: HashMap<usize, usize> = HashMap::new();
        for &i in &sched.order {
            if fed(i) || !matches!(nodes[i].op, Op::MatMul { .. }) {
                continue;
            }
            let Some(c) = sole_reader(i) else { continue };
            let cn = &nodes[c];
            match cn.op {
                Op::BiasAdd if cn.inputs[0].0 == i => {
                    let relu = sole_reader(c).filter(|&r| matches!(nodes[r].op, Op::Unary(crate::ops::UnaryOp::Relu)));
                    let tail = relu.unwrap_or(c);
                    epilogue.insert(tail, (i, cn.inputs[1].0, if relu.is_some() { 2 } else { 1 }));
                    inner.insert(i, tail);
                    if relu.is_some() {
                        inner.insert(c, tail);
                    }
                }
                Op::Binary(crate::ops::BinaryOp::ReluGrad)
                    if cn.inputs[0].0 == i && cn.inputs[1].0 != i && sched.shapes[&cn.inputs[1].0] == sched.shapes[&i] =>
                {
                    epilogue.insert(c, (i, cn.inputs[1].0, 3));
                    inner.insert(i, c);
                }
                _ => {}
            }
        }
        // Bias gradients: sum(dy, axis 0) beside x^T @ dy runs in the matmul's kernel, at
        // the later of the two nodes, when no one reads the earlier one before then.
        let mut colsum: HashMap<usize, (usize, usize)> = HashMap::new();
        let mut deferred: HashMap<usize, usize> = HashMap::new();
        for &r in &sched.order {
            let rn = &nodes[r];
            let is_bias_grad = !fed(r)
                && matches!(&rn.op, Op::Reduce { op: crate::ops::ReduceOp::Sum, axes, keep_dims: false } if axes.as_slice() == [0])
                && sched.shapes[&rn.inputs[0].0].len() == 2;
            if !is_bias_grad {
                continue;
            }
            let d = rn.inputs[0].0;
            let mm = readers.get(&d).and_then(|rs| {
                rs.iter().copied().find(|&m| {
                    let mn = &nodes[m];
                    matches!(mn.op, Op::MatMul { transpose_a: true, transpose_b: false })
                        && mn.inputs[1].0 == d
                        && mn.inputs[0].0 != d
                        && sched.shapes[&m].len() == 2
                        && !inner.contains_key(&m)
                        && !epilogue.contains_key(&m)
                        && !deferred.contains_key(&m)
                        && !colsum.contains_key(&m)
                })
            });
            let Some(mm) = mm else { continue };
            let (early, late) = if pos[&mm] < pos[&r] { (mm, r) } else { (r, mm) };
            let early_read_late = readers.get(&early).is_some_and(|rs| rs.iter().any(|x| pos[x] <= pos[&late]));
            if early_read_late {
                continue;
            }
            colsum.insert(late, (mm, r));
            deferred.insert(early, late);
        }
        let mut last_use: HashMap<usize, usize> = HashMap::new();
        for (p, &i) in sched.order.iter().enumerate() {
            if fed(i) {
                continue;
            }
            let at = inner.get(&i).or(deferred.get(&i)).map_or(p, |t| pos[t]);
            for t in &nodes[i].inputs {
                let r = root[&t.0];
                let e = last_use.entry(r).or_insert(at);
                *e = (*e).max(at);
            }
        }
        for t in fetches {
            last_use.insert(root[&t.0], usize::MAX);
        }
        // Optimizer groups present in full run as one dispatch at their last member.
        let in_plan: std::collections::HashSet<usize> = sched.order.iter().copied().collect();
        let mut fused_at: HashMap<usize, usize> = HashMap::new();
        let mut fused_member: std::collections::HashSet<usize> = std::collections::HashSet::new();
        let mut preplaced: HashMap<usize, Loc> = HashMap::new();
        let mut grad_copies: HashMap<usize, Vec<(usize, Loc)>> = HashMap::new();
        for (gi, grp) in self.groups.iter().enumerate() {
            if !grp.members.iter().all(|m| in_plan.contains(m)) {
                continue;
            }
            let (lo, hi) = (pos[&grp.members[0]], pos[grp.members.last().unwrap_or(&grp.members[0])]);
            let depends = sched.order[lo..=hi].iter().filter(|i| !grp.members.contains(i)).any(|&i| {
                let n = &nodes[i];
                n.inputs.iter().map(|t| t.0).chain(n.control_inputs.iter().map(|o| o.0)).any(|d| grp.members.contains(&d))
            });
            if depends {
                continue;
            }
            let tail = *grp.members.last().unwrap_or(&grp.members[0]);
            fused_at.insert(tail, gi);
            fused_member.extend(grp.members.iter().copied());
            let Some((_, grad_k, _)) = apply_inputs(&grp.template) else { continue };
            for (m, view) in grp.members.iter().zip(&grp.grad_views) {
                let gnode = nodes[*m].inputs[grad_k].0;
                let gn = &nodes[gnode];
                let computed = !sched.fed.contains(&gnode)
                    && !matches!(gn.op, Op::Variable { .. } | Op::Const(_) | Op::InitialValue { .. } | Op::NoOp | Op::Reshape(_) | Op::ReshapeLike)
                    && !gn.op.mutates_variable();
                let reads_arena = gn.inputs.iter().any(|t| preplaced.get(&t.0).is_some_and(|l| l.buf == grp.grad_arena.buf));
                if computed && !reads_arena && !preplaced.contains_key(&gnode) {
                    preplaced.insert(gnode, view.clone());
                } else {
                    grad_copies.entry(tail).or_default().push((gnode, view.clone()));
                }
            }
        }
        // Scalar bookkeeping after a fused update (Adam's beta powers `p = p * beta`, the
        // global step `step += c`) is absorbed into the fused dispatch when nothing else
        // reads those variables in between.
        let mut absorbed: std::collections::HashSet<usize> = std::collections::HashSet::new();
        let mut finishes: HashMap<usize, (u32, Option<(usize, usize)>, Option<(usize, usize)>)> = HashMap::new();
        for (&tail, &gi) in &fused_at {
            let grp = &self.groups[gi];
            let after = |i: usize| pos[&i] > pos[&tail] && !fetched.contains(&i);
            let const_scalar = |i: usize| match &nodes[i].op {
                Op::Const(v) if v.len() == 1 => Some(v.get_f64(0)),
                _ => None,
            };
            let mut bits = 0;
            let mut local: Vec<usize> = Vec::new();
            let mut power_nodes = None;
            if let (Some((b1, b2)), Op::ApplyAdam { beta1, beta2, .. }) = (grp.powers, &grp.template) {
                let find = |pv: usize, beta: f32| {
                    sched.order.iter().copied().find_map(|a| {
                        let an = &nodes[a];
                        if !matches!(an.op, Op::Assign(crate::ops::AssignOp::Assign)) || an.inputs[0].0 != pv || !after(a) {
                            return None;
                        }
                        let m = an.inputs[1].0;
                        let mn = &nodes[m];
                        let is_scale = matches!(mn.op, Op::Binary(crate::ops::BinaryOp::Mul))
                            && mn.inputs[0].0 == pv
                            && const_scalar(mn.inputs[1].0) == Some(f64::from(beta))
                            && readers.get(&m).is_some_and(|r| r == &[a])
                            && !fetched.contains(&m);
                        is_scale.then_some((m, a))
                    })
                };
                if let (Some(p1), Some(p2)) = (find(b1, *beta1), find(b2, *beta2)) {
                    bits |= 1;
                    local.extend([p1.0, p1.1, p2.0, p2.1]);
                    power_nodes = Some((b1, b2));
                }
            }
            let depends_on_group = |c: usize| {
                grp.members.contains(&c)
                    || (matches!(nodes[c].op, Op::NoOp) && nodes[c].control_inputs.iter().all(|d| grp.members.contains(&d.0) || local.contains(&d.0)))
            };
            let step_node = sched.order.iter().copied().find(|&s| {
                let sn = &nodes[s];
                matches!(sn.op, Op::Assign(crate::ops::AssignOp::Add))
                    && sn.dtype == DType::I64
                    && sn.shape.is_empty()
                    && after(s)
                    && const_scalar(sn.inputs[1].0).is_some()
                    && sn.control_inputs.iter().any(|c| depends_on_group(c.0))
            });
            let mut step = None;
            if let Some(sn) = step_node {
                bits |= 2;
                local.push(sn);
                step = Some((nodes[sn].inputs[0].0, nodes[sn].inputs[1].0));
            }
            if bits == 0 {
                continue;
            }
            // Nothing else may read the updated scalars between the update and the
            // absorbed nodes.
            let watched: Vec<usize> = power_nodes.map(|(a, b)| vec![a, b]).unwrap_or_default().into_iter().chain(step.map(|s| s.0)).collect();
            let last = local.iter().map(|i| pos[i]).max().unwrap_or(pos[&tail]);
            let clash = sched.order[pos[&tail] + 1..=last].iter().any(|&i| {
                !local.contains(&i) && nodes[i].inputs.iter().any(|t| watched.contains(&t.0))
            });
            if clash {
                continue;
            }
            absorbed.extend(local);
            finishes.insert(tail, (bits, power_nodes, step));
        }
        // Gradients copied into their arena at the fused update must live until then.
        for (tail, copies) in &grad_copies {
            for (gnode, _) in copies {
                let e = last_use.entry(root[gnode]).or_insert(pos[tail]);
                *e = (*e).max(pos[tail]);
            }
        }
        let mut locs: HashMap<usize, Loc> = HashMap::new();
        let mut feeds = HashMap::new();
        let mut pooled: HashMap<usize, wgpu::Buffer> = HashMap::new();
        let mut free: Vec<(u64, wgpu::Buffer)> = Vec::new();
        for (p, &i) in sched.order.iter().enumerate() {
            let n = &nodes[i];
            let shape = &sched.shapes[&i];
            let bytes = (shape.iter().product::<usize>() * n.dtype.device_size()) as u64;
            if sched.fed.contains(&i) {
                let loc = Loc::whole(self.buffer(&n.name, bytes)?, bytes);
                feeds.insert(i, loc.clone());
                locs.insert(i, loc);
                continue;
            }
            let loc = match &n.op {
                _ if inner.contains_key(&i) => None,
                _ if absorbed.contains(&i) && !n.op.mutates_variable() => None,
                Op::Variable { .. } => Some(self.var_loc(i)?),
                Op::Const(_) | Op::InitialValue { .. } => Some(self.const_loc(i, shape)?),
                Op::NoOp => None,
                Op::Reshape(_) | Op::ReshapeLike => locs.get(&n.inputs[0].0).cloned(),
                op if op.mutates_variable() => Some(self.var_loc(n.inputs[0].0)?),
                _ if preplaced.contains_key(&i) => preplaced.get(&i).cloned(),
                _ => {
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
            if let Some(&gi) = fused_at.get(&i) {
                let grp = self.groups[gi].clone();
                for (gnode, view) in grad_copies.get(&i).map(Vec::as_slice).unwrap_or(&[]) {
                    rec.copy(&locs[gnode], view);
                }
                let slots: Vec<&Loc> = grp.slot_arenas.iter().collect();
                let powers = grp.powers.map(|(a, b)| (&locs[&a], &locs[&b]));
                match finishes.get(&i) {
                    None => rec.apply(&grp.template, &grp.var_arena, &slots, &grp.grad_arena, &locs[&grp.lr], powers, grp.words, None),
                    Some(&(bits, power_nodes, step)) => {
                        let scratch = Loc::whole(self.buffer("optimizer scratch", 24)?, 24);
                        if let Some((var, inc)) = step {
                            let (v, c) = (self.var_loc(var)?, self.const_loc(inc, &[])?);
                            rec.copy_bytes(&v.buf, v.offset, &scratch.buf, 8, 8);
                            rec.copy_bytes(&c.buf, c.offset, &scratch.buf, 16, 8);
                        }
                        rec.apply(&grp.template, &grp.var_arena, &slots, &grp.grad_arena, &locs[&grp.lr], powers, grp.words, Some((bits, &scratch)))?;
                        if let Some((b1, b2)) = power_nodes {
                            let (l1, l2) = (self.var_loc(b1)?, self.var_loc(b2)?);
                            rec.copy_bytes(&scratch.buf, 0, &l1.buf, l1.offset, 4);
                            rec.copy_bytes(&scratch.buf, 4, &l2.buf, l2.offset, 4);
                        }
                        if let Some((var, _)) = step {
                            let v = self.var_loc(var)?;
                            rec.copy_bytes(&scratch.buf, 8, &v.buf, v.offset, 8);
                        }
                        Ok(())
                    }
                }
                .map_err(|e| e.context("fused optimizer update"))?;
            } else if let (Some(&(mm, aux, epi)), Some(out)) = (epilogue.get(&i), &loc) {
                let m = &nodes[mm];
                let Op::MatMul { transpose_a, transpose_b } = m.op else { continue };
                let arg = |t: usize| Arg { loc: &locs[&t], dtype: nodes[t].dtype, shape: &sched.shapes[&t] };
                rec.matmul(&arg(m.inputs[0].0), &arg(m.inputs[1].0), transpose_a, transpose_b, out, shape, Some((epi, &locs[&aux])))
                    .map_err(|e| e.context(format!("node '{}'", n.name)))?;
            } else if let Some(&(mm, r)) = colsum.get(&i) {
                let m = &nodes[mm];
                let arg = |t: usize| Arg { loc: &locs[&t], dtype: nodes[t].dtype, shape: &sched.shapes[&t] };
                rec.matmul(&arg(m.inputs[0].0), &arg(m.inputs[1].0), true, false, &locs[&mm], &sched.shapes[&mm], Some((4, &locs[&r])))
                    .map_err(|e| e.context(format!("node '{}'", n.name)))?;
            } else if deferred.contains_key(&i) {
                // Computed with its partner by one kernel at the later node.
            } else if absorbed.contains(&i) {
                // Done by the fused optimizer update.
            } else if inner.contains_key(&i) {
                // Computed by the fused kernel at the end of its chain.
            } else if fused_member.contains(&i) {
                // Runs with its group at the group's last member.
            } else if let Some(out) = &loc {
                let args: Vec<Arg> = n
                    .inputs
                    .iter()
                    .map(|t| Arg {
                        loc: &locs[&t.0],
                        dtype: nodes[t.0].dtype,
                        shape: &sched.shapes[&t.0],
                    })
                    .collect();
                rec.node(&n.op, &args, out, n.dtype, shape)
                    .map_err(|e| e.context(format!("node '{}'", n.name)))?;
            }
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
        let mut offset = 0u64;
        let mut fetch_slots = Vec::with_capacity(fetches.len());
        for t in fetches {
            let shape = sched.shapes[&t.0].clone();
            let dtype = nodes[t.0].dtype;
            fetch_slots.push(Slot {
                loc: locs[&t.0].clone(),
                offset,
                dtype,
                shape: shape.clone(),
            });
            offset += align8((shape.iter().product::<usize>() * dtype.device_size()) as u64);
        }
        let fetch_staging = if fetches.is_empty() {
            None
        } else {
            let buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("fetch staging"),
                size: offset.max(8),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            Some((buf, offset))
        };
        let mut snap_off = 0u64;
        let mut snapshot_slots = Vec::with_capacity(snapshot.len());
        for &v in snapshot {
            let loc = self.var_loc(v.0)?;
            let n = &nodes[v.0];
            let shape: Vec<usize> = n.shape.iter().map(|&d| d as usize).collect();
            snapshot_slots.push(Slot {
                loc,
                offset: snap_off,
                dtype: n.dtype,
                shape: shape.clone(),
            });
            snap_off += align8((shape.iter().product::<usize>() * n.dtype.device_size()) as u64);
        }
        let mut reads = sched.reads_uninit_checked.clone();
        for v in snapshot {
            if !sched.assigns.contains(&v.0) && !reads.contains(&v.0) {
                reads.push(v.0);
            }
        }
        Ok(Plan {
            reads,
            assigns: sched.assigns.clone(),
            feeds,
            dispatches: rec.dispatches,
            steps: rec.steps,
            fetch_slots,
            fetch_staging,
            snapshot_slots,
            snapshot_size: snap_off,
        })
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
        Ok(self.run_inner(feeds, fetches, targets, &[])?.0)
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
        let (out, snap) = self.run_inner(feeds, fetches, targets, snapshot)?;
        let snap = snap.ok_or_else(|| Error::internal("snapshot missing"))?;
        Ok((out, snap))
    }

    fn run_inner(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
        snapshot: &[Tensor],
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
            let feed_refs: Vec<(Tensor, &HostTensor)> =
                feeds.iter().map(|(t, v)| (*t, v)).collect();
            let sched = schedule(&self.graph, &feed_refs, fetches, targets)?;
            let plan = self.build_plan(&sched, fetches, snapshot)?;
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
        let plan = &self.plans[&key];
        for &v in &plan.reads {
            if !self.vars.get(&v).is_some_and(|s| s.initialized) {
                return Err(uninitialized(&self.graph, v));
            }
        }
        let gpu = Arc::clone(&self.gpu);
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        for (t, v) in feeds {
            if let Some(loc) = plan.feeds.get(&t.0)
                && !v.is_empty()
            {
                gpu.queue.write_buffer(&loc.buf, loc.offset, &v.device_bytes());
            }
        }
        let mut enc = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("wgtrain run"),
            });
        let mut i = 0;
        while i < plan.steps.len() {
            match &plan.steps[i] {
                Step::Dispatch { .. } => {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: None,
                    });
                    while let Some(Step::Dispatch {
                        pipeline,
                        bind_group,
                        groups,
                    }) = plan.steps.get(i)
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
        let mut readback = 0u64;
        if let Some((staging, _)) = &plan.fetch_staging {
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
            let buf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("snapshot staging"),
                size: plan.snapshot_size.max(8),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            for s in &plan.snapshot_slots {
                let len = (s.shape.iter().product::<usize>() * s.dtype.device_size()) as u64;
                if len > 0 {
                    enc.copy_buffer_to_buffer(&s.loc.buf, s.loc.offset, &buf, s.offset, len);
                }
            }
            Some(buf)
        };
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
        let assigns = plan.assigns.clone();
        let dispatches = plan.dispatches;
        let snap = match snap_staging {
            None => None,
            Some(buf) => {
                let layout = plan
                    .snapshot_slots
                    .iter()
                    .map(|s| (s.offset, s.dtype, s.shape.clone()))
                    .collect();
                let (tx, rx) = crossbeam_channel::bounded(1);
                let jobs = self
                    .jobs
                    .as_ref()
                    .ok_or_else(|| Error::internal("readback thread stopped"))?;
                jobs.send(ReadbackJob {
                    staging: buf,
                    index: index.clone(),
                    layout,
                    reply: tx,
                })
                .map_err(|_| Error::aborted("the readback thread stopped"))?;
                Some(Snapshot { rx })
            }
        };
        let outputs = match &plan.fetch_staging {
            None => Vec::new(),
            Some((staging, _)) => {
                let layout: Vec<(u64, DType, Vec<usize>)> = plan
                    .fetch_slots
                    .iter()
                    .map(|s| (s.offset, s.dtype, s.shape.clone()))
                    .collect();
                map_and_read(&gpu.device, staging, index, &layout)?
            }
        };
        for v in assigns {
            if let Some(s) = self.vars.get_mut(&v) {
                s.initialized = true;
            }
        }
        gpu.check_health()?;
        self.stats.dispatches = dispatches;
        self.stats.submissions = 1;
        self.stats.readback_bytes = readback;
        self.stats.runs += 1;
        Ok((outputs, snap))
    }

    /// Copies variables to the host (blocking).
    pub fn read_variables(&mut self, vars: &[Tensor]) -> Result<Vec<HostTensor>> {
        self.snapshot_variables(vars)?.wait()
    }

    /// Records a device copy of `vars` now and delivers their bytes later on a channel,
    /// without blocking (for checkpoint and summary writers).
    pub fn snapshot_variables(&mut self, vars: &[Tensor]) -> Result<Snapshot> {
        Ok(self.run_and_snapshot(&[], &[], &[], vars)?.1)
    }

    /// Writes host values into variables (all are validated before any is written) and
    /// marks them initialized.
    pub fn write_variables(&mut self, values: &[(Tensor, HostTensor)]) -> Result<()> {
        for (v, t) in values {
            self.graph.check(*v)?;
            let n = self.graph.node(*v);
            if !self.graph.is_variable(*v) {
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
        for (v, t) in values {
            let loc = self.var_loc(v.0)?;
            if !t.is_empty() {
                self.gpu.queue.write_buffer(&loc.buf, loc.offset, &t.device_bytes());
            }
            if let Some(s) = self.vars.get_mut(&v.0) {
                s.initialized = true;
            }
        }
        self.gpu.queue.submit(std::iter::empty());
        Ok(())
    }

    /// Whether variable `var` holds a value.
    pub fn is_initialized(&self, var: Tensor) -> bool {
        self.vars.get(&var.0).is_some_and(|s| s.initialized)
    }

    /// The global and local variables that hold no value yet (TF's
    /// `report_uninitialized_variables`).
    pub fn uninitialized_variables(&self) -> Vec<Tensor> {
        let mut all = self.graph.global_variables();
        all.extend(self.graph.local_variables());
        all.into_iter()
            .filter(|v| !self.is_initialized(*v))
            .collect()
    }
}
