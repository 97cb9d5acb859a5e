//! Optimizer groups as one dispatch over their arenas, with the step's scalar
//! bookkeeping absorbed.

use super::{Action, Ctx, Finish, Fusion};
use crate::ops::{AssignOp, BinaryOp, Op, Rule, Source};
use crate::runtime::arena::ApplyGroup;
use crate::tensor::DType;
use std::collections::HashSet;

impl Fusion {
    pub(super) fn optimizer_groups(&mut self, cx: &Ctx, groups: &[ApplyGroup]) {
        let in_plan: HashSet<usize> = cx.sched.order.iter().copied().collect();
        for (gi, grp) in groups.iter().enumerate() {
            let (Some(&first), Some(&tail)) = (grp.members.first(), grp.members.last()) else {
                continue;
            };
            if !grp.members.iter().all(|m| in_plan.contains(m)) {
                continue;
            }
            // A node between the members that depends on one of them must see it done.
            let depends = cx.sched.order[cx.pos[&first]..=cx.pos[&tail]]
                .iter()
                .filter(|i| !grp.members.contains(i))
                .any(|&i| {
                    let n = &cx.nodes[i];
                    n.inputs
                        .iter()
                        .map(|t| t.0)
                        .chain(n.control_inputs.iter().map(|o| o.0))
                        .any(|d| grp.members.contains(&d))
                });
            if depends {
                continue;
            }
            let Some(ins) = Some(grp.rule.inputs()) else {
                continue;
            };
            for &m in &grp.members {
                if m != tail {
                    self.skip(m, tail, true);
                }
            }
            for (m, view) in grp.members.iter().zip(&grp.grad_views) {
                let gnode = cx.nodes[*m].inputs[ins.grad].0;
                let gn = &cx.nodes[gnode];
                let computed = !cx.fed(gnode)
                    && !matches!(
                        gn.op,
                        Op::Source(
                            Source::Variable { .. }
                                | Source::Const(_)
                                | Source::InitialValue { .. }
                        ) | Op::NoOp
                    )
                    && !gn.op.is_reshape()
                    && !gn.op.mutates_variable();
                // A kernel cannot read the arena it writes: such gradients are copied.
                let reads_arena = gn.inputs.iter().any(|t| {
                    self.preplaced
                        .get(&t.0)
                        .is_some_and(|l| l.buf == grp.grad_arena.buf)
                });
                if computed && !reads_arena && !self.preplaced.contains_key(&gnode) {
                    self.preplaced.insert(gnode, view.clone());
                } else {
                    // Read at the tail: the members' inputs are read there (`runs_at`).
                    self.grad_copies
                        .entry(tail)
                        .or_default()
                        .push((gnode, view.clone()));
                }
            }
            let finish = self.finish(cx, grp, tail);
            self.actions
                .insert(tail, Action::Optimizer { group: gi, finish });
        }
    }

    /// The bookkeeping after the group's update that can run in its dispatch.
    fn finish(&mut self, cx: &Ctx, grp: &ApplyGroup, tail: usize) -> Option<Finish> {
        let after = |i: usize| cx.pos[&i] > cx.pos[&tail] && !cx.fetched.contains(&i);
        let mut bits = 0;
        let mut local: Vec<usize> = Vec::new();
        let mut powers = None;
        if let (Some((b1, b2)), Rule::Adam { beta1, beta2, .. }) = (grp.powers, &grp.rule) {
            // `assign(p, p * beta)` with nothing else reading `p * beta`.
            let find = |pv: usize, beta: f32| {
                cx.sched.order.iter().copied().find_map(|a| {
                    let an = &cx.nodes[a];
                    if !matches!(an.op, Op::Assign(AssignOp::Assign))
                        || an.inputs[0].0 != pv
                        || !after(a)
                    {
                        return None;
                    }
                    let m = an.inputs[1].0;
                    let mn = &cx.nodes[m];
                    let is_scale = matches!(mn.op, Op::Binary(BinaryOp::Mul))
                        && mn.inputs[0].0 == pv
                        && cx.const_scalar(mn.inputs[1].0) == Some(f64::from(beta))
                        && cx.readers.get(&m).is_some_and(|r| r == &[a])
                        && !cx.fetched.contains(&m);
                    is_scale.then_some((m, a))
                })
            };
            let in_book = grp
                .book
                .as_ref()
                .is_some_and(|b| b.powers == Some((b1, b2)));
            if let (true, Some(p1), Some(p2)) = (in_book, find(b1, *beta1), find(b2, *beta2)) {
                bits |= 1;
                local.extend([p1.0, p1.1, p2.0, p2.1]);
                powers = Some((b1, b2));
            }
        }
        let after_group = |c: usize| {
            grp.members.contains(&c)
                || (matches!(cx.nodes[c].op, Op::NoOp)
                    && cx.nodes[c]
                        .control_inputs
                        .iter()
                        .all(|d| grp.members.contains(&d.0) || local.contains(&d.0)))
        };
        // `step += c` (int64 scalar) ordered after the update.
        let step_node = cx.sched.order.iter().copied().find(|&s| {
            let sn = &cx.nodes[s];
            matches!(sn.op, Op::Assign(AssignOp::Add))
                && sn.dtype == DType::I64
                && sn.shape.is_empty()
                && after(s)
                && grp
                    .book
                    .as_ref()
                    .is_some_and(|b| b.step == Some(sn.inputs[0].0))
                && cx.const_scalar(sn.inputs[1].0).is_some()
                && sn.control_inputs.iter().any(|c| after_group(c.0))
        });
        let mut step = None;
        if let Some(sn) = step_node {
            bits |= 2;
            local.push(sn);
            step = Some((cx.nodes[sn].inputs[0].0, cx.nodes[sn].inputs[1].0));
        }
        if bits == 0 {
            return None;
        }
        // Nothing else may read the updated scalars between the update and the absorbed
        // nodes: after the fused dispatch they already hold their new values.
        let watched: Vec<usize> = powers
            .map(|(a, b)| vec![a, b])
            .unwrap_or_default()
            .into_iter()
            .chain(step.map(|s| s.0))
            .collect();
        let last = local
            .iter()
            .map(|i| cx.pos[i])
            .max()
            .unwrap_or(cx.pos[&tail]);
        let clash = cx.sched.order[cx.pos[&tail] + 1..=last].iter().any(|&i| {
            !local.contains(&i) && cx.nodes[i].inputs.iter().any(|t| watched.contains(&t.0))
        });
        if clash {
            return None;
        }
        for n in local {
            let buffer = cx.nodes[n].op.mutates_variable();
            self.actions.insert(n, Action::Skip);
            if !buffer {
                self.no_buffer.insert(n);
            }
        }
        Some(Finish { bits, step })
    }
}
