//! Recording one node of a plan: its family's kernel, or the fused kernel the fusion
//! pass put there.

use super::Ctx;
use crate::error::Result;
use crate::ops::{MatMul, Op, SoftmaxOp};
use crate::runtime::fusion::{Action, Finish, Hidden};
use crate::runtime::kernels::{Arg, Bookkeeping, Loc, Recorder};
use crate::runtime::session::Session;
use std::collections::HashMap;

/// The value of node `t` as a kernel argument.
fn arg<'a>(ctx: &'a Ctx, locs: &'a HashMap<usize, Loc>, t: usize) -> Arg<'a> {
    Arg {
        loc: &locs[&t],
        dtype: ctx.nodes[t].dtype,
        shape: &ctx.sched.shapes[&t],
    }
}

/// Records the classifier head's fused backward: the cross-entropy gradient of
/// `[matmul, bias, xent]` into `out`, with the hidden layer below it when fused too.
fn record_head_grad(
    rec: &mut Recorder,
    ctx: &Ctx,
    locs: &HashMap<usize, Loc>,
    [matmul, bias, xent]: [usize; 3],
    hidden: Option<Hidden>,
    out: &Loc,
) -> Result<()> {
    let nodes = ctx.nodes;
    let arg = |t: usize| arg(ctx, locs, t);
    let (m, xn) = (&nodes[matmul], &nodes[xent]);
    let Op::Softmax(SoftmaxOp::XentGrad { sparse, dy }) = &xn.op else {
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

impl Session {
    /// Records the work at node `i` as `fusion` decided.
    pub(super) fn record(
        &mut self,
        rec: &mut Recorder,
        ctx: &Ctx,
        locs: &HashMap<usize, Loc>,
        i: usize,
        out: Option<&Loc>,
    ) -> Result<()> {
        let (nodes, sched, fusion) = (ctx.nodes, ctx.sched, ctx.fusion);
        let n = &nodes[i];
        let arg = |t: usize| arg(ctx, locs, t);
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
            }) => match out {
                Some(out) => record_head_grad(rec, ctx, locs, [matmul, bias, xent], hidden, out),
                None => Ok(()),
            },
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
                for (gnode, view) in fusion.grad_copies.get(&i).map(Vec::as_slice).unwrap_or(&[]) {
                    rec.copy(&locs[gnode], view);
                }
                self.record_update(rec, ctx, locs, group, finish)
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

    /// Records optimizer group `group`'s update in one dispatch, with the scalar
    /// bookkeeping `finish` absorbs (the beta powers, the global step), if any.
    fn record_update(
        &mut self,
        rec: &mut Recorder,
        ctx: &Ctx,
        locs: &HashMap<usize, Loc>,
        group: usize,
        finish: Option<Finish>,
    ) -> Result<()> {
        let grp = self.groups[group].clone();
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
            .and_then(|(_, inc)| ctx.nodes[inc].op.const_scalar())
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
}
