"""Running one universe: ``run``, ``replay``, ``RunResult``, and the in-program
choices ``sometimes``, ``draw`` and ``reached``.

Owns: the life of one universe (set-up, the main coroutine, deterministic teardown,
the result). Must not: decide choices (the engine does) or know about pytest or
Hypothesis.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from . import _boundary, _budgets, _cancellations, _causal, _core, _monitors, _selfcheck
from ._config import UniverseConfig, config_from
from ._scheduler import SchedulerSpec, parse_scheduler
from ._validation import check_flag, check_int
from .errors import SimloomUsageError, UnhandledExceptionError
from .loop import DEFAULT_LIVELOCK_STEPS, SimLoop
from .tape import Tape

__all__ = [
    "Event",
    "RunResult",
    "decode_events",
    "draw",
    "reached",
    "replay",
    "run",
    "sometimes",
]

#: An async function taking no arguments, or only `world`.
Main = Callable[..., Awaitable[Any]]

#: Teardown cancels leftovers at most this many times (cleanup can start new tasks).
TEARDOWN_ROUNDS = 8


class Event(NamedTuple):
    """One decoded event-log entry. ``kind`` is ``step`` (``label`` ran), ``clock``
    (the clock advanced to ``time_ns``), ``decision`` (``label`` chose ``value`` of
    ``bound``), ``mark`` (a named point such as ``reached``), ``end`` (the outcome)
    or ``misalign`` (a replayed value did not fit decision ``value``)."""

    kind: str
    time_ns: int
    label: str | None = None
    bound: int | None = None
    value: int | None = None


def decode_events(log: bytes) -> list[Event]:
    """Decode event-log bytes (format v1, see docs/event-log.md) into events."""
    labels: list[str] = []
    events: list[Event] = []
    now = 0
    for raw in _core.decode_event_log(log):
        kind = raw[0]
        if kind == "label":
            labels.append(raw[2])
        elif kind == "clock":
            now += raw[1]
            events.append(Event("clock", now))
        elif kind == "decision":
            events.append(Event("decision", now, labels[raw[1]], raw[2], raw[3]))
        elif kind == "misalign":
            events.append(Event("misalign", now, value=raw[1]))
        else:
            events.append(Event(kind, now, labels[raw[1]]))
    return events


#: What the faithful scheduler's own decisions mean, for ``explain()``.
_GLOSSES = {
    "loop.stall": (
        " -- a loop iteration ran until the next timer was due (virtual time passed "
        "while callbacks ran)"
    ),
    "timer.tie": " -- timers due at the same instant ran in another order",
}

#: The decisions that order ready callbacks (as opposed to faults, stalls, choices).
_ORDER_LABELS = frozenset({"sched.pick", "timer.order"})


@dataclass(frozen=True)
class Reordering:
    """One scheduling decision no real loop makes: at ``decision`` the callback
    ``callback`` ran ahead of ``skipped`` callbacks that became ready before it."""

    decision: int
    callback: str
    skipped: int


@dataclass(frozen=True)
class RunResult:
    """What one universe did.

    ``value`` is what ``main`` returned and ``error`` what it raised (``None`` if it
    returned). ``tape`` replays the universe exactly (:func:`replay`); ``digest`` is
    the SHA-256 of the canonical event log, equal in every run of the same universe.
    """

    value: Any
    error: BaseException | None
    tape: Tape
    digest: str
    event_log_bytes: bytes = field(repr=False)
    steps: int
    decisions: int
    deviations: int
    virtual_time_ns: int
    coverage: dict[str, int]
    seed: int | None
    scheduler: str
    misaligned: bool
    #: A seeded PCT universe: whether it started tasks eagerly (``None`` under
    #: every other scheduler and on replay). PCT's probabilistic guarantee is only
    #: claimed for universes where this is ``False``.
    eager_starts: bool | None = None

    @property
    def ok(self) -> bool:
        """True if ``main`` returned normally."""
        return self.error is None

    @property
    def virtual_time(self) -> float:
        """Virtual seconds the universe lasted."""
        return self.virtual_time_ns / 1e9

    @property
    def event_log(self) -> list[Event]:
        """The decoded event log."""
        return decode_events(self.event_log_bytes)

    def explain(self) -> str:
        """The schedule in words, as deviations from FIFO::

        FIFO everywhere except:
          decision #3: sched.pick = 1 (of 3)

        followed, if the schedule ran ready callbacks out of the order they became
        ready (which no real asyncio loop does), by a line saying so."""
        lines = []
        index = 0
        events = self.event_log
        for event in events:
            if event.kind != "decision":
                continue
            if event.value:
                gloss = _GLOSSES.get(str(event.label), "")
                lines.append(
                    f"  decision #{index}: {event.label} = {event.value} (of {event.bound}){gloss}"
                )
            index += 1
        if not lines:
            return "FIFO everywhere (no deviations)"
        text = "FIFO everywhere except:\n" + "\n".join(lines)
        reorderings = _reorderings(events)
        if reorderings:
            first = reorderings[0]
            text += (
                f"\n  reorders ready callbacks: {len(reorderings)} decision(s) ran a "
                "callback ahead of callbacks that became ready before it (first: decision "
                f"#{first.decision}, {first.callback} ahead of {first.skipped}). A real "
                "asyncio loop runs ready callbacks in scheduling order (call_soon is FIFO, a "
                "future's callbacks run in registration order): there this interleaving "
                "needs the awaited operations to take different times (I/O, timers); if "
                "they cannot, it is infeasible on a real loop, a false alarm. "
                "scheduler='faithful' explores only what a real loop can do."
            )
        else:
            text += (
                "\n  feasible on a real loop: no ready callback ran ahead of one scheduled "
                "before it"
            )
        return text

    def reorderings(self) -> list[Reordering]:
        """The scheduling decisions that ran a ready callback ahead of older ones: the
        part of this schedule no real asyncio loop can produce (the faithful and FIFO
        schedulers never make one; random and PCT may)."""
        return _reorderings(self.event_log)

    def raise_error(self) -> None:
        """Re-raise the universe's error, if it had one."""
        if self.error is not None:
            raise self.error


def _reorderings(events: list[Event]) -> list[Reordering]:
    """See :meth:`RunResult.reorderings`: each ordering decision with a nonzero value,
    and the callback the step after it ran."""
    found: list[Reordering] = []
    index = 0
    pending: tuple[int, int] | None = None
    for event in events:
        if event.kind == "decision":
            if event.value and event.label in _ORDER_LABELS:
                pending = (index, int(event.value))
            index += 1
        elif event.kind == "step" and pending is not None:
            found.append(Reordering(pending[0], str(event.label), pending[1]))
            pending = None
    return found


def _check_main(main: object) -> None:
    if inspect.iscoroutine(main):
        main.close()
        raise SimloomUsageError(
            "pass the async function itself (run(main)), not a coroutine (run(main())): "
            "simloom may need to run it more than once"
        )
    if not callable(main):
        raise SimloomUsageError(f"main must be an async callable, got {type(main).__name__}")


def _wants_world(main: object) -> bool:
    """Does ``main`` take a parameter named ``world``?"""
    try:
        parameters = inspect.signature(main).parameters  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return "world" in parameters


async def _call_main(main: Main, loop: SimLoop) -> Any:
    if _wants_world(main):
        world = loop._get_world()
        if world is None:
            raise SimloomUsageError(
                "main takes a `world` parameter, but the universe runs with world=False"
            )
        awaitable = main(world=world)
    else:
        awaitable = main()
    if not inspect.isawaitable(awaitable):
        raise SimloomUsageError(
            f"main must be an async function (returning an awaitable); it returned "
            f"{type(awaitable).__name__}"
        )
    value = await awaitable
    _monitors.check_at_end(loop)
    return value


def _retrieve_task_exceptions(loop: SimLoop) -> None:
    """The universe was cut short (an interrupt, the choice source stopping it): the
    exception it put in the tasks it passed through is already reported, so it must
    not be logged again as "never retrieved" when they are collected."""
    for task in list(loop._task_order):
        if task.done() and not task.cancelled():
            task.exception()


def _teardown(loop: SimLoop) -> BaseException | None:
    """Cancel leftover tasks in creation order, close async generators in first-use
    order, and close the loop, all in the canonical order (no decisions).

    Cancelled tasks may start new work while they unwind (an async generator's
    ``aclose``, a cleanup task), so this repeats until nothing is left or a bounded
    number of rounds has passed.

    Returns the first failure teardown met (a leftover task that raised when
    cancelled, an async generator whose ``finally`` raised): the stock loop reports
    those through its exception handler, so here they fail the universe.
    ``KeyboardInterrupt`` and ``SystemExit`` propagate, as from ``asyncio.run``.
    """
    loop._set_quiet(True)
    loop._tearing_down = True
    world = loop._world
    # Tasks of crashed hosts never run again, not even to unwind.
    dead = world._tasks_of_dead_hosts() if world is not None else set()
    failure: BaseException | None = None
    for _ in range(TEARDOWN_ROUNDS):
        leftovers = [t for t in loop._tasks_in_creation_order() if not t.done() and t not in dead]
        if not leftovers and not loop._ready_count():
            break
        for task in leftovers:
            task.cancel()
        failed = _run_quietly(loop, _settle(loop, leftovers))
        failure = failed if failure is None else failure
    failed = _run_quietly(loop, loop.shutdown_asyncgens())
    failure = failed if failure is None else failure
    loop.close()
    if world is not None:
        world._end()
    return failure


async def _settle(loop: SimLoop, leftovers: list[asyncio.Task[Any]]) -> None:
    if leftovers:
        await asyncio.gather(*leftovers, return_exceptions=True)
    for task in leftovers:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception while the universe was torn down",
                    "exception": task.exception(),
                    "task": task,
                }
            )
    while loop._ready_count():
        await asyncio.sleep(0)


def _run_quietly(loop: SimLoop, coro: Any) -> BaseException | None:
    """Run a teardown coroutine to its end and return the first failure the loop's
    exception handler recorded meanwhile, what the stock loop would report
    (``run_until_complete`` raises it, stopping before the coroutine is done, so it
    is resumed a bounded number of times).

    ``KeyboardInterrupt`` and ``SystemExit`` propagate. The choice source's fatal
    error (Hypothesis stopping the test), which every later ``run_until_complete``
    raises again, is not a failure of teardown: teardown still finishes, and the
    caller raises that error afterwards."""
    task = loop.create_task(coro)
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    failure: BaseException | None = None
    for _ in range(TEARDOWN_ROUNDS):
        try:
            loop.run_until_complete(task)
        except (KeyboardInterrupt, SystemExit):
            if not task.done():
                coro.close()  # it will not run again: no "never awaited" warning
            raise
        except BaseException as exc:
            if loop._fatal_error() is None:
                if not isinstance(exc, Exception):
                    raise
                if isinstance(exc, UnhandledExceptionError) and failure is None:
                    failure = exc
                # Anything else (a deadlock: a cancelled task awaiting what will
                # never come) is teardown's own trouble, where the stock loop hangs.
        if task.done():
            if not task.cancelled():
                task.exception()
            return failure
    task.cancel()
    return failure


#: Standalone runs (not inside an exploration) collect the whole heap before freezing
#: it once this many earlier runs failed (a failure's traceback holds reference
#: cycles, which the caller drops later and which must not stay frozen out of
#: reach), and at least once every ``FULL_COLLECT_EVERY`` runs.
FULL_COLLECT_AFTER_FAILURES = 32
FULL_COLLECT_EVERY = 4096
_runs_since_full_collect = 0
_failures_since_full_collect = 0


def _collect_garbage() -> None:
    """``gc.collect()``, raising here a ``KeyboardInterrupt`` that a finalizer or a
    weakref callback met (Python would only print it as "Exception ignored in")."""
    catching = _core.Restoration()
    catching.catch_interrupts()
    catching.run(gc.collect)


def frozen_heap() -> _core.Restoration:
    """A guard (``frozen_heap().run(function)``) freezing the objects alive now out of the
    collector (``gc.freeze``), so the collections a universe makes cost what
    universes allocate, not the whole heap. Nested guards share the outermost
    freeze: an exploration freezes once, and each universe's final collection then
    also reclaims what earlier universes left behind. The heap is unfrozen however
    the block ends, and a ``KeyboardInterrupt`` met by a finalizer inside it is
    raised, not printed."""
    global _runs_since_full_collect, _failures_since_full_collect
    if _core.Restoration.frozen_heap_users() == 0:
        _runs_since_full_collect += 1
        if (
            _runs_since_full_collect >= FULL_COLLECT_EVERY
            or _failures_since_full_collect >= FULL_COLLECT_AFTER_FAILURES
        ):
            _runs_since_full_collect = _failures_since_full_collect = 0
            _collect_garbage()
    guard = _core.Restoration()
    guard.catch_interrupts()
    guard.gc_frozen()
    return guard


def _count_failure() -> None:
    global _failures_since_full_collect
    _failures_since_full_collect += 1


def _refuse_a_running_loop() -> None:
    running = asyncio.events._get_running_loop()
    if running is not None:
        raise SimloomUsageError(
            f"simloom.run() was called inside a running event loop ({running!r}); a "
            "universe needs the thread to itself. Await the program instead, or run "
            "it from synchronous code (a plain `def` test, a script)"
        )


def _universe_guard(loop: SimLoop, boundary: _boundary.Settings | None) -> _core.Restoration:
    """Everything the universe changes in the process, as one guard: the frozen
    heap, the boundary (registry entry, builtin redirects, saved random and uuid1
    states) and the loop's closing. ``SimLoop.run_forever`` adds the rest for each
    run (running loop, async-generator hooks, patched helpers, the collector off).
    Planning installs nothing; entering installs all or nothing; leaving undoes it
    all, an interrupt notwithstanding (see docs/testing.md)."""
    guard = frozen_heap()
    # The universe decides the boundary; the loop's own default stands aside.
    guard.set_attr(loop, "_in_universe", True)
    _boundary.enter_universe(guard, loop, boundary)
    guard.call(None, functools.partial(_close, loop))
    return guard


def _close(loop: SimLoop) -> None:
    """Close the loop if teardown did not (an interrupt cut it short). What is left
    is abandoned as ``asyncio.run`` abandons it after a second Ctrl-C, without a
    "destroyed but pending" or "never awaited" warning for each task."""
    if loop.is_closed():
        return  # closed by teardown (``close`` marks the loop closed last)
    for task in loop._tasks_in_creation_order():
        task._log_destroy_pending = False  # type: ignore[attr-defined]
        coro = task.get_coro()
        if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == "CORO_CREATED":
            coro.close()  # never started: closing runs none of its code
    loop.close()


def _run_main(main: Main, loop: SimLoop) -> tuple[Any, BaseException | None]:
    """Run ``main`` and tear down; return its value and the universe's error.
    ``KeyboardInterrupt``, ``SystemExit`` and errors from outside the program (the
    choice source's) propagate, after teardown."""
    try:
        value = loop.run_until_complete(_call_main(main, loop))
    except (KeyboardInterrupt, SystemExit):
        # Interrupted: still cancel what is left (as asyncio.run does), then go.
        # The interrupt is what propagates; tasks it passed through are settled.
        _teardown(loop)
        _retrieve_task_exceptions(loop)
        raise
    except BaseException as exc:
        if loop._fatal_error() is not None or not isinstance(
            exc, Exception | asyncio.CancelledError
        ):
            # The choice source failed, or something outside the program's own
            # errors (Hypothesis stopping the test): not the universe's outcome.
            _teardown(loop)
            _retrieve_task_exceptions(loop)
            raise
        injector = loop._cancel_injector
        if injector is not None and _cancellations.propagated(exc, bool(injector.injected)):
            # An injected cancellation reached the top: the program let it through.
            loop._mark("inject:propagated")
            return None, _teardown(loop)
        _teardown(loop)
        return None, exc
    try:
        return value, _teardown(loop)
    except (KeyboardInterrupt, SystemExit):
        _retrieve_task_exceptions(loop)
        raise


def _universe(
    main: Main,
    loop: SimLoop,
    seed: int | None,
    scheduler: str,
    boundary: _boundary.Settings | None = None,
) -> RunResult:
    """Run ``main`` to completion in ``loop`` and tear down deterministically, with
    the determinism boundary's patches when ``boundary`` is given."""
    _check_main(main)
    _refuse_a_running_loop()
    guard = _universe_guard(loop, boundary)
    result: RunResult = guard.run(_run_universe, main, loop, seed, scheduler, guard)
    return result


#: The attribute a failing universe's error carries its recorded histories in.
HISTORIES_ATTRIBUTE = "__simloom_histories__"


def _run_universe(
    main: Main, loop: SimLoop, seed: int | None, scheduler: str, guard: _core.Restoration
) -> RunResult:
    loop._simloom_histories = []  # what simloom.History records in this universe
    try:
        value, error = _run_main(main, loop)
        gc.collect()
        guard.raise_caught_interrupt()
        late_failure = loop._take_failure()
        if error is None and late_failure is not None:
            error = late_failure
        if error is not None:
            _count_failure()
            if loop._simloom_histories:
                # A failure's artifacts include every history the universe recorded.
                with contextlib.suppress(AttributeError, TypeError):
                    setattr(error, HISTORIES_ATTRIBUTE, tuple(loop._simloom_histories))
    finally:
        loop._simloom_histories = None
    return _result_of(loop, value, error, seed, scheduler)


def _result_of(
    loop: SimLoop, value: Any, error: BaseException | None, seed: int | None, scheduler: str
) -> RunResult:
    """End ``loop``'s event log with the outcome and return the universe's result
    (``simloom.run``, and ``pytest --simloom`` for the loops a test made)."""
    outcome = "completed" if error is None else f"error:{type(error).__qualname__}"
    loop._finish(outcome)
    # One call across the boundary; the tape stays in the engine's compact storage.
    tape, digest, log, steps, decisions, deviations, now_ns, coverage, misaligned = loop._result()
    return RunResult(
        value=value,
        error=error,
        tape=Tape._wrap(tape),
        digest=digest,
        event_log_bytes=log,
        steps=steps,
        decisions=decisions,
        deviations=deviations,
        virtual_time_ns=now_ns,
        coverage=coverage,
        seed=seed,
        scheduler=scheduler,
        misaligned=misaligned,
        eager_starts=loop._pct_eager(),
    )


def _resolve_horizon(main: Main, spec: SchedulerSpec, config: UniverseConfig) -> SchedulerSpec:
    """``pct:auto``: measure the horizon as the decision count of a FIFO probe run."""
    if not spec.auto_horizon:
        return spec
    probe_loop = SimLoop(scheduler="fifo", config=config)
    probe = _universe(main, probe_loop, None, "fifo", config.boundary_settings)
    horizon = max(1, probe.decisions)
    # The measured horizon is part of the spec now; running it will not probe again.
    return SchedulerSpec("pct", depth=spec.depth, horizon=horizon, eager=spec.eager)


def run(
    main: Main,
    *,
    seed: int = 0,
    scheduler: str | SchedulerSpec = "random",
    livelock_steps: int = DEFAULT_LIVELOCK_STEPS,
    boundary: bool = True,
    wall_clock_epoch: datetime | float = _boundary.DEFAULT_WALL_CLOCK_EPOCH,
    check_determinism: bool = False,
    world: bool = True,
    files: bool = True,
    max_steps: int | None = _budgets.DEFAULT_MAX_STEPS,
    max_virtual_time: float | None = _budgets.DEFAULT_MAX_VIRTUAL_TIME,
    watchdog: float | None = _budgets.DEFAULT_WATCHDOG,
    cancellations: bool = False,
    config: UniverseConfig | None = None,
) -> RunResult:
    """Run ``main()`` (an async function, not a coroutine) in one fresh universe.

    ``seed`` picks the universe: the same seed, scheduler and program give the same
    schedule, the same virtual time and a byte-identical event log. ``scheduler`` is
    ``"fifo"``, ``"random"``, ``"pct"`` (``"pct:d=3,k=100"``), ``"pct:auto"`` or
    ``"faithful"`` (``"faithful:stall=0.1"``; see ``docs/schedulers.md``).
    The program's exception does not propagate; it is ``RunResult.error``.

    The determinism boundary is on unless ``boundary=False`` (see
    :func:`simloom.boundary`): the stdlib clocks read virtual time, with the wall
    clock starting at ``wall_clock_epoch`` (an aware datetime or Unix seconds);
    ``random``, ``os.urandom``, ``secrets`` and ``uuid`` are seeded from the tape;
    ``time.sleep`` on the loop's thread moves virtual time (it blocks the universe);
    code that would reach the real world (blocking sockets, DNS, subprocesses)
    raises :class:`~simloom.EscapedSimulationError` at the call site.
    Called inside a running event loop it raises
    :class:`~simloom.SimloomUsageError`: await the program there instead.
    ``check_determinism=True`` runs the universe twice and raises
    :class:`~simloom.SimloomNondeterminismError` if the runs differ.

    If ``main`` takes a parameter named ``world`` it receives the universe's
    :class:`~simloom.World` (hosts, network, disks, faults). Network calls go to the
    simulated network in any case; ``world=False`` makes them escapes instead.
    File I/O (``open``, ``os``, ``pathlib``, ``shutil``, ``aiofiles``) acts on the
    running host's simulated disk while the universe has a world and the boundary;
    ``files=False`` keeps it on the real disk (docs/files.md).

    A run that takes ``max_steps`` steps or ``max_virtual_time`` virtual seconds
    without finishing ends with :class:`~simloom.SimStepBudgetError` or
    :class:`~simloom.SimTimeBudgetError`, and a step that runs ``watchdog`` seconds
    of wall-clock time without yielding with :class:`~simloom.SimWatchdogError`
    (``None`` turns each off; see docs/testing.md, "Budgets").

    ``cancellations=True`` injects cancellations: just before a task resumes from
    an await, a decision may cancel it, or make its innermost ``asyncio.timeout``
    (``wait_for`` included) expire (see docs/schedulers.md, "Injected
    cancellations"). The program's main task is never cancelled.

    ``config=`` gives the universe's options at once, as a
    :class:`~simloom.UniverseConfig` (then leave them at their defaults).
    """
    requested = parse_scheduler(scheduler)
    if requested.strategy == "systematic":
        raise SimloomUsageError(
            f"scheduler {requested.name!r} enumerates many universes, and simloom.run runs "
            "one: use simloom.explore_systematic(main, deviations=...) or "
            f"@simloom.test(scheduler={requested.name!r})"
        )
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
    check_flag("check_determinism", check_determinism)
    check_int("seed", seed, minimum=0)
    spec = _resolve_horizon(main, requested, universe)
    patches = universe.boundary_settings
    if check_determinism:
        return _selfcheck.run_twice(
            lambda trace: _universe(
                main,
                trace(SimLoop(seed=seed, scheduler=spec, config=universe)),
                seed,
                requested.name,
                patches,
            ),
            f"simloom.run(main, seed={seed}, scheduler={requested.name!r})",
        )
    loop = SimLoop(seed=seed, scheduler=spec, config=universe)
    return _universe(main, loop, seed, requested.name, patches)


def replay(
    main: Main,
    tape: Tape,
    *,
    scheduler: str | SchedulerSpec = "fifo",
    strict: bool = False,
    livelock_steps: int = DEFAULT_LIVELOCK_STEPS,
    boundary: bool = True,
    wall_clock_epoch: datetime | float = _boundary.DEFAULT_WALL_CLOCK_EPOCH,
    world: bool = True,
    files: bool = True,
    max_steps: int | None = _budgets.DEFAULT_MAX_STEPS,
    max_virtual_time: float | None = _budgets.DEFAULT_MAX_VIRTUAL_TIME,
    watchdog: float | None = _budgets.DEFAULT_WATCHDOG,
    cancellations: bool = False,
    config: UniverseConfig | None = None,
) -> RunResult:
    """Run ``main()`` with every choice taken from ``tape``.

    If the program no longer fits the tape (a value out of range, deviations left
    over), lenient replay takes the canonical choice there and sets
    ``RunResult.misaligned``; ``strict=True`` raises
    :class:`~simloom.errors.TapeMisalignedError` instead. Replay a universe with the
    ``boundary``, ``wall_clock_epoch``, ``cancellations`` and budgets it ran with (or the
    :class:`~simloom.UniverseConfig` it ran with, as ``config=``). ``scheduler`` is
    the scheduler it ran with: only ``"faithful"`` matters (it asks different
    questions: stalls and timer ties, never the order of ready callbacks); a tape of
    any other scheduler replays the same under all of them.
    """
    if not isinstance(tape, _core.Tape):
        raise SimloomUsageError(f"tape must be a simloom.Tape, got {type(tape).__name__}")
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
    check_flag("strict", strict)
    loop = SimLoop(tape=tape, strict=strict, scheduler=scheduler, config=universe)
    return _universe(main, loop, None, "replay", universe.boundary_settings)


def traced_replays(
    main: Main, *, scheduler: str | SchedulerSpec = "fifo", config: UniverseConfig | None = None
) -> _causal.TracedReplay:
    """Replays of ``main`` with the causal trace recorded, for
    :func:`simloom._causal.explain`: each answers whether the tape's universe
    failed, its digest and its trace."""

    def replay_traced(tape: Tape) -> tuple[bool, str | None, _causal.CausalTrace]:
        result, trace = _causal.traced(
            lambda: replay(main, tape, scheduler=scheduler, config=config)
        )
        return result.error is not None, result.digest, trace

    return replay_traced


def draw_timeline(
    main: Main,
    tape: Tape,
    *,
    scheduler: str | SchedulerSpec = "fifo",
    config: UniverseConfig | None = None,
    header: dict[str, Any],
    nearest: bool = True,
    replays: _causal.TracedReplay | None = None,
) -> tuple[Any, RunResult]:
    """Replay ``tape`` with the causal trace recorded and build its timeline
    (``simloom._timeline``), with the nearest passing universe when asked and the
    tape has deviations (found with ``replays``, by default this program's
    :func:`traced_replays`); returns the timeline and the replay's result."""
    from . import _timeline

    loops: list[Any] = []
    saved_observer = _causal.run_observer
    _causal.run_observer = loops.append
    try:
        final, trace = _causal.traced(
            lambda: replay(main, tape, scheduler=scheduler, config=config)
        )
    finally:
        _causal.run_observer = saved_observer
    closest = None
    if nearest and final.error is not None and final.tape.deviations:
        closest = _causal.nearest_passing(
            replays or traced_replays(main, scheduler=scheduler, config=config), final, trace
        )
    header = {
        **header,
        "error": f"{type(final.error).__name__}: {final.error}" if final.error else None,
        "digest": final.digest,
        "virtual_time_ns": final.virtual_time_ns,
    }
    world = getattr(loops[0], "_world", None) if loops else None
    try:
        hosts = list(world.hosts) if world is not None else []
    except Exception:  # a world that cannot say: the trace's hosts are drawn
        hosts = []
    return _timeline.build(trace, final, hosts=hosts, nearest=closest, header=header), final


# ------------------------------------------------------------ in-program choices


def _simulation() -> SimLoop | None:
    loop = asyncio.events._get_running_loop()
    return loop if isinstance(loop, SimLoop) else None


def _check_label(function: str, label: object) -> str:
    if not isinstance(label, str) or not label:
        raise SimloomUsageError(f"{function}() needs a non-empty string label, got {label!r}")
    return label


def sometimes(label: str, percent: int = 10) -> bool:
    """A tape-driven yes/no for rare branches (a dropped cache, an injected fault).

    Inside a simulation the answer is a choice labelled ``sometimes:<label>``: the
    canonical (shrunk) answer is ``False``; seeded strategies answer ``True`` with
    probability ``percent``/100. Outside a simulation it is always ``False``, so it
    is safe to leave in production code. Every ``True`` counts towards the label's
    coverage.
    """
    _check_label("sometimes", label)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise SimloomUsageError(f"sometimes() percent must be an int in [0, 100], got {percent!r}")
    loop = _simulation()
    if loop is None or percent == 0:
        return False
    if _causal.recording is not None:
        _causal.recording.note_choice(loop, sys._getframe(1))
    fired = True if percent == 100 else loop._choose(f"sometimes:{label}", 2, percent) == 1
    if fired:
        loop._cover(label)
    return fired


def draw(label: str, bound: int) -> int:
    """A tape-driven integer in ``[0, bound)``, labelled ``draw:<label>``.

    Shrinks toward 0; outside a simulation it is always 0.
    """
    _check_label("draw", label)
    if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
        raise SimloomUsageError(f"draw() bound must be a positive int, got {bound!r}")
    loop = _simulation()
    if loop is None:
        return 0
    if _causal.recording is not None:
        _causal.recording.note_choice(loop, sys._getframe(1))
    return int(loop._choose(f"draw:{label}", bound))


def reached(label: str) -> None:
    """Record that the program reached a named point (coverage, and a mark in the
    event log). A no-op outside a simulation."""
    _check_label("reached", label)
    loop = _simulation()
    if loop is not None:
        loop._cover(label)
        loop._mark(f"reached:{label}")
