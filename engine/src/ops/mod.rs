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
//! Ops are grouped in families, one module each beside one WGSL file: [`conv`]
//! (`shaders/conv.wgsl`: convolutions, depthwise convolutions, pooling and their
//! gradients), [`elementwise`] (`shaders/elementwise.wgsl`: [`UnaryOp`], [`BinaryOp`],
//! [`CompareOp`]), [`matmul`] (`shaders/matmul.wgsl`), [`reduce`]
//! (`shaders/reduce.wgsl`: reductions, argmax, broadcasting to and summing down to a
//! shape) and [`softmax`] (`shaders/softmax.wgsl`: softmax and the cross-entropies). A family holds, for its ops, the graph builder methods, the shape
//! and dtype rule, the gradient, the reference evaluation, the kernel binding and the
//! TensorFlow spelling, as one implementation of the `Family` trait (`ops/family.rs`)
//! per op enum. The passes (inference, autodiff, the reference interpreter, the
//! planner's kernel recording, the GraphDef export) reach a family through that trait,
//! and each of the family's methods matches its own enum with no catch-all arm. The
//! ops not yet in a family module are matched by the passes directly.
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
//!    the bindings, the workgroups. Elementwise ops instead add a `case` to the shader's
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
//! files and the interop example. GELU touched `ops/elementwise.rs`,
//! `shaders/elementwise.wgsl`, two test files and the interop example (and, being the
//! first op needing `erf` in `f64`, the manifests for the `libm` dependency).

use crate::tensor::{DType, HostTensor};

/// Input positions of an optimizer update op ([`Op::update_inputs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateInputs {
    /// The learning rate.
    pub lr: usize,
    /// The gradient.
    pub grad: usize,
    /// Adam's beta powers.
    pub powers: Option<(usize, usize)>,
}

/// Variable updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssignOp {
    /// `var = value`.
    Assign,
    /// `var += value`.
    Add,
    /// `var -= value`.
    Sub,
}

impl AssignOp {
    /// TensorFlow's op name.
    pub fn tf_name(self) -> &'static str {
        match self {
            AssignOp::Assign => "Assign",
            AssignOp::Add => "AssignAdd",
            AssignOp::Sub => "AssignSub",
        }
    }
}

/// How a variable's initial value is produced. Random initializers are seeded from the
/// graph seed and the op seed, so the same graph gives the same values every time.
#[derive(Clone, Debug, PartialEq)]
pub enum Initializer {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Every element `value`.
    Constant(f64),
    /// Uniform in `[min, max)`.
    RandomUniform {
        /// Lower bound.
        min: f64,
        /// Upper bound (exclusive).
        max: f64,
    },
    /// Normal with `mean` and `stddev`.
    RandomNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        stddev: f64,
    },
    /// Normal with values beyond two standard deviations redrawn (TF's truncated normal).
    TruncatedNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation before truncation.
        stddev: f64,
    },
    /// Glorot (Xavier) uniform: `U(-l, l)` with `l = sqrt(6 / (fan_in + fan_out))`.
    GlorotUniform,
    /// Glorot normal: truncated normal with `stddev = sqrt(2 / (fan_in + fan_out)) / .8796`.
    GlorotNormal,
    /// A given tensor.
    Value(HostTensor),
}

/// One primitive operation. See the module doc.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A value fed at run time.
    Placeholder,
    /// A constant.
    Const(HostTensor),
    /// A variable: state on the device that persists between runs.
    Variable {
        /// Whether the variable is in the trainable collection.
        trainable: bool,
    },
    /// A host-evaluated initial value (deterministic for a given seed pair).
    InitialValue {
        /// The initializer.
        init: Initializer,
        /// (graph seed, op seed).
        seed: (u64, u64),
    },
    /// A copy of the input.
    Identity,
    /// Elementwise unary function.
    Unary(UnaryOp),
    /// Elementwise binary function with broadcasting.
    Binary(BinaryOp),
    /// Elementwise comparison with broadcasting.
    Compare(CompareOp),
    /// Dtype conversion.
    Cast(DType),
    /// Matrix product over the last two axes, batched over leading axes (the
    /// [`matmul`] family).
    MatMul(MatMul),
    /// Reductions, the index of the maximum, and broadcasting to and summing down to
    /// another tensor's shape (the [`reduce`] family).
    Reduction(Reduction),
    /// Same data, new shape (one `-1` is inferred).
    Reshape(Vec<i64>),
    /// Reshape input 0 to the run-time shape of input 1.
    ReshapeLike,
    /// Axis permutation.
    Transpose(Vec<usize>),
    /// One-hot encoding of integer indices along a new last axis.
    OneHot {
        /// The size of the new axis.
        depth: usize,
        /// Value at the index.
        on_value: f32,
        /// Value elsewhere.
        off_value: f32,
    },
    /// Softmax, log-softmax and the cross-entropy losses (the [`softmax`] family).
    Softmax(SoftmaxOp),
    /// Adds a rank-1 bias (input 1) along the last axis of input 0.
    BiasAdd,
    /// Updates variable input 0 with input 1.
    Assign(AssignOp),
    /// `var -= lr * grad`; inputs (var, lr, grad).
    ApplyGradientDescent,
    /// Momentum; inputs (var, accum, lr, grad).
    ApplyMomentum {
        /// Momentum coefficient.
        momentum: f32,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// Adam (AdamW with `weight_decay` > 0); inputs (var, m, v, beta1_power, beta2_power,
    /// lr, grad).
    ApplyAdam {
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Epsilon.
        epsilon: f32,
        /// Decoupled weight decay (AdamW), multiplied by the learning rate.
        weight_decay: f32,
    },
    /// RMSProp; inputs (var, ms, mom, lr, grad).
    ApplyRmsProp {
        /// Decay of the mean square.
        rho: f32,
        /// Momentum coefficient.
        momentum: f32,
        /// Epsilon.
        epsilon: f32,
    },
    /// Convolutions and pooling (the [`conv`] family).
    Conv(ConvOp),
    /// A slice: `begin` and `size` per axis (`size` -1: to the end; negative `begin`
    /// counts from the end).
    Slice {
        /// First index per axis.
        begin: Vec<i64>,
        /// Elements per axis, -1 for the rest.
        size: Vec<i64>,
    },
    /// Python-style `x[b:e:s, ...]` per axis (see [`StridedSpec`]).
    StridedSlice(StridedSpec),
    /// The gradient of a slice ([`Op::Slice`] as a spec, or [`Op::StridedSlice`]): dy
    /// (input 1) scattered into zeros of the shape of input 0 (read for its shape only).
    StridedSliceGrad(StridedSpec),
    /// Constant padding: `(before, after)` per axis.
    Pad {
        /// Elements added before and after, per axis.
        paddings: Vec<[usize; 2]>,
        /// The value of the added elements.
        value: f32,
    },
    /// Repeats the input `multiples[d]` times along each axis.
    Tile {
        /// Repetitions per axis.
        multiples: Vec<usize>,
    },
    /// Joins the inputs (same dtype, same shape but along `axis`) along `axis`.
    Concat {
        /// The joined axis.
        axis: usize,
    },
    /// `cond ? a : b` elementwise with broadcasting: inputs (cond bool, a, b).
    Select,
    /// Rows (slices along `axis`) of input 0 picked by int32 indices (input 1): the
    /// output shape is `params[..axis] + indices + params[axis+1..]`. An index out of
    /// range gives zeros on the device (TF on GPUs); fed or constant indices are
    /// checked before the run (InvalidArgument, as TF on CPUs).
    Gather {
        /// The axis indexed.
        axis: usize,
        /// Whether fed or constant indices are checked (false: out of range gives
        /// zeros, as in the gradient of a segment sum, whose dropped ids gather zeros).
        checked: bool,
    },
    /// Sums of the rows of input 0 by segment id (input 1, int32, shaped as the leading
    /// axes of input 0) into `num_segments` rows; ids out of range are dropped.
    UnsortedSegmentSum {
        /// Rows of the output.
        num_segments: usize,
    },
    /// Keeps each element with probability `1 - rate`, scaled by `1 / (1 - rate)`:
    /// inputs (x, step: an int64 scalar). The mask is a pure function of the seeds,
    /// the step and the element index (Philox 4x32-10), so a resumed run draws the same
    /// masks, and the gradient is the same op on dy.
    Dropout {
        /// Probability of dropping an element, in `[0, 1)`.
        rate: f32,
        /// (graph seed, op seed).
        seed: (u64, u64),
    },
    /// Does nothing; a target for control dependencies (`group`).
    NoOp,
}

/// A strided slice's spec as TF's `strided_slice` takes it, resolved per axis against
/// the input shape by [`StridedSpec::resolve`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StridedSpec {
    /// Start per axis (negative counts from the end).
    pub begin: Vec<i64>,
    /// End (exclusive) per axis (negative counts from the end).
    pub end: Vec<i64>,
    /// Step per axis (nonzero; negative walks backwards).
    pub strides: Vec<i64>,
    /// Bit `d`: ignore `begin[d]` (start at the first element in the walking direction).
    pub begin_mask: u64,
    /// Bit `d`: ignore `end[d]` (run to the last element in the walking direction).
    pub end_mask: u64,
    /// Bit `d`: take the single element `begin[d]` and drop the axis.
    pub shrink_axis_mask: u64,
}

/// One axis of a resolved strided slice: the first index, the step and the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceAxis {
    /// First index taken.
    pub start: i64,
    /// Step between indices.
    pub step: i64,
    /// Indices taken.
    pub count: usize,
    /// The axis is dropped from the output (shrink).
    pub shrink: bool,
}

impl StridedSpec {
    /// The spec of `Slice { begin, size }` (`begin` non-negative, as TF's `Slice`).
    pub fn from_slice(begin: &[i64], size: &[i64]) -> StridedSpec {
        let mut end_mask = 0;
        let end = begin
            .iter()
            .zip(size)
            .enumerate()
            .map(|(d, (&b, &s))| {
                if s < 0 {
                    end_mask |= 1 << d;
                    0
                } else {
                    b + s
                }
            })
            .collect();
        StridedSpec {
            begin: begin.to_vec(),
            end,
            strides: vec![1; begin.len()],
            begin_mask: 0,
            end_mask,
            shrink_axis_mask: 0,
        }
    }

    /// Resolves the spec against `shape` (Python slicing rules; axes past the spec are
    /// taken whole). InvalidArgument for a zero step, a spec longer than the rank, or a
    /// shrunk index out of range.
    pub fn resolve(&self, shape: &[usize]) -> crate::error::Result<Vec<SliceAxis>> {
        use crate::error::Error;
        let k = self.begin.len();
        if self.end.len() != k || self.strides.len() != k {
            return Err(Error::invalid_argument(format!(
                "strided slice: begin, end and strides must have one entry per axis, got {}, {} and {}",
                k,
                self.end.len(),
                self.strides.len()
            )));
        }
        if k > shape.len() {
            return Err(Error::invalid_argument(format!(
                "strided slice of {k} axes on a tensor of rank {}",
                shape.len()
            )));
        }
        let mut out = Vec::with_capacity(shape.len());
        for (d, &n) in shape.iter().enumerate() {
            if d >= k {
                out.push(SliceAxis {
                    start: 0,
                    step: 1,
                    count: n,
                    shrink: false,
                });
                continue;
            }
            let n = n as i64;
            let s = self.strides[d];
            if s == 0 {
                return Err(Error::invalid_argument(format!(
                    "strided slice: stride of axis {d} is 0"
                )));
            }
            let bit = 1u64 << d;
            if self.shrink_axis_mask & bit != 0 {
                let b = self.begin[d];
                let i = if b < 0 { b + n } else { b };
                if i < 0 || i >= n {
                    return Err(Error::invalid_argument(format!(
                        "strided slice: index {b} of axis {d} is out of range for size {n}"
                    )));
                }
                out.push(SliceAxis {
                    start: i,
                    step: 1,
                    count: 1,
                    shrink: true,
                });
                continue;
            }
            let (lo, hi) = if s > 0 { (0, n) } else { (-1, n - 1) };
            let fix = |v: i64| (if v < 0 { v + n } else { v }).clamp(lo, hi);
            let start = if self.begin_mask & bit != 0 {
                if s > 0 { 0 } else { n - 1 }
            } else {
                fix(self.begin[d])
            };
            let end = if self.end_mask & bit != 0 {
                if s > 0 { n } else { -1 }
            } else {
                fix(self.end[d])
            };
            let span = if s > 0 { end - start } else { start - end };
            let count = (span.max(0) + s.abs() - 1) / s.abs();
            out.push(SliceAxis {
                start,
                step: s,
                count: count.max(0) as usize,
                shrink: false,
            });
        }
        Ok(out)
    }
}

impl Op {
    /// TensorFlow's op name for the node (used in graph export and messages).
    pub fn tf_name(&self) -> &'static str {
        match self {
            Op::Placeholder => "Placeholder",
            Op::Const(_) => "Const",
            Op::Variable { .. } => "VariableV2",
            Op::InitialValue { init, .. } => match init {
                Initializer::RandomUniform { .. } | Initializer::GlorotUniform => "RandomUniform",
                Initializer::RandomNormal { .. } => "RandomStandardNormal",
                Initializer::TruncatedNormal { .. } | Initializer::GlorotNormal => {
                    "TruncatedNormal"
                }
                _ => "Const",
            },
            Op::Identity => "Identity",
            Op::Unary(u) => UnaryOp::tf_name(*u),
            Op::Binary(b) => BinaryOp::tf_name(*b),
            Op::Compare(c) => CompareOp::tf_name(*c),
            Op::Cast(_) => "Cast",
            Op::MatMul(m) => m.tf_name(),
            Op::Reduction(r) => r.tf_name(),
            Op::Reshape(_) | Op::ReshapeLike => "Reshape",
            Op::Transpose(_) => "Transpose",
            Op::OneHot { .. } => "OneHot",
            Op::Softmax(s) => s.tf_name(),
            Op::BiasAdd => "BiasAdd",
            Op::Assign(a) => a.tf_name(),
            Op::ApplyGradientDescent => "ApplyGradientDescent",
            Op::ApplyMomentum { .. } => "ApplyMomentum",
            Op::ApplyAdam { .. } => "ApplyAdam",
            Op::ApplyRmsProp { .. } => "ApplyRMSProp",
            Op::Conv(c) => c.tf_name(),
            Op::Slice { .. } => "Slice",
            Op::StridedSlice(_) => "StridedSlice",
            Op::StridedSliceGrad(_) => "StridedSliceGrad",
            Op::Pad { .. } => "PadV2",
            Op::Tile { .. } => "Tile",
            Op::Concat { .. } => "ConcatV2",
            Op::Select => "SelectV2",
            Op::Gather { .. } => "GatherV2",
            Op::UnsortedSegmentSum { .. } => "UnsortedSegmentSum",
            Op::Dropout { .. } => "Dropout",
            Op::NoOp => "NoOp",
        }
    }

    /// The op's family, for the ops in a family module; `None` for the ops the passes
    /// still match one by one.
    pub(crate) fn family(&self) -> Option<&dyn Family> {
        match self {
            Op::Conv(c) => Some(c),
            Op::Unary(u) => Some(u),
            Op::Binary(b) => Some(b),
            Op::Compare(c) => Some(c),
            Op::Softmax(s) => Some(s),
            Op::MatMul(m) => Some(m),
            Op::Reduction(r) => Some(r),
            _ => None,
        }
    }

    /// Fills in the TensorFlow spelling of a node of this op (see [`export::Export`]);
    /// false, leaving `e` as it was, for an op whose spelling the exporter writes itself.
    pub fn export(&self, e: &mut export::Export<'_>) -> bool {
        match self.family() {
            Some(f) => {
                f.export(e);
                true
            }
            None => false,
        }
    }

    /// Whether input `k` is read for its shape only (its value is never computed for
    /// this op).
    pub fn shape_only_input(&self, k: usize) -> bool {
        match self {
            Op::Conv(c) => c.shape_only_input(k),
            Op::Reduction(r) => r.shape_only_input(k),
            Op::ReshapeLike => k == 1,
            Op::StridedSliceGrad(_) => k == 0,
            _ => false,
        }
    }

    /// Whether the op writes into a variable (input 0).
    pub fn mutates_variable(&self) -> bool {
        matches!(
            self,
            Op::Assign(_)
                | Op::ApplyGradientDescent
                | Op::ApplyMomentum { .. }
                | Op::ApplyAdam { .. }
                | Op::ApplyRmsProp { .. }
        )
    }

    /// Where the learning rate, gradient and (Adam) beta powers of an optimizer update
    /// are among its inputs; `None` for other ops.
    pub fn update_inputs(&self) -> Option<UpdateInputs> {
        let (lr, grad, powers) = match self {
            Op::ApplyGradientDescent => (1, 2, None),
            Op::ApplyMomentum { .. } => (2, 3, None),
            Op::ApplyAdam { .. } => (5, 6, Some((3, 4))),
            Op::ApplyRmsProp { .. } => (3, 4, None),
            _ => return None,
        };
        Some(UpdateInputs { lr, grad, powers })
    }

    /// The inputs, besides input 0, that are variables updated in place (optimizer slots).
    pub fn mutated_slots(&self) -> &'static [usize] {
        match self {
            Op::ApplyMomentum { .. } => &[1],
            Op::ApplyAdam { .. } => &[1, 2],
            Op::ApplyRmsProp { .. } => &[1, 2],
            _ => &[],
        }
    }
}

pub mod conv;
pub mod elementwise;
pub mod export;
mod family;
mod infer;
pub mod matmul;
pub mod reduce;
pub mod softmax;

pub use conv::{Conv, ConvOp, Padding, Pool, Window};
pub use elementwise::{BinaryOp, CompareOp, UnaryOp};
pub(crate) use family::Family;
pub use infer::{Inferred, broadcast_shapes, infer, reshape_target};
pub use matmul::MatMul;
pub use reduce::{ReduceOp, Reduction};
pub use softmax::{SoftmaxOp, XentDy};
