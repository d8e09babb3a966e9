//! `simloom._core.Tape` and the event-log decoder.

use super::simloom_error;
use crate::eventlog::{Event, EventLog};
use crate::tape::{Tape as CoreTape, TapeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

pub(crate) fn tape_error(py: Python<'_>, error: TapeError) -> PyErr {
    let class = match error {
        TapeError::Foreign(_) => "ForeignTapeError",
        TapeError::NewerVersion { .. } => "TapeVersionError",
        TapeError::Corrupt(_) => "CorruptTapeError",
        TapeError::Truncated(_) => "TruncatedTapeError",
    };
    simloom_error(py, class, error.to_string())
}

/// A universe's choices: the decisions where it deviated from choice 0.
#[pyclass(module = "simloom._core", subclass, frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tape {
    pub(crate) deviations: Vec<(u64, u64)>,
}

impl Tape {
    pub(crate) fn from_core(tape: &CoreTape) -> Tape {
        Tape {
            deviations: tape
                .deviations()
                .iter()
                .map(|d| (d.index, d.value))
                .collect(),
        }
    }

    pub(crate) fn to_core(&self, py: Python<'_>) -> PyResult<CoreTape> {
        CoreTape::from_deviations(self.deviations.iter().copied()).map_err(|e| tape_error(py, e))
    }
}

/// What `Tape(...)` accepts: `(index, value)` pairs, or another tape (copied as is:
/// it is valid already, so a decoded million-deviation tape costs no re-check).
#[derive(FromPyObject)]
enum DeviationsArg<'py> {
    Tape(PyRef<'py, Tape>),
    Pairs(Vec<(u64, u64)>),
}

#[pymethods]
impl Tape {
    #[new]
    #[pyo3(signature = (deviations = DeviationsArg::Pairs(Vec::new())))]
    fn new(py: Python<'_>, deviations: DeviationsArg<'_>) -> PyResult<Tape> {
        match deviations {
            DeviationsArg::Tape(tape) => Ok(tape.clone()),
            DeviationsArg::Pairs(deviations) => {
                let tape = Tape { deviations };
                tape.to_core(py)?;
                Ok(tape)
            }
        }
    }

    /// `(decision index, value)` pairs, in decision order; every value is nonzero.
    #[getter]
    fn deviations<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.deviations.iter().copied())
    }

    fn __len__(&self) -> usize {
        self.deviations.len()
    }

    fn __repr__(&self) -> String {
        if self.deviations.is_empty() {
            "Tape(FIFO: no deviations)".to_string()
        } else {
            format!("Tape(deviations={:?})", self.deviations)
        }
    }

    /// The JSON form (human-readable, versioned).
    fn to_json(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.to_core(py)?.to_json())
    }

    /// The CBOR form (compact, versioned).
    fn to_cbor<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.to_core(py)?.to_cbor()))
    }

    /// The sparse draw sequence: `more?`, then `gap`, `value` per deviation, then 0.
    fn to_draws(&self, py: Python<'_>) -> PyResult<Vec<u64>> {
        Ok(self.to_core(py)?.to_draws())
    }

    /// Decode either serialised form; bad input raises a named `TapeError`.
    #[staticmethod]
    fn _decode(py: Python<'_>, data: &[u8]) -> PyResult<Tape> {
        let tape = CoreTape::from_bytes(data).map_err(|e| tape_error(py, e))?;
        Ok(Tape::from_core(&tape))
    }

    /// Decode either form, and return a JSON document's other top-level fields
    /// whose values are not lists or objects (an artifact's test id, seed,
    /// digest...) as a JSON object: one parse for the tape and its metadata.
    #[staticmethod]
    fn _decode_document(py: Python<'_>, data: &[u8]) -> PyResult<(Tape, String)> {
        let (tape, mut fields) =
            CoreTape::from_bytes_document(data).map_err(|e| tape_error(py, e))?;
        fields.retain(|_, value| !(value.is_array() || value.is_object()));
        let fields = serde_json::Value::Object(fields).to_string();
        Ok((Tape::from_core(&tape), fields))
    }

    #[staticmethod]
    fn _from_draws(py: Python<'_>, draws: Vec<u64>) -> PyResult<Tape> {
        let tape = CoreTape::from_draws(&draws).map_err(|e| tape_error(py, e))?;
        Ok(Tape::from_core(&tape))
    }
}

/// Decode event-log bytes into `(kind, *fields)` tuples.
#[pyfunction]
pub fn decode_event_log<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Vec<Bound<'py, PyTuple>>> {
    let events = EventLog::decode(data).map_err(|why| simloom_error(py, "EventLogError", why))?;
    events
        .into_iter()
        .map(|event| match event {
            Event::Label { id, text } => ("label", id, text).into_pyobject(py),
            Event::Step { label } => ("step", label).into_pyobject(py),
            Event::Clock { advanced_ns } => ("clock", advanced_ns).into_pyobject(py),
            Event::Decision {
                label,
                bound,
                value,
            } => ("decision", label, bound, value).into_pyobject(py),
            Event::Mark { label } => ("mark", label).into_pyobject(py),
            Event::End { label } => ("end", label).into_pyobject(py),
            Event::Misalign { index } => ("misalign", index).into_pyobject(py),
        })
        .collect()
}
