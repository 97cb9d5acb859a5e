//! Forward fusions: matmul epilogues, classifier heads, and the dense layer below a
//! head computed in its kernel.

use super::{Action, Ctx, Fusion, Hidden};
use crate::ops::{BinaryOp, MatMul, Op, SoftmaxOp, UnaryOp};

impl Fusion {
    pub(super) fn epilogues(&mut self, cx: &Ctx) {
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

    pub(super) fn classifier_heads(&mut self, cx: &Ctx) {
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

    /// A classifier head whose input is a narrow dense layer computes that layer too.
    pub(super) fn hidden_into_heads(&mut self, cx: &Ctx) {
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
}
