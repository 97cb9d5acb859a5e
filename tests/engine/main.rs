//! Integration tests of the engine on wgpu against the reference interpreter.

mod common;
mod forward;
mod smoke;
mod state;
