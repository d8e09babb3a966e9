//! The only FFI layer: `simloom._core`, the Python module over the engine.
//!
//! Owns: conversions between Python objects and engine types, calling callbacks.
//! Must not: decide scheduling or encode tapes (the engine does).

mod check;
mod clock;
mod describe;
mod disk;
mod external;
mod handle;
mod loop_core;
mod net;
mod redirect;
mod restore;
mod tape;
mod watch;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// Every class of `simloom.errors` the Rust side raises. They are resolved once, at
/// the first raise (`simloom.errors` imports `_core`, so not at module init);
/// `tests/test_layout.py` checks each one exists and is a `SimloomError`.
pub(crate) const RAISED_ERRORS: [&str; 9] = [
    "SimloomUsageError",
    "EscapedSimulationError",
    "TapeMisalignedError",
    "EventLogError",
    "ForeignTapeError",
    "TapeVersionError",
    "CorruptTapeError",
    "TruncatedTapeError",
    "LinearizabilityCheckError",
];

static ERROR_CLASSES: PyOnceLock<Vec<Py<PyAny>>> = PyOnceLock::new();

fn error_classes(py: Python<'_>) -> PyResult<&Vec<Py<PyAny>>> {
    ERROR_CLASSES.get_or_try_init(py, || {
        let module = py.import("simloom.errors")?;
        RAISED_ERRORS
            .iter()
            .map(|name| module.getattr(*name).map(Bound::unbind))
            .collect()
    })
}

/// Raise the named exception class from `simloom.errors` (one of [`RAISED_ERRORS`])
/// with `message`.
pub(crate) fn simloom_error(py: Python<'_>, class_name: &str, message: String) -> PyErr {
    let slot = RAISED_ERRORS.iter().position(|name| *name == class_name);
    debug_assert!(slot.is_some(), "{class_name} is not in RAISED_ERRORS");
    let class = match (slot, error_classes(py)) {
        (Some(slot), Ok(classes)) => classes[slot].bind(py),
        _ => return pyo3::exceptions::PyRuntimeError::new_err(format!("{class_name}: {message}")),
    };
    match class.call1((message,)) {
        Ok(instance) => PyErr::from_value(instance),
        Err(err) => err,
    }
}

#[pymodule]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<loop_core::LoopCore>()?;
    module.add_class::<handle::Handle>()?;
    module.add_class::<tape::Tape>()?;
    module.add_class::<tape::Deviations>()?;
    module.add_class::<tape::DeviationIterator>()?;
    module.add_class::<redirect::BuiltinRedirects>()?;
    module.add_class::<restore::Restoration>()?;
    module.add_class::<restore::InterruptCatcher>()?;
    module.add_class::<clock::ClockView>()?;
    module.add_class::<watch::StepWatch>()?;
    module.add_function(wrap_pyfunction!(tape::decode_event_log, module)?)?;
    check::register(module)?;
    disk::register(module)?;
    net::register(module)?;
    // Values the engine defines and Python reads (never re-declares).
    module.add("TAPE_VERSION", crate::tape::TAPE_VERSION)?;
    module.add("EVENT_LOG_VERSION", crate::eventlog::LOG_VERSION)?;
    module.add("MAX_GAP", crate::tape::MAX_GAP)?;
    module.add("DEFAULT_LIVELOCK_STEPS", loop_core::DEFAULT_LIVELOCK_STEPS)?;
    module.add("DEFAULT_PCT_DEPTH", loop_core::DEFAULT_PCT_DEPTH)?;
    module.add("DEFAULT_PCT_HORIZON", loop_core::DEFAULT_PCT_HORIZON)?;
    module.add("NEVER_SECONDS", loop_core::NEVER_SECONDS)?;
    module.add("DEFAULT_MAX_STALL_NS", crate::engine::DEFAULT_MAX_STALL_NS)?;
    module.add("RAISED_ERRORS", RAISED_ERRORS.to_vec())?;
    Ok(())
}
