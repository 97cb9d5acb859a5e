//! # wgtrain
//!
//! A GPU training engine for Rust: a model is a static dataflow graph with symbolic
//! gradients that runs as WGSL compute kernels through wgpu (Vulkan, Metal, DX12, GL, and
//! Mesa's software Vulkan on machines without a GPU).
//!
//! This facade re-exports the layers: [`engine`] (graph, autodiff, optimizers, the
//! wgpu [`Session`]), [`checkpoint`] (TensorFlow checkpoints, event files, graph export)
//! and [`hooks`] (the monitored training session and its hooks). The most used items
//! are at the root. Each layer sees the one below only through its public API: the
//! hooks drive a session through `run` and the variable calls and write files only
//! through [`checkpoint`]; the checkpoint layer reads the engine's host tensors and
//! snapshots; the engine knows nothing of either.
//!
//! Besides: [`datasets`] (the UCI digits embedded in the library, an MNIST reader) and
//! [`classifier`] (an MLP or CNN trained through [`MonitoredTrainingSession`], the core
//! of the `digits` and `mnist` examples). The `wgtrain` binary lists adapters and
//! inspects checkpoints and event files.
//!
//! ```no_run
//! use wgtrain::classifier::{Model, Options, train};
//!
//! let data = wgtrain::datasets::digits()?.split(0.2, 7);
//! let mut opts = Options::new(Model::Cnn);
//! opts.checkpoint_dir = Some("runs/digits".into());
//! let report = train(&data, &opts)?;
//! println!("held-out accuracy {:.2}%", 100.0 * report.held_out_accuracy);
//! # Ok::<(), wgtrain::Error>(())
//! ```

pub mod classifier;
pub mod datasets;

pub use wgtrain_checkpoint as checkpoint;
pub use wgtrain_engine as engine;
pub use wgtrain_engine::{layers, metrics};
pub use wgtrain_hooks as hooks;
pub use wgtrain_hooks::{
    MonitoredSession, MonitoredTrainingSession, Scaffold, SessionRunHook, StopAtStepHook,
};

pub use wgtrain_engine::{
    Adam, AdamW, Code, Conv, DType, Error, Executor, GradientReducer, Graph, HostTensor,
    Initializer, KernelTime, LearningRate, Momentum, Operation, Optimizer, Padding, Pool,
    Reference, Result, RmsProp, RunMetadata, Session, SessionConfig, Sgd, Tensor, executor,
    gradients,
};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
