//! `simloom._core.LoopCore`: the engine behind `simloom.SimLoop`.
//!
//! `SimLoop` (Python) subclasses this class, so `loop.call_soon`, `call_later`,
//! `call_at`, `time` and `stop` resolve straight to the Rust methods below: a task
//! step costs one FFI call to schedule and one to run. The step loop itself
//! (`_run_steps`) runs in Rust and calls each callback in its context.

use super::clock::{ClockView, SharedClock};
use super::describe::Describer;
use super::external::{DrawsSlot, ErrorSlot, PyDraws};
use super::handle::Handle;
use super::simloom_error;
use super::tape::Tape;
use super::watch::{Armed, SharedWatch, StepWatch};
use crate::check::monitors::{Kind as MonitorKind, Monitors, Reason, Violation, Which};
use crate::engine::{
    BudgetKind, BudgetPhase, Budgets, Engine, EngineError, Next, Source, DEFAULT_MAX_STALL_NS,
    NEVER,
};
use crate::strategy::{Eager, StrategyKind};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple, PyType};
use pyo3::{PyTraverseError, PyVisit};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Default: after this many steps in a row without the virtual clock moving, the clock
/// moves to the next pending timer; with none pending it is a livelock.
pub const DEFAULT_LIVELOCK_STEPS: u64 = 250_000;
/// Default PCT depth: d - 1 = 2 priority change points.
pub const DEFAULT_PCT_DEPTH: u32 = 3;
/// Default PCT horizon: the change points fall within the first 100 decisions.
pub const DEFAULT_PCT_HORIZON: u64 = 100;
/// Deadlines further away than this (about 317 years) never fire.
pub const NEVER_SECONDS: f64 = 1e10;

/// Whether an attribute name is `time` (by identity first: names are interned).
fn is_time(name: &Bound<'_, pyo3::types::PyString>) -> bool {
    let interned = pyo3::intern!(name.py(), "time");
    name.is(interned) || name.to_str().is_ok_and(|text| text == "time")
}

/// A deadline in seconds (float) to the virtual nanosecond it fires at: the nearest
/// one, moved one nanosecond later if that reads as earlier than `seconds`. So when a
/// timer fires, `loop.time() >= when` holds exactly, as code that re-checks its
/// deadline (anyio's cancel scopes, `asyncio.timeout`) expects; a deadline a float
/// sum such as `0.1 + 0.2` produced would otherwise fire "early" forever.
fn seconds_to_ns(seconds: f64, what: &str) -> PyResult<u64> {
    if seconds.is_nan() {
        return Err(PyValueError::new_err(format!("{what} must not be NaN")));
    }
    if seconds >= NEVER_SECONDS {
        return Ok(NEVER);
    }
    if seconds <= 0.0 {
        return Ok(0);
    }
    let nearest = (seconds * 1e9).round() as u64;
    Ok(if (nearest as f64) / 1e9 < seconds {
        nearest + 1
    } else {
        nearest
    })
}

#[pyclass(module = "simloom._core", subclass)]
pub struct LoopCore {
    engine: Engine<Py<Handle>>,
    describer: Describer,
    /// Stop before the next step (a failure, the choice source failing).
    stop_requested: bool,
    /// `loop.stop()`: stop once this batch (stock-loop iteration) is done.
    stop_after_batch: Option<u64>,
    stop_marker: Option<Py<PyAny>>,
    current_owner: u32,
    draw_error: ErrorSlot,
    task_type: Py<PyType>,
    closed: bool,
    livelock_steps: u64,
    /// An error of the choice source (strict misalignment, Hypothesis stopping the
    /// test). It ends the universe even if the program catches it.
    fatal: Option<Py<PyAny>>,
    /// The Python object answering draws, shared with the engine's source.
    draws_slot: DrawsSlot,
    future_type: Py<PyAny>,
    /// `("loop",)`: keyword names for creating futures by vectorcall.
    loop_kwnames: Py<PyTuple>,
    debug: bool,
    /// The thread that owns the loop; scheduling from another one is an escape.
    thread: std::thread::ThreadId,
    /// The `ContextVar` naming the host incarnation a callback belongs to (an int,
    /// absent for the world's own code), and the incarnations that have crashed:
    /// their callbacks are never scheduled again.
    host_var: Option<Py<PyAny>>,
    dead_incarnations: HashSet<u64>,
    /// The engine's clock, published for `ClockView`s whenever it moves.
    clock: SharedClock,
    /// See `is_coroutine_callback`.
    code_flags: Vec<(Py<PyAny>, bool)>,
    /// The step count and arming the wall-clock watchdog reads.
    watch: SharedWatch,
    /// A callback is running as a step (what it schedules names that step as its
    /// parent in the causal trace).
    in_step: bool,
    /// Called before each step as `tracer(handle, step, decisions_before,
    /// decisions_after, rank)` (rank: the older ready callbacks it ran ahead of) while a causal trace is recorded (`None`: not recording,
    /// the default, at no cost).
    tracer: Option<Py<PyAny>>,
    /// Called as `hook(handle)` just before a task's step or wakeup runs (after the
    /// tracer), while cancellations are injected (`None`: off, the default, at no
    /// cost). It may cancel the task, so the step throws at its await.
    step_hook: Option<Py<PyAny>>,
    /// `simloom.always`/`eventually`/`leads_to`: their state (judged after each
    /// step that may have run program code), and their predicates `(p, q)`.
    monitors: Monitors,
    monitor_predicates: Vec<(Py<PyAny>, Option<Py<PyAny>>)>,
    /// A callback that runs no program code (asyncio's `_set_result_unless_cancelled`,
    /// which ends a sleep): no monitor is judged after its steps.
    quiet_callback: Option<Py<PyAny>>,
    /// The monitors' predicates are running (they must not add monitors).
    judging: bool,
}

/// The host incarnation `context` belongs to, or 0.
fn incarnation_in(context: &Bound<'_, PyAny>, host_var: &Bound<'_, PyAny>) -> u64 {
    context
        .get_item(host_var)
        .and_then(|value| value.extract::<u64>())
        .unwrap_or(0)
}

/// A monitor violation's reason as the Python layer names it.
fn reason_name(reason: Reason) -> &'static str {
    match reason {
        Reason::False => "false",
        Reason::Deadline => "deadline",
        Reason::Ended => "ended",
    }
}

fn fresh_engine(source: Source, livelock_steps: u64) -> Result<Engine<Py<Handle>>, EngineError> {
    Engine::new(source, livelock_steps)
}

/// Run a handle's callback in its context. `PyContext_Enter` + vectorcall is what
/// `Context.run(callback, *args)` does, without building an argument tuple.
pub(crate) fn invoke(py: Python<'_>, handle: &Handle) -> PyResult<Py<PyAny>> {
    let args = handle.args.bind(py);
    let count = args.len();
    let callback = handle.callback.as_ptr();
    // SAFETY: every pointer is a live object owned by `handle` for the whole call,
    // and the argument array outlives the vectorcall.
    unsafe {
        if let Some(context) = &handle.context {
            if ffi::PyContext_Enter(context.as_ptr()) != 0 {
                return Err(PyErr::fetch(py));
            }
        }
        let result = if count <= 6 {
            let mut stack: [*mut ffi::PyObject; 7] = [std::ptr::null_mut(); 7];
            for index in 0..count {
                stack[index + 1] = ffi::PyTuple_GET_ITEM(args.as_ptr(), index as ffi::Py_ssize_t);
            }
            ffi::PyObject_Vectorcall(
                callback,
                stack.as_ptr().add(1),
                count | ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                std::ptr::null_mut(),
            )
        } else {
            ffi::PyObject_Call(callback, args.as_ptr(), std::ptr::null_mut())
        };
        let outcome = Bound::from_owned_ptr_or_err(py, result).map(Bound::unbind);
        if let Some(context) = &handle.context {
            if ffi::PyContext_Exit(context.as_ptr()) != 0 {
                return Err(PyErr::fetch(py));
            }
        }
        outcome
    }
}

/// Code objects recently checked by `is_coroutine_callback` and the answer, so a
/// function scheduled again and again (asyncio's `_set_result_unless_cancelled`,
/// behind every `sleep`) is not asked for its `co_flags` each time. Holding the
/// code object keeps its address from being reused.
const CODE_FLAGS_CACHE: usize = 16;

fn is_coroutine_callback(
    callback: &Bound<'_, PyAny>,
    cache: &mut Vec<(Py<PyAny>, bool)>,
) -> PyResult<bool> {
    let raw = callback.as_ptr();
    // SAFETY: type checks on a live object.
    unsafe {
        if ffi::PyCoro_CheckExact(raw) != 0 {
            return Ok(true);
        }
        if ffi::PyFunction_Check(raw) != 0 {
            let code_ptr = ffi::PyFunction_GetCode(raw);
            if let Some((_, answer)) = cache.iter().find(|(code, _)| code.as_ptr() == code_ptr) {
                return Ok(*answer);
            }
            let code = Bound::from_borrowed_ptr(callback.py(), code_ptr);
            let flags: u32 = code
                .getattr(pyo3::intern!(callback.py(), "co_flags"))?
                .extract()?;
            // CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR
            let answer = flags & (0x80 | 0x100 | 0x200) != 0;
            if cache.len() == CODE_FLAGS_CACHE {
                cache.remove(0);
            }
            cache.push((code.unbind(), answer));
            return Ok(answer);
        }
    }
    Ok(false)
}

impl LoopCore {
    /// The engine, for the world's models (network, disks) to draw their choices
    /// from the universe's tape. Turn an error of a draw into a Python exception
    /// with [`LoopCore::fail_source`].
    pub(crate) fn engine_mut(&mut self) -> &mut Engine<Py<Handle>> {
        &mut self.engine
    }

    /// An error of the choice source met by a world model: raise it, remember it
    /// as fatal (the universe ends even if the program catches it) and stop.
    pub(crate) fn fail_source(&mut self, py: Python<'_>, error: EngineError) -> PyErr {
        self.source_error(py, error)
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.engine.now_ns()
    }

    pub(crate) fn cancel_handle(&mut self, id: u64) -> Option<Py<Handle>> {
        self.engine.cancel(id)
    }

    pub(crate) fn label_text(&self, label: u32) -> String {
        self.engine.log().label_text(label).to_string()
    }

    fn request_stop_after(&mut self, batch: u64) {
        self.stop_after_batch = Some(self.stop_after_batch.map_or(batch, |b| b.min(batch)));
    }

    /// The next step under the stop rules: a failure stops at once; after
    /// `stop()` the rest of the current batch runs (oldest first, no decisions),
    /// then the run stops without moving the clock. `None` means "stop now".
    fn next_entry(&mut self) -> Result<Option<Next<Py<Handle>>>, EngineError> {
        if self.stop_requested {
            self.stop_requested = false;
            self.stop_after_batch = None;
            return Ok(None);
        }
        if let Some(batch) = self.stop_after_batch {
            if self.engine.batch() >= batch {
                if let Some(entry) = self.engine.next_in_batch() {
                    return Ok(Some(Next::Run(entry)));
                }
                self.stop_after_batch = None;
                return Ok(None);
            }
            if self.engine.ready_len() == 0 {
                // The stop is due in the next iteration and nothing else is ready:
                // the stock loop would run just its stop callback.
                self.stop_after_batch = None;
                return Ok(None);
            }
        }
        self.engine.next_step().map(Some)
    }

    /// Turn a source error into a Python exception, remember it as fatal and stop.
    fn source_error(&mut self, py: Python<'_>, error: EngineError) -> PyErr {
        let err = self.engine_error(py, error);
        if self.fatal.is_none() {
            self.fatal = Some(err.value(py).clone().into_any().unbind());
        }
        self.stop_requested = true;
        err
    }

    fn engine_error(&self, py: Python<'_>, error: EngineError) -> PyErr {
        match error {
            EngineError::Aborted => self
                .draw_error
                .lock()
                .expect("error slot")
                .take()
                .unwrap_or_else(|| PyRuntimeError::new_err("the choice source stopped without an error")),
            EngineError::Misaligned { index, label, bound, value } => simloom_error(
                py,
                "TapeMisalignedError",
                format!(
                    "strict replay: decision #{index} ({label}) has {bound} alternatives, but the tape says {value}; the program no longer matches the tape"
                ),
            ),
            EngineError::UnusedDeviations { first_index, count } => simloom_error(
                py,
                "TapeMisalignedError",
                format!(
                    "strict replay: the universe ended after its last decision, but the tape still has {count} deviation(s), the first at decision #{first_index}"
                ),
            ),
        }
    }

    /// The steps of `_run_steps` (which resets `in_step` however they end).
    fn run_steps(slf: &Bound<'_, Self>, budget: u64) -> PyResult<&'static str> {
        let py = slf.py();
        let (watch, steps) = {
            let core = slf.borrow();
            (core.watch.clone(), core.engine.steps())
        };
        let _armed = Armed::new(&watch, steps);
        for _ in 0..budget {
            let (entry, traced) = {
                let mut core = slf.borrow_mut();
                core.in_step = false;
                let decisions_before = core.engine.decisions();
                match core.next_entry() {
                    Ok(None) => return Ok("stopped"),
                    Ok(Some(Next::Run(entry))) => {
                        core.current_owner = entry.owner;
                        let now = core.engine.now_ns();
                        core.clock.store(now, Ordering::Relaxed);
                        let steps = core.engine.steps();
                        watch.publish_steps(steps);
                        core.in_step = true;
                        let traced = core.tracer.as_ref().map(|tracer| {
                            let engine = &core.engine;
                            let decisions =
                                (decisions_before, engine.decisions(), engine.last_rank());
                            (tracer.clone_ref(py), steps, decisions)
                        });
                        (entry, traced)
                    }
                    Ok(Some(Next::Idle)) => return Ok("idle"),
                    Ok(Some(Next::Livelock { .. })) => return Ok("livelock"),
                    Ok(Some(Next::Budget(BudgetKind::Steps))) => return Ok("step_budget"),
                    Ok(Some(Next::Budget(BudgetKind::Time))) => return Ok("time_budget"),
                    Err(error) => return Err(core.source_error(py, error)),
                }
            };
            let handle = entry.payload.get();
            handle.started.store(true, Ordering::Relaxed);
            if handle.cancelled.load(Ordering::Relaxed) {
                continue;
            }
            if let Some((tracer, step, (before, after, rank))) = traced {
                tracer.call1(py, (&entry.payload, step, before, after, rank))?;
            }
            if handle.task_step {
                let hook = slf.borrow().step_hook.as_ref().map(|h| h.clone_ref(py));
                if let Some(hook) = hook {
                    if let Err(error) = hook.call1(py, (&entry.payload,)) {
                        if error.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
                            || error.is_instance_of::<pyo3::exceptions::PySystemExit>(py)
                        {
                            return Err(error);
                        }
                        // The choice source failed (Hypothesis stopped the test case)
                        // or the hook did: the universe stops with that error, but the
                        // step still runs, so its task is not left without a wake-up.
                        let mut core = slf.borrow_mut();
                        if core.fatal.is_none() {
                            core.fatal = Some(error.value(py).clone().into_any().unbind());
                        }
                        core.stop_requested = true;
                    }
                }
            }
            if let Err(error) = invoke(py, handle) {
                if error.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
                    || error.is_instance_of::<pyo3::exceptions::PySystemExit>(py)
                {
                    return Err(error);
                }
                let label = slf.borrow().label_text(handle.label);
                let context = PyDict::new(py);
                context.set_item("message", format!("Exception in callback {label}"))?;
                context.set_item("exception", error.value(py))?;
                context.set_item("handle", &entry.payload)?;
                slf.call_method1(pyo3::intern!(py, "call_exception_handler"), (context,))?;
            }
            // Judged after the step (a monitor it added included).
            if slf.borrow().monitors.is_active() {
                Self::judge_monitors(slf, handle)?;
            }
        }
        Ok("budget")
    }

    /// Call the open monitors' predicates now (no borrow held while they run: they
    /// may read the loop; adding a monitor from one is refused while `judging`).
    #[allow(clippy::type_complexity)]
    fn evaluate_monitors(
        slf: &Bound<'_, Self>,
    ) -> (Result<Option<Violation>, (usize, PyErr)>, u64, u64) {
        let py = slf.py();
        let (mut monitors, predicates, now, step) = {
            let mut core = slf.borrow_mut();
            core.judging = true;
            (
                std::mem::take(&mut core.monitors),
                std::mem::take(&mut core.monitor_predicates),
                core.engine.now_ns(),
                core.engine.steps(),
            )
        };
        let verdict = monitors.after_step(now, |index, which| {
            let (p, q) = &predicates[index];
            let predicate = match which {
                Which::P => p,
                Which::Q => q.as_ref().unwrap_or(p),
            };
            // SAFETY: a live callable; returns a new reference or NULL with an
            // exception set.
            let answer = unsafe { ffi::PyObject_CallNoArgs(predicate.as_ptr()) };
            let answer = unsafe { Bound::from_owned_ptr_or_err(py, answer) };
            answer
                .and_then(|answer| answer.is_truthy())
                .map_err(|error| (index, error))
        });
        let mut core = slf.borrow_mut();
        core.monitors = monitors;
        core.monitor_predicates = predicates;
        core.judging = false;
        (verdict, now, step)
    }

    /// Judge the monitors after a step of `handle` (unless none is active, or the
    /// step ran no program code). A violation, or a predicate raising, is handed to
    /// the loop's `_monitor_failed`, which fails the universe.
    fn judge_monitors(slf: &Bound<'_, Self>, handle: &Handle) -> PyResult<()> {
        let py = slf.py();
        if slf
            .borrow()
            .quiet_callback
            .as_ref()
            .is_some_and(|quiet| quiet.as_ptr() == handle.callback.as_ptr())
        {
            return Ok(());
        }
        let (verdict, now, step) = Self::evaluate_monitors(slf);
        if matches!(verdict, Ok(None)) {
            return Ok(());
        }
        let label = slf.borrow().label_text(handle.label);
        match verdict {
            Ok(None) => Ok(()),
            Ok(Some(violation)) => {
                slf.call_method1(
                    pyo3::intern!(py, "_monitor_failed"),
                    (
                        violation.monitor,
                        violation.time_ns,
                        violation.since_ns,
                        reason_name(violation.reason),
                        step,
                        label,
                        py.None(),
                    ),
                )?;
                Ok(())
            }
            Err((index, error)) => {
                if error.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
                    || error.is_instance_of::<pyo3::exceptions::PySystemExit>(py)
                {
                    return Err(error);
                }
                slf.call_method1(
                    pyo3::intern!(py, "_monitor_failed"),
                    (
                        index,
                        now,
                        py.None(),
                        "raised",
                        step,
                        label,
                        error.value(py),
                    ),
                )?;
                Ok(())
            }
        }
    }

    /// Schedule `callback(*args)` as ready (`when_ns` None) or as a timer at an exact
    /// virtual nanosecond; the world's models use this for their deliveries.
    pub(crate) fn schedule(
        slf: &Bound<'_, Self>,
        method: &str,
        when_ns: Option<u64>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let is_marker = {
            let core = slf.borrow();
            if core.closed {
                return Err(PyRuntimeError::new_err("Event loop is closed"));
            }
            if std::thread::current().id() != core.thread {
                return Err(simloom_error(
                    py,
                    "EscapedSimulationError",
                    format!(
                        "loop.{method}() from another thread: a real thread is handing work to the simulated loop (simloom runs the program in a simulated world; this would reach the real one and make the universe impossible to replay)."
                    ),
                ));
            }
            core.stop_marker
                .as_ref()
                .is_some_and(|m| m.as_ptr() == callback.as_ptr())
        };
        // SAFETY: PyCallable_Check only reads the object's type.
        if unsafe { ffi::PyCallable_Check(callback.as_ptr()) } == 0 {
            return Err(PyTypeError::new_err(format!(
                "a callable object was expected by {method}(), got {}",
                callback.repr()?
            )));
        }
        let coroutine = {
            let mut cache = std::mem::take(&mut slf.borrow_mut().code_flags);
            let answer = is_coroutine_callback(callback, &mut cache);
            slf.borrow_mut().code_flags = cache;
            answer?
        };
        if coroutine {
            return Err(PyTypeError::new_err(format!(
                "coroutines cannot be used with {method}()"
            )));
        }
        let context = match context {
            Some(context) if !context.is_none() => context.unbind(),
            // asyncio runs a callback without an explicit context in a copy of the
            // context current when it was scheduled.
            // SAFETY: returns a new reference or NULL with an exception set.
            _ => unsafe {
                Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent())?.unbind()
            },
        };
        let mut core = slf.borrow_mut();
        let id = core.engine.peek_id();
        let parent_step = if core.in_step { core.engine.steps() } else { 0 };
        let new_handle = |label: u32, cancelled: bool, task_step: bool| {
            Py::new(
                py,
                Handle {
                    callback: callback.clone().unbind(),
                    args: args.clone().unbind(),
                    context: Some(context.clone_ref(py)),
                    owner_loop: slf.clone().unbind(),
                    id,
                    label,
                    when_ns,
                    cancelled: std::sync::atomic::AtomicBool::new(cancelled),
                    started: Default::default(),
                    parent_step,
                    task_step,
                },
            )
        };
        if !core.dead_incarnations.is_empty() {
            let incarnation = match &core.host_var {
                Some(var) => incarnation_in(context.bind(py), var.bind(py)),
                None => 0,
            };
            if core.dead_incarnations.contains(&incarnation) {
                // Work for a crashed host: it never runs (a power cut has no
                // `finally`). The handle is born cancelled and never scheduled.
                return new_handle(core.current_owner, true, false);
            }
        }
        if is_marker {
            // The loop's own "main future finished" callback, which on the stock
            // loop calls `stop()` in the next iteration: stop when the next batch is
            // done, without ever occupying the ready set, a decision point or the
            // event log.
            let next = core.engine.batch() + 1;
            core.request_stop_after(next);
            return new_handle(core.current_owner, false, false);
        }
        let description = {
            let LoopCore {
                describer, engine, ..
            } = &mut *core;
            describer.describe(callback, engine.log_mut(), slf.as_any())?
        };
        let owner = description.task.unwrap_or(core.current_owner);
        let handle = new_handle(description.label, false, description.task.is_some())?;
        let scheduled = match when_ns {
            None => core
                .engine
                .schedule_ready(handle.clone_ref(py), description.label, owner),
            Some(deadline) => {
                core.engine
                    .schedule_timer(deadline, handle.clone_ref(py), description.label, owner)
            }
        };
        debug_assert_eq!(scheduled, id);
        Ok(handle)
    }
}

#[pymethods]
impl LoopCore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(
        py: Python<'_>,
        _args: &Bound<'_, PyTuple>,
        _kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<LoopCore> {
        let asyncio = py.import("asyncio")?;
        let task_type = asyncio.getattr("Task")?.cast_into::<PyType>()?.unbind();
        let future_type = asyncio.getattr("Future")?.unbind();
        let loop_kwnames = PyTuple::new(py, ["loop"])?.unbind();
        let mut engine = fresh_engine(
            Source::seeded(0, &StrategyKind::Fifo),
            DEFAULT_LIVELOCK_STEPS,
        )
        .map_err(|_| PyRuntimeError::new_err("engine start failed"))?;
        let current_owner = engine.log_mut().label("<loop>");
        Ok(LoopCore {
            engine,
            describer: Describer::new(task_type.clone_ref(py)),
            stop_requested: false,
            stop_after_batch: None,
            stop_marker: None,
            current_owner,
            draw_error: Arc::new(Mutex::new(None)),
            task_type,
            closed: false,
            livelock_steps: DEFAULT_LIVELOCK_STEPS,
            fatal: None,
            draws_slot: Arc::new(Mutex::new(None)),
            future_type,
            loop_kwnames,
            debug: false,
            thread: std::thread::current().id(),
            host_var: None,
            dead_incarnations: HashSet::new(),
            clock: SharedClock::default(),
            watch: SharedWatch::default(),
            code_flags: Vec::new(),
            in_step: false,
            tracer: None,
            step_hook: None,
            monitors: Monitors::default(),
            monitor_predicates: Vec::new(),
            quiet_callback: None,
            judging: false,
        })
    }

    /// Start a fresh universe: `strategy` is "fifo", "random", "pct" or "faithful"
    /// (whose stalls last at most `max_stall_ns`); a `tape`
    /// replays recorded choices; `draws` answers choices from Python (Hypothesis).
    /// `max_steps` and `max_time_ns` bound each run (None: unbounded).
    #[pyo3(signature = (*, seed = 0, strategy = "fifo", depth = DEFAULT_PCT_DEPTH, horizon = DEFAULT_PCT_HORIZON, tape = None, strict = false, draws = None, livelock_steps = DEFAULT_LIVELOCK_STEPS, max_steps = None, max_time_ns = None, max_stall_ns = DEFAULT_MAX_STALL_NS, eager = None))]
    #[allow(clippy::too_many_arguments)]
    fn _configure(
        &mut self,
        py: Python<'_>,
        seed: u64,
        strategy: &str,
        depth: u32,
        horizon: u64,
        tape: Option<PyRef<'_, Tape>>,
        strict: bool,
        draws: Option<Py<PyAny>>,
        livelock_steps: u64,
        max_steps: Option<u64>,
        max_time_ns: Option<u64>,
        max_stall_ns: u64,
        eager: Option<bool>,
    ) -> PyResult<()> {
        if self.engine.steps() > 0 || self.engine.ready_len() > 0 || self.engine.timers_len() > 0 {
            return Err(PyRuntimeError::new_err(
                "a SimLoop universe can only be configured before it runs",
            ));
        }
        let kind = match strategy {
            "fifo" => StrategyKind::Fifo,
            "random" => StrategyKind::Random,
            "pct" => StrategyKind::Pct {
                depth,
                horizon,
                eager: match eager {
                    None => Eager::Drawn,
                    Some(true) => Eager::Always,
                    Some(false) => Eager::Never,
                },
            },
            "faithful" => StrategyKind::Faithful,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown strategy {other:?}; expected \"fifo\", \"random\", \"pct\" or \"faithful\""
                )))
            }
        };
        let source = match (tape, draws) {
            (Some(_), Some(_)) => {
                return Err(PyValueError::new_err("pass a tape or draws, not both"))
            }
            (Some(tape), None) => Source::replay(tape.core().clone(), strict),
            (None, Some(draws)) => {
                *self.draws_slot.lock().expect("draws slot") = Some(draws);
                Source::external(Box::new(PyDraws {
                    source: self.draws_slot.clone(),
                    error: self.draw_error.clone(),
                }))
            }
            (None, None) => Source::seeded(seed, &kind),
        };
        let mut engine =
            fresh_engine(source, livelock_steps).map_err(|e| self.engine_error(py, e))?;
        self.current_owner = engine.log_mut().label("<loop>");
        if kind == StrategyKind::Faithful {
            engine.set_faithful(max_stall_ns);
        }
        engine.set_budgets(Budgets {
            max_steps,
            max_time_ns,
        });
        self.engine = engine;
        self.clock.store(self.engine.now_ns(), Ordering::Relaxed);
        self.livelock_steps = livelock_steps;
        self.describer = Describer::new(self.task_type.clone_ref(py));
        self.monitors = Monitors::default();
        self.monitor_predicates.clear();
        self.stop_requested = false;
        self.stop_after_batch = None;
        self.fatal = None;
        self.dead_incarnations.clear();
        Ok(())
    }

    #[pyo3(signature = (callback, *args, context = None))]
    fn call_soon(
        slf: &Bound<'_, Self>,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        LoopCore::schedule(slf, "call_soon", None, callback, args, context)
    }

    #[pyo3(signature = (delay, callback, *args, context = None))]
    fn call_later(
        slf: &Bound<'_, Self>,
        delay: f64,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        if delay.is_nan() {
            return Err(PyValueError::new_err("delay must not be NaN"));
        }
        // As asyncio does: the deadline is `time() + delay`, so `call_later(d)` and
        // `call_at(time() + d)` are the same instant.
        let now = slf.borrow().engine.now_ns() as f64 / 1e9;
        let deadline = seconds_to_ns(now + delay, "delay")?;
        LoopCore::schedule(slf, "call_later", Some(deadline), callback, args, context)
    }

    #[pyo3(signature = (when, callback, *args, context = None))]
    fn call_at(
        slf: &Bound<'_, Self>,
        when: f64,
        callback: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        context: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let deadline = seconds_to_ns(when, "when")?;
        LoopCore::schedule(slf, "call_at", Some(deadline), callback, args, context)
    }

    /// A new `asyncio.Future` bound to this loop.
    fn create_future(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let core = slf.borrow();
        let args = [std::ptr::null_mut(), slf.as_ptr()];
        // SAFETY: `Future(loop=self)` by vectorcall: one keyword argument, named by
        // `loop_kwnames`; every pointer is live for the call.
        unsafe {
            let result = ffi::PyObject_Vectorcall(
                core.future_type.as_ptr(),
                args.as_ptr().add(1),
                ffi::PY_VECTORCALL_ARGUMENTS_OFFSET,
                core.loop_kwnames.as_ptr(),
            );
            Ok(Bound::from_owned_ptr_or_err(py, result)?.unbind())
        }
    }

    fn get_debug(&self) -> bool {
        self.debug
    }

    fn set_debug(&mut self, enabled: &Bound<'_, PyAny>) -> PyResult<()> {
        self.debug = enabled.is_truthy()?;
        Ok(())
    }

    /// Virtual time in seconds since the universe began.
    fn time(&self) -> f64 {
        self.engine.now_ns() as f64 / 1e9
    }

    /// A view of the virtual clock that reads it without borrowing the loop.
    fn _clock_view(&self) -> ClockView {
        ClockView {
            now_ns: self.clock.clone(),
        }
    }

    /// Stop when the callbacks of the current iteration have run, as the stock
    /// loop does ("run the current batch of callbacks and then exit").
    fn stop(&mut self) {
        let batch = self.engine.batch();
        self.request_stop_after(batch);
    }

    /// Stop before the next step (a failure ends the run at once).
    fn _stop_now(&mut self) {
        self.stop_requested = true;
    }

    /// Ready callbacks of the current iteration (they run before a `stop()` ends
    /// the run).
    fn _batch_ready(&self) -> usize {
        self.engine.batch_ready()
    }

    fn _set_stop_marker(&mut self, marker: Option<Py<PyAny>>) {
        self.stop_marker = marker;
    }

    fn _stop_requested(&self) -> bool {
        self.stop_requested || self.stop_after_batch.is_some()
    }

    fn _clear_stop(&mut self) {
        self.stop_requested = false;
        self.stop_after_batch = None;
    }

    /// Teardown mode: canonical order, no decisions, nothing recorded on the tape.
    fn _set_quiet(&mut self, quiet: bool) {
        self.engine.set_quiet(quiet);
    }

    /// A run (`run_forever`) begins: a fresh livelock count, and the full budgets
    /// unless they were spent (then the teardown allowance goes on).
    fn _begin_run(&mut self) {
        self.engine.begin_run();
    }

    /// What the watchdog reads of this loop (see `simloom._watchdog`).
    fn _watch(&self) -> StepWatch {
        StepWatch {
            state: self.watch.clone(),
        }
    }

    /// The budgets and where the universe is with them: `(phase, max_steps,
    /// max_time_ns, run_start_steps, run_start_ns)`; phase is "run", "teardown"
    /// or "spent".
    fn _budget_state(&self) -> (&'static str, Option<u64>, Option<u64>, u64, u64) {
        let budgets = self.engine.budgets();
        let phase = match self.engine.budget_phase() {
            BudgetPhase::Run => "run",
            BudgetPhase::Teardown => "teardown",
            BudgetPhase::Spent(_) => "spent",
        };
        let (start_steps, start_ns) = self.engine.run_start();
        (
            phase,
            budgets.max_steps,
            budgets.max_time_ns,
            start_steps,
            start_ns,
        )
    }

    /// Who ran: `(owner label, steps, last step, virtual ns of the last step)` for
    /// every owner (task name, or "<loop>") that ran in this universe.
    fn _activity(&self) -> Vec<(String, u64, u64, u64)> {
        self.engine
            .activity()
            .iter()
            .enumerate()
            .filter(|(_, activity)| activity.steps > 0)
            .map(|(label, activity)| {
                (
                    self.label_text(label as u32),
                    activity.steps,
                    activity.last_step,
                    activity.last_ns,
                )
            })
            .collect()
    }

    /// Pending callbacks for diagnostics, ready first: `(label, owner label, due ns
    /// for a timer that has not fallen due)`.
    fn _pending_entries(&self) -> Vec<(String, String, Option<u64>)> {
        let ready = self.engine.ready_len();
        self.engine
            .pending()
            .enumerate()
            .map(|(index, entry)| {
                let due = if index >= ready {
                    entry.payload.get().when_ns
                } else {
                    None
                };
                (
                    self.label_text(entry.label),
                    self.label_text(entry.owner),
                    due,
                )
            })
            .collect()
    }

    /// Move the virtual clock forward by `seconds` by hand (a hand-driven test
    /// clock, as CPython's `test_utils.TestLoop.advance_time`).
    fn _advance_clock(&mut self, seconds: f64) -> PyResult<()> {
        if seconds.is_nan() || seconds < 0.0 {
            return Err(PyValueError::new_err(format!(
                "seconds must be a number >= 0, got {seconds}"
            )));
        }
        let delta = seconds_to_ns(seconds, "seconds")?;
        if delta == NEVER {
            return Err(PyValueError::new_err(format!(
                "seconds must be below {NEVER_SECONDS:e}, got {seconds}"
            )));
        }
        self.engine.advance_clock(delta);
        self.clock.store(self.engine.now_ns(), Ordering::Relaxed);
        Ok(())
    }

    fn _set_closed(&mut self, closed: bool) {
        self.closed = closed;
    }

    fn _is_closed(&self) -> bool {
        self.closed
    }

    /// Run up to `budget` steps. Returns "stopped", "idle" (nothing ready, no timer
    /// pending), "livelock", "step_budget" or "time_budget" (the universe's budgets
    /// ran out) or "budget" (`budget` steps ran). Exceptions from callbacks go to
    /// `self.call_exception_handler`; KeyboardInterrupt and SystemExit propagate.
    /// The watchdog is armed for the duration.
    fn _run_steps(slf: &Bound<'_, Self>, budget: u64) -> PyResult<&'static str> {
        let status = Self::run_steps(slf, budget);
        // However the steps ended, what is scheduled from now on is no step's doing.
        slf.borrow_mut().in_step = false;
        status
    }

    /// Set (or, with `None`, remove) the causal trace's tracer: see `tracer`.
    fn _set_tracer(&mut self, tracer: Option<Py<PyAny>>) {
        self.tracer = tracer;
    }

    /// Set (or, with `None`, remove) the step hook: see `step_hook`.
    fn _set_step_hook(&mut self, hook: Option<Py<PyAny>>) {
        self.step_hook = hook;
    }

    /// Add a monitor (`kind`: "always", "eventually" or "leads_to"; `q` for
    /// leads_to; `within_ns`: its time limit) judged from the next step on;
    /// returns its index.
    #[pyo3(signature = (kind, p, q = None, within_ns = None))]
    fn _add_monitor(
        &mut self,
        kind: &str,
        p: Py<PyAny>,
        q: Option<Py<PyAny>>,
        within_ns: Option<u64>,
    ) -> PyResult<usize> {
        if self.judging {
            return Err(PyRuntimeError::new_err(
                "a monitor's predicate added a monitor: predicates must only read the program's state",
            ));
        }
        let kind = match kind {
            "always" => MonitorKind::Always,
            "eventually" => MonitorKind::Eventually { within_ns },
            "leads_to" => MonitorKind::LeadsTo { within_ns },
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown monitor kind {other:?}"
                )))
            }
        };
        self.monitor_predicates.push((p, q));
        Ok(self.monitors.add(kind, self.engine.now_ns()))
    }

    /// Stop judging monitor `index`.
    fn _remove_monitor(&mut self, index: usize) {
        self.monitors.remove(index);
    }

    /// The universe's program ended: the first monitor left unsatisfied, as
    /// `(index, time_ns, since_ns, reason)`, or None.
    /// The state at the end is judged first, as after a step; a predicate's
    /// exception propagates.
    #[allow(clippy::type_complexity)]
    fn _monitors_at_end(
        slf: &Bound<'_, Self>,
    ) -> PyResult<Option<(usize, u64, Option<u64>, &'static str)>> {
        let (verdict, now, _) = Self::evaluate_monitors(slf);
        let found = match verdict {
            Err((_, error)) => return Err(error),
            Ok(Some(violation)) => Some(violation),
            Ok(None) => slf.borrow_mut().monitors.at_end(now),
        };
        Ok(found.map(|v| (v.monitor, v.time_ns, v.since_ns, reason_name(v.reason))))
    }

    /// The callback after whose steps no monitor is judged (see `quiet_callback`).
    fn _set_quiet_callback(&mut self, callback: Option<Py<PyAny>>) {
        self.quiet_callback = callback;
    }

    /// A labelled choice in `[0, bound)`; `percent` is the chance of nonzero for
    /// yes/no choices under seeded strategies.
    #[pyo3(signature = (label, bound, percent = None))]
    fn _choose(
        &mut self,
        py: Python<'_>,
        label: &str,
        bound: u64,
        percent: Option<u32>,
    ) -> PyResult<u64> {
        match self.engine.choose(label, bound, percent) {
            Ok(value) => Ok(value),
            Err(error) => Err(self.source_error(py, error)),
        }
    }

    /// The `ContextVar` whose value (an int) names the host incarnation of the
    /// code running; see `_kill_incarnation`.
    fn _set_host_var(&mut self, var: Option<Py<PyAny>>) {
        self.host_var = var;
        self.dead_incarnations.clear();
    }

    /// A host incarnation crashed: drop its pending callbacks and timers, and never
    /// schedule one of its callbacks again in this universe. Returns the dropped
    /// handles (the caller keeps what they reference alive until the universe ends,
    /// so no `finally` runs early through garbage collection).
    fn _kill_incarnation(&mut self, py: Python<'_>, incarnation: u64) -> PyResult<Vec<Py<Handle>>> {
        if incarnation == 0 {
            return Err(PyValueError::new_err(
                "incarnation 0 is the world's own code",
            ));
        }
        let Some(var) = self.host_var.as_ref().map(|var| var.clone_ref(py)) else {
            return Err(PyRuntimeError::new_err("no host variable is set"));
        };
        self.dead_incarnations.insert(incarnation);
        let doomed: Vec<u64> = self
            .engine
            .pending()
            .filter(|entry| {
                let handle = entry.payload.get();
                handle.context.as_ref().is_some_and(|context| {
                    incarnation_in(context.bind(py), var.bind(py)) == incarnation
                })
            })
            .map(|entry| entry.payload.get().id)
            .collect();
        let mut dropped = Vec::with_capacity(doomed.len());
        for id in doomed {
            if let Some(handle) = self.engine.cancel(id) {
                handle.get().cancelled.store(true, Ordering::Relaxed);
                dropped.push(handle);
            }
        }
        Ok(dropped)
    }

    /// A task was renamed: label its next steps with the new name.
    fn _task_renamed(&mut self, task: &Bound<'_, PyAny>) {
        self.describer.forget_task(task);
    }

    /// Count a coverage hit.
    fn _cover(&mut self, label: &str) {
        self.engine.cover(label);
    }

    /// Record a named point in the event log.
    fn _mark(&mut self, label: &str) {
        let id = self.engine.log_mut().label(label);
        self.engine.log_mut().mark(id);
    }

    fn _finish(&mut self, py: Python<'_>, outcome: &str) -> PyResult<()> {
        match self.engine.finish(outcome) {
            Ok(()) => Ok(()),
            Err(error) => Err(self.source_error(py, error)),
        }
    }

    /// The choice source's fatal error, if it failed.
    fn _fatal_error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.fatal.as_ref().map(|e| e.clone_ref(py))
    }

    /// What a finished universe reports, in one call: `(tape, digest, event-log
    /// bytes, steps, decisions, deviations, virtual time in ns, coverage,
    /// misaligned)`. The tape is a copy of the engine's compact storage: no Python
    /// object per deviation or per step.
    #[allow(clippy::type_complexity)]
    fn _result<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(
        Tape,
        String,
        Bound<'py, PyBytes>,
        u64,
        u64,
        usize,
        u64,
        Bound<'py, PyDict>,
        bool,
    )> {
        Ok((
            self._tape(),
            self._digest(),
            self._log_bytes(py),
            self._steps(),
            self._decisions(),
            self._deviations(),
            self._now_ns(),
            self._coverage(py)?,
            self._misaligned(),
        ))
    }

    fn _tape(&self) -> Tape {
        Tape::from_core(self.engine.tape().clone())
    }

    fn _log_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.engine.log().bytes())
    }

    fn _digest(&self) -> String {
        self.engine.log().digest_hex()
    }

    fn _steps(&self) -> u64 {
        self.engine.steps()
    }

    fn _decisions(&self) -> u64 {
        self.engine.decisions()
    }

    fn _deviations(&self) -> usize {
        self.engine.tape().len()
    }

    /// How many iterations the faithful scheduler stalled until a timer fell due.
    fn _stalls(&self) -> u64 {
        self.engine.stalls()
    }

    /// A seeded PCT universe: whether it starts tasks eagerly (None otherwise).
    fn _pct_eager(&self) -> Option<bool> {
        self.engine.pct_eager()
    }

    fn _misaligned(&self) -> bool {
        self.engine.misaligned()
    }

    fn _now_ns(&self) -> u64 {
        self.engine.now_ns()
    }

    fn _ready_count(&self) -> usize {
        self.engine.ready_len()
    }

    fn _timer_count(&self) -> usize {
        self.engine.timers_len()
    }

    fn _livelock_steps(&self) -> u64 {
        self.livelock_steps
    }

    fn _coverage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (label, count) in self.engine.coverage() {
            out.set_item(label, count)?;
        }
        Ok(out)
    }

    /// The ready handles, oldest first (what the stock loop's `_ready` holds).
    fn _ready_handles(&self, py: Python<'_>) -> Vec<Py<Handle>> {
        self.engine
            .pending()
            .take(self.engine.ready_len())
            .map(|entry| entry.payload.clone_ref(py))
            .collect()
    }

    /// Labels of the pending callbacks (ready first, then timers), for diagnostics.
    fn _pending_labels(&self) -> Vec<String> {
        self.engine
            .pending()
            .map(|entry| self.label_text(entry.label))
            .collect()
    }

    /// Remove every pending handle (closing the loop); returns them, ready first.
    fn _drain(&mut self) -> Vec<Py<Handle>> {
        self.engine
            .drain()
            .into_iter()
            .map(|entry| entry.payload)
            .collect()
    }

    /// Attribute assignment as `object`'s, except that replacing `time` on a loop
    /// (`mock.patch.object(loop, "time", ...)`, as test suites do to move time by hand)
    /// tells the Python side, so the timers scheduled while it is replaced follow the
    /// replacement as they would on the stock loop (`simloom._patched_clock`). Done
    /// here rather than in a Python `__setattr__`, which would cost every attribute
    /// set on the loop about 400 ns.
    fn __setattr__(
        slf: &Bound<'_, Self>,
        name: &Bound<'_, pyo3::types::PyString>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        // SAFETY: both pointers are live for the call; a null result sets an error.
        let status =
            unsafe { ffi::PyObject_GenericSetAttr(slf.as_ptr(), name.as_ptr(), value.as_ptr()) };
        if status < 0 {
            return Err(PyErr::fetch(py));
        }
        if is_time(name) {
            slf.call_method1(pyo3::intern!(py, "_time_replaced"), (value,))?;
        }
        Ok(())
    }

    fn __delattr__(slf: &Bound<'_, Self>, name: &Bound<'_, pyo3::types::PyString>) -> PyResult<()> {
        let py = slf.py();
        // SAFETY: a null value deletes the attribute, as `object.__delattr__`.
        let status = unsafe {
            ffi::PyObject_GenericSetAttr(slf.as_ptr(), name.as_ptr(), std::ptr::null_mut())
        };
        if status < 0 {
            return Err(PyErr::fetch(py));
        }
        if is_time(name) {
            slf.call_method0(pyo3::intern!(py, "_time_restored"))?;
        }
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for entry in self.engine.pending() {
            visit.call(&entry.payload)?;
        }
        // The describer's cache keeps callbacks (bound builtin methods among them)
        // alive; a cycle through one must be visible to the collector.
        for object in self.describer.held() {
            visit.call(object)?;
        }
        for (code, _) in &self.code_flags {
            visit.call(code)?;
        }
        for object in [
            &self.stop_marker,
            &self.fatal,
            &self.host_var,
            &self.tracer,
            &self.step_hook,
            &self.quiet_callback,
        ]
        .into_iter()
        .flatten()
        {
            visit.call(object)?;
        }
        for (p, q) in &self.monitor_predicates {
            visit.call(p)?;
            if let Some(q) = q {
                visit.call(q)?;
            }
        }
        if let Ok(slot) = self.draws_slot.lock() {
            if let Some(draws) = slot.as_ref() {
                visit.call(draws)?;
            }
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.code_flags.clear();
        let describer = std::mem::take(&mut self.describer);
        let drained = self.engine.drain();
        // A fresh engine drops the old choice source and, with it, the draws object.
        let fresh = fresh_engine(Source::seeded(0, &StrategyKind::Fifo), self.livelock_steps);
        let old_engine = fresh
            .ok()
            .map(|engine| std::mem::replace(&mut self.engine, engine));
        let predicates = std::mem::take(&mut self.monitor_predicates);
        self.monitors = Monitors::default();
        let released = (
            predicates,
            self.quiet_callback.take(),
            self.tracer.take(),
            self.step_hook.take(),
            self.host_var.take(),
            self.stop_marker.take(),
            self.fatal.take(),
            self.draws_slot
                .lock()
                .map(|mut slot| slot.take())
                .ok()
                .flatten(),
            self.draw_error
                .lock()
                .map(|mut slot| slot.take())
                .ok()
                .flatten(),
        );
        drop((drained, old_engine, released, describer));
    }
}
