//! # wgtrain
//!
//! A GPU training engine for Rust: a model is a static dataflow graph with symbolic
//! gradients that runs as WGSL compute kernels through wgpu (Vulkan, Metal, DX12, GL, and
//! Mesa's software Vulkan on machines without a GPU).
//!
//! This facade re-exports the layers: [`engine`] (graph, autodiff, optimizers, the
//! wgpu [`Session`]), [`checkpoint`] (TensorFlow checkpoint and event formats) and
//! [`hooks`] (the session-run hooks). The most used items are at the root.

pub mod datasets;

pub use wgtrain_checkpoint as checkpoint;
pub use wgtrain_engine as engine;
pub use wgtrain_engine::{layers, metrics};
pub use wgtrain_hooks as hooks;

pub use wgtrain_engine::{
    Adam, AdamW, Code, Conv, DType, Error, Graph, HostTensor, Initializer, KernelTime,
    LearningRate, Momentum, Operation, Optimizer, Padding, Pool, Reference, Result, RmsProp,
    RunMetadata, Session, SessionConfig, Sgd, Tensor, gradients,
};

/// The README's examples, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
