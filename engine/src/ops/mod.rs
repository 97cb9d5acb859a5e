//! The closed op vocabulary of the graph and its dtype/shape inference.
//!
//! Every node of a [`Graph`](crate::Graph) holds one [`Op`]. Composite operations (layers,
//! losses, learning-rate schedules, optimizers' bookkeeping) are built from these
//! primitives by the builder methods of the graph. The same [`infer`] function checks a
//! node when it is added (shapes may hold `-1`, an unknown batch dimension) and resolves
//! concrete shapes when the session plans a run.
//!
//! # Op families
//!
//! Every op belongs to a family, one module each beside its WGSL file: [`state`]
//! (`shaders/state.wgsl`: placeholders, constants, variables and their initial values,
//! assignments, the group op), [`elementwise`] (`shaders/elementwise.wgsl`: [`UnaryOp`],
//! [`BinaryOp`], [`CompareOp`]), [`matmul`] (`shaders/matmul.wgsl`: the matrix product
//! and the bias after it), [`reduce`] (`shaders/reduce.wgsl`: reductions, argmax,
//! broadcasting to and summing down to a shape), [`softmax`] (`shaders/softmax.wgsl`:
//! softmax and the cross-entropies), [`conv`] (`shaders/conv.wgsl`: convolutions,
//! depthwise convolutions, pooling and their gradients), [`layout`]
//! (`shaders/remap.wgsl`, `shaders/layout.wgsl`: copies, casts, reshapes, transposes,
//! slices, padding, tiling, concatenation), [`index`] (`shaders/gather.wgsl`,
//! `shaders/index.wgsl`: select, gathers, segment sums, one-hot), [`random`]
//! (`shaders/random.wgsl`: dropout) and [`update`] (`shaders/optim.wgsl`: the
//! optimizers' update rules). A family holds, for its ops, the graph builder methods,
//! the shape and dtype rule, the gradient, the reference evaluation, the kernel binding
//! and the TensorFlow spelling, as one implementation of the `Family` trait
//! (`ops/family.rs`) per op enum. The passes (inference, autodiff, the reference
//! interpreter, the planner's kernel recording, the GraphDef export) reach a family
//! through `Op::family`'s one exhaustive match, and each of the family's methods
//! matches its own enum with no catch-all arm.
//!
//! # Adding an op
//!
//! Take `depthwise_conv2d`, added to the [`conv`] family:
//!
//! 1. **The enum line.** Add the variants to the family's enum: `DepthwiseConv2D(Conv)`
//!    and its two gradients in [`ConvOp`]. The compiler now lists every method of the
//!    family that must handle them, and nothing outside the family.
//! 2. **Name and builder.** `tf_name` gives TF's op name (`DepthwiseConv2dNative`); a
//!    builder method on [`Graph`](crate::Graph) (`Graph::depthwise_conv2d`) adds the node.
//! 3. **Shape and dtype.** `Family::infer` checks the inputs with the shared `Check`
//!    helpers (arity, dtypes, ranks; InvalidArgument naming the op and the shapes) and
//!    returns the output's dtype and shape, `-1` where unknown.
//! 4. **Gradient.** `Family::grad` builds the gradient of each input from graph ops
//!    (here the two backprop ops); a gradient op that has no gradient itself returns
//!    `not_differentiable`.
//! 5. **Reference.** `Family::eval` computes the output in `f64` with plain loops (the
//!    family's `reference.rs`); it is the oracle every kernel is tested against.
//! 6. **Kernel.** Write the WGSL entry point in the family's shader and bind it in
//!    `Family::record` (the family's `kernel.rs`): the uniform mirrored field for field,
//!    the bindings, the workgroups. `record` and `kernel.rs` sit behind the engine's
//!    `gpu` feature (`#[cfg(feature = "gpu")]`), so that the family builds without
//!    wgpu for the checkpoint crate. Elementwise ops instead add a `case` to the shader's
//!    switch and a row to the enum's `ALL` table, which defines the opcode constant the
//!    case names (a test checks every opcode has its case and no other).
//! 7. **Export.** `Family::export` sets TF's op, inputs and attrs on an
//!    [`export::Export`]; where TF has no such kernel, spell it as TF composes it (GELU
//!    is `0.5 * x * (1 + Erf(x / √2))`, as `tf.nn.gelu` builds it).
//! 8. **Tests.** The kernel against the reference on random inputs and odd shapes
//!    (`tests/engine/conv.rs`, `forward.rs`), the gradient against central finite
//!    differences and the kernel's gradient against the reference's (`grads.rs`), and the
//!    export in the TF interop graph that TensorFlow imports and runs
//!    (`examples/tf_interop.rs`, checked by `tools/tf_interop.py` in CI).
//!
//! `depthwise_conv2d` touched `ops/conv/mod.rs` (enum, builder, shape rule, gradient,
//! export), `ops/conv/reference.rs`, `ops/conv/kernel.rs`, `shaders/conv.wgsl`, two test
//! files and the interop example. GELU touched `ops/elementwise.rs` (since split into
//! `ops/elementwise/mod.rs` and its `reference.rs`),
//! `shaders/elementwise.wgsl`, two test files and the interop example (and, being the
//! first op needing `erf` in `f64`, the manifests for the `libm` dependency).

use crate::tensor::HostTensor;

/// One primitive operation: one op of a family. See the module doc.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Placeholders, constants, variables and initial values (the [`state`] family).
    Source(Source),
    /// An update of variable input 0 with input 1 (the [`state`] family).
    Assign(AssignOp),
    /// Does nothing; a target for control dependencies (`group`, the [`state`] family).
    NoOp,
    /// Elementwise unary function (the [`elementwise`] family).
    Unary(UnaryOp),
    /// Elementwise binary function with broadcasting (the [`elementwise`] family).
    Binary(BinaryOp),
    /// Elementwise comparison with broadcasting (the [`elementwise`] family).
    Compare(CompareOp),
    /// Adds a rank-1 bias (input 1) along the last axis of input 0 (the [`matmul`]
    /// family).
    BiasAdd,
    /// Matrix product over the last two axes, batched over leading axes (the
    /// [`matmul`] family).
    MatMul(MatMul),
    /// Reductions, the index of the maximum, and broadcasting to and summing down to
    /// another tensor's shape (the [`reduce`] family).
    Reduction(Reduction),
    /// Softmax, log-softmax and the cross-entropy losses (the [`softmax`] family).
    Softmax(SoftmaxOp),
    /// Convolutions and pooling (the [`conv`] family).
    Conv(ConvOp),
    /// Copies, casts, reshapes, transposes, slices, padding, tiling and concatenation
    /// (the [`layout`] family).
    Layout(LayoutOp),
    /// Select, gathers, segment sums and one-hot encoding (the [`index`] family).
    Index(IndexOp),
    /// Dropout with a mask drawn from the step (the [`random`] family).
    Dropout(Dropout),
    /// An optimizer's update of variable input 0 and its slots (the [`update`] family).
    Apply(Rule),
}

impl Op {
    /// The op's family: the one place each pass dispatches on the op.
    pub(crate) fn family(&self) -> &dyn Family {
        match self {
            Op::Source(s) => s,
            Op::Assign(a) => a,
            Op::NoOp => &state::NoOp,
            Op::Unary(u) => u,
            Op::Binary(b) => b,
            Op::Compare(c) => c,
            Op::BiasAdd => &matmul::BiasAdd,
            Op::MatMul(m) => m,
            Op::Reduction(r) => r,
            Op::Softmax(s) => s,
            Op::Conv(c) => c,
            Op::Layout(l) => l,
            Op::Index(i) => i,
            Op::Dropout(d) => d,
            Op::Apply(r) => r,
        }
    }

    /// TensorFlow's op name for the node (used in graph export and messages).
    pub fn tf_name(&self) -> &'static str {
        self.family().tf_name()
    }

    /// Fills in the TensorFlow spelling of a node of this op (see [`export::Export`]).
    pub fn export(&self, e: &mut export::Export<'_>) {
        self.family().export(e)
    }

    /// Whether input `k` is read for its shape only (its value is never computed for
    /// this op).
    pub fn shape_only_input(&self, k: usize) -> bool {
        self.family().shape_only_input(k)
    }

    /// Whether the op is a placeholder.
    pub fn is_placeholder(&self) -> bool {
        matches!(self, Op::Source(Source::Placeholder))
    }

    /// Whether the op is a variable.
    pub fn is_variable(&self) -> bool {
        matches!(self, Op::Source(Source::Variable { .. }))
    }

    /// The value of a constant.
    pub fn as_const(&self) -> Option<&HostTensor> {
        match self {
            Op::Source(Source::Const(v)) => Some(v),
            _ => None,
        }
    }

    /// The value of a one-element constant.
    pub fn const_scalar(&self) -> Option<f64> {
        self.as_const()
            .filter(|v| v.len() == 1)
            .map(|v| v.get_f64(0))
    }

    /// Whether the op is a constant or a variable's initial value: known before the
    /// run, uploaded once.
    pub fn is_constant(&self) -> bool {
        matches!(
            self,
            Op::Source(Source::Const(_) | Source::InitialValue { .. })
        )
    }

    /// The axis of a gather whose indices are checked before or during the run.
    pub fn checked_gather_axis(&self) -> Option<usize> {
        match self {
            Op::Index(IndexOp::Gather {
                axis,
                checked: true,
            }) => Some(*axis),
            _ => None,
        }
    }

    /// Whether the op is a reshape: its output aliases its input's buffer.
    pub fn is_reshape(&self) -> bool {
        matches!(
            self,
            Op::Layout(LayoutOp::Reshape(_) | LayoutOp::ReshapeLike)
        )
    }

    /// Whether the op writes into a variable (input 0).
    pub fn mutates_variable(&self) -> bool {
        matches!(self, Op::Assign(_) | Op::Apply(_))
    }

    /// Where the learning rate, gradient and (Adam) beta powers of an optimizer update
    /// are among its inputs; `None` for other ops.
    pub fn update_inputs(&self) -> Option<UpdateInputs> {
        match self {
            Op::Apply(r) => Some(r.inputs()),
            _ => None,
        }
    }

    /// The inputs, besides input 0, that are variables updated in place (optimizer slots).
    pub fn mutated_slots(&self) -> &'static [usize] {
        match self {
            Op::Apply(r) => r.slots(),
            _ => &[],
        }
    }
}

pub mod conv;
pub mod elementwise;
pub mod export;
mod family;
pub mod index;
mod infer;
pub mod layout;
pub mod matmul;
pub mod random;
pub mod reduce;
pub mod softmax;
pub mod state;
pub mod update;

pub use conv::{Conv, ConvOp, Padding, Pool, Window};
pub use elementwise::{BinaryOp, CompareOp, UnaryOp};
pub(crate) use family::Family;
pub use index::IndexOp;
pub use infer::{Inferred, broadcast_shapes, infer};
pub use layout::{LayoutOp, SliceAxis, StridedSpec, reshape_target};
pub use matmul::MatMul;
pub use random::Dropout;
pub use reduce::{ReduceOp, Reduction};
pub use softmax::{SoftmaxOp, XentDy};
pub use state::{AssignOp, Initializer, Source};
pub use update::{Rule, UpdateInputs};
