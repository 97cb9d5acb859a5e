//! What every op family provides: one method per pass over the graph.
//!
//! An op family (`ops/conv`, …) is one module holding, for its ops, the graph builder
//! methods, the shape and dtype rule, the gradient, the reference evaluation, the kernel
//! binding and the TensorFlow spelling, beside its WGSL file in `shaders/`. The passes
//! (inference, autodiff, the reference interpreter, the planner, the exporter) reach a
//! family through [`Family`], so each pass dispatches in one short match
//! ([`super::Op::family`]) and each family's methods match its own op enum exhaustively:
//! a new op is one line in its family's enum, and the compiler names every method of
//! that family it must fill. Ops without data of their own (`BiasAdd`, `NoOp`) are a
//! unit type implementing the trait.

use super::export::Export;
use super::infer::Inferred;
use crate::error::Error;
use crate::error::Result;
use crate::graph::{Graph, Node, Tensor};
use crate::reference::Value;
#[cfg(feature = "gpu")]
use crate::runtime::kernels::{Arg, Loc, Recorder};
use crate::tensor::DType;

/// The passes' view of one family's ops (see the module doc).
pub(crate) trait Family {
    /// TensorFlow's op name (used in messages and as the exported op).
    fn tf_name(&self) -> &'static str;

    /// The output's dtype and shape for inputs of `dtypes` and `shapes` (which may hold
    /// `-1`, unknown until run time). InvalidArgument names the op and the shapes.
    fn infer(&self, dtypes: &[DType], shapes: &[Vec<i64>]) -> Result<Inferred>;

    /// The gradient of each input of `node`, given its output `y` and the gradient `dy`
    /// of the output; `None` where an input has no gradient.
    fn grad(
        &self,
        g: &mut Graph,
        node: &Node,
        y: Tensor,
        dy: Tensor,
    ) -> Result<Vec<Option<Tensor>>>;

    /// The output's elements (of `out_dtype` and `out_shape`), computed in `f64` from
    /// the inputs (the reference).
    fn eval(&self, ins: &[&Value], out_dtype: DType, out_shape: &[usize]) -> Result<Vec<f64>>;

    /// For an op that writes variables: the new values of the inputs it updates, as
    /// (input index, data), computed as [`Family::eval`] computes (the reference); none
    /// for every other op.
    fn updates(
        &self,
        _ins: &[&Value],
        _out_dtype: DType,
        _out_shape: &[usize],
    ) -> Result<Vec<(usize, Vec<f64>)>> {
        Ok(Vec::new())
    }

    /// Records the kernels computing the output `out` (of `out_dtype`, `out_shape`) from
    /// `ins`.
    #[cfg(feature = "gpu")]
    fn record(
        &self,
        rec: &mut Recorder<'_>,
        ins: &[Arg<'_>],
        out: &Loc,
        out_dtype: DType,
        out_shape: &[usize],
    ) -> Result<()>;

    /// Fills in the node's TensorFlow op, inputs and attrs (see [`Export`]).
    fn export(&self, e: &mut Export<'_>);

    /// Whether input `k` is read for its shape only.
    fn shape_only_input(&self, _k: usize) -> bool {
        false
    }
}

/// InvalidArgument: `node` (of op `op`) has no gradient.
pub(crate) fn not_differentiable(op: &dyn Family, node: &Node) -> Error {
    Error::invalid_argument(format!(
        "{} ('{}') is not differentiable",
        op.tf_name(),
        node.name
    ))
}
