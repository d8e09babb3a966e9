"""``SimLoop``: a whole asyncio event loop (an ``asyncio.BaseEventLoop``) over the Rust engine.

``call_soon``, ``call_later``, ``call_at``, ``time`` and ``stop`` are the Rust methods
of :class:`simloom._core.LoopCore` (this class's base), so a task step costs one FFI
call to schedule and the step loop itself runs in Rust. This module keeps what must
be Python: running state, tasks and futures, async-generator bookkeeping, error
reporting, and the APIs that would escape the simulation.

Owns: asyncio semantics of the loop. Must not: decide scheduling order (the engine
does) or touch real file descriptors, sockets, threads, signals or processes.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import math
import os
import re
import socket
import sys
import threading
import weakref
from asyncio import constants, coroutines, events, futures, tasks
from asyncio import log as asyncio_log
from collections.abc import Callable, Coroutine, Generator
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, TypeVarTuple, Unpack

from . import (
    _boundary,
    _budgets,
    _cancellations,
    _causal,
    _core,
    _lockstep,
    _monitors,
    _patched_clock,
    _patches,
    _sim_socket,
    _watchdog,
)
from . import net as _net
from ._config import DEFAULT_LIVELOCK_STEPS, UniverseConfig, config_from
from ._scheduler import SchedulerSpec, parse_scheduler
from ._validation import check_flag, check_int
from .errors import (
    SimDeadlockError,
    SimLivelockError,
    SimloomUsageError,
    SimStepBudgetError,
    SimTimeBudgetError,
    SimWatchdogError,
    UnhandledExceptionError,
)
from .errors import raise_escaped as _escape
from .tape import Tape
from .world import World

if TYPE_CHECKING:
    from asyncio.futures import Future

__all__ = ["DEFAULT_LIVELOCK_STEPS", "GC_INTERVAL_STEPS", "SimLoop"]

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


#: The young generations are collected every this many steps (GC is otherwise off
#: during a run), so finalizers run at the same step in every replay.
GC_INTERVAL_STEPS = 10_000

#: The name asyncio gives a task created without one (from a process-wide counter).
_DEFAULT_TASK_NAME = re.compile(r"Task-\d+")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class _StopMarker:
    """Done callback of the future ``run_until_complete`` waits for. The engine
    recognises it and stops without queueing it, so it never takes a decision."""

    __slots__ = ()

    def __call__(self, future: object) -> None:  # pragma: no cover - never queued
        pass


def _duration(seconds: float) -> str:
    """Virtual seconds in words, for budget reports."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            amount = round(seconds / size, 3)
            return f"{amount:g} {unit}" + ("" if amount == 1 else "s")
    raise AssertionError("unreachable")


def _describe_awaitable(obj: object) -> str:
    if isinstance(obj, asyncio.Task):
        return f"task {obj.get_name()!r}"
    children = getattr(obj, "_children", None)
    if isinstance(obj, asyncio.Future) and isinstance(children, list) and children:
        names = [c.get_name() if isinstance(c, asyncio.Task) else "a Future" for c in children]
        listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        return f"the gather of {listed}"
    if isinstance(obj, asyncio.Future):
        return "a Future" + (" (done)" if obj.done() else "")
    return type(obj).__qualname__


def _suspension_point(task: asyncio.Task[Any]) -> str:
    """Where a task's coroutine chain is suspended, innermost frame last."""
    places = [
        f"{frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno})"
        for _, frame in _causal.await_chain(task.get_coro())
        if not frame.f_code.co_filename.startswith(_PACKAGE_DIR)
    ]
    return " → ".join(places) if places else "(not started)"


# call_soon/call_later/call_at come from LoopCore and return simloom's own Rust
# ``Handle`` (same methods as asyncio's), hence the ignore on the class line.
class SimLoop(_core.LoopCore, asyncio.BaseEventLoop):  # type: ignore[misc]
    """A deterministic asyncio event loop with a virtual clock.

    Every choice between alternatives (which ready callback runs next, which of two
    timers due at the same instant fires first, ``simloom.sometimes``) comes from one
    choice source: a seeded strategy (``seed`` + ``scheduler``), a recorded ``tape``,
    or an external source (Hypothesis). ``SimLoop()`` with no arguments runs the FIFO
    schedule, i.e. the order the stock loop would use.

    Works with ``asyncio.run(main(), loop_factory=simloom.SimLoop)`` and
    ``asyncio.Runner(loop_factory=simloom.SimLoop)``. Time is virtual: the clock jumps
    to the next timer when nothing is ready, so ``asyncio.sleep(3600)`` returns at
    once in wall time. Each run enters the determinism boundary (the stdlib clocks
    virtual, ``random`` and ``uuid`` seeded from the tape, real-world calls
    :class:`~simloom.EscapedSimulationError`) unless ``boundary=False``; see
    :func:`simloom.boundary`.

    A run never hangs: ``max_steps`` steps or ``max_virtual_time`` virtual seconds
    without finishing raise :class:`SimStepBudgetError` / :class:`SimTimeBudgetError`,
    and a step that runs ``watchdog`` wall-clock seconds without yielding raises
    :class:`SimWatchdogError` (``None`` turns each off; docs/testing.md, "Budgets").
    ``config=`` gives all of these options at once, as a
    :class:`~simloom.UniverseConfig` (then leave them at their defaults).
    """

    #: Marks simloom's loop for helpers that must not import this module.
    _simloom_loop = True
    #: The ``simloom.History`` objects the running universe recorded (set per universe).
    _simloom_histories: list[Any] | None = None
    #: Read by asyncio's default exception handler (the stock loop's handle in
    #: progress, for its creation traceback in debug mode); SimLoop has none.
    _current_handle = None

    def __init__(
        self,
        *,
        seed: int = 0,
        scheduler: str | SchedulerSpec = "fifo",
        tape: Tape | None = None,
        strict: bool = False,
        livelock_steps: int = DEFAULT_LIVELOCK_STEPS,
        draws: object | None = None,
        world: bool = True,
        files: bool = True,
        boundary: bool = True,
        wall_clock_epoch: datetime | float = _boundary.DEFAULT_WALL_CLOCK_EPOCH,
        max_steps: int | None = _budgets.DEFAULT_MAX_STEPS,
        max_virtual_time: float | None = _budgets.DEFAULT_MAX_VIRTUAL_TIME,
        watchdog: float | None = _budgets.DEFAULT_WATCHDOG,
        cancellations: bool = False,
        config: UniverseConfig | None = None,
    ) -> None:
        spec = parse_scheduler(scheduler)
        universe = config_from(
            config,
            {
                "livelock_steps": livelock_steps,
                "boundary": boundary,
                "wall_clock_epoch": wall_clock_epoch,
                "world": world,
                "files": files,
                "max_steps": max_steps,
                "max_virtual_time": max_virtual_time,
                "watchdog": watchdog,
                "cancellations": cancellations,
            },
        )
        boundary_settings = universe.boundary_settings
        budgets = universe.budgets
        livelock_steps = universe.livelock_steps
        world = universe.world
        check_int("seed", seed, minimum=0)
        check_flag("strict", strict)
        if tape is not None and not isinstance(tape, _core.Tape):
            raise SimloomUsageError(f"tape must be a simloom.Tape, got {type(tape).__name__}")
        self._configure(
            seed=seed,
            strategy=spec.strategy,
            depth=spec.depth,
            horizon=spec.horizon,
            tape=tape,
            strict=strict,
            draws=draws,
            livelock_steps=livelock_steps,
            max_steps=budgets.max_steps,
            max_time_ns=budgets.max_time_ns,
            max_stall_ns=spec.max_stall_ns,
            eager=spec.eager,
        )
        #: The budgets of each run (see :mod:`simloom._budgets`).
        self.budgets = budgets
        #: Left here by the watchdog thread just before it interrupts a step.
        self._watchdog_report: str | None = None
        if budgets.watchdog is not None:
            _watchdog.watch(self, budgets.watchdog)
        self.scheduler = spec
        self.seed = seed
        self._stop_marker = _StopMarker()
        self._set_stop_marker(self._stop_marker)
        self._owner_thread = threading.get_ident()
        self._thread_id: int | None = None
        self._running = False
        self._task_factory: Any = None
        self._task_factory_takes_name = False
        self._exception_handler: Any = None
        self._failure: BaseException | None = None
        self._task_count = 0
        self._creating_task: int | None = None
        self._task_order: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = (
            weakref.WeakKeyDictionary()
        )
        # Insertion-ordered (unlike the stock loop's WeakSet), so async generators are
        # finalised in first-use order.
        self._asyncgens: weakref.WeakKeyDictionary[Any, None] = weakref.WeakKeyDictionary()
        self._asyncgens_shutdown_called = False
        self._executor_shutdown_called = False
        self._default_executor: Any = None
        #: The executor jobs' lockstep worker threads.
        self._lockstep = _lockstep.Lockstep(self)
        self.slow_callback_duration = 0.1
        #: The simulated world, made on first use (``world=False``: none, and the
        #: network is an escape).
        self._world_enabled = bool(world)
        #: File I/O on the hosts' simulated disks (UniverseConfig.files; needs the
        #: world and the boundary, see simloom._hostfs).
        self._files_enabled = bool(world) and universe.files
        #: What an unhandled exception does (UniverseConfig.unhandled): "fail" the
        #: run, or "log" it as the stock loop does.
        self._log_unhandled_exceptions = universe.unhandled == "log"
        #: Set while the universe is torn down (see call_exception_handler).
        self._tearing_down = False
        self._world: World | None = None
        self._coroutine_origin_tracking_saved_depth: int | None = None
        # As the stock loop: debug mode follows PYTHONASYNCIODEBUG and -X dev.
        self.set_debug(coroutines._is_debug_mode())  # type: ignore[attr-defined]
        #: The determinism boundary each run enters when the loop is used on its own
        #: (``None``: ``boundary=False``); inside ``simloom.run`` and friends the
        #: universe enters it instead (``_in_universe``).
        self._boundary_settings = boundary_settings
        self._in_universe = False
        self._own_universe: _boundary._Universe | None = None
        #: Injected cancellations (UniverseConfig.cancellations): the step hook that
        #: may cancel a task as it resumes, or None.
        self._cancel_injector: _cancellations.Injector | None = None
        if universe.cancellations:
            self._cancel_injector = _cancellations.Injector(self)
            self._set_step_hook(self._cancel_injector)
        #: Set last: a loop whose constructor raised was never usable (see __del__).
        self._constructed = True

    # ------------------------------------------------------------------ running

    def _check_closed(self) -> None:
        if self._is_closed():
            raise RuntimeError("Event loop is closed")

    def _check_running(self) -> None:
        if self._running:
            raise RuntimeError("This event loop is already running")
        if events._get_running_loop() is not None:
            raise RuntimeError("Cannot run the event loop while another loop is running")

    def run_forever(self) -> None:
        """Run steps until :meth:`stop` (or the main future of
        :meth:`run_until_complete`) ends the run.

        Raises :class:`SimDeadlockError` when nothing can run and no timer is pending,
        :class:`SimLivelockError` when too many steps pass without the virtual
        clock moving, :class:`SimStepBudgetError` / :class:`SimTimeBudgetError` when
        the run's step or virtual-time budget is spent, and :class:`SimWatchdogError`
        when one step runs past the wall-clock watchdog: a simulated loop never hangs.
        """
        self._check_closed()
        self._check_running()
        if _causal.run_observer is not None:
            _causal.run_observer(self)
        # Each run gets the full livelock budget: after a livelock, asyncio.Runner and
        # teardown must still be able to cancel the spinner. Each run gets the full
        # step and time budgets too, unless they were spent: then what is left of
        # the universe (its teardown) shares one small allowance.
        self._begin_run()
        _watchdog.ensure_running()
        running = self._running_state()
        try:
            running.run(self._run_until_stopped, running)
        except _watchdog.WatchdogInterrupt:
            # The watchdog stopped a step that never yielded (raised in this thread).
            raise self._watchdog_error() from None

    def _run_until_stopped(self, running: _core.Restoration) -> None:
        """The steps of one run, while ``running`` (its guard) is installed."""
        if self._stop_requested():
            # asyncio semantics: stop() before run_forever() runs what is ready once.
            self._clear_stop()
            self._run_steps(self._ready_count())
            return
        while True:
            budget = GC_INTERVAL_STEPS - self._steps() % GC_INTERVAL_STEPS
            status = self._run_steps(budget)
            if status == "budget":
                # Young generations only: cheap, and what a run allocates lives
                # there; simloom.run collects fully (over a frozen heap) at the end.
                gc.collect(1)
                running.raise_caught_interrupt()
            elif status == "stopped":
                self._lockstep.settle()
                return
            elif status == "idle":
                # A poll point: a lockstep thread may wait on something the loop
                # thread freed without a notify (a plain lock's release).
                self._lockstep.poll()
                if self._ready_count() == 0:
                    raise SimDeadlockError(self._deadlock_report())
            elif status == "livelock":
                raise SimLivelockError(self._livelock_report())
            elif status == "step_budget":
                raise SimStepBudgetError(
                    self._budget_report("steps"),
                    budget="max_steps",
                    limit=self.budgets.max_steps,
                )
            else:
                raise SimTimeBudgetError(
                    self._budget_report("time"),
                    budget="max_virtual_time",
                    limit=self.budgets.max_virtual_time,
                )

    def _running_state(self) -> _core.Restoration:
        """Everything one run changes in the process, as one guard
        (``_core.Restoration``, installed and undone at C level, so an interrupt at
        any line leaves all of it or none of it): the loop's running state, this
        thread's running loop and async-generator hooks, the patched asyncio
        helpers, the collector off (collections happen at fixed steps), a
        ``KeyboardInterrupt`` met by a finalizer raised rather than printed, and,
        for a loop used on its own (``asyncio.run(main(),
        loop_factory=SimLoop)``), the determinism boundary."""
        running = _core.Restoration()
        running.set_attr(self, "_running", True)
        running.set_attr(self, "_thread_id", threading.get_ident())
        # Threads the universe starts run in lockstep with this loop (``_lockstep``).
        running.set_attr(threading.Thread, "start", _lockstep.thread_start)
        if sys.version_info < (3, 13):
            running.set_attr(threading.Thread, "join", _boundary.thread_join)
        running.asyncgen_hooks(self._asyncgen_firstiter_hook, self._asyncgen_finalizer_hook)
        running.running_loop(self)
        _patches.plan(running)
        if self._cancel_injector is not None:
            running.shared_attr(
                asyncio.timeouts.Timeout, "reschedule", _cancellations.timeout_reschedule
            )
        running.gc_disabled()
        running.call(self._start_origin_tracking, self._stop_origin_tracking)
        running.catch_interrupts()
        if self._boundary_settings is not None and not self._in_universe:
            if self._own_universe is None:
                self._own_universe = _boundary._Universe(self, self._boundary_settings)
            self._own_universe.plan(running)
        return running

    def run_until_complete(self, future: Any) -> Any:
        """Run until ``future`` (a coroutine, task or future) is done; return its
        result or raise its exception. A failure recorded by the exception handler
        (an exception in a callback, an unretrieved task exception) is raised instead."""
        self._check_closed()
        self._check_running()
        new_task = not futures.isfuture(future)
        future = tasks.ensure_future(future, loop=self)
        if new_task:
            future._log_destroy_pending = False
        future.add_done_callback(self._stop_marker)
        try:
            self.run_forever()
        except (KeyboardInterrupt, SystemExit):
            # As on the stock loop, and never replaced by the choice source's error.
            if new_task and future.done() and not future.cancelled():
                future.exception()
            raise
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                future.exception()  # the error propagates; don't also log it as lost
            fatal = self._fatal_error()
            if fatal is not None:
                raise fatal from None
            raise
        finally:
            future.remove_done_callback(self._stop_marker)
        fatal = self._fatal_error()
        if fatal is not None:
            # The choice source failed (strict replay misaligned, Hypothesis stopped
            # the test): that ends the universe whatever the program did with it.
            raise fatal
        failure = self._take_failure()
        if failure is not None:
            if new_task and future.done() and not future.cancelled():
                future.exception()
            raise failure
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    def set_debug(self, enabled: object) -> None:
        """Debug mode; while the loop runs it also records where coroutines were
        created (``sys.set_coroutine_origin_tracking_depth``), as the stock loop."""
        super().set_debug(enabled)
        if self._running and threading.get_ident() == self._thread_id:
            self._set_coroutine_origin_tracking(bool(enabled))

    def _start_origin_tracking(self) -> None:
        # As the stock loop: coroutine origins are tracked while a debug loop runs.
        self._set_coroutine_origin_tracking(self.get_debug())

    def _stop_origin_tracking(self) -> None:
        self._set_coroutine_origin_tracking(False)

    def _set_coroutine_origin_tracking(self, enabled: bool) -> None:
        saved = self._coroutine_origin_tracking_saved_depth
        if enabled == (saved is not None):
            return
        if enabled:
            self._coroutine_origin_tracking_saved_depth = sys.get_coroutine_origin_tracking_depth()
            sys.set_coroutine_origin_tracking_depth(constants.DEBUG_STACK_DEPTH)
        else:
            sys.set_coroutine_origin_tracking_depth(saved or 0)
            self._coroutine_origin_tracking_saved_depth = None

    def _blocking_sleep(self, seconds: float) -> None:
        """``time.sleep(seconds)`` on the loop's thread in this universe: the loop is
        blocked, so the virtual clock moves on by ``seconds`` (the boundary calls
        this; see :func:`simloom._boundary._sleep`)."""
        if math.isinf(seconds):
            _escape("time.sleep", "an infinite sleep blocks the loop's thread forever")
        self._advance_clock(seconds)

    # ------------------------------------------------------- a replaced clock

    def _time_replaced(self, clock: object) -> None:
        """``loop.time`` was replaced (``LoopCore.__setattr__`` calls this): timers
        scheduled from now on follow the replacement (see :mod:`simloom._patched_clock`).
        Putting the loop's own ``time`` back counts as restoring it."""
        patched: _patched_clock.PatchedClock | None = self.__dict__.get("_patched_clock")
        if not callable(clock) or clock == _core.LoopCore.time.__get__(self):
            if patched is not None:
                self._time_restored()
            return
        if patched is not None:
            patched.replace(clock)
            return
        patched = _patched_clock.PatchedClock(self, clock)
        self._patched_clock = patched
        # Instance attributes shadow the engine's methods while the clock is replaced.
        self.call_at = patched.call_at  # type: ignore[method-assign,assignment]
        self.call_later = patched.call_later  # type: ignore[method-assign,assignment]

    def _time_restored(self) -> None:
        """``loop.time`` is the loop's own again."""
        patched: _patched_clock.PatchedClock | None = self.__dict__.pop("_patched_clock", None)
        if patched is None:
            return
        self.__dict__.pop("call_at", None)
        self.__dict__.pop("call_later", None)
        patched.restore()

    def _run_once(self) -> None:
        """One iteration of the stock loop: run the callbacks ready now (what CPython's
        own tests call to step a loop by hand)."""
        self.stop()
        self.run_forever()

    @property
    def _ready(self) -> list[_core.Handle]:
        """The ready handles, oldest first (the stock loop's ``_ready`` queue, which
        code and CPython's tests inspect)."""
        return self._ready_handles()

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return bool(self._is_closed())

    def close(self) -> None:
        """Close the loop, dropping every pending callback. Deterministic: nothing is
        left for the garbage collector to finalise at an arbitrary moment."""
        if self._running:
            raise RuntimeError("Cannot close a running event loop")
        if self._is_closed():
            # Idempotent: finishes a close that an interrupt cut short.
            self._lockstep.close()
            return
        # Closed last: a close cut short by an interrupt can run again.
        pending = self._drain()
        for handle in pending:
            handle.cancel()
        self._asyncgens.clear()
        self._set_closed(True)
        # Parked executor jobs get CancelledError raised inside them and are joined,
        # once the loop is closed (a job woken now schedules nothing).
        self._lockstep.close()

    async def shutdown_asyncgens(self) -> None:
        """Close every async generator still open, in first-use order."""
        self._asyncgens_shutdown_called = True
        if not len(self._asyncgens):
            return
        closing = list(self._asyncgens)
        self._asyncgens.clear()
        results = await tasks.gather(*[agen.aclose() for agen in closing], return_exceptions=True)
        for result, agen in zip(results, closing, strict=True):
            if isinstance(result, Exception):
                self.call_exception_handler(
                    {
                        "message": f"an error occurred during closing of asynchronous generator {agen!r}",
                        "exception": result,
                        "asyncgen": agen,
                    }
                )

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        """Nothing to shut down: executor jobs are lockstep threads of this loop,
        joined when they finish (and cancelled at ``close()``)."""
        self._executor_shutdown_called = True

    def _asyncgen_firstiter_hook(self, agen: Any) -> None:
        if self._asyncgens_shutdown_called:
            import warnings

            warnings.warn(
                f"asynchronous generator {agen!r} was scheduled after "
                "loop.shutdown_asyncgens() call",
                ResourceWarning,
                source=self,
                stacklevel=2,
            )
        self._asyncgens[agen] = None

    def _asyncgen_finalizer_hook(self, agen: Any) -> None:
        self._asyncgens.pop(agen, None)
        if not self._is_closed():
            self.call_soon(self.create_task, agen.aclose())

    # ------------------------------------------------------------ tasks, futures

    def _new_task(self, coro: Any, number: int, **kwargs: Any) -> asyncio.Task[Any]:
        return _SimTask(coro, loop=self, simloom_number=number, **kwargs)

    def create_task(
        self,
        coro: Coroutine[Any, Any, _T] | Generator[Any, None, _T],
        *,
        name: object = None,
        context: contextvars.Context | None = None,
        **kwargs: Any,
    ) -> asyncio.Task[_T]:
        """Create a task. Unnamed tasks get loop-owned names ``Task-1``, ``Task-2``...
        in creation order, so names (and the event log) are the same in every run."""
        self._check_closed()
        self._task_count += 1
        number = self._task_count
        # Any object names a task, by its str() (as Task.set_name does).
        name = f"Task-{number}" if name is None else str(name)
        # A task schedules its first step while it is constructed: that number is its
        # (a custom factory's task does not carry it).
        outer, self._creating_task = self._creating_task, number
        try:
            task: asyncio.Task[_T] = self._construct_task(coro, number, name, context, kwargs)
        finally:
            self._creating_task = outer
        self._task_order[task] = number
        if self._cancel_injector is not None and tasks.current_task(self) is None:
            self._cancel_injector.roots.add(task)
        return task

    def _construct_task(
        self,
        coro: Any,
        number: int,
        name: str,
        context: contextvars.Context | None,
        kwargs: dict[str, Any],
    ) -> asyncio.Task[Any]:
        task: asyncio.Task[Any]
        if self._task_factory is None:
            task = self._new_task(coro, number, name=name, context=context, **kwargs)
        elif self._task_factory is tasks.eager_task_factory:
            task = self._new_task(
                coro, number, name=name, context=context, eager_start=True, **kwargs
            )
        else:
            factory_kwargs: dict[str, Any] = dict(kwargs)
            if context is not None:
                factory_kwargs["context"] = context
            if self._task_factory_takes_name:
                factory_kwargs["name"] = name
            task = self._task_factory(self, coro, **factory_kwargs)
            # A factory may return a task-like object that is no asyncio.Task.
            get_name = getattr(task, "get_name", None)
            if get_name is not None and get_name() != name:
                task.set_name(name)
        return task

    def _adopt_task(self, task: asyncio.Task[Any]) -> str:
        """Name a task the first time the engine sees it. Tasks made by
        ``create_task`` already have their number; one created directly
        (``asyncio.Task(coro)``, as aiohttp does for eager request handlers) gets the
        next one, and a default name from asyncio's process-wide counter is replaced
        by the loop-owned ``Task-<n>``, so the event log is the same in every run."""
        if task not in self._task_order:
            number = getattr(task, "_simloom_number", None) or self._creating_task
            if number is None:
                self._task_count += 1
                number = self._task_count
                if _DEFAULT_TASK_NAME.fullmatch(task.get_name()):
                    task.set_name(f"Task-{number}")
            self._task_order[task] = number
        return task.get_name()

    def set_task_factory(self, factory: Any) -> None:
        if factory is not None and not callable(factory):
            raise TypeError("task factory must be a callable or None")
        self._task_factory = factory
        self._task_factory_takes_name = False
        if factory is not None:
            try:
                parameters = list(inspect.signature(factory).parameters.values())
            except (TypeError, ValueError):
                parameters = []
            self._task_factory_takes_name = any(
                p.name == "name" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
            )

    def get_task_factory(self) -> Any:
        return self._task_factory

    def _tasks_in_creation_order(self) -> list[asyncio.Task[Any]]:
        live = [t for t in tasks.all_tasks(self)]
        order = self._task_order
        return sorted(live, key=lambda t: (order.get(t, 1 << 62), t.get_name()))

    # ---------------------------------------------------------------- callbacks

    def call_soon_threadsafe(  # type: ignore[override]  # returns simloom's Handle
        self,
        callback: Callable[[Unpack[_Ts]], object],
        *args: *_Ts,
        context: contextvars.Context | None = None,
    ) -> _core.Handle:
        """Like ``call_soon``. From an executor job's lockstep thread (which holds the
        baton, so the loop is paused) the loop thread schedules it at once, within
        the job's step: deterministic. From any other thread it is an escape (a real
        thread racing the simulation cannot be replayed)."""
        if threading.get_ident() != (self._thread_id or self._owner_thread):
            worker = _lockstep.current_worker()
            if worker is not None and worker.loop is self:
                # The handle runs in a copy of the calling thread's context, as on
                # the stock loop (copied here, in that thread).
                ctx = contextvars.copy_context() if context is None else context
                handle: _core.Handle = worker.on_loop(
                    lambda: self.call_soon(callback, *args, context=ctx)
                )
                return handle
            _escape(
                "loop.call_soon_threadsafe() from another thread",
                "a real thread is handing work to the simulated loop",
            )
        return self.call_soon(callback, *args, context=context)

    def run_in_executor(
        self, executor: Any, func: Callable[[Unpack[_Ts]], _T], *args: *_Ts
    ) -> Future[_T]:
        """Run ``func(*args)`` on a real thread in lockstep with the loop (whatever
        ``executor`` is): the job starts as its own step, and while it runs the loop
        waits, so it may block on the loop (``run_coroutine_threadsafe(...).result()``,
        ``concurrent.futures.wait``) and stays deterministic. See ``_lockstep``."""
        self._check_closed()
        if inspect.iscoroutinefunction(func) or inspect.iscoroutine(func):
            raise TypeError("coroutines cannot be used with run_in_executor()")
        future: Future[_T] = self.create_future()
        self.call_soon(_ExecutorJob(self._lockstep.job(future, func, args)))
        return future

    def set_default_executor(self, executor: Any) -> None:
        self._default_executor = executor

    # ----------------------------------------------------------------- errors

    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
        if handler is not None and not callable(handler):
            raise TypeError(f"A callable object or None is expected, got {handler!r}")
        self._exception_handler = handler

    # ``call_exception_handler`` is the stock loop's (asyncio asks subclasses not to
    # override it): a custom handler is called in the context of the task, future
    # or handle that failed (CPython gh-96704), and without one the default handler
    # below decides.

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        """What happens to an exception nobody handled (no custom handler, or a
        custom handler that delegated here). While a simulation runs it does not
        vanish into a log: it fails the universe (raised from
        ``run_until_complete``). Between two runs of a loop, outside a universe's
        teardown, there is no run to fail: it is logged through ``asyncio``'s logger
        exactly as the stock loop logs it. With ``UniverseConfig(unhandled="log")``
        it is always logged so (``pytest --simloom``: what an existing suite expects).

        During teardown a ``CancelledError`` escaping a callback is the echo of the
        teardown's own cancellation (early CPython 3.12 stream servers raise it from
        their handler tasks' done callbacks), not a failure of the program."""
        if self._tearing_down and isinstance(context.get("exception"), asyncio.CancelledError):
            return
        if not self._running and not self._tearing_down and not self._is_closed():
            self._log_context(context)
            return
        if self._log_unhandled_exceptions:
            # UniverseConfig(unhandled="log"): the stock loop's behaviour.
            self._log_unhandled(context)
            return
        if isinstance(context.get("exception"), SystemExit | KeyboardInterrupt):
            # A task that raised SystemExit/KeyboardInterrupt re-raised it out of the
            # loop (Task.__step does), so it already reached the caller; its "never
            # retrieved" report when the task is collected is an echo, which the
            # stock loop only logs. Failing the run here would replace the
            # SystemExit propagating through asyncio.Runner's shutdown.
            self._log_context(context)
            return
        self._record_failure(context)

    def _log_context(self, context: dict[str, Any]) -> None:
        """Log ``context`` as the stock loop's default handler does."""
        asyncio.BaseEventLoop.default_exception_handler(self, context)

    def _log_unhandled(self, context: dict[str, Any]) -> None:
        """The stock loop's logging, guarded as the stock loop guards it."""
        try:
            self._log_context(context)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            asyncio_log.logger.error("Exception in default exception handler", exc_info=True)

    def _record_failure(self, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "Unhandled exception in event loop")
        exception = context.get("exception")
        if exception is not None:
            message = f"{message}: {type(exception).__name__}: {exception}"
        task = context.get("task") or context.get("future")
        if isinstance(task, asyncio.Task):
            message = f"{message} (task {task.get_name()!r})"
        if self._is_closed() and not self._running:
            # Too late to fail a run: say it loudly rather than drop it.
            self._log_unhandled(context)
            return
        if self._failure is None:
            failure = UnhandledExceptionError(message, context)
            if isinstance(exception, BaseException):
                failure.__cause__ = exception
            self._failure = failure
        self._stop_now()

    def _fail_universe(self, error: BaseException) -> None:
        """simloom itself found the universe broken (an executor job blocked on the
        real world): ``error`` is what ``run_until_complete`` raises, as it is."""
        if self._failure is None:
            self._failure = error
        self._stop_now()

    def _monitor_failed(
        self,
        index: int,
        time_ns: int,
        since_ns: int | None,
        reason: str,
        step: int,
        label: str,
        exception: BaseException | None,
    ) -> None:
        """The engine found a monitor violated (see ``_monitors``)."""
        _monitors.failed(self, index, time_ns, since_ns, reason, step, label, exception)

    def _take_failure(self) -> BaseException | None:
        failure, self._failure = self._failure, None
        return failure

    # ------------------------------------------------------------- diagnostics

    def _deadlock_report(self) -> str:
        lines = [
            "deadlock: no callback is ready and no timer is pending, "
            f"at virtual time {self.time():.6f}s after {self._steps()} steps."
        ]
        waiting = [t for t in self._tasks_in_creation_order() if not t.done()]
        if waiting:
            lines.append("Waiting tasks:")
            for task in waiting:
                awaited = getattr(task, "_fut_waiter", None)
                what = _describe_awaitable(awaited) if awaited is not None else "nothing"
                what = _patches.describe_wait(task) or what
                lines.append(f"  {task.get_name()}: waits for {what} at {_suspension_point(task)}")
        threads = self._lockstep.parked_report()
        if threads:
            lines.append("Waiting threads (lockstep):")
            lines.extend(threads)
        elif not waiting:
            lines.append("No task is waiting: the loop was asked to run with nothing to do.")
        return "\n".join(lines)

    def _watchdog_error(self) -> SimWatchdogError:
        """The watchdog stopped a step: its report, and the interrupt it left in the
        tasks it went through marked as seen (it is reported once, here)."""
        report, self._watchdog_report = self._watchdog_report, None
        for task in list(self._task_order):
            if task.done() and isinstance(
                getattr(task, "_exception", None), _watchdog.WatchdogInterrupt
            ):
                task.exception()
        return SimWatchdogError(
            report or "watchdog: a step ran longer than the wall-clock watchdog allows",
            budget="watchdog",
            limit=self.budgets.watchdog,
        )

    def _activity_by_owner(
        self, tasks_by_name: dict[str, asyncio.Task[Any]]
    ) -> dict[str, tuple[int, int, int]]:
        """Steps, last step and last virtual time per owner. A task named after it
        was created (``create_task(name=...)``) ran its first step as ``Task-<n>``:
        that counts for it too."""
        raw = {label: (count, step, ns) for label, count, step, ns in self._activity()}
        merged: dict[str, tuple[int, int, int]] = {}
        absorbed: set[str] = set()
        for name, task in tasks_by_name.items():
            labels = [name]
            number = self._task_order.get(task)
            if number is not None and f"Task-{number}" != name:
                labels.append(f"Task-{number}")
            parts = [raw[label] for label in labels if label in raw]
            absorbed.update(labels)
            if parts:
                merged[name] = (
                    sum(p[0] for p in parts),
                    max(p[1] for p in parts),
                    max(p[2] for p in parts),
                )
        for label, values in raw.items():
            if label not in absorbed:
                merged[label] = values
        return merged

    def _budget_report(self, kind: str) -> str:
        """Which budget ran out, its value, how to raise it, and what was still
        scheduled: timers (with the task and line they sleep at), the tasks that ran
        most, and the tasks that made no progress in the second half of the run."""
        phase, max_steps, max_time_ns, start_steps, start_ns = self._budget_state()
        in_teardown = phase == "spent"
        steps = self._steps() - start_steps
        now_ns = self._now_ns()
        elapsed = (now_ns - start_ns) / 1e9
        pending = self._pending_entries()
        timers = sorted((due, label, owner) for label, owner, due in pending if due is not None)
        if in_teardown:
            lines = [
                f"{'step' if kind == 'steps' else 'virtual-time'} budget exhausted while the "
                "universe was torn down: after a budget runs out, teardown may take "
                "100,000 more steps and one more virtual hour to cancel what is left, and "
                "the program did not let go (a task that ignores cancellation?)."
            ]
        elif kind == "steps":
            lines = [
                f"step budget exhausted: {steps:,} steps ran and the universe had not "
                f"finished (max_steps={max_steps:,}), at virtual time {now_ns / 1e9:.6f}s "
                f"({elapsed:.6f} virtual seconds in this run)."
            ]
        else:
            due = f"; the next timer is due at {timers[0][0] / 1e9:.6f}s" if timers else ""
            assert max_time_ns is not None
            lines = [
                f"virtual-time budget exhausted: the universe ran {elapsed:,.6f} virtual "
                f"seconds ({_duration(elapsed)}) and had not finished "
                f"(max_virtual_time={max_time_ns / 1e9:g}){due}, after {steps:,} steps."
            ]
        tasks_by_name = {
            task.get_name(): task for task in self._tasks_in_creation_order() if not task.done()
        }
        activity = self._activity_by_owner(tasks_by_name)

        def where(owner: str) -> str:
            task = tasks_by_name.get(owner)
            if task is None:
                return repr(owner)
            return f"task {owner!r} at {_suspension_point(task)}"

        if timers:
            lines.append("Timers still pending (what keeps the universe going):")
            shown: dict[tuple[str, str], tuple[int, int]] = {}
            for due_ns, timer, setter in timers:
                first, count = shown.get((setter, timer), (due_ns, 0))
                shown[(setter, timer)] = (first, count + 1)
            for (setter, timer), (first, count) in list(shown.items())[:10]:
                more = f" (and {count - 1} more)" if count > 1 else ""
                lines.append(f"  {timer} due at {first / 1e9:.6f}s{more}, set by {where(setter)}")
            if len(shown) > 10:
                lines.append(f"  ... and {len(shown) - 10} more")
        ready = [(label, owner) for label, owner, due in pending if due is None]
        if ready:
            lines.append(
                "Ready to run: "
                + ", ".join(dict.fromkeys(f"{label} (for {owner})" for label, owner in ready))
            )
        total = max(1, self._steps())
        ranked = sorted(activity.items(), key=lambda item: (-item[1][0], item[0]))
        # The owners that took a real share of the steps (the spinners, the timers).
        busiest = [item for item in ranked[:5] if item[1][0] * 20 >= total] or ranked[:1]
        if busiest:
            lines.append("Ran most in this universe:")
            for owner, (count, _, last_ns) in busiest:
                lines.append(
                    f"  {where(owner)}: {count:,} steps ({100 * count / total:.0f}%), "
                    f"last at virtual time {last_ns / 1e9:.6f}s"
                )
        if kind == "steps":
            halfway_step = start_steps + steps // 2
            stalled = [
                (name, task)
                for name, task in tasks_by_name.items()
                if activity.get(name, (0, 0, 0))[1] <= halfway_step
            ]
            since = f"in the last {steps - steps // 2:,} steps"
        else:
            halfway_ns = start_ns + (now_ns - start_ns) // 2
            stalled = [
                (name, task)
                for name, task in tasks_by_name.items()
                if activity.get(name, (0, 0, 0))[2] <= halfway_ns
            ]
            since = f"in the last {_duration((now_ns - halfway_ns) / 1e9)} of virtual time"
        if stalled:
            lines.append(
                f"No progress {since} (these tasks did not run; a deadlock hidden "
                "behind the timers above?):"
            )
            for name, task in stalled:
                awaited = getattr(task, "_fut_waiter", None)
                what = _describe_awaitable(awaited) if awaited is not None else "nothing"
                count, _, last_ns = activity.get(name, (0, 0, 0))
                last = f"last ran at virtual time {last_ns / 1e9:.6f}s" if count else "never ran"
                lines.append(f"  {name}: waits for {what} at {_suspension_point(task)} ({last})")
        elif tasks_by_name:
            lines.append(f"Every unfinished task ran {since}: the program is busy, not stuck.")
        if kind == "steps":
            lines.append(
                "If this is real work, raise the budget: max_steps=N (SimLoop, simloom.run, "
                "simloom.replay, @simloom.test, simloom.universes) or --simloom-max-steps=N; "
                "None turns it off."
            )
        else:
            lines.append(
                "If the program really runs this long, raise the budget: "
                "max_virtual_time=<seconds> (SimLoop, simloom.run, simloom.replay, "
                "@simloom.test, simloom.universes) or --simloom-max-virtual-time=<seconds>; "
                "None turns it off."
            )
        return "\n".join(lines)

    def _livelock_report(self) -> str:
        ready = self._pending_labels()[: self._ready_count()]
        shown = ", ".join(dict.fromkeys(ready)) or "nothing"
        return (
            f"livelock: {self._livelock_steps()} steps ran without the virtual clock moving "
            f"(at virtual time {self.time():.6f}s) and no timer is pending, so nothing "
            "can change. Some task is spinning — e.g. `while True: await asyncio.sleep(0)` "
            "or polling the clock or a flag nothing will set. "
            f"Ready now: {shown}. Raise `livelock_steps` if this is real work."
        )

    # ------------------------------------------------- escapes: the real world

    def _fd_watch(
        self, name: str, fd: Any, readable: bool, callback: Any = None, args: tuple[Any, ...] = ()
    ) -> bool:
        """A reader/writer watcher on a simulated Unix socket's descriptor (see
        :mod:`simloom._sim_socket`, :mod:`simloom._sim_unix`: its callback is a step while the socket is ready);
        on any other descriptor ``loop.<name>()`` is the escape it always was."""
        world = self._get_world()
        handle = None if callback is None else asyncio.Handle(callback, args, self, None)
        result = None if world is None else _sim_socket.watch(world, fd, readable, handle)
        # Removing a watcher from a simulated IP socket: none can be set (the
        # transports and sock_* methods wait on its state instead).
        if (
            result is None
            and handle is None
            and world is not None
            and isinstance(fd, socket.socket)
            and _sim_socket.known(world, fd)
        ):
            return False
        if result is None:
            _boundary.refuse_loop_call(name)
        return result

    def add_reader(self, fd: Any, callback: Callable[[Unpack[_Ts]], Any], *args: *_Ts) -> None:
        self._fd_watch("add_reader", fd, True, callback, args)

    def remove_reader(self, fd: Any) -> bool:
        return self._fd_watch("remove_reader", fd, True)

    def add_writer(self, fd: Any, callback: Callable[[Unpack[_Ts]], Any], *args: *_Ts) -> None:
        self._fd_watch("add_writer", fd, False, callback, args)

    def remove_writer(self, fd: Any) -> bool:
        return self._fd_watch("remove_writer", fd, False)

    def _simulated_socket(self, sock: Any, name: str) -> World:
        """The world whose network knows ``sock`` (bound, connected or accepted in
        this universe: see :mod:`simloom._sim_socket`); for any other socket
        ``loop.<name>()`` is the escape it always was."""
        if not isinstance(sock, socket.socket):
            raise TypeError(f"sock must be a socket.socket, got {type(sock).__name__}")
        world = self._get_world()
        if world is None or not _sim_socket.known(world, sock):
            _boundary.refuse_loop_call(name)
        return world

    async def sock_recv(self, sock: Any, nbytes: int) -> bytes:
        """Receive from a simulated socket (see :mod:`simloom._sim_socket`)."""
        return await _sim_socket.sock_recv(self._simulated_socket(sock, "sock_recv"), sock, nbytes)

    async def sock_recv_into(self, sock: Any, buf: Any) -> int:
        """Receive into ``buf`` from a simulated socket."""
        world = self._simulated_socket(sock, "sock_recv_into")
        return await _sim_socket.sock_recv_into(world, sock, buf)

    def sock_recvfrom(self, sock: Any, bufsize: int) -> NoReturn:
        _boundary.refuse_loop_call("sock_recvfrom")

    def sock_recvfrom_into(self, sock: Any, buf: Any, nbytes: int = 0) -> NoReturn:
        _boundary.refuse_loop_call("sock_recvfrom_into")

    async def sock_sendall(self, sock: Any, data: Any) -> None:
        """Send all of ``data`` on a simulated socket's connection."""
        world = self._simulated_socket(sock, "sock_sendall")
        await _sim_socket.sock_sendall(world, sock, data)

    def sock_sendto(self, sock: Any, data: Any, address: Any) -> NoReturn:
        _boundary.refuse_loop_call("sock_sendto")

    async def sock_connect(self, sock: Any, address: Any) -> None:
        """Connect a stream socket on the simulated network (as happy-eyeballs
        clients do before ``create_connection(sock=sock)``)."""
        await _net.sock_connect(self._require_world("loop.sock_connect()"), sock, address)

    async def sock_accept(self, sock: Any) -> tuple[Any, Any]:
        """Accept a connection on a simulated listening socket."""
        world = self._simulated_socket(sock, "sock_accept")
        return await _sim_socket.sock_accept(world, sock)

    def sock_sendfile(self, sock: Any, file: Any, *args: Any, **kwargs: Any) -> NoReturn:
        _boundary.refuse_loop_call("sock_sendfile")

    # ----------------------------------------------------------- the network
    #
    # With a world (every universe has one unless run with world=False) these go to
    # the simulated network; without one they are escapes.

    def _require_world(self, api: str) -> World:
        world = self._get_world()
        if world is None:
            _escape(api, "it uses the network, and this loop has no simulated world (world=False)")
        return world

    def _get_world(self) -> World | None:
        if self._world is None and self._world_enabled:
            self._world = World(self)
        return self._world

    async def create_connection(
        self,
        protocol_factory: Callable[[], Any],
        host: Any = None,
        port: Any = None,
        *,
        ssl: Any = None,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        sock: Any = None,
        local_addr: Any = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
        happy_eyeballs_delay: float | None = None,
        interleave: int | None = None,
        all_errors: bool = False,
    ) -> tuple[Any, Any]:
        """Open a connection on the simulated network (with TLS over memory BIOs when
        ``ssl`` is given)."""
        world = self._require_world("loop.create_connection() / asyncio.open_connection()")
        if server_hostname is not None and not ssl:
            raise ValueError("server_hostname is only meaningful with ssl")
        if server_hostname is None and ssl:
            if not host:
                raise ValueError("You must set server_hostname when using ssl without a host")
            server_hostname = host
        _net._check_ssl_arguments(ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout)
        if sock is not None:
            if host is not None or port is not None:
                raise ValueError("host/port and sock can not be specified at the same time")
            transport = _net.take_connected_socket(world, sock)
            if transport is None:
                _escape(
                    "loop.create_connection(sock=...)",
                    "the socket was not connected by loop.sock_connect() on the simulated "
                    "network, so it is a real one",
                )
            return await _net.open_stream(
                world,
                protocol_factory,
                "",
                0,
                ssl=ssl,
                server_hostname=server_hostname,
                ssl_handshake_timeout=ssl_handshake_timeout,
                ssl_shutdown_timeout=ssl_shutdown_timeout,
                transport=transport,
            )
        if host is None and port is None:
            raise ValueError("host and port was not specified and no sock specified")
        infos = await self.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
        ip, number = infos[0][4][0], infos[0][4][1]
        local = None
        if local_addr is not None:
            local_host, local_port = local_addr[0], _net._port_number(local_addr[1])
            if local_host in (None, "", "0.0.0.0", "::"):
                local_ip = "::" if ":" in ip else "0.0.0.0"
            else:
                local_ip = world._resolve(local_host, world._current_host())
            local = (local_ip, local_port)
        return await _net.open_stream(
            world,
            protocol_factory,
            ip,
            number,
            ssl=ssl,
            server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            local=local,
        )

    async def create_server(
        self, protocol_factory: Callable[[], Any], host: Any = None, port: Any = None, **kwargs: Any
    ) -> Any:
        """Listen on the simulated network, on the host of the calling code."""
        world = self._require_world("loop.create_server() / asyncio.start_server()")
        return await _net.create_server(world, protocol_factory, host, port, **kwargs)

    async def create_unix_connection(
        self,
        protocol_factory: Callable[[], Any],
        path: str | None = None,
        *,
        ssl: Any = None,
        sock: Any = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[Any, Any]:
        """Connect to a Unix socket path of the calling code's host (simulated)."""
        world = self._require_world(
            "loop.create_unix_connection() / asyncio.open_unix_connection()"
        )
        if sock is not None:
            _escape("loop.create_unix_connection(sock=...)", "it wraps a real Unix socket")
        if path is None:
            raise ValueError("no path and sock were specified")
        if ssl and server_hostname is None:
            raise ValueError("you have to pass server_hostname when using ssl")
        _net._check_ssl_arguments(ssl, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
        path = os.fspath(path)
        port = world._unix_port(path)
        transport = await _net.connect(world, "127.0.0.1", port, unix_path=path)
        return await _net.open_stream(
            world,
            protocol_factory,
            "127.0.0.1",
            port,
            ssl=ssl,
            server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            transport=transport,
        )

    async def create_unix_server(
        self, protocol_factory: Callable[[], Any], path: Any = None, **kwargs: Any
    ) -> Any:
        """Listen on a Unix socket path of the calling code's host (simulated)."""
        world = self._require_world("loop.create_unix_server() / asyncio.start_unix_server()")
        return await _net.create_unix_server(world, protocol_factory, path, **kwargs)

    async def create_datagram_endpoint(
        self,
        protocol_factory: Callable[[], Any],
        local_addr: Any = None,
        remote_addr: Any = None,
        **kwargs: Any,
    ) -> tuple[Any, Any]:
        """A UDP endpoint on the simulated network."""
        world = self._require_world("loop.create_datagram_endpoint()")
        return await _net.create_datagram_endpoint(
            world, protocol_factory, local_addr, remote_addr, **kwargs
        )

    async def connect_accepted_socket(
        self,
        protocol_factory: Callable[[], Any],
        sock: Any,
        *,
        ssl: Any = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> tuple[Any, Any]:
        """Wrap a simulated socket's accepted (or connected) connection in a
        transport and ``protocol_factory()``'s protocol."""
        world = self._simulated_socket(sock, "connect_accepted_socket")
        _net._check_ssl_arguments(ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout)
        transport = _sim_socket.adopt_connected(world, sock, "loop.connect_accepted_socket()")
        if transport is None:
            raise ValueError(f"A Stream Socket was expected, got {sock!r}")
        return await _net.open_stream(
            world,
            protocol_factory,
            "",
            0,
            ssl=ssl,
            server_hostname=None,
            ssl_handshake_timeout=ssl_handshake_timeout,
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            transport=transport,
            server_side=True,
        )

    def sendfile(self, *args: Any, **kwargs: Any) -> NoReturn:
        _boundary.refuse_loop_call("sendfile")

    async def start_tls(
        self,
        transport: Any,
        protocol: Any,
        sslcontext: Any,
        *,
        server_side: bool = False,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float | None = None,
        ssl_shutdown_timeout: float | None = None,
    ) -> Any:
        """Upgrade a simulated connection to TLS (memory BIOs, real certificates)."""
        import ssl as ssl_module
        from asyncio import sslproto

        self._require_world("loop.start_tls()")
        if not isinstance(sslcontext, ssl_module.SSLContext):
            raise TypeError(
                f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}"
            )
        if not getattr(transport, "_start_tls_compatible", False):
            raise TypeError(f"transport {transport!r} is not supported by start_tls()")
        waiter = self.create_future()
        ssl_protocol = sslproto.SSLProtocol(
            self,
            protocol,
            sslcontext,
            waiter,
            server_side,
            server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,  # type: ignore[arg-type]
            ssl_shutdown_timeout=ssl_shutdown_timeout,
            call_connection_made=False,
        )
        transport.pause_reading()
        transport.set_protocol(ssl_protocol)
        connection_made = self.call_soon(ssl_protocol.connection_made, transport)
        resume = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            connection_made.cancel()
            resume.cancel()
            raise
        return ssl_protocol._app_transport

    async def getaddrinfo(
        self,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        """Resolve on the simulated network: host names, names given to
        ``world.register_name``, ``localhost`` and IP literals. Unknown names raise
        ``socket.gaierror``."""
        world = self._require_world("loop.getaddrinfo()")
        return await _net.getaddrinfo(
            world, host, port, family=family, type=type, proto=proto, flags=flags
        )

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
        world = self._require_world("loop.getnameinfo()")
        return await _net.getnameinfo(world, sockaddr, flags)

    def subprocess_exec(self, *args: Any, **kwargs: Any) -> NoReturn:
        _boundary.refuse_loop_call("subprocess_exec")

    def subprocess_shell(self, *args: Any, **kwargs: Any) -> NoReturn:
        _boundary.refuse_loop_call("subprocess_shell")

    def connect_read_pipe(self, *args: Any, **kwargs: Any) -> NoReturn:
        _boundary.refuse_loop_call("connect_read_pipe")

    def connect_write_pipe(self, *args: Any, **kwargs: Any) -> NoReturn:
        _boundary.refuse_loop_call("connect_write_pipe")

    def add_signal_handler(
        self, sig: int, callback: Callable[[Unpack[_Ts]], object], *args: *_Ts
    ) -> NoReturn:
        _boundary.refuse_loop_call("add_signal_handler")

    def remove_signal_handler(self, sig: int) -> NoReturn:
        _boundary.refuse_loop_call("remove_signal_handler")

    def __del__(self) -> None:
        """As the stock loop: an unclosed loop warns (``ResourceWarning``) when it is
        collected, and is closed. A loop whose constructor raised (a misused
        argument) was never usable and says nothing. (``getattr``, not
        ``self.__dict__``: making the dict during a collection would hold the
        loop's cycle for another one.)"""
        if getattr(self, "_constructed", False):
            asyncio.BaseEventLoop.__del__(self)

    def __repr__(self) -> str:
        state = "running" if self._running else ("closed" if self.is_closed() else "idle")
        return (
            f"<SimLoop {state} scheduler={self.scheduler.name} seed={self.seed} "
            f"time={self.time():.6f}s steps={self._steps()}>"
        )


class _SimTask(asyncio.Task):  # type: ignore[type-arg]
    """An asyncio task whose hash is its creation number in the universe.

    The stock ``Task`` hashes by address, so every set of tasks — a TaskGroup's
    children, ``asyncio.wait``'s results, ``all_tasks()`` — iterates in an order that
    changes from run to run, and with it the order of cancellations and wake-ups.
    Numbered hashes make that order part of the universe. Equality stays identity.
    """

    __slots__ = ("_simloom_number",)

    def __init__(self, coro: Any, *, loop: Any, simloom_number: int, **kwargs: Any) -> None:
        self._simloom_number = simloom_number
        super().__init__(coro, loop=loop, **kwargs)

    def __hash__(self) -> int:
        return self._simloom_number

    def set_name(self, value: object) -> None:
        super().set_name(value)
        # asyncio.create_task(name=...) names the task after creating it.
        self.get_loop()._task_renamed(self)  # type: ignore[attr-defined]


# Reprs and asyncio's own messages ("Task exception was never retrieved") name the type.
_SimTask.__name__ = _SimTask.__qualname__ = "Task"


class _ExecutorJob:
    """The step that starts a ``run_in_executor`` job: its lockstep worker thread runs
    until it finishes or parks (see ``_lockstep``)."""

    __slots__ = ("worker",)

    def __init__(self, worker: _lockstep.Worker) -> None:
        self.worker = worker

    def __call__(self) -> None:
        self.worker.start()
