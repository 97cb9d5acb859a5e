//! Fusion analysis: which nodes of a schedule run as one kernel.
//!
//! Pure analysis over the graph and one schedule; the planner records what it decides.
//! Every fusion preserves the values of the unfused graph (tests compare both against
//! the reference interpreter):
//!
//! - matmul epilogues: `MatMul -> BiasAdd [-> Relu]` and `MatMul -> ReluGrad` run as one
//!   matmul kernel at the chain's last node when no one else reads the values between;
//! - bias gradients: `sum(dy, axis 0)` beside `x^T @ dy` is computed in the matmul
//!   (column sums), at the later of the two nodes;
//! - a classifier head: `x @ W + b` whose only reader is the cross-entropy gradient (at
//!   most 32 classes) runs as one kernel computing the gradient from the logits;
//! - a dense layer's backward pass: with those, `dy @ W^T` (ReLU-masked or not) runs in
//!   the same dispatch;
//! - two layers at a classifier head (on adapters binding ten storage buffers a
//!   kernel): the head's kernel computes the dense layer below it (at most 64 units,
//!   32 rows a workgroup, no recomputation); a backward pass with at most 32 outputs
//!   also computes the kernel and bias gradients of the layer below from the `dx` it
//!   produces (from its own tile of `dx` when the batch has at most 32 rows, else
//!   recomputing the columns each workgroup needs);
//! - optimizer groups (see `arena.rs`) present in full run as one dispatch over their
//!   arenas at their last member, gradients computed straight into the gradient arena;
//! - values read only for their shape (the `like` input of `BroadcastLike`, `SumLike`,
//!   `ReshapeLike`, as gradients use them) are not computed at all;
//! - the step's scalar bookkeeping after such an update (Adam's `beta_power *= beta`,
//!   the global step's `+= 1`) is absorbed into that dispatch.

use super::arena::ApplyGroup;
use super::kernels::Loc;
use crate::exec::Schedule;
use crate::graph::Node;
use crate::ops::{
    AssignOp, BinaryOp, MatMul, Op, ReduceOp, Reduction, Rule, SoftmaxOp, Source, UnaryOp,
};
use crate::tensor::DType;
use std::collections::{HashMap, HashSet};

/// Scalar bookkeeping absorbed into a fused optimizer update.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Finish {
    /// FINISH bits of `optim.wgsl`: 1 beta powers, 2 global step.
    pub bits: u32,
    /// (step variable, increment constant).
    pub step: Option<(usize, usize)>,
}

/// What the planner records at a node.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    /// A matmul with an epilogue (matmul node, aux tensor, `EPI` code).
    Epilogue {
        matmul: usize,
        aux: usize,
        code: u32,
    },
    /// A kernel gradient with its bias gradient (matmul node, reduce node).
    ColSum { matmul: usize, reduce: usize },
    /// A dense layer's whole backward pass: the kernel and bias gradients (as `ColSum`)
    /// and the input gradient `dy @ W^T` (`dx`, a matmul node), ReLU-masked by `mask`,
    /// stored as the value of node `dx_out`.
    DenseBackward {
        matmul: usize,
        reduce: usize,
        dx: usize,
        mask: Option<usize>,
        dx_out: usize,
        /// The lower layer's kernel and bias gradients from `dx_out` (the matmul and
        /// reduce of its `ColSum`), computed in the same dispatch.
        lower: Option<(usize, usize)>,
    },
    /// A classifier head: the matmul and bias of an `Epilogue` (code 1) chain and the
    /// cross-entropy gradient reading its logits (node `xent`), with the hidden layer
    /// below computed in the same dispatch when it fits.
    HeadXentGrad {
        matmul: usize,
        bias: usize,
        xent: usize,
        hidden: Option<Hidden>,
    },
    /// A whole optimizer group in one dispatch.
    Optimizer {
        group: usize,
        finish: Option<Finish>,
    },
    /// Nothing here: a fused kernel elsewhere computes the node.
    Skip,
}

/// A dense layer (`Epilogue` code 1 or 2, at most 64 units) computed in the dispatch of
/// the classifier head reading it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hidden {
    pub matmul: usize,
    pub bias: usize,
    /// The chain's last node, whose value the head's dispatch writes.
    pub out: usize,
    pub code: u32,
}

/// The fusion decisions for one schedule.
#[derive(Default)]
pub(crate) struct Fusion {
    /// Nodes with a special action; the others record their own kernels.
    pub actions: HashMap<usize, Action>,
    /// Nodes whose inputs are read at another node's position (liveness).
    pub runs_at: HashMap<usize, usize>,
    /// Skipped nodes that need no output buffer.
    pub no_buffer: HashSet<usize>,
    /// Output locations fixed in advance (gradients in a gradient arena).
    pub preplaced: HashMap<usize, Loc>,
    /// Nodes whose value no one reads (read for their shape only): not computed.
    pub dead: HashSet<usize>,
    /// Gradients copied into their arena view before a fused update, by update node.
    pub grad_copies: HashMap<usize, Vec<(usize, Loc)>>,
}

struct Ctx<'a> {
    nodes: &'a [Node],
    sched: &'a Schedule,
    pos: HashMap<usize, usize>,
    readers: HashMap<usize, Vec<usize>>,
    fetched: HashSet<usize>,
}

impl Ctx<'_> {
    fn fed(&self, i: usize) -> bool {
        self.sched.fed.contains(&i)
    }

    /// The only reader of `i`, when `i` is not fetched.
    fn sole_reader(&self, i: usize) -> Option<usize> {
        match self.readers.get(&i).map(Vec::as_slice) {
            Some([r]) if !self.fetched.contains(&i) && !self.fed(*r) => Some(*r),
            _ => None,
        }
    }

    fn const_scalar(&self, i: usize) -> Option<f64> {
        self.nodes[i].op.const_scalar()
    }
}

impl Fusion {
    /// Decides the fusions of `sched`.
    pub fn analyze(
        nodes: &[Node],
        sched: &Schedule,
        fetched: &[usize],
        roots: &[usize],
        groups: &[ApplyGroup],
        max_storage: u32,
    ) -> Fusion {
        // Nodes whose value is needed: from the fetches and targets, along control
        // inputs and value inputs (not inputs read for their shape only).
        let shape_only = |op: &Op, k: usize| op.shape_only_input(k);
        let mut live: HashSet<usize> = HashSet::new();
        let mut stack: Vec<usize> = roots.to_vec();
        while let Some(i) = stack.pop() {
            if !live.insert(i) || sched.fed.contains(&i) {
                continue;
            }
            let n = &nodes[i];
            stack.extend(n.control_inputs.iter().map(|o| o.0));
            stack.extend(
                n.inputs
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| !shape_only(&n.op, *k))
                    .map(|(_, t)| t.0),
            );
        }
        let mut readers: HashMap<usize, Vec<usize>> = HashMap::new();
        for &i in &sched.order {
            if !sched.fed.contains(&i) && live.contains(&i) {
                let n = &nodes[i];
                for (k, t) in n.inputs.iter().enumerate() {
                    if !shape_only(&n.op, k) {
                        readers.entry(t.0).or_default().push(i);
                    }
                }
            }
        }
        let cx = Ctx {
            nodes,
            sched,
            pos: sched
                .order
                .iter()
                .enumerate()
                .map(|(p, &i)| (i, p))
                .collect(),
            readers,
            fetched: fetched.iter().copied().collect(),
        };
        let mut f = Fusion::default();
        for &i in &sched.order {
            let computed = !matches!(nodes[i].op, Op::Source(_) | Op::NoOp);
            if computed && !live.contains(&i) && !sched.fed.contains(&i) {
                f.dead.insert(i);
                f.actions.insert(i, Action::Skip);
            }
        }
        f.epilogues(&cx);
        f.classifier_heads(&cx);
        f.bias_gradients(&cx);
        f.dense_backward(&cx);
        // The two-layer kernels bind ten storage buffers.
        if max_storage >= 10 {
            f.hidden_into_heads(&cx);
            f.backward_chains(&cx);
        }
        f.optimizer_groups(&cx, groups);
        f
    }

    fn skip(&mut self, node: usize, at: usize, buffer: bool) {
        self.actions.insert(node, Action::Skip);
        self.runs_at.insert(node, at);
        if !buffer {
            self.no_buffer.insert(node);
        }
    }

    fn epilogues(&mut self, cx: &Ctx) {
        for &i in &cx.sched.order {
            if cx.fed(i) || !matches!(cx.nodes[i].op, Op::MatMul(_)) {
                continue;
            }
            let Some(c) = cx.sole_reader(i) else { continue };
            let cn = &cx.nodes[c];
            match cn.op {
                Op::BiasAdd if cn.inputs[0].0 == i => {
                    let relu = cx
                        .sole_reader(c)
                        .filter(|&r| matches!(cx.nodes[r].op, Op::Unary(UnaryOp::Relu)));
                    let tail = relu.unwrap_or(c);
                    let code = if relu.is_some() { 2 } else { 1 };
                    self.actions.insert(
                        tail,
                        Action::Epilogue {
                            matmul: i,
                            aux: cn.inputs[1].0,
                            code,
                        },
                    );
                    self.skip(i, tail, false);
                    if relu.is_some() {
                        self.skip(c, tail, false);
                    }
                }
                Op::Binary(BinaryOp::ReluGrad)
                    if cn.inputs[0].0 == i
                        && cn.inputs[1].0 != i
                        && cx.sched.shapes[&cn.inputs[1].0] == cx.sched.shapes[&i] =>
                {
                    self.actions.insert(
                        c,
                        Action::Epilogue {
                            matmul: i,
                            aux: cn.inputs[1].0,
                            code: 3,
                        },
                    );
                    self.skip(i, c, false);
                }
                _ => {}
            }
        }
    }

    fn classifier_heads(&mut self, cx: &Ctx) {
        let heads: Vec<(usize, usize, usize)> = self
            .actions
            .iter()
            .filter_map(|(&tail, a)| match a {
                Action::Epilogue {
                    matmul,
                    aux,
                    code: 1,
                } => Some((tail, *matmul, *aux)),
                _ => None,
            })
            .collect();
        for (b, mm, bias) in heads {
            let Some(xg) = cx.sole_reader(b) else {
                continue;
            };
            let xn = &cx.nodes[xg];
            let fits = matches!(xn.op, Op::Softmax(SoftmaxOp::XentGrad { .. }))
                && xn.inputs[0].0 == b
                && cx.sched.shapes[&b].len() == 2
                && cx.sched.shapes[&b][1] <= 32
                && matches!(
                    cx.nodes[mm].op,
                    Op::MatMul(MatMul {
                        transpose_a: false,
                        transpose_b: false
                    })
                );
            if !fits {
                continue;
            }
            self.actions.insert(
                xg,
                Action::HeadXentGrad {
                    matmul: mm,
                    bias,
                    xent: xg,
                    hidden: None,
                },
            );
            self.skip(b, xg, false);
            self.runs_at.insert(mm, xg);
        }
    }

    fn bias_gradients(&mut self, cx: &Ctx) {
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

    fn dense_backward(&mut self, cx: &Ctx) {
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

    /// Moves the work recorded at `from` to `to` (a later position): its inputs are
    /// then read at `to`.
    fn move_to(&mut self, from: usize, to: usize) {
        self.actions.insert(from, Action::Skip);
        self.runs_at.insert(from, to);
        for v in self.runs_at.values_mut() {
            if *v == from {
                *v = to;
            }
        }
    }

    /// Whether the values of `outs` may be written as late as position `to`: no one
    /// but `except` reads them before, and no update between `from` and `to` changes
    /// the variables read by `ins`.
    fn can_delay(
        &self,
        cx: &Ctx,
        outs: &[usize],
        except: &[usize],
        ins: &[usize],
        from: usize,
        to: usize,
    ) -> bool {
        let read_early = outs.iter().any(|o| {
            cx.readers.get(o).is_some_and(|rs| {
                rs.iter()
                    .any(|x| !except.contains(x) && cx.pos[x] <= cx.pos[&to])
            })
        });
        let updated = cx.sched.order[cx.pos[&from] + 1..=cx.pos[&to]]
            .iter()
            .any(|&u| {
                let un = &cx.nodes[u];
                un.op.mutates_variable() && ins.contains(&un.inputs[0].0)
            });
        !read_early && !updated
    }

    /// A classifier head whose input is a narrow dense layer computes that layer too.
    fn hidden_into_heads(&mut self, cx: &Ctx) {
        let heads: Vec<(usize, usize)> = self
            .actions
            .iter()
            .filter_map(|(&at, a)| match a {
                Action::HeadXentGrad {
                    matmul,
                    hidden: None,
                    ..
                } => Some((at, *matmul)),
                _ => None,
            })
            .collect();
        for (at, mm) in heads {
            let x = cx.nodes[mm].inputs[0].0;
            let Some(&Action::Epilogue {
                matmul: m0,
                aux: b0,
                code: code @ (1 | 2),
            }) = self.actions.get(&x)
            else {
                continue;
            };
            let plain = matches!(
                cx.nodes[m0].op,
                Op::MatMul(MatMul {
                    transpose_a: false,
                    transpose_b: false
                })
            );
            let shape = &cx.sched.shapes[&x];
            if !plain || shape.len() != 2 || shape[1] > 64 || cx.pos[&x] > cx.pos[&at] {
                continue;
            }
            let ins: Vec<usize> = cx.nodes[m0]
                .inputs
                .iter()
                .map(|t| t.0)
                .chain([b0])
                .collect();
            if !self.can_delay(cx, &[x], &[mm], &ins, x, at) {
                continue;
            }
            self.move_to(x, at);
            if let Some(Action::HeadXentGrad { hidden, .. }) = self.actions.get_mut(&at) {
                *hidden = Some(Hidden {
                    matmul: m0,
                    bias: b0,
                    out: x,
                    code,
                });
            }
        }
    }

    /// A dense layer's backward pass with at most 32 outputs also computes the kernel
    /// and bias gradients of the layer below (its `ColSum`) from the `dx` it produces.
    fn backward_chains(&mut self, cx: &Ctx) {
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

    fn optimizer_groups(&mut self, cx: &Ctx, groups: &[ApplyGroup]) {
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
