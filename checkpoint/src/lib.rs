//! # wgtrain-checkpoint
//!
//! TensorFlow's file formats for wgtrain: V2 tensor-bundle checkpoints
//! ([`bundle`], on LevelDB's [`table`] format), the `checkpoint` state file
//! ([`state`]), the [`Saver`] (asynchronous, crash-safe, TF's retention rules),
//! TensorBoard event files ([`events`]) and the graph as TF's `GraphDef` and
//! `MetaGraphDef` ([`graph_export`]). This layer deals in host tensors (name, dtype,
//! shape, bytes) and the engine's snapshots, and knows nothing of GPUs.
//!
//! Contract: a bundle this crate writes is read by TensorFlow's `tf.train.load_checkpoint`
//! as its own, and every bundle TensorFlow writes (the dtypes in `Tensor`) reads here
//! with every checksum verified; damage is DataLoss naming the file and the tensor.

pub mod bundle;
pub mod crc;
pub mod events;
pub mod graph_export;
pub mod pbtxt;
pub mod proto;
pub mod saver;
pub mod state;
pub mod table;
pub mod tensor;
mod text;

/// The error type of the engine, shared by every layer.
pub mod error {
    pub use wgtrain_engine::{Code, Error, Result};
}

pub use bundle::{BundleReader, write_bundle};
pub use saver::{Retention, Saver, SaverOptions, init_from_checkpoint};
pub use state::{
    CheckpointState, checkpoints_newest_first, latest_checkpoint, remove_stale_temporaries,
};
pub use tensor::{Data, Tensor, TfDType};
pub use wgtrain_engine::{DType, HostTensor};
