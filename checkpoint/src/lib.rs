//! # wgtrain-checkpoint
//!
//! TensorFlow's file formats for wgtrain: V2 tensor-bundle checkpoints, the `checkpoint`
//! state file and TensorBoard event files. This layer deals only in host tensors
//! (name, dtype, shape, bytes) and knows nothing of GPUs.
//!
//! It currently re-exports the host tensor type the formats are written in.

pub use wgtrain_engine::{DType, HostTensor};
