//! Naming callbacks for the event log without addresses.
//!
//! A task's step or wakeup is named by the task's (loop-assigned) name; a plain
//! function by its qualified name; anything else by its type's name. Lookups are
//! cached by object identity, and the cache holds a strong reference to each key
//! object so an address is never reused for a different key within a universe.

use crate::eventlog::EventLog;
use crate::timers::SeqMap;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyType, PyWeakrefReference};

/// The head of a `getset_descriptor` (CPython's `PyGetSetDescrObject`, unchanged
/// since 3.3): a descriptor's common fields, then its `PyGetSetDef`.
#[repr(C)]
struct GetSetDescriptor {
    ob_base: ffi::PyObject,
    d_type: *mut ffi::PyTypeObject,
    d_name: *mut ffi::PyObject,
    d_qualname: *mut ffi::PyObject,
    d_getset: *mut ffi::PyGetSetDef,
}

/// A C getter and its closure (an address: static data of the type), called directly.
type Getter = (ffi::getter, usize);

#[derive(Default)]
pub(crate) struct Describer {
    task_type: Option<Py<PyType>>,
    step_wrapper_type: usize,
    /// `TaskStepMethWrapper.__self__`'s C getter (the task a step belongs to), read
    /// once so each step skips the attribute lookup.
    step_wrapper_self: Option<Getter>,
    by_key: SeqMap<u32>,
    held: Vec<Py<PyAny>>,
    /// Task address → index into `task_labels`; the weak reference tells a task
    /// from a later one at the same address without keeping either alive.
    tasks: SeqMap<usize>,
    task_labels: Vec<(u32, Py<PyWeakrefReference>)>,
}

/// What a callback is, as the engine needs it.
pub(crate) struct Description {
    pub label: u32,
    /// The task it acts for, if it is a task's step or wakeup.
    pub task: Option<u32>,
}

impl Describer {
    pub fn new(task_type: Py<PyType>) -> Describer {
        Describer {
            task_type: Some(task_type),
            ..Describer::default()
        }
    }

    fn is_task(&self, object: *mut ffi::PyObject) -> bool {
        match &self.task_type {
            // SAFETY: both pointers are live objects while the GIL is held.
            Some(task_type) => unsafe {
                ffi::PyObject_TypeCheck(object, task_type.as_ptr().cast()) != 0
            },
            None => false,
        }
    }

    /// Label for an object identified by `key_object`; `text` computes the label text
    /// the first time it is seen.
    fn cached(
        &mut self,
        key_object: &Bound<'_, PyAny>,
        log: &mut EventLog,
        text: impl FnOnce() -> PyResult<String>,
    ) -> PyResult<u32> {
        let key = key_object.as_ptr() as u64;
        if let Some(&label) = self.by_key.get(&key) {
            return Ok(label);
        }
        let label = log.label(&text()?);
        self.by_key.insert(key, label);
        self.held.push(key_object.clone().unbind());
        Ok(label)
    }

    /// A task's label: its loop-owned name. The first time a task is seen the loop
    /// names it (`loop._adopt_task`), so tasks created directly with `asyncio.Task`
    /// get loop-owned names too, not ones from a process-wide counter.
    fn task_label(
        &mut self,
        task: &Bound<'_, PyAny>,
        log: &mut EventLog,
        owner: &Bound<'_, PyAny>,
    ) -> PyResult<u32> {
        let key = task.as_ptr() as u64;
        if let Some(&index) = self.tasks.get(&key) {
            let (label, weak) = &self.task_labels[index];
            // SAFETY: a weak reference's referent field, read with the GIL held; it
            // is this task while the task lives (None once it died, so a later
            // task at the same address does not match).
            let referent = unsafe { (*weak.as_ptr().cast::<ffi::_PyWeakReference>()).wr_object };
            if referent == task.as_ptr() {
                return Ok(*label);
            }
        }
        let name = owner.call_method1(pyo3::intern!(task.py(), "_adopt_task"), (task,))?;
        let label = log.label(&name.str()?.to_string());
        let weak = PyWeakrefReference::new(task)?.unbind();
        self.tasks.insert(key, self.task_labels.len());
        self.task_labels.push((label, weak));
        Ok(label)
    }

    /// The objects the describer keeps alive (cache keys), for the collector.
    pub fn held(&self) -> impl Iterator<Item = &Py<PyAny>> {
        self.held.iter()
    }

    /// Forget a task's label (it was renamed): the next schedule names it again.
    pub fn forget_task(&mut self, task: &Bound<'_, PyAny>) {
        self.tasks.remove(&(task.as_ptr() as u64));
    }

    /// Describe `callback`; `owner` is the loop (it names tasks seen first here).
    pub fn describe(
        &mut self,
        callback: &Bound<'_, PyAny>,
        log: &mut EventLog,
        owner: &Bound<'_, PyAny>,
    ) -> PyResult<Description> {
        let py = callback.py();
        let raw = callback.as_ptr();
        // SAFETY: `raw` is a live object; the checks only read its type.
        unsafe {
            if ffi::PyCFunction_Check(raw) != 0 {
                let bound_self = ffi::PyCFunction_GET_SELF(raw);
                if !bound_self.is_null() && self.is_task(bound_self) {
                    let task = Bound::from_borrowed_ptr(py, bound_self);
                    let label = self.task_label(&task, log, owner)?;
                    return Ok(Description {
                        label,
                        task: Some(label),
                    });
                }
                let label = self.cached(callback, log, || qualname(callback))?;
                return Ok(Description { label, task: None });
            }
            let type_ptr = ffi::Py_TYPE(raw) as usize;
            if type_ptr == self.step_wrapper_type && self.step_wrapper_type != 0 {
                let task = match self.step_wrapper_self {
                    Some((get, closure)) => {
                        Bound::from_owned_ptr_or_err(py, get(raw, closure as *mut _))?
                    }
                    None => callback.getattr(pyo3::intern!(py, "__self__"))?,
                };
                let label = self.task_label(&task, log, owner)?;
                return Ok(Description {
                    label,
                    task: Some(label),
                });
            }
            if ffi::PyFunction_Check(raw) != 0 {
                let code = Bound::from_borrowed_ptr(py, ffi::PyFunction_GetCode(raw));
                let label = self.cached(&code, log, || qualname(callback))?;
                return Ok(Description { label, task: None });
            }
        }
        let kind = callback.get_type();
        let type_name = kind.name()?.to_string();
        if type_name == "TaskStepMethWrapper" {
            self.step_wrapper_type = kind.as_ptr() as usize;
            self.step_wrapper_self = getset_getter(&kind, "__self__");
            self.held.push(kind.clone().into_any().unbind());
            let task = callback.getattr(pyo3::intern!(py, "__self__"))?;
            let label = self.task_label(&task, log, owner)?;
            return Ok(Description {
                label,
                task: Some(label),
            });
        }
        if type_name == "method" {
            // A bound Python method: name it by its function (stable code object).
            let function = callback.getattr(pyo3::intern!(py, "__func__"))?;
            return self.describe(&function, log, owner);
        }
        if type_name == "partial" {
            let function = callback.getattr(pyo3::intern!(py, "func"))?;
            return self.describe(&function, log, owner);
        }
        let kind_any = kind.into_any();
        let label = self.cached(&kind_any, log, || {
            Ok(kind_any.cast::<PyType>()?.qualname()?.to_string())
        })?;
        Ok(Description { label, task: None })
    }
}

/// The C getter behind `kind.<name>` if it is a getset descriptor (None otherwise:
/// the caller then looks the attribute up the ordinary way).
fn getset_getter(kind: &Bound<'_, PyType>, name: &str) -> Option<Getter> {
    let descriptor = kind.getattr(name).ok()?;
    // SAFETY: the type check makes the cast valid; the type (held by the describer)
    // keeps its descriptor and `PyGetSetDef` alive.
    unsafe {
        if ffi::Py_TYPE(descriptor.as_ptr()) != &raw mut ffi::PyGetSetDescr_Type {
            return None;
        }
        let def = (*descriptor.as_ptr().cast::<GetSetDescriptor>()).d_getset;
        let get = (*def).get?;
        Some((get, (*def).closure as usize))
    }
}

fn qualname(object: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = object.py();
    match object.getattr_opt(pyo3::intern!(py, "__qualname__"))? {
        Some(name) => Ok(name.str()?.to_string()),
        None => Ok(object.get_type().qualname()?.to_string()),
    }
}
