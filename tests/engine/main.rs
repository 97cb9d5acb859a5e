//! Integration tests of the engine on wgpu against the reference interpreter.

#![allow(clippy::unwrap_used, clippy::type_complexity)]

mod array;
mod common;
mod conv;
mod errors;
mod forward;
mod fusion;
mod grads;
mod layers;
mod mlp;
mod optim;
mod replicas;
mod smoke;
mod state;
