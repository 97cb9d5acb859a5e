//! Integration tests of the engine on wgpu against the reference interpreter.

mod common;
mod forward;
mod grads;
mod optim;
mod smoke;
mod state;
