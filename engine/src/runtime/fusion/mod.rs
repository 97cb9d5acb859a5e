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
use crate::ops::Op;
use std::collections::{HashMap, HashSet};

mod backward;
mod forward;
mod optimizer;

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
}
