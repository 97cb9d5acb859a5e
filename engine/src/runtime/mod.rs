//! The wgpu runtime: device selection, the kernel registry, planning and the
//! [`Session`].

mod arena;
mod device;
mod encode;
mod fusion;
pub(crate) mod kernels;
mod plan;
mod readback;
mod reduce;
mod run;
mod session;
pub mod shaders;
pub mod testing;
mod variables;

pub use crate::executor::{
    Backend, GradientReducer, KernelTime, PowerPreference, RunMetadata, RunStats, SessionConfig,
    Snapshot,
};
pub use device::{AdapterSummary, list_adapters};
pub use session::Session;
