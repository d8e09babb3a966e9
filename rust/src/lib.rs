//! simloom's engine: deterministic scheduling, a virtual clock and the choice tape.
//!
//! The engine modules build and test with no Python present (`cargo test`); the
//! `python` feature adds `py/`, the only place that knows about Python objects.

pub mod check;
pub mod choices;
pub mod disk;
pub mod engine;
pub mod eventlog;
pub mod net;
pub mod ready;
pub mod sha256;
pub mod strategy;
pub mod tape;
pub mod timers;
pub mod world;

#[cfg(feature = "python")]
mod py;
