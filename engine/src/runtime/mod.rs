//! The wgpu runtime: device selection, the kernel registry, planning and the
//! [`Session`].

mod arena;
mod device;
mod fusion;
pub(crate) mod kernels;
mod plan;
mod readback;
mod reduce;
mod session;
pub mod shaders;
pub mod testing;
mod variables;

pub use device::{AdapterSummary, Backend, PowerPreference, SessionConfig, list_adapters};
pub use readback::Snapshot;
pub use reduce::GradientReducer;
pub use session::{KernelTime, RunMetadata, RunStats, Session};
