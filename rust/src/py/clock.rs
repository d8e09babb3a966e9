//! `simloom._core.ClockView`: a universe's virtual clock, readable while the loop
//! is busy.
//!
//! The determinism boundary answers `time.monotonic()` and friends from the virtual
//! clock, and those calls can come from code that runs while the loop itself holds
//! its state (a finaliser or a garbage-collector callback run in the middle of
//! scheduling). Reading the clock through the loop would then fail ("already
//! borrowed"); a `ClockView` shares the clock through an atomic the loop updates
//! whenever its clock moves, so it never needs the loop.
//!
//! Owns: the shared clock reading. Must not: move the clock (the engine does).

use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The loop's side: where it publishes the clock.
pub(crate) type SharedClock = Arc<AtomicU64>;

/// Virtual time of one loop, read without touching the loop.
#[pyclass(module = "simloom._core", frozen)]
pub struct ClockView {
    pub(crate) now_ns: SharedClock,
}

#[pymethods]
impl ClockView {
    /// Virtual nanoseconds since the universe began.
    fn now_ns(&self) -> u64 {
        self.now_ns.load(Ordering::Relaxed)
    }

    /// Virtual seconds since the universe began (as `loop.time()`).
    fn time(&self) -> f64 {
        self.now_ns.load(Ordering::Relaxed) as f64 / 1e9
    }
}
