//! Backward fusions: bias gradients as the matmul's column sums, a dense layer's
//! whole backward pass in one dispatch, and two-layer backward chains.

use super::{Action, Ctx, Fusion};
use crate::ops::{MatMul, Op, ReduceOp, Reduction};

impl Fusion {
    pub(super) fn bias_gradients(&mut self, cx: &Ctx) {
        for &r in &cx.sched.order {
            let rn = &cx.nodes[r];
            let is_bias_grad = !cx.fed(r)
                && matches!(&rn.op, Op::Reduction(Reduction::Reduce { op: ReduceOp::Sum, axes, keep_dims: false }) if axes.as_slice() == [0])
                && cx.sched.shapes[&rn.inputs[0].0].len() == 2;
            if !is_bias_grad {
                continue;
            }
            let d = rn.inputs[0].0;
            let mm = cx.readers.get(&d).and_then(|rs| {
                rs.iter().copied().find(|&m| {
                    let mn = &cx.nodes[m];
                    matches!(
                        mn.op,
                        Op::MatMul(MatMul {
                            transpose_a: true,
                            transpose_b: false
                        })
                    ) && mn.inputs[1].0 == d
                        && mn.inputs[0].0 != d
                        && cx.sched.shapes[&m].len() == 2
                        && !self.actions.contains_key(&m)
                })
            });
            let Some(mm) = mm else { continue };
            let (early, late) = if cx.pos[&mm] < cx.pos[&r] {
                (mm, r)
            } else {
                (r, mm)
            };
            let read_before = cx
                .readers
                .get(&early)
                .is_some_and(|rs| rs.iter().any(|x| cx.pos[x] <= cx.pos[&late]));
            if read_before || self.actions.contains_key(&late) {
                continue;
            }
            self.actions.insert(
                late,
                Action::ColSum {
                    matmul: mm,
                    reduce: r,
                },
            );
            self.skip(early, late, true);
        }
    }

    pub(super) fn dense_backward(&mut self, cx: &Ctx) {
        let pairs: Vec<(usize, usize, usize)> = self
            .actions
            .iter()
            .filter_map(|(&at, a)| match a {
                Action::ColSum { matmul, reduce } => Some((at, *matmul, *reduce)),
                _ => None,
            })
            .collect();
        for (at, mm, r) in pairs {
            let dy = cx.nodes[mm].inputs[1].0;
            let w_shape_ok = |m: usize| cx.sched.shapes[&m].len() == 2;
            // dx = dy @ W^T, alone or as the head of a ReLU-gradient epilogue.
            let found = cx.readers.get(&dy).and_then(|rs| {
                rs.iter().copied().find_map(|d| {
                    let dn = &cx.nodes[d];
                    let is_dx = matches!(
                        dn.op,
                        Op::MatMul(MatMul {
                            transpose_a: false,
                            transpose_b: true
                        })
                    ) && dn.inputs[0].0 == dy
                        && dn.inputs[1].0 != dy
                        && w_shape_ok(d);
                    if !is_dx {
                        return None;
                    }
                    match (self.actions.get(&d), self.runs_at.get(&d)) {
                        (None, None) => Some((d, d, None)),
                        (Some(Action::Skip), Some(&tail)) => match self.actions.get(&tail) {
                            Some(&Action::Epilogue {
                                matmul,
                                aux,
                                code: 3,
                            }) if matmul == d => Some((d, tail, Some(aux))),
                            _ => None,
                        },
                        _ => None,
                    }
                })
            });
            let Some((d, x_node, mask)) = found else {
                continue;
            };
            let (early, late) = if cx.pos[&at] < cx.pos[&x_node] {
                (at, x_node)
            } else {
                (x_node, at)
            };
            // The earlier node's outputs (and those computed with it) are written late.
            let outs: Vec<usize> = if early == at {
                vec![mm, r]
            } else {
                vec![x_node]
            };
            let read_before = outs.iter().any(|o| {
                cx.readers
                    .get(o)
                    .is_some_and(|rs| rs.iter().any(|x| cx.pos[x] <= cx.pos[&late]))
            });
            if read_before {
                continue;
            }
            self.actions.insert(
                late,
                Action::DenseBackward {
                    matmul: mm,
                    reduce: r,
                    dx: d,
                    mask,
                    dx_out: x_node,
                    lower: None,
                },
            );
            self.actions.insert(early, Action::Skip);
            self.runs_at.insert(early, late);
            for v in self.runs_at.values_mut() {
                if *v == early {
                    *v = late;
                }
            }
        }
    }

    /// A dense layer's backward pass with at most 32 outputs also computes the kernel
    /// and bias gradients of the layer below (its `ColSum`) from the `dx` it produces.
    pub(super) fn backward_chains(&mut self, cx: &Ctx) {
        let uppers: Vec<(usize, usize, usize, usize, usize)> = self
            .actions
            .iter()
            .filter_map(|(&at, a)| match a {
                Action::DenseBackward {
                    matmul,
                    reduce,
                    dx,
                    dx_out,
                    lower: None,
                    ..
                } => Some((at, *matmul, *reduce, *dx, *dx_out)),
                _ => None,
            })
            .collect();
        for (at, mm, r, d, dx_out) in uppers {
            let dy = cx.nodes[mm].inputs[1].0;
            if cx.sched.shapes[&dy].get(1).is_none_or(|&c| c > 32) {
                continue;
            }
            let lower = self.actions.iter().find_map(|(&l, a)| match a {
                Action::ColSum { matmul, reduce }
                    if cx.nodes[*matmul].inputs[1].0 == dx_out
                        && cx.nodes[*matmul].inputs[0].0 != dx_out =>
                {
                    Some((l, *matmul, *reduce))
                }
                _ => None,
            });
            let Some((l, m1, r1)) = lower else { continue };
            if cx.pos[&l] < cx.pos[&at] {
                continue;
            }
            let mut ins: Vec<usize> = cx.nodes[mm].inputs.iter().map(|t| t.0).collect();
            ins.extend(cx.nodes[d].inputs.iter().map(|t| t.0));
            if let Some(Action::DenseBackward { mask: Some(y), .. }) = self.actions.get(&at) {
                ins.push(*y);
            }
            if !self.can_delay(cx, &[mm, r, dx_out], &[m1, r1], &ins, at, l) {
                continue;
            }
            let Some(Action::DenseBackward {
                matmul,
                reduce,
                dx,
                mask,
                dx_out,
                ..
            }) = self.actions.get(&at).cloned()
            else {
                continue;
            };
            self.move_to(at, l);
            self.actions.insert(
                l,
                Action::DenseBackward {
                    matmul,
                    reduce,
                    dx,
                    mask,
                    dx_out,
                    lower: Some((m1, r1)),
                },
            );
        }
    }
}
