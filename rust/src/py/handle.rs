//! `simloom._core.Handle`: what `call_soon` / `call_later` / `call_at` return.

use super::loop_core::LoopCore;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::{PyTraverseError, PyVisit};
use std::sync::atomic::{AtomicBool, Ordering};

/// A scheduled callback. `cancel()` removes it from the simulation at once, so a
/// cancelled callback never occupies a decision point.
#[pyclass(module = "simloom._core", frozen, weakref)]
pub struct Handle {
    pub(crate) callback: Py<PyAny>,
    pub(crate) args: Py<PyTuple>,
    pub(crate) context: Option<Py<PyAny>>,
    pub(crate) owner_loop: Py<LoopCore>,
    pub(crate) id: u64,
    pub(crate) label: u32,
    /// Virtual deadline in nanoseconds, for timer handles.
    pub(crate) when_ns: Option<u64>,
    pub(crate) cancelled: AtomicBool,
    /// Taken out of the engine to run: cancelling it now has nothing to remove.
    pub(crate) started: AtomicBool,
    /// The step (numbered from 1) whose callback scheduled it; 0 when it was
    /// scheduled outside any step (the main task, the world's set-up). The causal
    /// trace's "woken by" edge.
    pub(crate) parent_step: u64,
    /// A task's step or wakeup (the task resumes when it runs): what the step hook
    /// (injected cancellations) is told about.
    pub(crate) task_step: bool,
}

#[pymethods]
impl Handle {
    /// Cancel the callback; a no-op once it has run or been cancelled.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        if self.cancelled.swap(true, Ordering::Relaxed) || self.started.load(Ordering::Relaxed) {
            return Ok(());
        }
        let dropped = {
            let mut core = self.owner_loop.bind(py).try_borrow_mut()?;
            core.cancel_handle(self.id)
        };
        // Dropped outside the borrow: releasing a callback can run Python code.
        drop(dropped);
        Ok(())
    }

    fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    fn get_context(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.context.as_ref().map(|c| c.clone_ref(py))
    }

    /// The virtual time (seconds) a timer handle is due at.
    fn when(&self) -> PyResult<f64> {
        match self.when_ns {
            Some(ns) => Ok(ns as f64 / 1e9),
            None => Err(pyo3::exceptions::PyAttributeError::new_err(
                "when() is only defined for handles returned by call_later/call_at",
            )),
        }
    }

    /// asyncio's `Handle._cancelled` attribute, read by code (and CPython's tests)
    /// that inspects handles.
    #[getter(_cancelled)]
    fn cancelled_attribute(&self) -> bool {
        self.cancelled()
    }

    /// The engine's id of this callback (ids grow in scheduling order).
    #[getter]
    fn _id(&self) -> u64 {
        self.id
    }

    /// The step (numbered from 1) that scheduled this callback, 0 for none.
    #[getter]
    fn _parent_step(&self) -> u64 {
        self.parent_step
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> Py<PyAny> {
        self.callback.clone_ref(py)
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Py<PyTuple> {
        self.args.clone_ref(py)
    }

    #[getter]
    fn _label(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self
            .owner_loop
            .bind(py)
            .try_borrow()?
            .label_text(self.label))
    }

    /// Run the callback now, in its context (as asyncio's `Handle._run`).
    fn _run(&self, py: Python<'_>) -> PyResult<()> {
        super::loop_core::invoke(py, self).map(|_| ())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let label = self
            .owner_loop
            .bind(py)
            .try_borrow()
            .map(|core| core.label_text(self.label))
            .unwrap_or_else(|_| "?".to_string());
        let state = if self.cancelled() { " cancelled" } else { "" };
        match self.when_ns {
            Some(ns) => format!("<TimerHandle{state} when={} {label}>", ns as f64 / 1e9),
            None => format!("<Handle{state} {label}>"),
        }
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.callback)?;
        visit.call(&self.args)?;
        if let Some(context) = &self.context {
            visit.call(context)?;
        }
        visit.call(&self.owner_loop)?;
        Ok(())
    }
}
