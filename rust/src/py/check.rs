//! `simloom._core.check_linearizable`: a recorded history checked against a model,
//! the search in Rust ([`crate::check`]).
//!
//! Owns: converting Python values to [`Value`]s (ints stay ints, `None` is `Nil`,
//! sets and sequences become collections, any other hashable object an interned
//! symbol) and driving a user model written in Python (`init()`, `step(state, op)
//! -> (ok, new_state)`) from the search.
//! Must not: decide anything about the history (the search does).

use crate::check::history::{Function, Operation, Outcome, Value};
use crate::check::linearizable::{check, CheckError, Limits, Verdict};
use crate::check::models::{Builtin, Model, ModelError};
use crate::check::serializable::{
    check as check_transactions, Kind as TxnKind, Micro, Status as TxnStatus, Transaction,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyTuple};
use std::cell::RefCell;
use std::hash::{Hash, Hasher};

/// Maps Python values onto [`Value`]s, interning what is neither int nor collection.
struct Values<'py> {
    symbols: Bound<'py, PyDict>,
    /// The interned objects, by symbol (to give a key back to Python).
    objects: Vec<Bound<'py, PyAny>>,
}

impl<'py> Values<'py> {
    fn new(py: Python<'py>) -> Self {
        Values {
            symbols: PyDict::new(py),
            objects: Vec::new(),
        }
    }

    /// A value back as Python sees it (ints, None, interned objects; a collection
    /// as a tuple).
    fn to_python(&self, py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
        Ok(match value {
            Value::Nil => py.None().into_bound(py),
            Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
            Value::Int(i) => i.into_pyobject(py)?.into_any(),
            Value::Sym(id) => self.objects[*id as usize].clone(),
            Value::Coll(items) => PyTuple::new(
                py,
                items
                    .iter()
                    .map(|item| self.to_python(py, item))
                    .collect::<PyResult<Vec<_>>>()?,
            )?
            .into_any(),
        })
    }

    fn convert(&mut self, object: &Bound<'py, PyAny>) -> PyResult<Value> {
        if object.is_none() {
            return Ok(Value::Nil);
        }
        if let Ok(flag) = object.cast::<PyBool>() {
            // True == 1 in Python: they must be one value here too.
            return Ok(Value::Int(i64::from(flag.is_true())));
        }
        if object.is_instance_of::<PyInt>() {
            if let Ok(i) = object.extract::<i64>() {
                return Ok(Value::Int(i));
            }
        }
        if let Ok(float) = object.cast::<PyFloat>() {
            let f = float.value();
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                return Ok(Value::Int(f as i64)); // 2.0 == 2
            }
        }
        if let Ok(list) = object.cast::<PyList>() {
            // Indexed, not through an iterator object: no allocation per read.
            let items = list
                .iter()
                .map(|item| self.convert(&item))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(Value::Coll(items.into_boxed_slice()));
        }
        if let Ok(tuple) = object.cast::<PyTuple>() {
            let items = tuple
                .iter()
                .map(|item| self.convert(&item))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(Value::Coll(items.into_boxed_slice()));
        }
        if object.is_instance_of::<PySet>() || object.is_instance_of::<PyFrozenSet>() {
            let mut items = object
                .try_iter()?
                .map(|item| self.convert(&item?))
                .collect::<PyResult<Vec<_>>>()?;
            items.sort();
            items.dedup();
            return Ok(Value::Coll(items.into_boxed_slice()));
        }
        if let Some(id) = self.symbols.get_item(object)? {
            return Ok(Value::Sym(id.extract()?));
        }
        let id = self.objects.len() as u64;
        self.symbols.set_item(object, id)?;
        self.objects.push(object.clone());
        Ok(Value::Sym(id))
    }
}

/// A user model's state: the Python object and its hash (computed once).
struct PyState {
    object: Py<PyAny>,
    hash: isize,
}

impl Clone for PyState {
    fn clone(&self) -> Self {
        Python::attach(|py| PyState {
            object: self.object.clone_ref(py),
            hash: self.hash,
        })
    }
}

impl PartialEq for PyState {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && Python::attach(|py| {
                self.object
                    .bind(py)
                    .eq(other.object.bind(py))
                    .unwrap_or(false)
            })
    }
}

impl Eq for PyState {}

impl Hash for PyState {
    fn hash<H: Hasher>(&self, hasher: &mut H) {
        self.hash.hash(hasher);
    }
}

/// A model written in Python; `operations[op.tag]` is what its `step` sees.
struct PyModel<'py> {
    model: Bound<'py, PyAny>,
    operations: Vec<Bound<'py, PyAny>>,
    /// The first exception the model raised (the search stops at it).
    error: RefCell<Option<PyErr>>,
}

impl PyModel<'_> {
    fn fail(&self, error: PyErr) -> ModelError {
        let text = error.to_string();
        self.error.borrow_mut().get_or_insert(error);
        ModelError(text)
    }

    fn state(&self, object: Bound<'_, PyAny>) -> Result<PyState, ModelError> {
        let hash = object.hash().map_err(|e| self.fail(e))?;
        Ok(PyState {
            object: object.unbind(),
            hash,
        })
    }
}

impl Model for PyModel<'_> {
    type State = PyState;

    fn init(&self) -> Result<PyState, ModelError> {
        let state = self.model.call_method0("init").map_err(|e| self.fail(e))?;
        self.state(state)
    }

    fn step(&self, state: &PyState, op: &Operation) -> Result<Option<PyState>, ModelError> {
        let py = self.model.py();
        let answer = self
            .model
            .call_method1(
                "step",
                (state.object.bind(py), &self.operations[op.tag as usize]),
            )
            .map_err(|e| self.fail(e))?;
        let (ok, next): (bool, Bound<'_, PyAny>) = answer.extract().map_err(|_| {
            self.fail(PyTypeError::new_err(format!(
                "a model's step(state, op) returns (ok, new_state), not {}",
                answer.repr().map(|r| r.to_string()).unwrap_or_default()
            )))
        })?;
        if ok {
            self.state(next).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Check the operations `objects` (`simloom.history.Operation`s: `process`,
/// `invoked_order`, `completed_order`, `function`, `key`, `args`, `result`,
/// `result_known`, `status`) against `model` (a built-in model's name, or an
/// object with `init()` and `step(state, op)`, which receives the objects).
/// Status `"pending"` (never completed) is `"info"`: unknown. Returns None when linearizable, else
/// `(indices, unplaceable, concurrent, minimal)`.
#[pyfunction]
#[pyo3(signature = (model, objects, by_key, max_steps, shrink_checks))]
#[allow(clippy::type_complexity)]
pub(crate) fn check_linearizable<'py>(
    py: Python<'py>,
    model: &Bound<'py, PyAny>,
    objects: Vec<Bound<'py, PyAny>>,
    by_key: bool,
    max_steps: u64,
    shrink_checks: usize,
) -> PyResult<Option<(Vec<usize>, usize, Vec<usize>, bool)>> {
    let builtin = match model.extract::<String>() {
        Ok(name) => Some(Builtin::from_name(&name).ok_or_else(|| {
            super::simloom_error(
                py,
                "SimloomUsageError",
                format!(
                    "unknown model '{name}': one of {}, or an object with init() and step(state, op)",
                    Builtin::NAMES.join(", ")
                ),
            )
        })?),
        Err(_) => None,
    };
    let mut values = Values::new(py);
    // Processes are only compared (a mutex's holder): number them.
    let processes = PyDict::new(py);
    let process_id = |process: &Bound<'py, PyAny>| -> PyResult<u64> {
        let key = match process.hash() {
            Ok(_) => process.clone(),
            Err(_) => process.repr()?.into_any(),
        };
        if let Some(id) = processes.get_item(&key)? {
            return id.extract();
        }
        let id = processes.len() as u64;
        processes.set_item(key, id)?;
        Ok(id)
    };
    let mut history = Vec::with_capacity(objects.len());
    for (tag, object) in objects.iter().enumerate() {
        let process = object.getattr(intern!(py, "process"))?;
        let invoked: u64 = object.getattr(intern!(py, "invoked_order"))?.extract()?;
        let completed: Option<u64> = object.getattr(intern!(py, "completed_order"))?.extract()?;
        let function: String = object.getattr(intern!(py, "function"))?.extract()?;
        let key = object.getattr(intern!(py, "key"))?;
        let args = object.getattr(intern!(py, "args"))?;
        let result = object.getattr(intern!(py, "result"))?;
        let known: bool = object.getattr(intern!(py, "result_known"))?.extract()?;
        let outcome: String = object.getattr(intern!(py, "status"))?.extract()?;
        let function = match (Function::builtin(&function), builtin) {
            (Some(f), _) => f,
            (None, None) => Function::Custom(0),
            (None, Some(model)) => {
                return Err(PyValueError::new_err(format!(
                    "operation #{tag}: the {} model has no function '{function}'",
                    model.name()
                )))
            }
        };
        let outcome = match outcome.as_str() {
            "ok" => Outcome::Ok,
            "fail" => Outcome::Fail,
            "info" | "pending" => Outcome::Info,
            other => return Err(PyValueError::new_err(format!("unknown outcome {other:?}"))),
        };
        let args = args
            .try_iter()?
            .map(|a| values.convert(&a?))
            .collect::<PyResult<Vec<_>>>()?;
        history.push(Operation {
            tag: tag as u64,
            process: process_id(&process)?,
            invoked,
            completed: if outcome == Outcome::Info {
                None
            } else {
                completed
            },
            function,
            key: values.convert(&key)?,
            args,
            result: if known {
                Some(values.convert(&result)?)
            } else {
                None
            },
            outcome,
        });
    }
    let limits = Limits {
        max_steps,
        shrink_checks,
    };
    let verdict = match builtin {
        Some(model) => {
            let by_key = by_key || model.by_key();
            py.detach(|| check(&model, &history, by_key, limits))
        }
        None => {
            let user = PyModel {
                model: model.clone(),
                operations: objects.clone(),
                error: RefCell::new(None),
            };
            let verdict = check(&user, &history, by_key, limits);
            if let Some(error) = user.error.borrow_mut().take() {
                return Err(error);
            }
            verdict
        }
    };
    match verdict {
        Ok(Verdict::Linearizable) => Ok(None),
        Ok(Verdict::NotLinearizable(example)) => Ok(Some((
            example.operations,
            example.unplaceable,
            example.concurrent,
            example.minimal,
        ))),
        Err(CheckError::Model(ModelError(text))) => Err(PyValueError::new_err(text)),
        Err(CheckError::TooHard {
            operations, steps, ..
        }) => Err(super::simloom_error(
            py,
            "LinearizabilityCheckError",
            format!(
                "the linearizability search gave up after {steps} steps on a sub-history of \
                 {operations} operations (raise max_steps, or record fewer concurrent operations)"
            ),
        )),
    }
}

/// One anomaly as Python receives it: `(name, transaction indices, edge names,
/// keys)`; a cycle's transactions are in order, each preceding the next by its
/// edge (the last the first).
type RawAnomaly<'py> = (
    String,
    Vec<usize>,
    Vec<&'static str>,
    Vec<Bound<'py, PyAny>>,
);

/// Check the transactions `objects` (`simloom.history.Operation`s whose `args[0]`
/// and, once completed, `result` are lists of micro-operations `(f, key, value)`:
/// `f` one of "append"/"w"/"write" and "r"/"read") for serializability, Elle-style:
/// `kind` "list-append" or "rw-register"; `realtime` adds real-time order (strict
/// serializability).
#[pyfunction]
pub(crate) fn check_serializable<'py>(
    py: Python<'py>,
    objects: Vec<Bound<'py, PyAny>>,
    kind: &str,
    realtime: bool,
) -> PyResult<Vec<RawAnomaly<'py>>> {
    let kind = match kind {
        "list-append" | "list_append" => TxnKind::ListAppend,
        "rw-register" | "rw_register" | "register" => TxnKind::Register,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown transaction kind '{other}': 'list-append' or 'rw-register'"
            )))
        }
    };
    let mut values = Values::new(py);
    let processes = PyDict::new(py);
    let mut history = Vec::with_capacity(objects.len());
    for (index, object) in objects.iter().enumerate() {
        let status: String = object.getattr(intern!(py, "status"))?.extract()?;
        let status = match status.as_str() {
            "ok" => TxnStatus::Ok,
            "fail" => TxnStatus::Fail,
            _ => TxnStatus::Info,
        };
        let known: bool = object.getattr(intern!(py, "result_known"))?.extract()?;
        let micro = if known && status == TxnStatus::Ok {
            object.getattr(intern!(py, "result"))?
        } else {
            object.getattr(intern!(py, "args"))?.get_item(0)?
        };
        let mut ops = Vec::new();
        let items: Vec<Bound<'py, PyAny>> = match micro.cast::<PyList>() {
            Ok(list) => list.iter().collect(),
            Err(_) => micro.try_iter()?.collect::<PyResult<_>>()?,
        };
        for item in items {
            let (f, key, value): (String, Bound<'py, PyAny>, Bound<'py, PyAny>) =
                item.extract().map_err(|_| {
                    PyValueError::new_err(format!(
                        "transaction #{index}: a micro-operation is (f, key, value), not {}",
                        item.repr().map(|r| r.to_string()).unwrap_or_default()
                    ))
                })?;
            let key = values.convert(&key)?;
            ops.push(match f.as_str() {
                "append" | "w" | "write" => Micro::Write {
                    key,
                    value: values.convert(&value)?,
                },
                "r" | "read" => Micro::Read {
                    key,
                    value: if known && status == TxnStatus::Ok {
                        let read = values.convert(&value)?;
                        Some(match (kind, read) {
                            (TxnKind::ListAppend, Value::Nil) => Value::Coll(Box::new([])),
                            (_, read) => read,
                        })
                    } else {
                        None
                    },
                },
                other => {
                    return Err(PyValueError::new_err(format!(
                        "transaction #{index}: unknown micro-operation '{other}' ('append', 'w' or 'r')"
                    )))
                }
            });
        }
        let process = object.getattr(intern!(py, "process"))?;
        let id = match processes.get_item(&process)? {
            Some(id) => id.extract()?,
            None => {
                let id = processes.len() as u64;
                processes.set_item(&process, id)?;
                id
            }
        };
        history.push(Transaction {
            process: id,
            invoked: object.getattr(intern!(py, "invoked_order"))?.extract()?,
            completed: object.getattr(intern!(py, "completed_order"))?.extract()?,
            status,
            ops,
        });
    }
    let anomalies = py.detach(|| check_transactions(&history, kind, realtime));
    anomalies
        .into_iter()
        .map(|anomaly| {
            let keys = anomaly
                .keys
                .iter()
                .map(|key| values.to_python(py, key))
                .collect::<PyResult<Vec<_>>>()?;
            Ok((
                anomaly.name,
                anomaly.transactions,
                anomaly.edges.iter().map(|e| e.name()).collect(),
                keys,
            ))
        })
        .collect()
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(check_linearizable, module)?)?;
    module.add_function(wrap_pyfunction!(check_serializable, module)?)?;
    module.add("LINEARIZABILITY_MODELS", Builtin::NAMES.to_vec())?;
    Ok(())
}
