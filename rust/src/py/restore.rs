//! `simloom._core.Restoration`: everything a universe (or one run of a `SimLoop`)
//! changes in the process, installed and undone by one object that Python enters
//! with `with`.
//!
//! A `KeyboardInterrupt` from a signal, or one a tracer raises at a line, can skip
//! the first line of any Python `finally:` block, so restoration written in Python
//! can be skipped too (so can a `with` block's `__exit__`: its call has a line
//! event of its own). Here `run(function)` installs, calls the function and undoes,
//! all in C-level code: no Python line of simloom's runs between the installs and
//! the undos except the function's own, so neither a signal nor a tracer can skip
//! an undo (a pending signal is delivered after `run` returns). An interrupt
//! therefore comes either before anything is installed or after everything is
//! undone.
//!
//! The few undos that must run Python (a callback such as restoring a numpy
//! generator's state) are retried when an interrupt hits them, and the interrupt is
//! re-raised afterwards: an undo never stays half done because of one.
//!
//! `catch_interrupts()` also keeps a `KeyboardInterrupt` raised where Python can
//! only print it (a finalizer or a weakref callback, run by the garbage collector:
//! "Exception ignored in ...") and raises it when the `with` block ends, so an
//! interrupt is never swallowed.
//!
//! Owns: installing and undoing process state. Must not: decide what a universe
//! installs (`simloom._api`, `simloom.loop` and `simloom._boundary` do).

use super::redirect::BuiltinRedirects;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PySystemExit};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How many times an undo that runs Python is tried when interrupts hit it.
const UNDO_ATTEMPTS: usize = 4;

/// Guards holding the heap frozen (`gc.freeze`) right now, process-wide.
static FROZEN_HEAP_USERS: AtomicUsize = AtomicUsize::new(0);

/// An attribute set process-wide while any guard needs it (`shared_attr`).
struct SharedAttr {
    target: Py<PyAny>,
    name: String,
    users: usize,
    original: Option<Py<PyAny>>,
}

static SHARED_ATTRS: Mutex<Vec<SharedAttr>> = Mutex::new(Vec::new());

/// One change to install.
enum Action {
    SetAttr {
        target: Py<PyAny>,
        name: String,
        value: Py<PyAny>,
    },
    SharedAttr {
        target: Py<PyAny>,
        name: String,
        value: Py<PyAny>,
    },
    Claim {
        mapping: Py<PyDict>,
        key: Py<PyAny>,
        value: Py<PyAny>,
        busy: String,
    },
    RunningLoop(Py<PyAny>),
    AsyncgenHooks(Py<PyAny>, Py<PyAny>),
    GcDisabled,
    GcFrozen,
    Redirects(Py<BuiltinRedirects>),
    Call {
        enter: Option<Py<PyAny>>,
        exit: Option<Py<PyAny>>,
    },
    CatchInterrupts,
}

/// How to take back one installed change.
enum Undo {
    SetAttr {
        target: Py<PyAny>,
        name: String,
        old: Option<Py<PyAny>>,
    },
    SharedAttr {
        target: Py<PyAny>,
        name: String,
    },
    Claim {
        mapping: Py<PyDict>,
        key: Py<PyAny>,
        value: Py<PyAny>,
    },
    RunningLoop(Py<PyAny>),
    AsyncgenHooks(Py<PyAny>),
    GcDisabled {
        was_enabled: bool,
    },
    GcFrozen,
    Redirects(Py<BuiltinRedirects>),
    Call(Option<Py<PyAny>>),
    CatchInterrupts {
        previous: Py<PyAny>,
        catcher: Py<InterruptCatcher>,
    },
}

/// `sys.unraisablehook` while a guard catches interrupts: a `KeyboardInterrupt`
/// is kept (the first one) for the guard to raise; anything else goes to the hook
/// that was there before.
#[pyclass(module = "simloom._core", frozen)]
pub struct InterruptCatcher {
    previous: Py<PyAny>,
    caught: Mutex<Option<Py<PyAny>>>,
}

#[pymethods]
impl InterruptCatcher {
    fn __call__(&self, py: Python<'_>, unraisable: &Bound<'_, PyAny>) -> PyResult<()> {
        let kind = unraisable.getattr(pyo3::intern!(py, "exc_type"))?;
        if is_subclass_of::<PyKeyboardInterrupt>(&kind) {
            let mut caught = self.caught.lock().unwrap_or_else(|e| e.into_inner());
            if caught.is_none() {
                let value = unraisable.getattr(pyo3::intern!(py, "exc_value"))?;
                *caught = Some(if value.is_none() {
                    kind.call0()?.unbind()
                } else {
                    value.unbind()
                });
            }
            return Ok(());
        }
        self.previous.bind(py).call1((unraisable,))?;
        Ok(())
    }
}

impl InterruptCatcher {
    fn take(&self) -> Option<Py<PyAny>> {
        self.caught.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// A plan of process changes, installed by `run` in the order they were added and
/// undone in reverse order when the function it runs returns or raises. Adding to
/// the plan changes nothing; a guard runs once.
#[pyclass(module = "simloom._core")]
pub struct Restoration {
    plan: Vec<Action>,
    installed: Vec<Undo>,
    entered: bool,
    active: bool,
    catcher: Option<Py<InterruptCatcher>>,
}

/// Is `kind` a class deriving from `T`? (False for anything that is not a class.)
fn is_subclass_of<T: pyo3::PyTypeInfo>(kind: &Bound<'_, PyAny>) -> bool {
    kind.cast::<PyType>()
        .is_ok_and(|kind| kind.is_subclass_of::<T>().unwrap_or(false))
}

fn is_interrupt(py: Python<'_>, error: &PyErr) -> bool {
    error.is_instance_of::<PyKeyboardInterrupt>(py)
}

/// Call `function()`, again if an interrupt hits it (up to `UNDO_ATTEMPTS` times).
/// Returns the interrupt that hit it (if any) and the error it finally ended with.
fn call_undo(py: Python<'_>, function: &Py<PyAny>) -> (Option<PyErr>, Option<PyErr>) {
    let mut interrupt = None;
    for _ in 0..UNDO_ATTEMPTS {
        match function.bind(py).call0() {
            Ok(_) => return (interrupt, None),
            Err(error) if is_interrupt(py, &error) => {
                interrupt.get_or_insert(error);
            }
            Err(error) => return (interrupt, Some(error)),
        }
    }
    let last = PyRuntimeError::new_err("an undo was interrupted every time it ran");
    (interrupt, Some(last))
}

fn getattr_or_missing(target: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<Py<PyAny>>> {
    match target.getattr(name) {
        Ok(value) => Ok(Some(value.unbind())),
        Err(error) if error.is_instance_of::<pyo3::exceptions::PyAttributeError>(target.py()) => {
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

fn set_or_delete(target: &Bound<'_, PyAny>, name: &str, value: Option<&Py<PyAny>>) -> PyResult<()> {
    match value {
        Some(value) => target.setattr(name, value),
        None => match target.delattr(name) {
            Err(error)
                if error.is_instance_of::<pyo3::exceptions::PyAttributeError>(target.py()) =>
            {
                Ok(())
            }
            other => other,
        },
    }
}

/// A function of the standard library, looked up once (a run builds a guard each
/// time, so lookups would cost every run).
fn stdlib<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    module: &str,
    name: &str,
) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.import(py, module, name)
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static GET_ASYNCGEN_HOOKS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SET_ASYNCGEN_HOOKS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static GC_FREEZE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static GC_UNFREEZE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SYS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn sys_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    SYS.get_or_try_init(py, || py.import("sys").map(Bound::unbind))
        .map(|module| module.bind(py))
}

impl Restoration {
    /// Install one action; on success, what undoes it.
    fn install(&mut self, py: Python<'_>, action: &Action) -> PyResult<Undo> {
        Ok(match action {
            Action::SetAttr {
                target,
                name,
                value,
            } => {
                let bound = target.bind(py);
                let old = getattr_or_missing(bound, name)?;
                bound.setattr(name.as_str(), value)?;
                Undo::SetAttr {
                    target: target.clone_ref(py),
                    name: name.clone(),
                    old,
                }
            }
            Action::SharedAttr {
                target,
                name,
                value,
            } => {
                let mut shared = SHARED_ATTRS.lock().unwrap_or_else(|e| e.into_inner());
                let known = shared
                    .iter()
                    .position(|entry| entry.target.is(target) && entry.name == *name);
                match known {
                    Some(index) => shared[index].users += 1,
                    None => {
                        let bound = target.bind(py);
                        let original = getattr_or_missing(bound, name)?;
                        bound.setattr(name.as_str(), value)?;
                        shared.push(SharedAttr {
                            target: target.clone_ref(py),
                            name: name.clone(),
                            users: 1,
                            original,
                        });
                    }
                }
                Undo::SharedAttr {
                    target: target.clone_ref(py),
                    name: name.clone(),
                }
            }
            Action::Claim {
                mapping,
                key,
                value,
                busy,
            } => {
                let bound = mapping.bind(py);
                if bound.contains(key)? {
                    return Err(super::simloom_error(py, "SimloomUsageError", busy.clone()));
                }
                bound.set_item(key, value)?;
                Undo::Claim {
                    mapping: mapping.clone_ref(py),
                    key: key.clone_ref(py),
                    value: value.clone_ref(py),
                }
            }
            Action::RunningLoop(running) => {
                let old = stdlib(py, &GET_RUNNING_LOOP, "asyncio.events", "_get_running_loop")?
                    .call0()?
                    .unbind();
                stdlib(py, &SET_RUNNING_LOOP, "asyncio.events", "_set_running_loop")?
                    .call1((running,))?;
                Undo::RunningLoop(old)
            }
            Action::AsyncgenHooks(firstiter, finalizer) => {
                let old = stdlib(py, &GET_ASYNCGEN_HOOKS, "sys", "get_asyncgen_hooks")?
                    .call0()?
                    .unbind();
                stdlib(py, &SET_ASYNCGEN_HOOKS, "sys", "set_asyncgen_hooks")?
                    .call1((firstiter, finalizer))?;
                Undo::AsyncgenHooks(old)
            }
            Action::GcDisabled => {
                // SAFETY: plain C API calls with the GIL held.
                let was_enabled = unsafe { ffi::PyGC_Disable() } != 0;
                Undo::GcDisabled { was_enabled }
            }
            Action::GcFrozen => {
                if FROZEN_HEAP_USERS.load(Ordering::Acquire) == 0 {
                    stdlib(py, &GC_FREEZE, "gc", "freeze")?.call0()?;
                }
                FROZEN_HEAP_USERS.fetch_add(1, Ordering::AcqRel);
                Undo::GcFrozen
            }
            Action::Redirects(redirects) => {
                redirects.get().acquire();
                Undo::Redirects(redirects.clone_ref(py))
            }
            Action::Call { enter, exit } => {
                if let Some(enter) = enter {
                    if let Err(error) = enter.bind(py).call0() {
                        // It may have done part of its work: undo that too.
                        if let Some(exit) = exit {
                            let _ = call_undo(py, exit);
                        }
                        return Err(error);
                    }
                }
                Undo::Call(exit.as_ref().map(|exit| exit.clone_ref(py)))
            }
            Action::CatchInterrupts => {
                let sys = sys_module(py)?;
                let previous = sys.getattr(pyo3::intern!(py, "unraisablehook"))?.unbind();
                let catcher = Py::new(
                    py,
                    InterruptCatcher {
                        previous: previous.clone_ref(py),
                        caught: Mutex::new(None),
                    },
                )?;
                sys.setattr(pyo3::intern!(py, "unraisablehook"), &catcher)?;
                self.catcher = Some(catcher.clone_ref(py));
                Undo::CatchInterrupts { previous, catcher }
            }
        })
    }

    /// Undo one change. Returns an interrupt that hit an undo running Python (it
    /// was retried), and an error the undo ended with.
    fn undo(py: Python<'_>, undo: Undo) -> (Option<PyErr>, Option<PyErr>) {
        let result: PyResult<()> = match undo {
            Undo::SetAttr { target, name, old } => {
                set_or_delete(target.bind(py), &name, old.as_ref())
            }
            Undo::SharedAttr { target, name } => {
                let mut shared = SHARED_ATTRS.lock().unwrap_or_else(|e| e.into_inner());
                let known = shared
                    .iter()
                    .position(|entry| entry.target.is(&target) && entry.name == name);
                match known {
                    Some(index) if shared[index].users > 1 => {
                        shared[index].users -= 1;
                        Ok(())
                    }
                    Some(index) => {
                        let entry = shared.remove(index);
                        set_or_delete(entry.target.bind(py), &entry.name, entry.original.as_ref())
                    }
                    None => Ok(()),
                }
            }
            Undo::Claim {
                mapping,
                key,
                value,
            } => {
                let bound = mapping.bind(py);
                // Only the entry this guard made (someone may have replaced it).
                match bound.get_item(&key) {
                    Ok(Some(current)) if current.is(&value) => bound.del_item(&key),
                    Ok(_) => Ok(()),
                    Err(error) => Err(error),
                }
            }
            Undo::RunningLoop(old) => {
                stdlib(py, &SET_RUNNING_LOOP, "asyncio.events", "_set_running_loop")
                    .and_then(|set| set.call1((old,)).map(drop))
            }
            Undo::AsyncgenHooks(old) => {
                stdlib(py, &SET_ASYNCGEN_HOOKS, "sys", "set_asyncgen_hooks").and_then(|set| {
                    let old = old.bind(py).cast::<PyTuple>().map_err(PyErr::from)?.clone();
                    set.call1(old).map(drop)
                })
            }
            Undo::GcDisabled { was_enabled } => {
                if was_enabled {
                    // SAFETY: plain C API call with the GIL held.
                    unsafe { ffi::PyGC_Enable() };
                }
                Ok(())
            }
            Undo::GcFrozen => {
                let previous = FROZEN_HEAP_USERS
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |users| {
                        users.checked_sub(1)
                    })
                    .unwrap_or(0);
                if previous == 1 {
                    stdlib(py, &GC_UNFREEZE, "gc", "unfreeze")
                        .and_then(|unfreeze| unfreeze.call0().map(drop))
                } else {
                    Ok(())
                }
            }
            Undo::Redirects(redirects) => {
                redirects.get().release_use();
                Ok(())
            }
            Undo::Call(exit) => {
                return match exit {
                    Some(exit) => call_undo(py, &exit),
                    None => (None, None),
                }
            }
            Undo::CatchInterrupts { previous, catcher } => sys_module(py).and_then(|sys| {
                // Put the previous hook back unless someone replaced ours meanwhile.
                let name = pyo3::intern!(py, "unraisablehook");
                if sys.getattr(name)?.is(&catcher) {
                    sys.setattr(name, previous)?;
                }
                Ok(())
            }),
        };
        match result {
            Ok(()) => (None, None),
            Err(error) if is_interrupt(py, &error) => (Some(error), None),
            Err(error) => (None, Some(error)),
        }
    }

    /// Undo everything installed, in reverse order. Returns the first interrupt
    /// met (retried undos, or one a catcher kept) and the first other error.
    fn undo_all(&mut self, py: Python<'_>) -> (Option<PyErr>, Option<PyErr>) {
        let mut interrupt: Option<PyErr> = None;
        let mut failure: Option<PyErr> = None;
        while let Some(undo) = self.installed.pop() {
            let caught = match &undo {
                Undo::CatchInterrupts { catcher, .. } => Some(catcher.clone_ref(py)),
                _ => None,
            };
            let (hit, error) = Self::undo(py, undo);
            if let Some(catcher) = caught {
                if let Some(kept) = catcher.get().take() {
                    interrupt.get_or_insert_with(|| PyErr::from_value(kept.into_bound(py)));
                }
            }
            if let Some(hit) = hit {
                interrupt.get_or_insert(hit);
            }
            if let Some(error) = error {
                failure.get_or_insert(error);
            }
        }
        self.catcher = None;
        (interrupt, failure)
    }

    /// Install the plan, all or nothing.
    fn enter(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.entered {
            return Err(PyRuntimeError::new_err("a Restoration runs only once"));
        }
        self.entered = true;
        // The plan is used up: a guard keeps no reference after it is done (the
        // collector cannot see through it, so it must not hold a cycle alive).
        let plan = std::mem::take(&mut self.plan);
        for action in &plan {
            match self.install(py, action) {
                Ok(undo) => self.installed.push(undo),
                Err(error) => {
                    let _ = self.undo_all(py);
                    return Err(error);
                }
            }
        }
        self.active = true;
        Ok(())
    }

    fn add(&mut self, action: Action) -> PyResult<()> {
        if self.entered {
            return Err(PyRuntimeError::new_err(
                "a Restoration cannot change once it has been entered",
            ));
        }
        self.plan.push(action);
        Ok(())
    }
}

#[pymethods]
impl Restoration {
    #[new]
    fn new() -> Self {
        Restoration {
            plan: Vec::new(),
            installed: Vec::new(),
            entered: false,
            active: false,
            catcher: None,
        }
    }

    /// Set `target.name = value`; the old value (or its absence) comes back.
    fn set_attr(&mut self, target: Py<PyAny>, name: String, value: Py<PyAny>) -> PyResult<()> {
        self.add(Action::SetAttr {
            target,
            name,
            value,
        })
    }

    /// Set `target.name = value` while any guard needs it (process-wide, counted
    /// across threads); the original comes back when the last one leaves.
    fn shared_attr(&mut self, target: Py<PyAny>, name: String, value: Py<PyAny>) -> PyResult<()> {
        self.add(Action::SharedAttr {
            target,
            name,
            value,
        })
    }

    /// `mapping[key] = value`, which must be absent (else `SimloomUsageError(busy)`
    /// and nothing is installed); the entry is removed at the end.
    fn claim(
        &mut self,
        mapping: Py<PyDict>,
        key: Py<PyAny>,
        value: Py<PyAny>,
        busy: String,
    ) -> PyResult<()> {
        self.add(Action::Claim {
            mapping,
            key,
            value,
            busy,
        })
    }

    /// Make `running` this thread's running event loop.
    fn running_loop(&mut self, running: Py<PyAny>) -> PyResult<()> {
        self.add(Action::RunningLoop(running))
    }

    /// Install this thread's async-generator hooks.
    fn asyncgen_hooks(&mut self, firstiter: Py<PyAny>, finalizer: Py<PyAny>) -> PyResult<()> {
        self.add(Action::AsyncgenHooks(firstiter, finalizer))
    }

    /// Disable the garbage collector (re-enabled on leaving if it was enabled).
    fn gc_disabled(&mut self) -> PyResult<()> {
        self.add(Action::GcDisabled)
    }

    /// Hold the heap frozen (`gc.freeze`); nested guards share the outermost freeze.
    fn gc_frozen(&mut self) -> PyResult<()> {
        self.add(Action::GcFrozen)
    }

    /// Use `redirects` (installed while any guard uses them).
    fn redirects(&mut self, redirects: Py<BuiltinRedirects>) -> PyResult<()> {
        self.add(Action::Redirects(redirects))
    }

    /// Call `enter()` on entering and `exit()` on leaving (either may be None).
    /// If `enter` fails, `exit` still runs, so it must be safe after a partial
    /// `enter`. An interrupt hitting `exit` makes it run again.
    #[pyo3(signature = (enter, exit))]
    fn call(&mut self, enter: Option<Py<PyAny>>, exit: Option<Py<PyAny>>) -> PyResult<()> {
        self.add(Action::Call { enter, exit })
    }

    /// Keep a `KeyboardInterrupt` that Python could only print as unraisable (in a
    /// finalizer or weakref callback) and raise it when `run` ends, or earlier
    /// with `raise_caught_interrupt()`.
    fn catch_interrupts(&mut self) -> PyResult<()> {
        self.add(Action::CatchInterrupts)
    }

    /// Raise the `KeyboardInterrupt` the guard has kept, if any, now.
    fn raise_caught_interrupt(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(catcher) = &self.catcher {
            if let Some(kept) = catcher.get().take() {
                return Err(PyErr::from_value(kept.into_bound(py)));
            }
        }
        Ok(())
    }

    /// True while `run` runs the function.
    #[getter]
    fn active(&self) -> bool {
        self.active
    }

    /// How many guards hold the heap frozen right now (process-wide).
    #[staticmethod]
    fn frozen_heap_users() -> usize {
        FROZEN_HEAP_USERS.load(Ordering::Acquire)
    }

    /// Install the plan, call `function(*args, **kwargs)`, undo everything, and
    /// return what the function returned (or raise what it raised).
    ///
    /// All of it happens here, at C level: no Python line runs between the
    /// installs, the call and the undos (a `with` block would run one, the line
    /// of its `__exit__` call, where a tracer or a signal can strike and skip the
    /// undo). Installing is all or nothing. The function's `KeyboardInterrupt` or
    /// `SystemExit` is what propagates; otherwise a `KeyboardInterrupt` that hit an
    /// undo or was kept by `catch_interrupts` is raised (it wins over an ordinary
    /// error, which becomes its context), then the first error an undo ended with.
    #[pyo3(signature = (function, /, *args, **kwargs))]
    fn run(
        slf: &Bound<'_, Self>,
        function: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        slf.borrow_mut().enter(py)?;
        // Not borrowed while the function runs: it may call raise_caught_interrupt.
        let outcome = function.call(args, kwargs);
        let (interrupt, failure) = {
            let mut guard = slf.borrow_mut();
            let undone = guard.undo_all(py);
            guard.active = false;
            undone
        };
        match outcome {
            Ok(value) => match (interrupt, failure) {
                (Some(interrupt), _) => Err(interrupt),
                (None, Some(failure)) => Err(failure),
                (None, None) => Ok(value.unbind()),
            },
            Err(error) => {
                let urgent = error.is_instance_of::<PyKeyboardInterrupt>(py)
                    || error.is_instance_of::<PySystemExit>(py);
                match interrupt {
                    Some(interrupt) if !urgent => {
                        interrupt.set_context(py, Some(error));
                        Err(interrupt)
                    }
                    // The function's own interrupt or exit is what the caller
                    // gets, once.
                    _ => Err(error),
                }
            }
        }
    }
}
