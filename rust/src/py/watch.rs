//! `simloom._core.StepWatch`: what the wall-clock watchdog (`simloom._watchdog`)
//! sees of a loop, and the one way it may interrupt it.
//!
//! The loop publishes its step count through atomics on every step (the cost of a
//! relaxed store), and is *armed* only while `_run_steps` runs: a step that never
//! yields keeps the count still, and the watchdog thread notices. Interrupting
//! checks, under the GIL, that the loop is still in that very step of that very
//! run; disarming (on every exit of `_run_steps`) withdraws an interrupt that was
//! sent but not delivered. So an interrupt can land only inside the step it was
//! meant for, never after the run or in another universe.
//!
//! Owns: the shared step reading and arming. Must not: read or change the engine.

use pyo3::ffi;
use pyo3::prelude::*;
use std::os::raw::c_long;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub(crate) struct WatchState {
    /// Steps taken by the loop (published as each step starts).
    steps: AtomicU64,
    /// Counts the runs (`_run_steps` calls), so a step count seen in one run is
    /// never mistaken for the same step in the next.
    generation: AtomicU64,
    armed: AtomicBool,
    /// An interrupt was sent during this run and may still be pending.
    sent: AtomicBool,
    /// The loop thread's `threading.get_ident()` while armed.
    thread: AtomicU64,
}

pub(crate) type SharedWatch = Arc<WatchState>;

impl WatchState {
    #[inline]
    pub(crate) fn publish_steps(&self, steps: u64) {
        self.steps.store(steps, Ordering::Relaxed);
    }
}

/// Armed while alive: `_run_steps` holds one for its whole duration, and dropping
/// it (on every way out, errors included) disarms the watch.
pub(crate) struct Armed {
    state: SharedWatch,
}

impl Armed {
    pub(crate) fn new(state: &SharedWatch, steps: u64) -> Armed {
        // SAFETY: called with the GIL held (from a Python method).
        let thread = unsafe { ffi::PyThread_get_thread_ident() } as u64;
        state.thread.store(thread, Ordering::Relaxed);
        state.steps.store(steps, Ordering::Relaxed);
        state.generation.fetch_add(1, Ordering::Relaxed);
        state.sent.store(false, Ordering::Relaxed);
        state.armed.store(true, Ordering::Release);
        Armed {
            state: state.clone(),
        }
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        self.state.armed.store(false, Ordering::Release);
        if self.state.sent.swap(false, Ordering::AcqRel) {
            // An interrupt was sent; if it has not been delivered yet, withdraw it:
            // it must not land after the run. (Dropped with the GIL held, inside
            // `_run_steps`.)
            let thread = self.state.thread.load(Ordering::Relaxed);
            // SAFETY: clearing a thread's pending asynchronous exception (NULL)
            // needs only the GIL.
            unsafe {
                ffi::PyThreadState_SetAsyncExc(thread as c_long, std::ptr::null_mut());
            }
        }
    }
}

/// A loop's step count and arming, readable from another thread.
#[pyclass(module = "simloom._core", frozen)]
pub struct StepWatch {
    pub(crate) state: SharedWatch,
}

#[pymethods]
impl StepWatch {
    /// `(armed, run generation, steps, loop thread ident)`.
    fn state(&self) -> (bool, u64, u64, u64) {
        let state = &self.state;
        (
            state.armed.load(Ordering::Acquire),
            state.generation.load(Ordering::Relaxed),
            state.steps.load(Ordering::Relaxed),
            state.thread.load(Ordering::Relaxed),
        )
    }

    /// Raise `exception` (a class) in the loop thread if it is still armed in step
    /// `steps` of run `generation`. Returns whether it was sent. The caller holds
    /// the GIL, so the loop thread is parked between two bytecodes of that step.
    fn interrupt(&self, generation: u64, steps: u64, exception: &Bound<'_, PyAny>) -> bool {
        let state = &self.state;
        if !state.armed.load(Ordering::Acquire)
            || state.generation.load(Ordering::Relaxed) != generation
            || state.steps.load(Ordering::Relaxed) != steps
        {
            return false;
        }
        let thread = state.thread.load(Ordering::Relaxed);
        // SAFETY: `exception` is a live object and the GIL is held.
        let found = unsafe { ffi::PyThreadState_SetAsyncExc(thread as c_long, exception.as_ptr()) };
        if found == 1 {
            state.sent.store(true, Ordering::Release);
        }
        found == 1
    }
}
