//! Where each value of a run lives: the feeds in one buffer, variables and constants
//! in their persistent buffers, aliases (reshapes, updates) in their input's, and
//! every other value in a buffer pooled by liveness (released after its last reader,
//! reused best-fit).

use super::facts::DeviceGathers;
use super::{Ctx, FeedBuffer};
use crate::error::Result;
use crate::ops::Op;
use crate::runtime::kernels::{Loc, Recorder};
use crate::runtime::session::Session;
use std::collections::HashMap;
use std::sync::Arc;

/// The node whose buffer each value of the schedule lives in (reshapes and updates
/// alias their input).
fn value_roots(ctx: &Ctx) -> HashMap<usize, usize> {
    let mut root: HashMap<usize, usize> = HashMap::new();
    for &i in &ctx.sched.order {
        let n = &ctx.nodes[i];
        let r = match n.op {
            _ if ctx.fed(i) => i,
            _ if n.op.is_reshape() => root[&n.inputs[0].0],
            _ if n.op.mutates_variable() => n.inputs[0].0,
            _ => i,
        };
        root.insert(i, r);
    }
    root
}

/// The last schedule position at which each buffer is read (a fused node is read
/// where its kernel runs); fetched values are never released.
fn last_uses(ctx: &Ctx, root: &HashMap<usize, usize>, fetched: &[usize]) -> HashMap<usize, usize> {
    let pos: HashMap<usize, usize> = ctx
        .sched
        .order
        .iter()
        .enumerate()
        .map(|(p, &i)| (i, p))
        .collect();
    let mut last: HashMap<usize, usize> = HashMap::new();
    for (p, &i) in ctx.sched.order.iter().enumerate() {
        if ctx.fed(i) {
            continue;
        }
        let at = ctx.fusion.runs_at.get(&i).map_or(p, |t| pos[t]);
        for t in &ctx.nodes[i].inputs {
            let e = last.entry(root[&t.0]).or_insert(at);
            *e = (*e).max(at);
        }
    }
    for &t in fetched {
        last.insert(root[&t], usize::MAX);
    }
    last
}

/// Buffers of the run's intermediate values: those held by a value still to be read,
/// and those free for reuse.
#[derive(Default)]
struct Pool {
    held: HashMap<usize, wgpu::Buffer>,
    free: Vec<(u64, wgpu::Buffer)>,
}

impl Pool {
    /// The smallest free buffer of at least `bytes`, else `new()`, held by `owner`.
    fn take(
        &mut self,
        owner: usize,
        bytes: u64,
        new: impl FnOnce() -> Result<wgpu::Buffer>,
    ) -> Result<wgpu::Buffer> {
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, (s, _))| *s >= bytes.max(4))
            .min_by_key(|(_, (s, _))| *s)
            .map(|(k, _)| k);
        let buf = match best {
            Some(k) => self.free.swap_remove(k).1,
            None => new()?,
        };
        self.held.insert(owner, buf.clone());
        Ok(buf)
    }

    /// Frees the buffer `owner` holds, if any.
    fn release(&mut self, owner: usize) {
        if let Some(buf) = self.held.remove(&owner) {
            self.free.push((buf.size(), buf));
        }
    }
}

impl Session {
    /// One buffer holding every feed at aligned offsets (one upload per run) with its
    /// size, and each fed node's place in it.
    pub(super) fn feed_buffer(
        &self,
        ctx: &Ctx,
    ) -> Result<(Option<FeedBuffer>, HashMap<usize, Loc>)> {
        let align = u64::from(self.gpu.limits.min_storage_buffer_offset_alignment.max(4));
        let mut fed: Vec<usize> = ctx.sched.fed.clone();
        fed.sort_unstable();
        let mut end = 0u64;
        let mut offsets = Vec::with_capacity(fed.len());
        for &i in &fed {
            let bytes = ctx.bytes(i).max(4);
            let offset = end.div_ceil(align) * align;
            offsets.push((i, offset, bytes));
            end = offset + bytes;
        }
        if end == 0 {
            return Ok((None, HashMap::new()));
        }
        let buf = self.buffer("feeds", end)?;
        let feeds = offsets
            .into_iter()
            .map(|(i, offset, size)| {
                let loc = Loc {
                    buf: buf.clone(),
                    offset,
                    size,
                };
                (i, loc)
            })
            .collect();
        Ok((Some((buf, end)), feeds))
    }

    /// Where the value of node `i` goes; `None` when it has no buffer of its own.
    fn place(
        &mut self,
        ctx: &Ctx,
        i: usize,
        locs: &HashMap<usize, Loc>,
        pool: &mut Pool,
    ) -> Result<Option<Loc>> {
        let n = &ctx.nodes[i];
        let fusion = ctx.fusion;
        Ok(match &n.op {
            // Read for their shape only: any buffer serves as their location.
            _ if fusion.dead.contains(&i) => Some(self.placeholder_loc()?),
            _ if fusion.no_buffer.contains(&i) => None,
            _ if n.op.is_variable() => Some(self.var_loc(i)?),
            _ if n.op.is_constant() => Some(self.const_loc(i, &ctx.sched.shapes[&i])?),
            Op::NoOp => None,
            op if op.is_reshape() => locs.get(&n.inputs[0].0).cloned(),
            op if op.mutates_variable() => Some(self.var_loc(n.inputs[0].0)?),
            _ if fusion.preplaced.contains_key(&i) => fusion.preplaced.get(&i).cloned(),
            _ => {
                let bytes = ctx.bytes(i);
                let buf = pool.take(i, bytes, || self.buffer(&n.name, bytes))?;
                Some(Loc::whole(buf, bytes))
            }
        })
    }

    /// Records every node of the schedule in order into `rec`, placing each value
    /// (into `locs`) and releasing the buffers whose last reader has been recorded.
    /// Returns how many steps were recorded before schedule position `cut`, if given.
    pub(super) fn record_nodes(
        &mut self,
        rec: &mut Recorder,
        ctx: &Ctx,
        locs: &mut HashMap<usize, Loc>,
        fetched: &[usize],
        gathers: &DeviceGathers,
        cut: Option<usize>,
    ) -> Result<Option<usize>> {
        let root = value_roots(ctx);
        let last_use = last_uses(ctx, &root, fetched);
        let mut pool = Pool::default();
        let mut cut_step = None;
        for (p, &i) in ctx.sched.order.iter().enumerate() {
            if cut == Some(p) {
                cut_step = Some(rec.steps.len());
            }
            if ctx.fed(i) {
                continue;
            }
            let n = &ctx.nodes[i];
            let loc = self.place(ctx, i, locs, &mut pool)?;
            if let Some(loc) = &loc {
                locs.insert(i, loc.clone());
            }
            rec.node = Arc::from(n.name.as_str());
            rec.status = gathers.status_of(i);
            self.record(rec, ctx, locs, i, loc.as_ref())
                .map_err(|e| e.context(format!("node '{}'", n.name)))?;
            for t in n
                .inputs
                .iter()
                .map(|t| root[&t.0])
                .chain(std::iter::once(root[&i]))
            {
                if last_use.get(&t).is_none_or(|&l| l <= p) {
                    pool.release(t);
                }
            }
        }
        Ok(cut_step)
    }
}
