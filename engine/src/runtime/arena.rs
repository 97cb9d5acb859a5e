//! Parameter arenas: the variables, optimizer slots and gradients of a group of
//! optimizer updates laid out in one buffer each, with the same layout, so the whole
//! group updates in one dispatch and a snapshot of it is one copy.

use super::device::Gpu;
use super::kernels::Loc;
use crate::error::Result;
use crate::graph::{Graph, Node};
use crate::ops::{AssignOp, Op, Rule};
use crate::runtime::kernels::Update;
use crate::tensor::DType;
use std::collections::HashSet;

/// Optimizer updates of one kind sharing hyperparameters, learning rate and beta powers,
/// whose variables, slots and gradients live in arenas with one layout.
#[derive(Clone)]
pub(crate) struct ApplyGroup {
    /// The update nodes, in graph order.
    pub members: Vec<usize>,
    /// The rule of the members (same hyperparameters).
    pub rule: Rule,
    /// The learning-rate tensor.
    pub lr: usize,
    /// Adam's beta-power variables.
    pub powers: Option<(usize, usize)>,
    /// The variables.
    pub var_arena: Loc,
    /// One arena per slot (Adam's m and v, ...).
    pub slot_arenas: Vec<Loc>,
    /// The gradients.
    pub grad_arena: Loc,
    /// The gradient view of each member, in member order.
    pub grad_views: Vec<Loc>,
    /// 32-bit words the fused update covers (alignment padding included; padding holds
    /// zeros, which every update rule maps to zeros).
    pub words: usize,
    /// The scalars the step's bookkeeping updates, when the group has any.
    pub book: Option<Book>,
}

impl ApplyGroup {
    /// The group's fused update over its arenas (`slots`: the slot arenas, bound).
    pub fn update<'a>(
        &'a self,
        slots: &'a [&'a Loc],
        lr: &'a Loc,
        powers: Option<(&'a Loc, &'a Loc)>,
    ) -> Update<'a> {
        Update {
            rule: &self.rule,
            var: &self.var_arena,
            slots,
            grad: &self.grad_arena,
            lr,
            powers,
            n: self.words,
        }
    }
}

/// One buffer holding a group's beta powers and the global step its train op
/// increments, so the fused update does that bookkeeping in place.
#[derive(Clone)]
pub(crate) struct Book {
    /// The whole buffer.
    pub buf: Loc,
    /// Byte spacing of the scalars (the storage offset alignment).
    pub stride: u64,
    /// (beta1_power, beta2_power) at offsets 0 and `stride`.
    pub powers: Option<(usize, usize)>,
    /// The step variable, at `step_offset`.
    pub step: Option<usize>,
    /// Byte offset of the step.
    pub step_offset: u64,
}

/// The arenas of a graph: groups, and the arena view of every variable in one.
pub(crate) struct Arenas {
    pub groups: Vec<ApplyGroup>,
    pub views: Vec<(usize, Loc)>,
}

/// The graph's update ops grouped: same op and hyperparameters, same learning rate and
/// powers; a variable updated by two ops stays in the first group only.
fn group_updates(nodes: &[Node]) -> Vec<Vec<usize>> {
    let mut claimed: HashSet<usize> = HashSet::new();
    let mut keyed: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let Some(ins) = n.op.update_inputs() else {
            continue;
        };
        let owned: Vec<usize> = std::iter::once(0)
            .chain(n.op.mutated_slots().iter().copied())
            .map(|k| n.inputs[k].0)
            .collect();
        let distinct = owned.iter().collect::<HashSet<_>>().len() == owned.len();
        if !distinct || owned.iter().any(|v| claimed.contains(v)) {
            continue;
        }
        claimed.extend(owned);
        let key = format!(
            "{:?} lr={} powers={:?}",
            n.op,
            n.inputs[ins.lr].0,
            ins.powers.map(|(a, b)| (n.inputs[a].0, n.inputs[b].0))
        );
        match keyed.iter_mut().find(|(k, _)| *k == key) {
            Some((_, m)) => m.push(i),
            None => keyed.push((key, vec![i])),
        }
    }
    keyed.into_iter().map(|(_, members)| members).collect()
}

/// The arenas of group `members` (views at offsets aligned to `align`), pushing the
/// view of each variable and slot onto `views`; `None` when the group is too large
/// for one binding of at most `max` bytes (its variables keep buffers of their own).
fn lay_out_group(
    nodes: &[Node],
    members: Vec<usize>,
    (align, max): (u64, u64),
    buffer: &impl Fn(&str, u64) -> Result<wgpu::Buffer>,
    views: &mut Vec<(usize, Loc)>,
) -> Result<Option<ApplyGroup>> {
    let first = &nodes[members[0]];
    let Op::Apply(rule) = &first.op else {
        return Ok(None);
    };
    let ins = rule.inputs();
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
        return Ok(None);
    }
    let arena = |label: &str| buffer(label, end).map(|b| Loc::whole(b, end));
    let var_arena = arena("parameter arena")?;
    let slot_arenas = (0..first.op.mutated_slots().len())
        .map(|_| arena("slot arena"))
        .collect::<Result<Vec<_>>>()?;
    let grad_arena = arena("gradient arena")?;
    let view = |a: &Loc, (offset, size): (u64, u64)| Loc {
        buf: a.buf.clone(),
        offset,
        size,
    };
    let mut grad_views = Vec::with_capacity(members.len());
    for (&m, &o) in members.iter().zip(&offsets) {
        let n = &nodes[m];
        views.push((n.inputs[0].0, view(&var_arena, o)));
        for (s, &k) in n.op.mutated_slots().iter().enumerate() {
            views.push((n.inputs[k].0, view(&slot_arenas[s], o)));
        }
        grad_views.push(view(&grad_arena, o));
    }
    Ok(Some(ApplyGroup {
        rule: rule.clone(),
        lr: first.inputs[ins.lr].0,
        powers: ins
            .powers
            .map(|(a, b)| (first.inputs[a].0, first.inputs[b].0)),
        members,
        var_arena,
        slot_arenas,
        grad_arena,
        grad_views,
        words: (end / 4) as usize,
        book: None,
    }))
}

/// The variable of the int64 scalar step that an `assign_add` increments once
/// group `grp`'s updates (and the assigns of its beta powers `power_assigns`) ran, if
/// there is one not `claimed` by another arena.
fn step_after(
    nodes: &[Node],
    grp: &ApplyGroup,
    power_assigns: &[usize],
    claimed: &HashSet<usize>,
) -> Option<usize> {
    let after_group = |c: usize| {
        grp.members.contains(&c)
            || (matches!(nodes[c].op, Op::NoOp)
                && nodes[c]
                    .control_inputs
                    .iter()
                    .all(|d| grp.members.contains(&d.0) || power_assigns.contains(&d.0)))
    };
    nodes.iter().find_map(|n| {
        let v = n.inputs.first()?.0;
        let is_step = matches!(n.op, Op::Assign(AssignOp::Add))
            && n.dtype == DType::I64
            && n.shape.is_empty()
            && !claimed.contains(&v)
            && n.control_inputs.iter().any(|c| after_group(c.0));
        is_step.then_some(v)
    })
}

/// Gives each group that has them a book: Adam's powers, and a step incremented after
/// the group's updates, in one buffer (pushing their views onto `out.views`).
fn add_books(
    nodes: &[Node],
    out: &mut Arenas,
    align: u64,
    buffer: &impl Fn(&str, u64) -> Result<wgpu::Buffer>,
) -> Result<()> {
    let mut claimed: HashSet<usize> = out.views.iter().map(|(v, _)| *v).collect();
    for grp in &mut out.groups {
        let powers = grp
            .powers
            .filter(|(a, b)| a != b && !claimed.contains(a) && !claimed.contains(b));
        let power_assigns: Vec<usize> = match powers {
            Some((a, b)) => (0..nodes.len())
                .filter(|&i| {
                    matches!(nodes[i].op, Op::Assign(AssignOp::Assign))
                        && [a, b].contains(&nodes[i].inputs[0].0)
                })
                .collect(),
            None => Vec::new(),
        };
        let step = step_after(nodes, grp, &power_assigns, &claimed);
        if powers.is_none() && step.is_none() {
            continue;
        }
        let stride = align.max(8);
        let step_offset = if powers.is_some() { 2 * stride } else { 0 };
        let size = step_offset + 8;
        let buf = Loc::whole(buffer("optimizer book", size)?, size);
        let view = |offset: u64, size: u64| Loc {
            buf: buf.buf.clone(),
            offset,
            size,
        };
        if let Some((a, b)) = powers {
            out.views.push((a, view(0, 4)));
            out.views.push((b, view(stride, 4)));
            claimed.extend([a, b]);
        }
        if let Some(s) = step {
            out.views.push((s, view(step_offset, 8)));
            claimed.insert(s);
        }
        grp.book = Some(Book {
            buf,
            stride,
            powers,
            step,
            step_offset,
        });
    }
    Ok(())
}

/// Groups the graph's update ops (see [`group_updates`]) and lays out their arenas
/// with views aligned to the device's storage offset alignment, and their books.
pub(crate) fn plan_arenas(
    graph: &Graph,
    gpu: &Gpu,
    buffer: impl Fn(&str, u64) -> Result<wgpu::Buffer>,
) -> Result<Arenas> {
    let nodes = graph.nodes();
    let align = u64::from(gpu.limits.min_storage_buffer_offset_alignment.max(4));
    let max = gpu
        .limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size);
    let mut out = Arenas {
        groups: Vec::new(),
        views: Vec::new(),
    };
    for members in group_updates(nodes) {
        if let Some(g) = lay_out_group(nodes, members, (align, max), &buffer, &mut out.views)? {
            out.groups.push(g);
        }
    }
    add_books(nodes, &mut out, align, &buffer)?;
    Ok(out)
}
