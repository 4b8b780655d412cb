//! The shared test helpers (`tests/support`).

#[path = "../support/mod.rs"]
mod support;

pub use support::*;
