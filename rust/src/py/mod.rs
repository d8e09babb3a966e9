//! The only FFI layer: `simloom._core`, the Python module over the engine.
//!
//! Owns: conversions between Python objects and engine types, calling callbacks.
//! Must not: decide scheduling or encode tapes (the engine does).

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

/// Raise the named exception class from `simloom.errors` with `message`.
pub(crate) fn simloom_error(py: Python<'_>, class_name: &str, message: String) -> PyErr {
    match py
        .import("simloom.errors")
        .and_then(|module| module.getattr(class_name))
    {
        Ok(class) => match class.call1((message.clone(),)) {
            Ok(instance) => PyErr::from_value(instance),
            Err(err) => err,
        },
        Err(_) => pyo3::exceptions::PyRuntimeError::new_err(format!("{class_name}: {message}")),
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
    disk::register(module)?;
    net::register(module)?;
    module.add("TAPE_VERSION", crate::tape::TAPE_VERSION)?;
    module.add("EVENT_LOG_VERSION", crate::eventlog::LOG_VERSION)?;
    Ok(())
}
