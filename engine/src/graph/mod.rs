//! The static dataflow graph: nodes, names, scopes, collections.
//!
//! A [`Graph`] is built by calling its builder methods (in `math.rs`, `nn.rs`,
//! `variables.rs`), each of which checks dtypes and shapes and returns a [`Tensor`] handle
//! or an error naming the op and the shapes. Nodes are appended in order and only refer to
//! earlier nodes, so node order is a topological order. After [`Graph::finalize`] adding a
//! node is a FailedPrecondition error.

mod array;
mod math;
mod summaries;
mod variables;

use crate::error::{Error, Result};
use crate::ops::{Inferred, Op, infer};
use crate::tensor::{DType, shape_str};
use std::collections::{BTreeMap, HashMap};

pub use variables::VariableOptions;

/// A handle to the value of a node of a graph: the node's index and the identity of
/// the graph it came from (a graph and its clones share one), so a handle given to
/// another graph is InvalidArgument, never another node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tensor(pub(crate) usize, pub(crate) GraphId);

/// A handle to a node run for its effect (a train op, an initializer, a `group`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation(pub(crate) usize, pub(crate) GraphId);

/// The identity of a graph, new for each graph built or imported and kept by its
/// clones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct GraphId(u64);

impl Default for GraphId {
    fn default() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        GraphId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

impl Tensor {
    /// The node that produces this tensor, as an operation to run for its effect.
    pub fn op(self) -> Operation {
        Operation(self.0, self.1)
    }

    /// The node's index in its graph.
    pub fn index(self) -> usize {
        self.0
    }
}

impl Operation {
    /// The node's index in its graph.
    pub fn index(self) -> usize {
        self.0
    }
}

impl From<Tensor> for Operation {
    fn from(t: Tensor) -> Self {
        t.op()
    }
}

/// Standard collection names (TF's `GraphKeys`).
pub mod collections {
    /// Every variable saved in checkpoints.
    pub const GLOBAL_VARIABLES: &str = "variables";
    /// Variables optimizers train by default.
    pub const TRAINABLE_VARIABLES: &str = "trainable_variables";
    /// Variables local to a process, not saved (metrics' accumulators).
    pub const LOCAL_VARIABLES: &str = "local_variables";
    /// The global step variable.
    pub const GLOBAL_STEP: &str = "global_step";
    /// Ops run with every training step (batch-norm moving averages).
    pub const UPDATE_OPS: &str = "update_ops";
    /// Summary ops.
    pub const SUMMARIES: &str = "summaries";
    /// The losses optimizers minimize.
    pub const LOSSES: &str = "losses";
    /// The train ops (TF's `GraphKeys.TRAIN_OP`).
    pub const TRAIN_OP: &str = "train_op";
}

/// One node: an op, its inputs, control inputs, and its inferred dtype and shape.
#[derive(Clone, Debug)]
pub struct Node {
    /// The unique, scoped name (`hidden/kernel`).
    pub name: String,
    /// The operation.
    pub op: Op,
    /// Data inputs.
    pub inputs: Vec<Tensor>,
    /// Nodes that must run before this one.
    pub control_inputs: Vec<Operation>,
    /// Element type of the value.
    pub dtype: DType,
    /// Static shape; `-1` for dimensions known only at run time.
    pub shape: Vec<i64>,
    /// Whether the node produces a value that can be fetched.
    pub has_value: bool,
}

/// A static dataflow graph. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    names: HashMap<String, usize>,
    scopes: Vec<String>,
    pub(super) control_scopes: Vec<Vec<Operation>>,
    collections: BTreeMap<String, Vec<usize>>,
    initializers: HashMap<usize, Tensor>,
    finalized: bool,
    seed: u64,
    summaries: Vec<crate::summary::SummarySpec>,
    averaged: Vec<usize>,
    id: GraphId,
}

impl Graph {
    /// An empty graph with graph seed 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the graph-level seed (TF's `tf.random.set_seed`): random initializers draw
    /// from (graph seed, op seed), so the same seed gives the same values.
    pub fn set_seed(&mut self, seed: u64) {
        self.seed = seed;
    }

    /// The graph-level seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Marks `grad` as a gradient that data-parallel training averages across
    /// processes: a session with a [`GradientReducer`](crate::runtime::GradientReducer)
    /// replaces its value by the mean over every process after the backward pass and
    /// before anything reads it (Horovod's `allreduce` of `compute_gradients`).
    /// [`Optimizer::apply_gradients`](crate::Optimizer::apply_gradients) marks the
    /// gradients it is given (before clipping); a graph built without an optimizer marks
    /// its own. Only f32 tensors can be averaged.
    pub fn average_across_replicas(&mut self, grad: Tensor) -> Result<()> {
        self.check(grad)?;
        if self.finalized {
            return Err(Error::failed_precondition(format!(
                "Graph is finalized and cannot be modified (averaging '{}')",
                self.name(grad)
            )));
        }
        if self.dtype(grad) != DType::F32 {
            return Err(Error::invalid_argument(format!(
                "cannot average '{}' across replicas: it is {}, not float32",
                self.name(grad),
                self.dtype(grad)
            )));
        }
        if !self.averaged.contains(&grad.0) {
            self.averaged.push(grad.0);
        }
        Ok(())
    }

    /// The gradients marked by [`average_across_replicas`](Self::average_across_replicas).
    pub fn averaged_gradients(&self) -> Vec<Tensor> {
        self.averaged.iter().map(|&i| self.handle(i)).collect()
    }

    /// Freezes the graph: adding a node afterwards is a FailedPrecondition error.
    pub fn finalize(&mut self) {
        self.finalized = true;
    }

    /// Lets nodes be added again (TF's `_unsafe_unfinalize`). Sessions made over the
    /// graph before keep the nodes they were planned with; a monitored session calls
    /// this when it hands back a graph it finalized.
    pub fn unfinalize(&mut self) {
        self.finalized = false;
    }

    /// Whether [`finalize`](Self::finalize) was called.
    pub fn is_finalized(&self) -> bool {
        self.finalized
    }

    /// All nodes, in creation (topological) order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node behind a handle.
    ///
    /// # Panics
    ///
    /// When `t` names no node of this graph ([`contains`](Self::contains) says).
    pub fn node(&self, id: impl Into<Operation>) -> &Node {
        &self.nodes[id.into().0]
    }

    /// The node index of a handle after checking that it belongs to this graph.
    pub(crate) fn check(&self, t: Tensor) -> Result<usize> {
        if t.1 != self.id || t.0 >= self.nodes.len() {
            return Err(Error::invalid_argument(format!(
                "tensor #{} does not belong to this graph ({} nodes){}",
                t.0,
                self.nodes.len(),
                if t.1 != self.id {
                    ": it was made by another graph"
                } else {
                    ""
                }
            )));
        }
        Ok(t.0)
    }

    /// The handle of node `index` of this graph.
    pub(crate) fn handle(&self, index: usize) -> Tensor {
        Tensor(index, self.id)
    }

    /// Whether `t` was made by this graph (or a clone of it) and names one of its nodes.
    pub fn contains(&self, t: impl Into<Operation>) -> bool {
        let o = t.into();
        o.1 == self.id && o.0 < self.nodes.len()
    }

    /// The dtype of a tensor.
    ///
    /// # Panics
    ///
    /// When `t` names no node of this graph ([`contains`](Self::contains) says).
    pub fn dtype(&self, t: Tensor) -> DType {
        self.nodes[t.0].dtype
    }

    /// The static shape of a tensor (`-1` for unknown dimensions).
    ///
    /// # Panics
    ///
    /// When `t` names no node of this graph ([`contains`](Self::contains) says).
    pub fn shape(&self, t: Tensor) -> &[i64] {
        &self.nodes[t.0].shape
    }

    /// The name of a node.
    ///
    /// # Panics
    ///
    /// When `t` names no node of this graph ([`contains`](Self::contains) says).
    pub fn name(&self, t: impl Into<Operation>) -> &str {
        &self.nodes[t.into().0].name
    }

    /// Looks a tensor up by its full name.
    pub fn by_name(&self, name: &str) -> Option<Tensor> {
        // Name scopes are reserved in the same table with no node behind them.
        self.names
            .get(name)
            .filter(|&&i| i < self.nodes.len())
            .map(|&i| self.handle(i))
    }

    /// Runs `f` with `scope` pushed onto the name-scope stack: nodes created inside are
    /// named `scope/...` (TF's `tf.name_scope`). Scope names are made unique as TF does.
    pub fn name_scope<T>(
        &mut self,
        scope: &str,
        f: impl FnOnce(&mut Graph) -> Result<T>,
    ) -> Result<T> {
        let full = self.unique_name(scope);
        // Reserve the scope name so a second scope of the same name becomes `scope_1`.
        self.names.entry(full.clone()).or_insert(usize::MAX);
        let last = full.rsplit('/').next().unwrap_or(&full).to_string();
        self.scopes.push(last);
        let r = f(self);
        self.scopes.pop();
        r
    }

    /// Runs `f` with `deps` as control inputs of every node it creates
    /// (TF's `tf.control_dependencies`).
    pub fn control_dependencies<T>(
        &mut self,
        deps: &[Operation],
        f: impl FnOnce(&mut Graph) -> Result<T>,
    ) -> Result<T> {
        self.control_scopes.push(deps.to_vec());
        let r = f(self);
        self.control_scopes.pop();
        r
    }

    /// Runs `f` at the root name scope (absolute names, as TF's `name_scope(None)`).
    pub fn root_scope<T>(&mut self, f: impl FnOnce(&mut Graph) -> Result<T>) -> Result<T> {
        let saved = std::mem::take(&mut self.scopes);
        let r = f(self);
        self.scopes = saved;
        r
    }

    /// The current scope prefix (`a/b/`), empty at the root.
    pub fn current_scope(&self) -> String {
        self.scopes.iter().map(|s| format!("{s}/")).collect()
    }

    fn unique_name(&self, base: &str) -> String {
        let prefix = self.current_scope();
        let name = format!("{prefix}{base}");
        if !self.names.contains_key(&name) {
            return name;
        }
        (1..)
            .map(|i| format!("{name}_{i}"))
            .find(|n| !self.names.contains_key(n))
            .unwrap_or(name)
    }

    /// Adds a node after inferring its dtype and shape.
    pub(crate) fn add_op(&mut self, op: Op, inputs: &[Tensor], name: &str) -> Result<Tensor> {
        for &t in inputs {
            self.check(t)?;
            if !self.nodes[t.0].has_value {
                return Err(Error::invalid_argument(format!(
                    "{}: input '{}' is an operation without a value",
                    op.tf_name(),
                    self.nodes[t.0].name
                )));
            }
        }
        let dtypes: Vec<DType> = inputs.iter().map(|t| self.dtype(*t)).collect();
        let shapes: Vec<Vec<i64>> = inputs.iter().map(|t| self.shape(*t).to_vec()).collect();
        let Inferred { dtype, shape } = infer(&op, &dtypes, &shapes).map_err(|e| {
            let names: Vec<String> = inputs
                .iter()
                .map(|t| format!("'{}' {}", self.name(*t), shape_str(self.shape(*t))))
                .collect();
            e.context(format!(
                "node '{}{name}' [inputs {}]",
                self.current_scope(),
                names.join(", ")
            ))
        })?;
        let has_value = !matches!(op, Op::NoOp);
        self.push_node(op, inputs.to_vec(), dtype, shape, name, has_value)
    }

    /// Appends a node whose dtype and shape are given (sources).
    pub(crate) fn push_node(
        &mut self,
        op: Op,
        inputs: Vec<Tensor>,
        dtype: DType,
        shape: Vec<i64>,
        name: &str,
        has_value: bool,
    ) -> Result<Tensor> {
        if self.finalized {
            return Err(Error::failed_precondition(format!(
                "Graph is finalized and cannot be modified (adding '{}')",
                name
            )));
        }
        if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ':') {
            return Err(Error::invalid_argument(format!(
                "'{name}' is not a valid node name"
            )));
        }
        let full = self.unique_name(name);
        let control_inputs: Vec<Operation> =
            self.control_scopes.iter().flatten().copied().collect();
        let id = self.nodes.len();
        self.names.insert(full.clone(), id);
        self.nodes.push(Node {
            name: full,
            op,
            inputs,
            control_inputs,
            dtype,
            shape,
            has_value,
        });
        Ok(self.handle(id))
    }

    /// Adds `t` to the collection `key`.
    pub fn add_to_collection(&mut self, key: &str, t: impl Into<Operation>) {
        let id = t.into().0;
        let c = self.collections.entry(key.to_string()).or_default();
        if !c.contains(&id) {
            c.push(id);
        }
    }

    /// The members of collection `key`, in insertion order.
    pub fn collection(&self, key: &str) -> Vec<Tensor> {
        self.collections
            .get(key)
            .map(|c| c.iter().map(|&i| self.handle(i)).collect())
            .unwrap_or_default()
    }

    /// The names of all non-empty collections.
    pub fn collection_keys(&self) -> Vec<String> {
        self.collections.keys().cloned().collect()
    }

    /// A node that runs all of `ops` (TF's `tf.group`).
    pub fn group(&mut self, ops: &[Operation], name: &str) -> Result<Operation> {
        for op in ops {
            self.check(Tensor(op.0, op.1))?;
        }
        let t = self.control_dependencies(ops, |g| {
            g.push_node(Op::NoOp, vec![], DType::F32, vec![], name, false)
        })?;
        Ok(t.op())
    }

    /// A node that does nothing (TF's `tf.no_op`); control inputs come from the enclosing
    /// [`control_dependencies`](Self::control_dependencies).
    pub fn no_op(&mut self, name: &str) -> Result<Operation> {
        Ok(self
            .push_node(Op::NoOp, vec![], DType::F32, vec![], name, false)?
            .op())
    }

    /// The nodes needed to compute `targets`: their transitive data and control inputs,
    /// stopping at `stop` (fed tensors), in topological order.
    pub fn ancestors(&self, targets: &[usize], stop: &dyn Fn(usize) -> bool) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(i) = stack.pop() {
            if seen[i] {
                continue;
            }
            seen[i] = true;
            if stop(i) {
                continue;
            }
            let n = &self.nodes[i];
            stack.extend(n.inputs.iter().map(|t| t.0));
            stack.extend(n.control_inputs.iter().map(|o| o.0));
        }
        (0..self.nodes.len()).filter(|&i| seen[i]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[test]
    fn scoped_unique_names() {
        let mut g = Graph::new();
        let x = g.placeholder("x", DType::F32, &[-1, 3]).unwrap();
        let a = g.name_scope("hidden", |g| g.relu(x)).unwrap();
        let b = g.name_scope("hidden", |g| g.relu(x)).unwrap();
        let c = g.relu(x).unwrap();
        let d = g.relu(x).unwrap();
        assert_eq!(g.name(a), "hidden/Relu");
        assert_eq!(g.name(b), "hidden_1/Relu");
        assert_eq!(g.name(c), "Relu");
        assert_eq!(g.name(d), "Relu_1");
    }

    #[test]
    fn finalized_graph_rejects_nodes() {
        let mut g = Graph::new();
        let x = g.placeholder("x", DType::F32, &[2]).unwrap();
        g.finalize();
        let e = g.relu(x).unwrap_err();
        assert_eq!(e.code, Code::FailedPrecondition);
    }

    #[test]
    fn shape_errors_name_the_inputs() {
        let mut g = Graph::new();
        let a = g.placeholder("a", DType::F32, &[-1, 3]).unwrap();
        let b = g.placeholder("b", DType::F32, &[4, 5]).unwrap();
        let e = g.matmul(a, b).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        assert!(e.message.contains("'a' [?,3]"), "{e}");
        let e = g.add(a, b).unwrap_err();
        assert!(e.message.contains("incompatible shapes"), "{e}");
        let i = g.placeholder("i", DType::I32, &[3]).unwrap();
        let e = g.exp(i).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
    }
}
