//! `simloom._core.BuiltinRedirects`: sending calls of C builtins (`time.monotonic`,
//! `datetime.datetime.now`, `os.urandom`, `socket.socket.recv`...) to Python
//! handlers while a universe runs.
//!
//! Every function object, bound method and method descriptor of one C builtin
//! shares one `PyMethodDef`, and CPython reads its function pointer at every call.
//! Swapping that pointer for a trampoline therefore reaches the builtin however the
//! program holds it: `time.monotonic`, a name bound before the swap (`from time
//! import monotonic`), a default argument, an attribute. Rebinding module globals
//! would miss all but the first.
//!
//! The trampoline calls the handler with the receiver (the module, the class of a
//! classmethod, or the instance of a method) followed by the call's arguments; the
//! handler's result is the call's result, except `NotImplemented`, which means "run
//! the original" (outside a universe, or arguments the handler leaves alone).
//!
//! Owns: the pointer swap, its restoration and the trampolines. Must not: decide
//! what a handler does (`simloom._boundary` does) or keep a swap in place after
//! `restore()`.
//!
//! Every access happens with the GIL held (the trampolines run inside Python calls;
//! `install`/`restore` are Python methods), so the slot table's atomics only avoid
//! `static mut`; they do not order anything the GIL does not already order.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::c_void;
use std::os::raw::c_int;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicUsize, Ordering};

/// How many builtins can be redirected at once (the boundary uses about 75).
const SLOTS: usize = 128;

/// How a builtin receives its arguments (its `METH_*` calling convention).
const NO_ARGS: i32 = 0;
const ONE_ARG: i32 = 1;
const ARG_TUPLE: i32 = 2;
const ARG_TUPLE_KEYWORDS: i32 = 3;
const FASTCALL: i32 = 4;
const FASTCALL_KEYWORDS: i32 = 5;
/// `METH_METHOD | METH_FASTCALL | METH_KEYWORDS`: Argument Clinic's methods that
/// take their defining class (`_queue.SimpleQueue.get`).
const METHOD_FASTCALL_KEYWORDS: i32 = 6;

struct Slot {
    /// The method definition being redirected; null while the slot is free.
    method: AtomicPtr<ffi::PyMethodDef>,
    /// The function pointer the trampoline stands in for.
    original: AtomicPtr<c_void>,
    /// The handler, borrowed from the owning `BuiltinRedirects`, which keeps it
    /// alive for as long as the slot is taken.
    handler: AtomicPtr<ffi::PyObject>,
    convention: AtomicI32,
}

impl Slot {
    const fn free() -> Slot {
        Slot {
            method: AtomicPtr::new(null_mut()),
            original: AtomicPtr::new(null_mut()),
            handler: AtomicPtr::new(null_mut()),
            convention: AtomicI32::new(NO_ARGS),
        }
    }
}

static TABLE: [Slot; SLOTS] = [const { Slot::free() }; SLOTS];

/// The handler's answer: its result, or `None` for "run the original". A NULL
/// result (an exception) is passed through as the call's result.
///
/// SAFETY: `result` is a new reference or NULL, with the GIL held.
unsafe fn handled(result: *mut ffi::PyObject) -> Option<*mut ffi::PyObject> {
    if result == ffi::Py_NotImplemented() {
        ffi::Py_DECREF(result);
        None
    } else {
        Some(result)
    }
}

/// `handler(receiver, *args, **kwnames)` by vectorcall; `args` holds the positional
/// arguments followed by the values of `kwnames` (which may be NULL).
///
/// SAFETY: every pointer is a live object (or NULL `kwnames`), GIL held.
unsafe fn call_vector(
    handler: *mut ffi::PyObject,
    receiver: *mut ffi::PyObject,
    args: &[*mut ffi::PyObject],
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let positional = if kwnames.is_null() {
        args.len()
    } else {
        args.len() - ffi::PyTuple_GET_SIZE(kwnames) as usize
    };
    let mut stack: [*mut ffi::PyObject; 9] = [null_mut(); 9];
    let mut heap: Vec<*mut ffi::PyObject> = Vec::new();
    let vector: &mut [*mut ffi::PyObject] = if args.len() < stack.len() {
        &mut stack[..=args.len()]
    } else {
        heap.resize(args.len() + 1, null_mut());
        &mut heap[..]
    };
    vector[0] = receiver;
    vector[1..].copy_from_slice(args);
    ffi::PyObject_Vectorcall(handler, vector.as_ptr(), positional + 1, kwnames)
}

/// `handler(receiver, *args_tuple, **kwargs)`.
///
/// SAFETY: `args` is a live tuple, `kwargs` a dict or NULL, GIL held.
unsafe fn call_tuple(
    handler: *mut ffi::PyObject,
    receiver: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let count = ffi::PyTuple_GET_SIZE(args);
    let full = ffi::PyTuple_New(count + 1);
    if full.is_null() {
        return null_mut();
    }
    ffi::Py_INCREF(receiver);
    ffi::PyTuple_SET_ITEM(full, 0, receiver);
    for index in 0..count {
        let item = ffi::PyTuple_GET_ITEM(args, index);
        ffi::Py_INCREF(item);
        ffi::PyTuple_SET_ITEM(full, index + 1, item);
    }
    let result = ffi::PyObject_Call(handler, full, kwargs);
    ffi::Py_DECREF(full);
    result
}

/// Trampoline for `METH_NOARGS`, `METH_O` and `METH_VARARGS` builtins.
unsafe extern "C" fn positional<const N: usize>(
    receiver: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let slot = &TABLE[N];
    let handler = slot.handler.load(Ordering::Acquire);
    if !handler.is_null() {
        let result = match slot.convention.load(Ordering::Relaxed) {
            NO_ARGS => ffi::PyObject_CallOneArg(handler, receiver),
            ONE_ARG => call_vector(handler, receiver, &[arg], null_mut()),
            _ => call_tuple(handler, receiver, arg, null_mut()),
        };
        if let Some(result) = handled(result) {
            return result;
        }
    }
    let original: ffi::PyCFunction = std::mem::transmute(slot.original.load(Ordering::Acquire));
    original(receiver, arg)
}

/// Trampoline for `METH_VARARGS | METH_KEYWORDS` builtins.
unsafe extern "C" fn keywords<const N: usize>(
    receiver: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let slot = &TABLE[N];
    let handler = slot.handler.load(Ordering::Acquire);
    if !handler.is_null() {
        if let Some(result) = handled(call_tuple(handler, receiver, args, kwargs)) {
            return result;
        }
    }
    let original: ffi::PyCFunctionWithKeywords =
        std::mem::transmute(slot.original.load(Ordering::Acquire));
    original(receiver, args, kwargs)
}

/// Trampoline for `METH_FASTCALL` builtins.
unsafe extern "C" fn fast<const N: usize>(
    receiver: *mut ffi::PyObject,
    args: *mut *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    let slot = &TABLE[N];
    let handler = slot.handler.load(Ordering::Acquire);
    if !handler.is_null() {
        let given = arguments(args, nargs as usize);
        if let Some(result) = handled(call_vector(handler, receiver, given, null_mut())) {
            return result;
        }
    }
    let original: ffi::PyCFunctionFast = std::mem::transmute(slot.original.load(Ordering::Acquire));
    original(receiver, args, nargs)
}

/// The handler's answer to a vectorcall-shaped call (positional arguments, then the
/// values of `kwnames`), or `None` for "run the original" (also with no handler).
///
/// SAFETY: as the trampolines: live arguments, GIL held.
unsafe fn handle_fast_keywords(
    slot: &Slot,
    receiver: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> Option<*mut ffi::PyObject> {
    let handler = slot.handler.load(Ordering::Acquire);
    if handler.is_null() {
        return None;
    }
    let keywords = if kwnames.is_null() {
        0
    } else {
        ffi::PyTuple_GET_SIZE(kwnames) as usize
    };
    let given = arguments(args, nargs as usize + keywords);
    handled(call_vector(handler, receiver, given, kwnames))
}

/// Trampoline for `METH_FASTCALL | METH_KEYWORDS` builtins.
unsafe extern "C" fn fast_keywords<const N: usize>(
    receiver: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let slot = &TABLE[N];
    if let Some(result) = handle_fast_keywords(slot, receiver, args, nargs, kwnames) {
        return result;
    }
    let original: ffi::PyCFunctionFastWithKeywords =
        std::mem::transmute(slot.original.load(Ordering::Acquire));
    original(receiver, args, nargs, kwnames)
}

/// Trampoline for `METH_METHOD | METH_FASTCALL | METH_KEYWORDS` builtins: as
/// `fast_keywords`, and the defining class goes on to the original.
unsafe extern "C" fn method_fast_keywords<const N: usize>(
    receiver: *mut ffi::PyObject,
    defining_class: *mut ffi::PyTypeObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let slot = &TABLE[N];
    if let Some(result) = handle_fast_keywords(slot, receiver, args, nargs, kwnames) {
        return result;
    }
    let original: ffi::PyCMethod = std::mem::transmute(slot.original.load(Ordering::Acquire));
    original(receiver, defining_class, args, nargs, kwnames)
}

/// The argument array of a fastcall, as a slice (an empty call may pass NULL).
///
/// SAFETY: `args` points to `count` live objects, or `count` is 0.
unsafe fn arguments<'a>(args: *const *mut ffi::PyObject, count: usize) -> &'a [*mut ffi::PyObject] {
    if count == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(args, count)
    }
}

macro_rules! trampoline_tables {
    ($($n:literal)*) => {
        static POSITIONAL: [ffi::PyCFunction; SLOTS] = [$(positional::<$n>),*];
        static KEYWORDS: [ffi::PyCFunctionWithKeywords; SLOTS] = [$(keywords::<$n>),*];
        static FAST: [ffi::PyCFunctionFast; SLOTS] = [$(fast::<$n>),*];
        static FAST_KEYWORDS: [ffi::PyCFunctionFastWithKeywords; SLOTS] =
            [$(fast_keywords::<$n>),*];
        static METHOD_FAST_KEYWORDS: [ffi::PyCMethod; SLOTS] =
            [$(method_fast_keywords::<$n>),*];
    };
}

trampoline_tables!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33
    34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64
    65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95
    96 97 98 99 100 101 102 103 104 105 106 107 108 109 110 111 112 113 114 115 116 117 118 119
    120 121 122 123 124 125 126 127
);

/// The trampoline of `slot` for a calling convention, as `ml_meth` stores it.
fn trampoline(slot: usize, convention: i32) -> ffi::PyMethodDefPointer {
    match convention {
        ARG_TUPLE_KEYWORDS => ffi::PyMethodDefPointer {
            PyCFunctionWithKeywords: KEYWORDS[slot],
        },
        FASTCALL => ffi::PyMethodDefPointer {
            PyCFunctionFast: FAST[slot],
        },
        FASTCALL_KEYWORDS => ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: FAST_KEYWORDS[slot],
        },
        METHOD_FASTCALL_KEYWORDS => ffi::PyMethodDefPointer {
            PyCMethod: METHOD_FAST_KEYWORDS[slot],
        },
        _ => ffi::PyMethodDefPointer {
            PyCFunction: POSITIONAL[slot],
        },
    }
}

/// The shared method definition of a C builtin: a builtin function or bound
/// builtin method, a method descriptor or a classmethod descriptor.
fn method_def(name: &str, function: &Bound<'_, PyAny>) -> PyResult<*mut ffi::PyMethodDef> {
    let raw = function.as_ptr();
    // SAFETY: type checks and field reads on a live object with the GIL held; the
    // casts match the object's checked type.
    unsafe {
        if ffi::PyCFunction_Check(raw) != 0 {
            return Ok((*raw.cast::<ffi::PyCFunctionObject>()).m_ml);
        }
        let kind = ffi::Py_TYPE(raw);
        if kind == &raw mut ffi::PyMethodDescr_Type || kind == &raw mut ffi::PyClassMethodDescr_Type
        {
            return Ok((*raw.cast::<ffi::PyMethodDescrObject>()).d_method);
        }
    }
    Err(PyTypeError::new_err(format!(
        "{name}: only C builtins can be redirected, got {}",
        function.get_type().name()?
    )))
}

fn convention(name: &str, flags: c_int) -> PyResult<i32> {
    let call = flags & !(ffi::METH_CLASS | ffi::METH_STATIC | ffi::METH_COEXIST);
    match call {
        ffi::METH_NOARGS => Ok(NO_ARGS),
        ffi::METH_O => Ok(ONE_ARG),
        ffi::METH_VARARGS => Ok(ARG_TUPLE),
        x if x == ffi::METH_VARARGS | ffi::METH_KEYWORDS => Ok(ARG_TUPLE_KEYWORDS),
        ffi::METH_FASTCALL => Ok(FASTCALL),
        x if x == ffi::METH_FASTCALL | ffi::METH_KEYWORDS => Ok(FASTCALL_KEYWORDS),
        x if x == ffi::METH_METHOD | ffi::METH_FASTCALL | ffi::METH_KEYWORDS => {
            Ok(METHOD_FASTCALL_KEYWORDS)
        }
        _ => Err(PyValueError::new_err(format!(
            "{name}: calling convention {flags:#x} cannot be redirected"
        ))),
    }
}

struct Entry {
    name: String,
    slot: usize,
    handler: Py<PyAny>,
}

/// A set of C builtins and the Python handler for each, installed and restored
/// together. Creating it claims a slot per builtin (a builtin belongs to one set at
/// a time); `install()` swaps the trampolines in, `restore()` swaps the originals
/// back, and dropping the set restores and frees its slots.
#[pyclass(module = "simloom._core", frozen)]
pub struct BuiltinRedirects {
    entries: Vec<Entry>,
    installed: AtomicBool,
    /// Guards (`simloom._core.Restoration`) using the set right now.
    users: AtomicUsize,
}

impl BuiltinRedirects {
    /// One more guard uses the set: installed while any does.
    pub(crate) fn acquire(&self) {
        if self.users.fetch_add(1, Ordering::AcqRel) == 0 {
            self.install();
        }
    }

    /// A guard stopped using the set: restored when the last one does.
    pub(crate) fn release_use(&self) {
        let previous = self
            .users
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |users| {
                users.checked_sub(1)
            })
            .unwrap_or(0);
        if previous == 1 {
            self.restore();
        }
    }

    fn release(&self) {
        self.restore();
        for entry in &self.entries {
            let slot = &TABLE[entry.slot];
            slot.handler.store(null_mut(), Ordering::Release);
            slot.method.store(null_mut(), Ordering::Release);
        }
    }
}

#[pymethods]
impl BuiltinRedirects {
    #[new]
    fn new(redirects: Vec<(String, Bound<'_, PyAny>, Bound<'_, PyAny>)>) -> PyResult<Self> {
        let mut claimed = BuiltinRedirects {
            entries: Vec::with_capacity(redirects.len()),
            installed: AtomicBool::new(false),
            users: AtomicUsize::new(0),
        };
        for (name, function, handler) in redirects {
            if !handler.is_callable() {
                claimed.release();
                return Err(PyTypeError::new_err(format!(
                    "{name}: the handler must be callable"
                )));
            }
            let claim = method_def(&name, &function).and_then(|method| {
                // SAFETY: `method` is the static method definition of a live builtin.
                let flags = unsafe { (*method).ml_flags };
                let convention = convention(&name, flags)?;
                if TABLE
                    .iter()
                    .any(|slot| slot.method.load(Ordering::Acquire) == method)
                {
                    return Err(PyValueError::new_err(format!(
                        "{name} is already redirected"
                    )));
                }
                let slot = TABLE
                    .iter()
                    .position(|slot| {
                        slot.method
                            .compare_exchange(
                                null_mut(),
                                method,
                                Ordering::AcqRel,
                                Ordering::Acquire,
                            )
                            .is_ok()
                    })
                    .ok_or_else(|| {
                        PyValueError::new_err(format!(
                            "{name}: no free slot (at most {SLOTS} builtins can be redirected)"
                        ))
                    })?;
                TABLE[slot].convention.store(convention, Ordering::Relaxed);
                Ok(slot)
            });
            match claim {
                Ok(slot) => claimed.entries.push(Entry {
                    name,
                    slot,
                    handler: handler.unbind(),
                }),
                Err(error) => {
                    claimed.release();
                    return Err(error);
                }
            }
        }
        Ok(claimed)
    }

    /// Swap every builtin of the set to its handler (a no-op if installed).
    fn install(&self) {
        if self.installed.swap(true, Ordering::AcqRel) {
            return;
        }
        for entry in &self.entries {
            let slot = &TABLE[entry.slot];
            let method = slot.method.load(Ordering::Acquire);
            let ours = trampoline(entry.slot, slot.convention.load(Ordering::Relaxed));
            // SAFETY: `method` is the static method definition of a live builtin;
            // the GIL is held, so no call reads `ml_meth` while it changes.
            unsafe {
                let current = (*method).ml_meth.as_ptr();
                if current == ours.as_ptr() {
                    continue;
                }
                slot.original.store(current, Ordering::Release);
                slot.handler
                    .store(entry.handler.as_ptr(), Ordering::Release);
                (*method).ml_meth = ours;
            }
        }
    }

    /// Swap every builtin of the set back to its original (a no-op if not
    /// installed). A builtin that someone else redirected after `install()` is left
    /// to them; its trampoline keeps calling the handler.
    fn restore(&self) {
        if !self.installed.swap(false, Ordering::AcqRel) {
            return;
        }
        for entry in &self.entries {
            let slot = &TABLE[entry.slot];
            let method = slot.method.load(Ordering::Acquire);
            let ours = trampoline(entry.slot, slot.convention.load(Ordering::Relaxed));
            // SAFETY: as in `install`.
            unsafe {
                if (*method).ml_meth.as_ptr() == ours.as_ptr() {
                    (*method).ml_meth = ffi::PyMethodDefPointer {
                        PyCFunction: std::mem::transmute::<*mut c_void, ffi::PyCFunction>(
                            slot.original.load(Ordering::Acquire),
                        ),
                    };
                }
            }
        }
    }

    /// True between `install()` and `restore()`.
    #[getter]
    fn installed(&self) -> bool {
        self.installed.load(Ordering::Acquire)
    }

    /// The names the builtins were registered under, in order.
    #[getter]
    fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|entry| entry.name.clone())
            .collect()
    }

    /// The names of the builtins whose calls reach their handler right now.
    fn active(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|entry| {
                let slot = &TABLE[entry.slot];
                let method = slot.method.load(Ordering::Acquire);
                let ours = trampoline(entry.slot, slot.convention.load(Ordering::Relaxed));
                // SAFETY: `method` is the static method definition of a live builtin.
                unsafe { (*method).ml_meth.as_ptr() == ours.as_ptr() }
            })
            .map(|entry| entry.name.clone())
            .collect()
    }
}

impl Drop for BuiltinRedirects {
    fn drop(&mut self) {
        self.release();
    }
}
