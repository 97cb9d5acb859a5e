//! # wgtrain-engine
//!
//! The engine layer of wgtrain: tensors, the static dataflow [`Graph`], symbolic
//! [`gradients`], [`optim`]izers, the [`reference`](mod@reference) interpreter and the wgpu-backed
//! [`Session`].
//!
//! ## Contract
//!
//! - A model is a [`Graph`] of nodes, each one [`Op`] from a closed vocabulary, built with
//!   checked builder methods: a dtype or shape that cannot work is an
//!   [`Code::InvalidArgument`] error at build time, naming the node and the shapes.
//! - [`Session::run`] takes feeds, fetches and targets. The set it is asked for is planned
//!   once (pruned node list, buffers assigned by liveness, pipelines and bind groups
//!   created) and replayed on later calls: one queue submission per run (two around
//!   the host all-reduce of a data-parallel step, see [`GradientReducer`]), only fetched
//!   tensors read back, variables kept on the device.
//! - Every error carries a TensorFlow canonical [`Code`]. Bad input never panics; wgpu
//!   validation errors are captured and returned as [`Code::Internal`]; a lost device is
//!   [`Code::Aborted`] (recoverable by re-creating the session).
//! - The engine knows nothing of files or hooks. Other layers read and write variables
//!   through [`Session::read_variables`], [`Session::write_variables`] and the
//!   asynchronous [`Session::snapshot_variables`].
//! - The [`Reference`] interpreter evaluates any graph on the CPU in `f64`; it is the
//!   oracle for kernels and gradients.
//!
//! ## Features
//!
//! - `gpu` (default): the wgpu [`runtime`] and [`Session`], with every family's kernel
//!   binding. Without it the engine is the graph, autodiff, the optimizers, the
//!   [`Executor`] seam and the reference interpreter, and links no graphics stack: the
//!   checkpoint crate (bundles, events, graph export, the Saver) builds on that.
//!
//! ```no_run
//! use wgtrain_engine::{Adam, DType, Graph, HostTensor, Initializer, Session, SessionConfig};
//! # fn main() -> wgtrain_engine::Result<()> {
//! let mut g = Graph::new();
//! let x = g.placeholder("x", DType::F32, &[-1, 4])?;
//! let y = g.placeholder("y", DType::I32, &[-1])?;
//! let w = g.variable("w", DType::F32, &[4, 3], Initializer::GlorotUniform)?;
//! let logits = g.matmul(x, w)?;
//! let loss = g.sparse_softmax_cross_entropy_mean(logits, y)?;
//! let step = g.global_step()?;
//! let train = Adam::new(0.01).minimize(&mut g, loss, step)?;
//! let init = g.global_variables_initializer()?;
//! let mut sess = Session::new(g, SessionConfig::default())?;
//! sess.run(&[], &[], &[init])?;
//! let xs = HostTensor::from_f32(&[2, 4], vec![0.5; 8])?;
//! let ys = HostTensor::from_i32(&[2], vec![0, 2])?;
//! let out = sess.run(&[(x, xs), (y, ys)], &[loss], &[train])?;
//! println!("loss {}", out[0].scalar_value()?);
//! # Ok(())
//! # }
//! ```

pub mod autodiff;
pub mod error;
pub mod exec;
pub mod executor;
pub mod graph;
pub mod layers;
pub mod metrics;
pub mod ops;
pub mod optim;
pub mod reference;
pub mod rng;
#[cfg(feature = "gpu")]
pub mod runtime;
pub mod summary;
pub mod tensor;
pub mod worker;

pub use autodiff::gradients;
pub use error::{Code, Error, Result};
pub use executor::{
    Backend, Executor, GradientReducer, KernelTime, PowerPreference, RunMetadata, RunStats,
    SessionConfig, Snapshot,
};
pub use graph::{Graph, Node, Operation, Tensor, VariableOptions, collections};
pub use ops::{
    AssignOp, BinaryOp, CompareOp, Conv, Initializer, Op, Padding, Pool, ReduceOp, SliceAxis,
    StridedSpec, UnaryOp, UpdateInputs, XentDy,
};
pub use optim::{
    Adam, AdamW, LearningRate, Momentum, Optimizer, RmsProp, Rule, Sgd, clip_by_global_norm,
};
pub use reference::Reference;
#[cfg(feature = "gpu")]
pub use runtime::{Session, shaders};
pub use tensor::{DType, HostTensor};
pub use worker::{Background, Task, Worker, WorkerOptions};
