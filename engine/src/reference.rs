//! The reference interpreter: evaluates any graph on the CPU in `f64`.
//!
//! It runs exactly the nodes the session would (same [`schedule`](crate::exec::schedule)),
//! with straightforward loops and no reuse of buffers, so it is the oracle the wgpu
//! kernels and the symbolic gradients are tested against. It keeps its own variable
//! state, like a session.

use crate::error::{Error, Result};
use crate::exec::{schedule, uninitialized};
use crate::graph::{Graph, Operation, Tensor};
use crate::ops::{AssignOp, BinaryOp, CompareOp, Op, ReduceOp, UnaryOp};
use crate::rng::initial_value;
use crate::tensor::{DType, HostTensor};
use std::collections::HashMap;
use std::sync::Arc;

/// A value in the interpreter: dtype, shape and `f64` elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// The dtype the value has in the graph.
    pub dtype: DType,
    /// The shape.
    pub shape: Vec<usize>,
    /// Elements in row-major order.
    pub data: Vec<f64>,
}

impl Value {
    /// From a host tensor.
    pub fn from_host(t: &HostTensor) -> Self {
        Value {
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            data: t.to_f64(),
        }
    }

    /// To a host tensor (rounding to the dtype).
    pub fn to_host(&self) -> HostTensor {
        HostTensor::from_f64(self.dtype, &self.shape, &self.data)
            .unwrap_or_else(|_| HostTensor::zeros(self.dtype, &self.shape))
    }
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Strides of `shape` read as if broadcast to `out` (0 where broadcast).
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let st = strides(shape);
    let off = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < off || shape[i - off] == 1 && out[i] != 1 {
                0
            } else {
                st[i - off]
            }
        })
        .collect()
}

fn gather_index(mut i: usize, out: &[usize], st: &[usize]) -> usize {
    let mut off = 0;
    for d in (0..out.len()).rev() {
        let c = i % out[d].max(1);
        i /= out[d].max(1);
        off += c * st[d];
    }
    off
}

/// Converts `v` of dtype `from` to `to` as the device does: integer sources wrap (two's
/// complement truncation), float sources truncate toward zero and saturate.
fn convert(v: f64, from: DType, to: DType) -> f64 {
    if from == to {
        return v;
    }
    if from.is_int() || from == DType::Bool {
        let i = v as i64;
        return match to {
            DType::F32 => i as f32 as f64,
            DType::I32 => f64::from(i as i32),
            DType::U32 => f64::from(i as u32),
            DType::I64 => i as f64,
            DType::Bool => f64::from(u8::from(i != 0)),
        };
    }
    cast_value(v, to)
}

fn cast_value(v: f64, to: DType) -> f64 {
    match to {
        DType::F32 => v as f32 as f64,
        DType::I32 => (v as i32) as f64,
        DType::U32 => (v as u32) as f64,
        DType::I64 => (v as i64) as f64,
        DType::Bool => f64::from(u8::from(v != 0.0)),
    }
}

/// Applies a unary op to one element.
pub fn unary(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Square => x * x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Softplus => {
            if x > 0.0 {
                x + (-x).exp().ln_1p()
            } else {
                x.exp().ln_1p()
            }
        }
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        UnaryOp::Cos => x.cos(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Reciprocal => 1.0 / x,
    }
}

/// Applies a binary op to one pair of elements of `dtype`.
pub fn binary(op: BinaryOp, a: f64, b: f64, dtype: DType) -> f64 {
    let r = match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => {
            if dtype.is_int() {
                if b == 0.0 { a } else { (a / b).trunc() }
            } else {
                a / b
            }
        }
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum => a.min(b),
        BinaryOp::Pow => a.powf(b),
        BinaryOp::ReluGrad => {
            if b > 0.0 {
                a
            } else {
                0.0
            }
        }
        BinaryOp::SigmoidGrad => b * a * (1.0 - a),
        BinaryOp::TanhGrad => b * (1.0 - a * a),
    };
    match dtype {
        // Integer arithmetic wraps, as on the device.
        DType::I32 => f64::from(r as i64 as i32),
        DType::U32 => f64::from(r as i64 as u32),
        _ => r,
    }
}

fn compare(op: CompareOp, a: f64, b: f64) -> f64 {
    let r = match op {
        CompareOp::Equal => a == b,
        CompareOp::NotEqual => a != b,
        CompareOp::Greater => a > b,
        CompareOp::GreaterEqual => a >= b,
        CompareOp::Less => a < b,
        CompareOp::LessEqual => a <= b,
    };
    f64::from(u8::from(r))
}

fn elementwise2(a: &Value, b: &Value, out: &[usize], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let sa = broadcast_strides(&a.shape, out);
    let sb = broadcast_strides(&b.shape, out);
    let n: usize = out.iter().product();
    (0..n)
        .map(|i| {
            f(
                a.data[gather_index(i, out, &sa)],
                b.data[gather_index(i, out, &sb)],
            )
        })
        .collect()
}

fn log_softmax_rows(x: &[f64], cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for (row, o) in x.chunks(cols.max(1)).zip(out.chunks_mut(cols.max(1))) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        for (o, v) in o.iter_mut().zip(row) {
            *o = v - lse;
        }
    }
    out
}

/// Evaluates one non-source, non-stateful op on input values.
pub fn eval_op(op: &Op, ins: &[&Value], dtype: DType, out_shape: &[usize]) -> Result<Value> {
    let n: usize = out_shape.iter().product();
    let data: Vec<f64> = match op {
        Op::Identity | Op::Reshape(_) | Op::ReshapeLike => ins[0].data.clone(),
        Op::Unary(u) => ins[0].data.iter().map(|&x| unary(*u, x)).collect(),
        Op::Binary(b) => elementwise2(ins[0], ins[1], out_shape, |x, y| binary(*b, x, y, dtype)),
        Op::BiasAdd => elementwise2(ins[0], ins[1], out_shape, |x, y| {
            binary(BinaryOp::Add, x, y, dtype)
        }),
        Op::Compare(c) => elementwise2(ins[0], ins[1], out_shape, |x, y| compare(*c, x, y)),
        Op::Cast(to) => ins[0]
            .data
            .iter()
            .map(|&x| convert(x, ins[0].dtype, *to))
            .collect(),
        Op::MatMul {
            transpose_a,
            transpose_b,
        } => {
            let (a, b) = (ins[0], ins[1]);
            let r = a.shape.len();
            let (m, n2) = (out_shape[r - 2], out_shape[r - 1]);
            let k = if *transpose_a {
                a.shape[r - 2]
            } else {
                a.shape[r - 1]
            };
            let batch: usize = out_shape[..r - 2].iter().product();
            let (ar, ac) = (a.shape[r - 2], a.shape[r - 1]);
            let (br, bc) = (b.shape[r - 2], b.shape[r - 1]);
            let mut out = vec![0.0; batch * m * n2];
            for bi in 0..batch {
                for i in 0..m {
                    for j in 0..n2 {
                        let mut s = 0.0;
                        for kk in 0..k {
                            let av = if *transpose_a {
                                a.data[bi * ar * ac + kk * ac + i]
                            } else {
                                a.data[bi * ar * ac + i * ac + kk]
                            };
                            let bv = if *transpose_b {
                                b.data[bi * br * bc + j * bc + kk]
                            } else {
                                b.data[bi * br * bc + kk * bc + j]
                            };
                            s += av * bv;
                        }
                        out[bi * m * n2 + i * n2 + j] = s;
                    }
                }
            }
            out
        }
        Op::Reduce { op: r, axes, .. } => {
            let x = ins[0];
            let kept: Vec<usize> = (0..x.shape.len())
                .map(|i| if axes.contains(&i) { 1 } else { x.shape[i] })
                .collect();
            let count: usize = axes.iter().map(|&a| x.shape[a]).product();
            let init = match r {
                ReduceOp::Sum | ReduceOp::Mean => 0.0,
                ReduceOp::Max => f64::NEG_INFINITY,
                ReduceOp::Min => f64::INFINITY,
            };
            let mut out = vec![init; n];
            let ks = strides(&kept);
            for (i, &v) in x.data.iter().enumerate() {
                // Position of element i with reduced axes collapsed.
                let mut rem = i;
                let mut o = 0;
                for d in (0..x.shape.len()).rev() {
                    let c = rem % x.shape[d];
                    rem /= x.shape[d];
                    if !axes.contains(&d) {
                        o += c * ks[d];
                    }
                }
                out[o] = match r {
                    ReduceOp::Sum | ReduceOp::Mean => out[o] + v,
                    ReduceOp::Max => out[o].max(v),
                    ReduceOp::Min => out[o].min(v),
                };
            }
            if *r == ReduceOp::Mean {
                for v in &mut out {
                    *v /= count as f64;
                }
            }
            out
        }
        Op::Transpose(perm) => {
            let x = ins[0];
            let st = strides(&x.shape);
            let pst: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
            (0..n)
                .map(|i| x.data[gather_index(i, out_shape, &pst)])
                .collect()
        }
        Op::BroadcastLike { mean } => {
            let x = ins[0];
            let st = broadcast_strides(&x.shape, out_shape);
            let factor = if *mean {
                n as f64 / x.data.len().max(1) as f64
            } else {
                1.0
            };
            (0..n)
                .map(|i| x.data[gather_index(i, out_shape, &st)] / factor)
                .collect()
        }
        Op::SumLike => {
            let x = ins[0];
            let st = broadcast_strides(out_shape, &x.shape);
            let mut out = vec![0.0; n];
            for (i, &v) in x.data.iter().enumerate() {
                out[gather_index(i, &x.shape, &st)] += v;
            }
            out
        }
        Op::ArgMax { axis } => {
            let x = ins[0];
            let outer: usize = x.shape[..*axis].iter().product();
            let len = x.shape[*axis];
            let inner: usize = x.shape[axis + 1..].iter().product();
            let mut out = vec![0.0; outer * inner];
            for o in 0..outer {
                for i in 0..inner {
                    let mut best = 0;
                    for k in 1..len {
                        if x.data[(o * len + k) * inner + i] > x.data[(o * len + best) * inner + i]
                        {
                            best = k;
                        }
                    }
                    out[o * inner + i] = best as f64;
                }
            }
            out
        }
        Op::OneHot {
            depth,
            on_value,
            off_value,
        } => {
            let mut out = vec![f64::from(*off_value); n];
            for (i, &idx) in ins[0].data.iter().enumerate() {
                if idx >= 0.0 && (idx as usize) < *depth {
                    out[i * depth + idx as usize] = f64::from(*on_value);
                }
            }
            out
        }
        Op::Softmax => {
            let cols = *out_shape.last().unwrap_or(&1);
            log_softmax_rows(&ins[0].data, cols)
                .iter()
                .map(|v| v.exp())
                .collect()
        }
        Op::LogSoftmax => log_softmax_rows(&ins[0].data, *out_shape.last().unwrap_or(&1)),
        Op::SoftmaxXent => {
            let cols = ins[0].shape[1];
            let ls = log_softmax_rows(&ins[0].data, cols);
            ls.chunks(cols.max(1))
                .zip(ins[1].data.chunks(cols.max(1)))
                .map(|(l, y)| -l.iter().zip(y).map(|(a, b)| a * b).sum::<f64>())
                .take(n)
                .collect()
        }
        Op::SparseSoftmaxXent => {
            let cols = ins[0].shape[1];
            let ls = log_softmax_rows(&ins[0].data, cols);
            (0..n)
                .map(|i| {
                    let y = ins[1].data[i];
                    if y >= 0.0 && (y as usize) < cols {
                        -ls[i * cols + y as usize]
                    } else {
                        f64::NAN
                    }
                })
                .collect()
        }
        Op::XentGrad { sparse, mean } => {
            let (rows, cols) = (ins[0].shape[0], ins[0].shape[1]);
            let ls = log_softmax_rows(&ins[0].data, cols);
            let mut out = vec![0.0; n];
            for i in 0..rows {
                let g = if *mean {
                    ins[2].data[0] / rows as f64
                } else {
                    ins[2].data[i]
                };
                let total: f64 = if *sparse {
                    1.0
                } else {
                    ins[1].data[i * cols..(i + 1) * cols].iter().sum()
                };
                for j in 0..cols {
                    let y = if *sparse {
                        f64::from(u8::from(ins[1].data[i] == j as f64))
                    } else {
                        ins[1].data[i * cols + j]
                    };
                    out[i * cols + j] = (ls[i * cols + j].exp() * total - y) * g;
                }
            }
            out
        }
        _ => {
            return Err(Error::internal(format!(
                "reference: {} is not a pure op",
                op.tf_name()
            )));
        }
    };
    debug_assert_eq!(data.len(), n);
    Ok(Value {
        dtype,
        shape: out_shape.to_vec(),
        data,
    })
}

/// A CPU session over a graph, evaluating in `f64`. See the module doc.
pub struct Reference {
    graph: Arc<Graph>,
    vars: HashMap<usize, Value>,
}

impl Reference {
    /// An interpreter over `graph` with no variable initialized.
    pub fn new(graph: impl Into<Arc<Graph>>) -> Self {
        Reference {
            graph: graph.into(),
            vars: HashMap::new(),
        }
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Runs the graph like [`Session::run`](crate::Session::run), returning host tensors.
    pub fn run(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<Vec<HostTensor>> {
        let vals = self.run_values(feeds, fetches, targets)?;
        Ok(vals.iter().map(Value::to_host).collect())
    }

    /// Runs the graph, returning `f64` values (no rounding to the dtype).
    pub fn run_values(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<Vec<Value>> {
        let feed_refs: Vec<(Tensor, &HostTensor)> = feeds.iter().map(|(t, v)| (*t, v)).collect();
        let sched = schedule(&self.graph, &feed_refs, fetches, targets)?;
        let fed: HashMap<usize, Value> = feeds
            .iter()
            .map(|(t, v)| (t.0, Value::from_host(v)))
            .collect();
        self.execute(&sched, fed, fetches)
    }

    /// Runs with `f64` feeds, so finite differences are not rounded to f32.
    pub fn run_f64(&mut self, feeds: &[(Tensor, Value)], fetches: &[Tensor]) -> Result<Vec<Value>> {
        let hosts: Vec<(Tensor, HostTensor)> =
            feeds.iter().map(|(t, v)| (*t, v.to_host())).collect();
        let feed_refs: Vec<(Tensor, &HostTensor)> = hosts.iter().map(|(t, v)| (*t, v)).collect();
        let sched = schedule(&self.graph, &feed_refs, fetches, &[])?;
        let fed: HashMap<usize, Value> = feeds.iter().map(|(t, v)| (t.0, v.clone())).collect();
        self.execute(&sched, fed, fetches)
    }

    fn execute(
        &mut self,
        sched: &crate::exec::Schedule,
        mut vals: HashMap<usize, Value>,
        fetches: &[Tensor],
    ) -> Result<Vec<Value>> {
        let g = Arc::clone(&self.graph);
        for &v in &sched.reads_uninit_checked {
            if !self.vars.contains_key(&v) {
                return Err(uninitialized(&g, v));
            }
        }
        for &i in &sched.order {
            if vals.contains_key(&i) {
                continue;
            }
            let node = &g.nodes()[i];
            let shape = &sched.shapes[&i];
            let input = |vals: &HashMap<usize, Value>,
                         vars: &HashMap<usize, Value>,
                         k: usize|
             -> Result<Value> {
                let t = node.inputs[k].0;
                if g.is_variable(node.inputs[k]) {
                    vars.get(&t).cloned().ok_or_else(|| uninitialized(&g, t))
                } else {
                    vals.get(&t).cloned().ok_or_else(|| {
                        Error::internal(format!("reference: input of '{}' missing", node.name))
                    })
                }
            };
            let value = match &node.op {
                Op::Placeholder => return Err(Error::internal("unfed placeholder")),
                Op::Variable { .. } => continue,
                Op::NoOp => continue,
                Op::Const(v) => Value::from_host(v),
                Op::InitialValue { init, seed } => {
                    Value::from_host(&initial_value(init, node.dtype, shape, *seed))
                }
                Op::Assign(kind) => {
                    let var = node.inputs[0].0;
                    let v = input(&vals, &self.vars, 1)?;
                    let new = match kind {
                        AssignOp::Assign => v.data.clone(),
                        AssignOp::Add | AssignOp::Sub => {
                            let cur = input(&vals, &self.vars, 0)?;
                            let sign = if *kind == AssignOp::Add { 1.0 } else { -1.0 };
                            cur.data
                                .iter()
                                .zip(&v.data)
                                .map(|(a, b)| cast_value(a + sign * b, node.dtype))
                                .collect()
                        }
                    };
                    let nv = Value {
                        dtype: node.dtype,
                        shape: shape.clone(),
                        data: new,
                    };
                    self.vars.insert(var, nv.clone());
                    nv
                }
                op @ (Op::ApplyGradientDescent
                | Op::ApplyMomentum { .. }
                | Op::ApplyAdam { .. }
                | Op::ApplyRmsProp { .. }) => {
                    let ins: Vec<Value> = (0..node.inputs.len())
                        .map(|k| input(&vals, &self.vars, k))
                        .collect::<Result<_>>()?;
                    let updated = apply_optimizer(op, &ins);
                    for (k, data) in updated {
                        let id = node.inputs[k].0;
                        let shape = ins[k].shape.clone();
                        self.vars.insert(
                            id,
                            Value {
                                dtype: DType::F32,
                                shape,
                                data,
                            },
                        );
                    }
                    self.vars[&node.inputs[0].0].clone()
                }
                op => {
                    let ins: Vec<Value> = (0..node.inputs.len())
                        .map(|k| input(&vals, &self.vars, k))
                        .collect::<Result<_>>()?;
                    let refs: Vec<&Value> = ins.iter().collect();
                    eval_op(op, &refs, node.dtype, shape)?
                }
            };
            vals.insert(i, value);
        }
        fetches
            .iter()
            .map(|t| {
                if g.is_variable(*t) {
                    self.vars
                        .get(&t.0)
                        .cloned()
                        .ok_or_else(|| uninitialized(&g, t.0))
                } else {
                    vals.get(&t.0)
                        .cloned()
                        .ok_or_else(|| Error::internal("reference: fetch missing"))
                }
            })
            .collect()
    }

    /// The value of variable `var`, if initialized.
    pub fn variable(&self, var: Tensor) -> Option<HostTensor> {
        self.vars.get(&var.0).map(Value::to_host)
    }

    /// Sets variable `var` to `value`.
    pub fn set_variable(&mut self, var: Tensor, value: &HostTensor) -> Result<()> {
        if !self.graph.is_variable(var) {
            return Err(Error::invalid_argument(format!(
                "'{}' is not a variable",
                self.graph.name(var)
            )));
        }
        self.vars.insert(var.0, Value::from_host(value));
        Ok(())
    }
}

/// The new values of the variables an optimizer op updates: (input index, data).
pub fn apply_optimizer(op: &Op, ins: &[Value]) -> Vec<(usize, Vec<f64>)> {
    let var = &ins[0].data;
    let grad = &ins[ins.len() - 1].data;
    match op {
        Op::ApplyGradientDescent => {
            let lr = ins[1].data[0];
            vec![(0, var.iter().zip(grad).map(|(w, g)| w - lr * g).collect())]
        }
        Op::ApplyMomentum { momentum, nesterov } => {
            let (m, lr) = (f64::from(*momentum), ins[2].data[0]);
            let acc: Vec<f64> = ins[1]
                .data
                .iter()
                .zip(grad)
                .map(|(a, g)| a * m + g)
                .collect();
            let w = var
                .iter()
                .zip(grad)
                .zip(&acc)
                .map(|((w, g), a)| {
                    if *nesterov {
                        w - g * lr - a * m * lr
                    } else {
                        w - lr * a
                    }
                })
                .collect();
            vec![(1, acc), (0, w)]
        }
        Op::ApplyAdam {
            beta1,
            beta2,
            epsilon,
            weight_decay,
        } => {
            let (b1, b2, eps, wd) = (
                f64::from(*beta1),
                f64::from(*beta2),
                f64::from(*epsilon),
                f64::from(*weight_decay),
            );
            let (b1p, b2p, lr) = (ins[3].data[0], ins[4].data[0], ins[5].data[0]);
            let lr_t = lr * (1.0 - b2p).sqrt() / (1.0 - b1p);
            let m: Vec<f64> = ins[1]
                .data
                .iter()
                .zip(grad)
                .map(|(m, g)| m + (g - m) * (1.0 - b1))
                .collect();
            let v: Vec<f64> = ins[2]
                .data
                .iter()
                .zip(grad)
                .map(|(v, g)| v + (g * g - v) * (1.0 - b2))
                .collect();
            let w = var
                .iter()
                .zip(m.iter().zip(&v))
                .map(|(w, (m, v))| w - lr * wd * w - lr_t * m / (v.sqrt() + eps))
                .collect();
            vec![(1, m), (2, v), (0, w)]
        }
        Op::ApplyRmsProp {
            rho,
            momentum,
            epsilon,
        } => {
            let (rho, mo, eps, lr) = (
                f64::from(*rho),
                f64::from(*momentum),
                f64::from(*epsilon),
                ins[3].data[0],
            );
            let ms: Vec<f64> = ins[1]
                .data
                .iter()
                .zip(grad)
                .map(|(s, g)| s + (g * g - s) * (1.0 - rho))
                .collect();
            let mom: Vec<f64> = ins[2]
                .data
                .iter()
                .zip(grad.iter().zip(&ms))
                .map(|(m, (g, s))| m * mo + lr * g / (s + eps).sqrt())
                .collect();
            let w = var.iter().zip(&mom).map(|(w, m)| w - m).collect();
            vec![(1, ms), (2, mom), (0, w)]
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_strides_zero_where_broadcast() {
        assert_eq!(broadcast_strides(&[3, 1], &[2, 3, 4]), vec![0, 1, 0]);
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
    }

    #[test]
    fn runs_a_small_graph() {
        let mut g = Graph::new();
        let x = g.placeholder("x", DType::F32, &[-1, 2]).unwrap();
        let w = g
            .variable("w", DType::F32, &[2, 1], crate::Initializer::Ones)
            .unwrap();
        let y = g.matmul(x, w).unwrap();
        let init = g.global_variables_initializer().unwrap();
        let mut r = Reference::new(g);
        let xv = HostTensor::from_f32(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let e = r.run(&[(x, xv.clone())], &[y], &[]).unwrap_err();
        assert_eq!(e.code, crate::Code::FailedPrecondition);
        assert!(e.message.contains("uninitialized value w"), "{e}");
        r.run(&[], &[], &[init]).unwrap();
        let out = r.run(&[(x, xv)], &[y], &[]).unwrap();
        assert_eq!(out[0].as_f32().unwrap(), vec![3.0, 7.0]);
    }
}
