//! What a plan knows on the host about its run: the gathers whose indices are checked
//! (fed ones at every run, constant ones once, device-computed ones through a status
//! word), the variables it reads, and how it moves the int64 scalars (the global step).

use super::Ctx;
use crate::error::{Error, Result};
use crate::graph::Tensor;
use crate::ops::{AssignOp, Op};
use crate::runtime::kernels::{Loc, Recorder, Step};
use crate::runtime::session::Session;
use crate::tensor::{DType, HostTensor};

/// InvalidArgument when an index of `indices` is outside `[0, rows)`.
pub(crate) fn check_indices(indices: &HostTensor, rows: usize, gather: &str) -> Result<()> {
    for k in 0..indices.len() {
        let v = indices.get_f64(k);
        if v < 0.0 || v >= rows as f64 {
            return Err(Error::invalid_argument(format!(
                "indices[{k}] = {v} is not in [0, {rows}) (gather '{gather}')"
            )));
        }
    }
    Ok(())
}

/// The gathers that index with values computed on the device: they report a bad index
/// through the plan's status words (cleared first, read back with the run).
pub(super) struct DeviceGathers {
    nodes: Vec<usize>,
    pub(super) status: Option<Loc>,
}

impl DeviceGathers {
    /// The status word node `i` writes to, with its number (from 1), if it is one.
    pub(super) fn status_of(&self, i: usize) -> Option<(Loc, u32)> {
        let k = self.nodes.iter().position(|&g| g == i)?;
        Some((self.status.clone()?, k as u32 + 1))
    }

    /// Each gather's name and the rows it indexes, in status-number order.
    pub(super) fn checks(&self, ctx: &Ctx) -> Vec<(String, usize)> {
        self.nodes
            .iter()
            .map(|&i| {
                let n = &ctx.nodes[i];
                let axis = n.op.checked_gather_axis().unwrap_or(0);
                (n.name.clone(), ctx.sched.shapes[&n.inputs[0].0][axis])
            })
            .collect()
    }
}

impl Session {
    /// The run's device-indexed gathers, and their status buffer cleared by `rec`'s
    /// prologue.
    pub(super) fn device_gathers(&self, ctx: &Ctx, rec: &mut Recorder) -> Result<DeviceGathers> {
        let nodes: Vec<usize> = ctx
            .sched
            .order
            .iter()
            .copied()
            .filter(|&i| {
                let n = &ctx.nodes[i];
                let idx = n.inputs.get(1).map(|t| t.0);
                n.op.checked_gather_axis().is_some()
                    && !ctx.fusion.dead.contains(&i)
                    && idx.is_some_and(|k| !ctx.fed(k) && ctx.nodes[k].op.as_const().is_none())
            })
            .collect();
        let status = if nodes.is_empty() {
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
        Ok(DeviceGathers { nodes, status })
    }
}

/// The fed index tensors checked at every run (node, rows, gather); constant indices
/// are checked now.
pub(super) fn index_checks(ctx: &Ctx) -> Result<Vec<(usize, usize, String)>> {
    let mut checks = Vec::new();
    for &i in &ctx.sched.order {
        let n = &ctx.nodes[i];
        let Some(axis) = n.op.checked_gather_axis() else {
            continue;
        };
        if ctx.fusion.dead.contains(&i) {
            continue;
        }
        let (params, idx) = (n.inputs[0].0, n.inputs[1].0);
        let rows = ctx.sched.shapes[&params][axis];
        if ctx.fed(idx) {
            checks.push((idx, rows, n.name.clone()));
        } else if let Some(v) = ctx.nodes[idx].op.as_const() {
            check_indices(v, rows, &n.name)?;
        }
    }
    Ok(checks)
}

/// The variables the run must find initialized: those it reads before assigning, and
/// the snapshotted ones it does not assign.
pub(super) fn reads(ctx: &Ctx, snapshot: &[Tensor]) -> Vec<usize> {
    let mut reads = ctx.sched.reads_uninit_checked.clone();
    for v in snapshot {
        if !ctx.sched.assigns.contains(&v.0) && !reads.contains(&v.0) {
            reads.push(v.0);
        }
    }
    reads
}

/// How the run moves each int64 scalar variable it updates: by a constant increment
/// (summed over its updates), or `None` when the host cannot know.
pub(super) fn scalar_updates(ctx: &Ctx) -> Vec<(usize, Option<i64>)> {
    let nodes = ctx.nodes;
    let mut updates: Vec<(usize, Option<i64>)> = Vec::new();
    for &i in &ctx.sched.order {
        let n = &nodes[i];
        if !n.op.mutates_variable() || ctx.fusion.dead.contains(&i) {
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
        match updates.iter_mut().find(|(u, _)| *u == v) {
            Some((_, acc)) => *acc = acc.zip(inc).map(|(a, b)| a + b),
            None => updates.push((v, inc)),
        }
    }
    updates
}
