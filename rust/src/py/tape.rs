//! `simloom._core.Tape` and the event-log decoder.

use super::simloom_error;
use crate::eventlog::{Event, EventLog};
use crate::tape::{Position, Tape as CoreTape, TapeError};
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyBool, PyBytes, PyList, PySlice, PyTuple};
use std::sync::Arc;

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
///
/// The deviations stay in the engine's compact storage (see `crate::tape`), shared
/// by every copy of the tape and by its `deviations` view: handing a finished
/// universe's tape to Python creates no Python object per deviation.
#[pyclass(module = "simloom._core", subclass, frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tape {
    tape: Arc<CoreTape>,
}

impl Tape {
    pub(crate) fn from_core(tape: CoreTape) -> Tape {
        Tape {
            tape: Arc::new(tape),
        }
    }

    pub(crate) fn core(&self) -> &CoreTape {
        &self.tape
    }
}

/// What `Tape(...)` accepts: `(index, value)` pairs, or another tape or its
/// deviations (shared as they are: valid already, so a decoded million-deviation
/// tape costs no re-check and no copy).
#[derive(FromPyObject)]
enum DeviationsArg<'py> {
    Tape(PyRef<'py, Tape>),
    View(PyRef<'py, Deviations>),
    Pairs(Vec<(u64, u64)>),
}

/// How many deviations a `repr` shows before it summarises the rest.
const REPR_DEVIATIONS: usize = 20;

fn pairs_repr(tape: &CoreTape) -> String {
    let mut text = String::from("[");
    for (shown, deviation) in tape.iter().take(REPR_DEVIATIONS).enumerate() {
        if shown > 0 {
            text.push_str(", ");
        }
        text.push_str(&format!("({}, {})", deviation.index, deviation.value));
    }
    if tape.len() > REPR_DEVIATIONS {
        text.push_str(&format!(", ... {} more", tape.len() - REPR_DEVIATIONS));
    }
    text.push(']');
    text
}

#[pymethods]
impl Tape {
    #[new]
    #[pyo3(signature = (deviations = DeviationsArg::Pairs(Vec::new())))]
    fn new(py: Python<'_>, deviations: DeviationsArg<'_>) -> PyResult<Tape> {
        match deviations {
            DeviationsArg::Tape(tape) => Ok(tape.clone()),
            DeviationsArg::View(view) => Ok(Tape {
                tape: view.tape.clone(),
            }),
            DeviationsArg::Pairs(deviations) => CoreTape::from_deviations(deviations)
                .map(Tape::from_core)
                .map_err(|e| tape_error(py, e)),
        }
    }

    /// The `(decision index, value)` pairs, in decision order (every value is
    /// nonzero): a read-only sequence view, decoded as it is read.
    #[getter]
    fn deviations(&self) -> Deviations {
        Deviations {
            tape: self.tape.clone(),
        }
    }

    fn __len__(&self) -> usize {
        self.tape.len()
    }

    /// The tape's own memory, counted by `sys.getsizeof` (about two bytes per
    /// deviation of a random walk).
    fn __sizeof__(&self) -> usize {
        std::mem::size_of::<Self>() + std::mem::size_of::<CoreTape>() + self.tape.heap_bytes()
    }

    fn __repr__(&self) -> String {
        if self.tape.is_empty() {
            "Tape(FIFO: no deviations)".to_string()
        } else {
            format!("Tape(deviations={})", pairs_repr(&self.tape))
        }
    }

    /// The JSON form (human-readable, versioned).
    fn to_json(&self) -> String {
        self.tape.to_json()
    }

    /// The CBOR form (compact, versioned).
    fn to_cbor<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.tape.to_cbor())
    }

    /// The sparse draw sequence: `more?`, then `gap`, `value` per deviation, then 0.
    fn to_draws(&self) -> Vec<u64> {
        self.tape.to_draws()
    }

    /// Decode either serialised form; bad input raises a named `TapeError`.
    #[staticmethod]
    fn _decode(py: Python<'_>, data: &[u8]) -> PyResult<Tape> {
        let tape = CoreTape::from_bytes(data).map_err(|e| tape_error(py, e))?;
        Ok(Tape::from_core(tape))
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
        Ok((Tape::from_core(tape), fields))
    }

    #[staticmethod]
    fn _from_draws(py: Python<'_>, draws: Vec<u64>) -> PyResult<Tape> {
        let tape = CoreTape::from_draws(&draws).map_err(|e| tape_error(py, e))?;
        Ok(Tape::from_core(tape))
    }
}

/// A tape's deviations as a read-only sequence of `(index, value)` tuples, decoded
/// on access from the tape's compact storage (which it shares). Equal to the tuple
/// or list of the same pairs.
#[pyclass(module = "simloom._core", frozen, sequence)]
pub struct Deviations {
    tape: Arc<CoreTape>,
}

impl Deviations {
    fn normalise(&self, index: isize) -> PyResult<usize> {
        let len = self.tape.len() as isize;
        let at = if index < 0 { index + len } else { index };
        if (0..len).contains(&at) {
            Ok(at as usize)
        } else {
            Err(PyIndexError::new_err("deviation index out of range"))
        }
    }

    /// Are these deviations the pairs of `other` (a tuple or list)?
    fn equals_items(&self, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        if other.len()? != self.tape.len() {
            return Ok(false);
        }
        for (item, deviation) in other.try_iter()?.zip(self.tape.iter()) {
            match item?.extract::<(u64, u64)>() {
                Ok(pair) if pair == (deviation.index, deviation.value) => {}
                _ => return Ok(false),
            }
        }
        Ok(true)
    }
}

#[pymethods]
impl Deviations {
    fn __len__(&self) -> usize {
        self.tape.len()
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(slice) = key.cast::<PySlice>() {
            let range = slice.indices(self.tape.len() as isize)?;
            let pairs: Vec<(u64, u64)> = if range.step == 1 {
                let start = self
                    .tape
                    .position(range.start as usize)
                    .unwrap_or(self.tape.end());
                self.tape
                    .iter_from(start)
                    .take(range.slicelength)
                    .map(|d| (d.index, d.value))
                    .collect()
            } else {
                (0..range.slicelength)
                    .filter_map(|k| {
                        self.tape
                            .get((range.start + k as isize * range.step) as usize)
                            .map(|d| (d.index, d.value))
                    })
                    .collect()
            };
            return Ok(PyTuple::new(py, pairs)?.into_any());
        }
        let ordinal = self.normalise(key.extract::<isize>()?)?;
        let deviation = self
            .tape
            .get(ordinal)
            .expect("a normalised index is in range");
        Ok((deviation.index, deviation.value)
            .into_pyobject(py)?
            .into_any())
    }

    fn __iter__(&self) -> DeviationIterator {
        DeviationIterator {
            at: self.tape.start(),
            tape: self.tape.clone(),
        }
    }

    fn __richcmp__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
        op: CompareOp,
    ) -> PyResult<Bound<'py, PyAny>> {
        let equal = if let Ok(view) = other.cast::<Deviations>() {
            *view.get().tape == *self.tape
        } else if other.is_instance_of::<PyTuple>() || other.is_instance_of::<PyList>() {
            self.equals_items(other)?
        } else {
            return Ok(py.NotImplemented().into_bound(py));
        };
        match op {
            CompareOp::Eq => Ok(PyBool::new(py, equal).to_owned().into_any()),
            CompareOp::Ne => Ok(PyBool::new(py, !equal).to_owned().into_any()),
            _ => Ok(py.NotImplemented().into_bound(py)),
        }
    }

    fn __contains__(&self, pair: &Bound<'_, PyAny>) -> bool {
        self.index(pair).is_ok()
    }

    /// The position of the first deviation equal to `pair` (as `tuple.index`).
    #[pyo3(signature = (pair, /))]
    fn index(&self, pair: &Bound<'_, PyAny>) -> PyResult<usize> {
        if let Ok((index, value)) = pair.extract::<(u64, u64)>() {
            if let Some(at) = self
                .tape
                .iter()
                .position(|d| (d.index, d.value) == (index, value))
            {
                return Ok(at);
            }
        }
        Err(PyValueError::new_err(format!(
            "{} is not a deviation of the tape",
            pair.repr()?
        )))
    }

    /// How many deviations equal `pair`: 0 or 1, indexes being distinct.
    #[pyo3(signature = (pair, /))]
    fn count(&self, pair: &Bound<'_, PyAny>) -> usize {
        usize::from(self.index(pair).is_ok())
    }

    fn __repr__(&self) -> String {
        format!("Deviations({})", pairs_repr(&self.tape))
    }
}

/// Iterates a tape's deviations in decision order.
#[pyclass(module = "simloom._core")]
pub struct DeviationIterator {
    tape: Arc<CoreTape>,
    at: Position,
}

#[pymethods]
impl DeviationIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> Option<(u64, u64)> {
        let (deviation, after) = self.tape.read(&self.at)?;
        self.at = after;
        Some((deviation.index, deviation.value))
    }

    fn __length_hint__(&self) -> usize {
        self.tape.len() - self.at.ordinal()
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
