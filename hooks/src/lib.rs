//! # wgtrain-hooks
//!
//! Session-run hooks for wgtrain's monitored training session. This layer sees the
//! session only through the engine's public run and variable API.
//!
//! The hook contract, timers and built-in hooks are built on top of the engine and
//! checkpoint layers; this crate currently re-exports the engine types hooks use.

pub use wgtrain_engine::{Operation, Session, Tensor};
