//! The reference interpreter: evaluates any graph on the CPU in `f64`.
//!
//! It runs exactly the nodes the session would (same [`crate::exec::schedule`]),
//! with straightforward loops and no reuse of buffers, so it is the oracle the wgpu
//! kernels and the symbolic gradients are tested against. It keeps its own variable
//! state, like a session.

use crate::error::{Error, Result};
use crate::exec::{schedule, uninitialized};
use crate::graph::{Graph, Operation, Tensor};
use crate::ops::{AssignOp, Op};
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

    /// To a host tensor (rounding to the dtype); InvalidArgument when the data does not
    /// fill the shape.
    pub fn to_host(&self) -> Result<HostTensor> {
        HostTensor::from_f64(self.dtype, &self.shape, &self.data)
    }
}

pub(crate) mod eval;

pub use crate::ops::elementwise::{binary, unary};
pub use eval::{broadcast_strides, eval_op, strides};

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
        vals.iter().map(Value::to_host).collect()
    }

    /// Runs the graph, returning `f64` values (no rounding to the dtype).
    pub fn run_values(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<Vec<Value>> {
        let sched = schedule(&self.graph, feeds, fetches, targets)?;
        let fed: HashMap<usize, Value> = feeds
            .iter()
            .map(|(t, v)| (t.0, Value::from_host(v)))
            .collect();
        self.execute(&sched, fed, fetches)
    }

    /// Runs with `f64` feeds, so finite differences are not rounded to f32.
    pub fn run_f64(&mut self, feeds: &[(Tensor, Value)], fetches: &[Tensor]) -> Result<Vec<Value>> {
        let hosts: Vec<(Tensor, HostTensor)> = feeds
            .iter()
            .map(|(t, v)| Ok((*t, v.to_host()?)))
            .collect::<Result<_>>()?;
        let sched = schedule(&self.graph, &hosts, fetches, &[])?;
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
            if node.op.is_variable() || node.op == Op::NoOp {
                continue;
            }
            let ins: Vec<Value> = (0..node.inputs.len())
                .map(|k| {
                    if k == 0 && node.op == Op::Assign(AssignOp::Assign) {
                        // Written, not read: the variable may hold no value yet.
                        return Ok(Value {
                            dtype: node.dtype,
                            shape: shape.clone(),
                            data: Vec::new(),
                        });
                    }
                    input(&vals, &self.vars, k)
                })
                .collect::<Result<_>>()?;
            let refs: Vec<&Value> = ins.iter().collect();
            let updates = node.op.family().updates(&refs, node.dtype, shape)?;
            if updates.is_empty() {
                vals.insert(i, eval_op(&node.op, &refs, node.dtype, shape)?);
                continue;
            }
            for (k, data) in updates {
                let var = Value {
                    dtype: ins[k].dtype,
                    shape: ins[k].shape.clone(),
                    data,
                };
                self.vars.insert(node.inputs[k].0, var);
            }
            let value = self.vars[&node.inputs[0].0].clone();
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
    pub fn variable(&self, var: Tensor) -> Result<Option<HostTensor>> {
        self.vars.get(&var.0).map(Value::to_host).transpose()
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

impl Reference {
    fn var_value(&self, var: Tensor) -> Result<&Value> {
        self.graph.check(var)?;
        if !self.graph.is_variable(var) {
            return Err(Error::invalid_argument(format!(
                "'{}' is not a variable",
                self.graph.name(var)
            )));
        }
        self.vars
            .get(&var.0)
            .ok_or_else(|| uninitialized(&self.graph, var.0))
    }
}

/// The reference as a session: every run computes on the host, so fetched values and
/// snapshots are ready at once, traced runs time nothing, and the host knows every
/// variable.
impl crate::Executor for Reference {
    fn graph(&self) -> &Graph {
        &self.graph
    }

    fn graph_arc(&self) -> Arc<Graph> {
        Arc::clone(&self.graph)
    }

    fn device_name(&self) -> &str {
        "reference"
    }

    fn run(
        &mut self,
        feeds: &[(Tensor, HostTensor)],
        fetches: &[Tensor],
        targets: &[Operation],
    ) -> Result<Vec<HostTensor>> {
        Reference::run(self, feeds, fetches, targets)
    }

    fn read_variables(&mut self, vars: &[Tensor]) -> Result<Vec<HostTensor>> {
        vars.iter().map(|&v| self.var_value(v)?.to_host()).collect()
    }

    fn write_variables(&mut self, values: &[(Tensor, HostTensor)]) -> Result<()> {
        crate::executor::check_writes(&self.graph, values)?;
        for (v, t) in values {
            self.vars.insert(v.0, Value::from_host(t));
        }
        Ok(())
    }

    fn known_scalar(&self, var: Tensor) -> Option<i64> {
        let v = self.var_value(var).ok()?;
        (v.dtype == DType::I64 && v.shape.is_empty()).then(|| v.data[0] as i64)
    }

    fn is_initialized(&self, var: Tensor) -> bool {
        self.vars.contains_key(&var.0)
    }

    fn background(&self) -> Option<Arc<dyn crate::Background>> {
        None
    }

    /// Unimplemented: the reference runs one process.
    fn set_gradient_reducer(
        &mut self,
        reducer: Option<Arc<dyn crate::GradientReducer>>,
    ) -> Result<()> {
        match reducer {
            None => Ok(()),
            Some(_) => Err(Error::unimplemented(
                "the reference interpreter does not average gradients across processes",
            )),
        }
    }

    fn has_gradient_reducer(&self) -> bool {
        false
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
