//! What a run executes: the pruned node set, feed validation and run-time shapes.
//!
//! Shared by the reference interpreter and the wgpu session so both run exactly the same
//! nodes in the same order with the same checks.

use crate::error::{Error, Result};
use crate::graph::{Graph, Operation, Tensor};
use crate::ops::{Op, Source, infer};
use crate::tensor::{DType, HostTensor, shape_str};
use std::collections::HashMap;

/// The nodes of one run, in execution order, with their run-time shapes.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// Node indices in execution (topological) order, fed nodes included.
    pub order: Vec<usize>,
    /// Run-time shape of every node in `order`.
    pub shapes: HashMap<usize, Vec<usize>>,
    /// Fed node indices.
    pub fed: Vec<usize>,
    /// Variables whose value is read before this run assigns them.
    pub reads_uninit_checked: Vec<usize>,
    /// Variables this run assigns fully (initializers, `assign`).
    pub assigns: Vec<usize>,
}

/// Builds the schedule of a run after validating feeds and fetches.
pub fn schedule(
    graph: &Graph,
    feeds: &[(Tensor, HostTensor)],
    fetches: &[Tensor],
    targets: &[Operation],
) -> Result<Schedule> {
    let mut fed: HashMap<usize, Vec<usize>> = HashMap::new();
    for (t, v) in feeds {
        let i = graph.check(*t)?;
        let n = graph.node(*t);
        if n.op.is_variable() || !n.has_value {
            return Err(Error::invalid_argument(format!(
                "'{}' ({}) cannot be fed",
                n.name,
                n.op.tf_name()
            )));
        }
        if v.dtype() != n.dtype {
            return Err(Error::invalid_argument(format!(
                "Cannot feed a {} value for tensor '{}', which has dtype {}",
                v.dtype(),
                n.name,
                n.dtype
            )));
        }
        let ok = v.shape().len() == n.shape.len()
            && v.shape()
                .iter()
                .zip(&n.shape)
                .all(|(&a, &b)| b < 0 || a as i64 == b);
        if !ok {
            return Err(Error::invalid_argument(format!(
                "Cannot feed value of shape {:?} for tensor '{}', which has shape {}",
                v.shape(),
                n.name,
                shape_str(&n.shape)
            )));
        }
        if fed.insert(i, v.shape().to_vec()).is_some() {
            return Err(Error::invalid_argument(format!(
                "tensor '{}' is fed more than once",
                n.name
            )));
        }
    }
    let mut roots = Vec::with_capacity(fetches.len() + targets.len());
    for &t in fetches {
        let i = graph.check(t)?;
        if !graph.node(t).has_value {
            return Err(Error::invalid_argument(format!(
                "'{}' is an operation without a value; run it as a target",
                graph.name(t)
            )));
        }
        roots.push(i);
    }
    for &o in targets {
        roots.push(graph.check(Tensor(o.0, o.1))?);
    }
    let order = graph.ancestors(&roots, &|i| fed.contains_key(&i));
    let mut shapes: HashMap<usize, Vec<usize>> = HashMap::with_capacity(order.len());
    let mut assigned = vec![];
    let mut reads = vec![];
    for &i in &order {
        let n = &graph.nodes()[i];
        if let Some(s) = fed.get(&i) {
            shapes.insert(i, s.clone());
            continue;
        }
        let shape = match &n.op {
            Op::Source(Source::Placeholder) => {
                return Err(Error::invalid_argument(format!(
                    "You must feed a value for placeholder tensor '{}' with dtype {} and shape {}",
                    n.name,
                    n.dtype,
                    shape_str(&n.shape)
                )));
            }
            Op::Source(_) => n.shape.iter().map(|&d| d as usize).collect(),
            op => {
                let dtypes: Vec<DType> = n.inputs.iter().map(|t| graph.dtype(*t)).collect();
                let ins: Vec<Vec<i64>> = n
                    .inputs
                    .iter()
                    .map(|t| shapes[&t.0].iter().map(|&d| d as i64).collect())
                    .collect();
                let inf = infer(op, &dtypes, &ins)
                    .map_err(|e| e.context(format!("node '{}'", n.name)))?;
                inf.shape.iter().map(|&d| d.max(0) as usize).collect()
            }
        };
        // Variables read before being assigned in this run must already hold a value.
        for (k, t) in n.inputs.iter().enumerate() {
            let is_assign_target =
                k == 0 && matches!(n.op, Op::Assign(crate::ops::AssignOp::Assign));
            if graph.is_variable(*t)
                && !is_assign_target
                && !assigned.contains(&t.0)
                && !reads.contains(&t.0)
            {
                reads.push(t.0);
            }
        }
        if let Op::Assign(crate::ops::AssignOp::Assign) = n.op {
            assigned.push(n.inputs[0].0);
        }
        shapes.insert(i, shape);
    }
    for &t in fetches {
        if graph.is_variable(t) && !assigned.contains(&t.0) && !reads.contains(&t.0) {
            reads.push(t.0);
        }
    }
    // Feeds the run does not need are accepted (as TF) and left out of the plan.
    let fed = fed
        .keys()
        .copied()
        .filter(|k| shapes.contains_key(k))
        .collect();
    Ok(Schedule {
        order,
        shapes,
        fed,
        reads_uninit_checked: reads,
        assigns: assigned,
    })
}

/// The FailedPrecondition error TF gives for reading an uninitialized variable.
pub fn uninitialized(graph: &Graph, var: usize) -> Error {
    Error::failed_precondition(format!(
        "Attempting to use uninitialized value {}",
        graph.nodes()[var].name
    ))
}
