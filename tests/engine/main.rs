//! Integration tests of the engine on wgpu against the reference interpreter.

mod common;
mod errors;
mod forward;
mod grads;
mod mlp;
mod optim;
mod smoke;
mod state;
