//! # wgtrain
//!
//! A GPU training engine for Rust: a model is a static dataflow graph with symbolic
//! gradients that runs as WGSL compute kernels through wgpu (Vulkan, Metal, DX12, GL, and
//! Mesa's software Vulkan on machines without a GPU).
//!
//! This facade re-exports the layers: [`engine`] (graph, autodiff, optimizers, the
//! wgpu [`Session`]), [`checkpoint`] (TensorFlow checkpoints, event files, graph export)
//! and [`hooks`] (the monitored training session and its hooks). The most used items
//! are at the root.

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
    Adam, AdamW, Code, Conv, DType, Error, Graph, HostTensor, Initializer, KernelTime,
    LearningRate, Momentum, Operation, Optimizer, Padding, Pool, Reference, Result, RmsProp,
    RunMetadata, Session, SessionConfig, Sgd, Tensor, gradients,
};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
