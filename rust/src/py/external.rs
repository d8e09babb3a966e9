//! A choice source answered by a Python object (the Hypothesis bridge).
//!
//! The object has `more() -> bool`, `gap() -> int` and `value(label, bound) -> int`;
//! the engine turns those draws into decisions with the sparse encoding. A Python
//! exception (Hypothesis stopping the test, say) is kept here and re-raised by the
//! loop once the engine has unwound.

use crate::engine::{ExternalDraws, SourceAbort};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

pub(crate) type ErrorSlot = Arc<Mutex<Option<PyErr>>>;
/// The one strong reference to the Python draws object, shared with the loop so
/// the garbage collector can see it (and clear it) through the loop.
pub(crate) type DrawsSlot = Arc<Mutex<Option<Py<PyAny>>>>;

pub(crate) struct PyDraws {
    pub source: DrawsSlot,
    pub error: ErrorSlot,
}

impl PyDraws {
    fn call<T>(
        &self,
        f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> PyResult<T>,
    ) -> Result<T, SourceAbort> {
        Python::attach(|py| {
            let source = self
                .source
                .lock()
                .expect("draws slot")
                .as_ref()
                .map(|s| s.clone_ref(py));
            let outcome = match source {
                Some(source) => f(py, source.bind(py)),
                None => Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "the universe's choice source was released",
                )),
            };
            outcome.map_err(|err| {
                *self.error.lock().expect("error slot") = Some(err);
                SourceAbort
            })
        })
    }
}

impl ExternalDraws for PyDraws {
    fn more(&mut self) -> Result<bool, SourceAbort> {
        self.call(|py, source| source.call_method0(pyo3::intern!(py, "more"))?.is_truthy())
    }

    fn gap(&mut self) -> Result<u64, SourceAbort> {
        self.call(|py, source| source.call_method0(pyo3::intern!(py, "gap"))?.extract())
    }

    fn value(&mut self, label: &str, bound: u64) -> Result<u64, SourceAbort> {
        self.call(|py, source| {
            source
                .call_method1(pyo3::intern!(py, "value"), (label, bound))?
                .extract()
        })
    }
}
