"""``pytest --simloom``: the tests a suite already has, run on SimLoop unchanged.

Every test the option selects runs first in the polite universe (FIFO, the order
the stock loop uses), then, with ``--simloom=N``, in ``N`` explored universes
(seed ``i`` is universe ``i``). Each universe is one whole run of the test's
protocol (set-up, call, teardown): its function-scoped fixtures are made again,
and every event loop the test makes while it runs is a :class:`SimLoop` of that
universe:

* pytest-asyncio, through its ``pytest_asyncio_loop_factories`` hook;
* everything else that asks asyncio for a new loop (``asyncio.run``,
  ``asyncio.Runner``, ``asyncio.new_event_loop``, ``IsolatedAsyncioTestCase``,
  anyio's pytest plugin on the asyncio backend), through an event-loop policy
  installed while the universe runs and removed however it ends.

A test that passes on FIFO but fails in an explored universe is reported as
schedule-dependent, with its seed, the command that replays it and the schedule
in words. A test failing on FIFO fails as it would on the stock loop.

Owns: which tests run in universes, the universe of the test running now, the
loops made in it, and the schedule-dependent report. Must not: explore or shrink
``@simloom.test`` explorations (``_explore.py``), or change how a loop schedules.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import _api, _causal
from ._api import RunResult
from ._config import UniverseConfig
from ._explore import _scheduler_for_seed
from ._report import _rerun_command, _shrink_lines
from ._scheduler import SchedulerSpec, parse_scheduler, replay_questions
from ._shrink import FINISHED, NOT_SHRUNK, PARTLY, _HypothesisRun, _Shrink
from .loop import SimLoop
from .tape import Tape

__all__: list[str] = []

#: The scheduler of explored universes unless ``--simloom-scheduler`` says
#: otherwise: the faithful one, which explores only what a real loop can vary
#: (existing tests may rely on call_soon's FIFO order; see docs/schedulers.md).
#: ``--simloom-scheduler=mixed`` gives ``@simloom.test``'s swarm of PCT and random walk.
DEFAULT_SCHEDULER = "faithful"


@dataclass(frozen=True)
class Settings:
    """The session's ``--simloom`` settings (``None``: the option is off)."""

    universes: int
    strict: bool = False
    scheduler: str = DEFAULT_SCHEDULER
    #: ``--simloom-seed``: run only this universe of each selected test.
    seed: int | None = None
    budgets: dict[str, int | float | None] = field(default_factory=dict)
    #: ``--simloom-cancellations``: explored universes may inject cancellations.
    cancellations: bool = False

    def config(self, strict: bool) -> UniverseConfig:
        # An existing suite's files are real (its tmp_path, its fixtures' data):
        # files=False keeps them so.
        base = UniverseConfig(
            unhandled="fail" if strict else "log",
            cancellations=self.cancellations,
            files=False,
        )
        if self.budgets:
            return base.with_budgets(base.budgets.overridden(self.budgets))
        return base


@dataclass
class Universe:
    """One universe of one test: how its loops are made, and the loops made."""

    seed: int | None  # None: the polite (FIFO) universe
    scheduler: SchedulerSpec
    scheduler_name: str
    config: UniverseConfig
    thread: int = field(default_factory=threading.get_ident)
    loops: list[SimLoop] = field(default_factory=list)
    #: Runs of a SimLoop the universe did not make (a loop of a wider fixture
    #: scope, made in an earlier universe): those runs are not this universe's.
    foreign_runs: int = 0
    #: Makes the loops instead (a shrink: they draw from Hypothesis).
    make_loop: Callable[[], SimLoop] | None = None
    #: The exceptions that failed a phase of the test's run in this universe.
    failures: list[BaseException] = field(default_factory=list)

    def new_loop(self) -> SimLoop:
        index = len(self.loops)
        if self.make_loop is not None:
            loop = self.make_loop()
        else:
            seed = 0 if self.seed is None else loop_seed(self.seed, index)
            loop = SimLoop(seed=seed, scheduler=self.scheduler, config=self.config)
        self.loops.append(loop)
        return loop

    def injected(self) -> bool:
        """Whether a loop of this universe injected a cancellation or a timeout."""
        return any(
            loop._cancel_injector is not None and loop._cancel_injector.injected
            for loop in self.loops
        )

    def failed_on_garbage(self) -> bool:
        """Whether what failed the run is only unraisable exceptions pytest turned
        into errors (a finalizer's warning under ``-W error``, such as an unclosed
        socket's ResourceWarning): garbage collected while the universe ran,
        which may have been made before it (the collector runs whenever
        allocations say so)."""
        return bool(self.failures) and all(_unraisable_only(error) for error in self.failures)

    def results(self, failed: bool) -> list[RunResult]:
        """The results of the loops the test made and closed (a loop of a wider
        fixture scope, still open, is left alone)."""
        results = []
        for loop in self.loops:
            if loop.is_closed():
                error = RuntimeError("the test failed") if failed else None
                results.append(_api._result_of(loop, None, error, self.seed, self.scheduler_name))
        return results


def _unraisable_only(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return all(_unraisable_only(inner) for inner in error.exceptions)
    return isinstance(error, pytest.PytestUnraisableExceptionWarning)


@dataclass(frozen=True)
class Garbage:
    """An unraisable exception from garbage that a universe's run did not make:
    raised in it, its re-run (after the collector ran first) passed; or met by
    the collection made before that re-run."""

    test_id: str
    #: Which universe's run met it, in words ("the polite universe", "universe 6").
    where: str
    message: str


def garbage_message(error: BaseException) -> str:
    """One line per unraisable exception in ``error`` (pytest's warning about it,
    and the finalizer's exception it carries)."""
    if isinstance(error, BaseExceptionGroup):
        return "\n".join(garbage_message(inner) for inner in error.exceptions)
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    cause = error.__cause__
    if cause is not None:
        text += f" ({type(cause).__name__}: {cause})"
    return text


def collect_garbage_first(test_id: str, where: str) -> list[Garbage]:
    """Collect garbage now, before a universe's run is repeated: what the
    finalizers raise is kept (returned), not reported against the run."""
    met: list[Garbage] = []

    def keep(unraisable: Any) -> None:
        summary = unraisable.err_msg or "Exception ignored in"
        text = f"{summary}: {unraisable.object!r}"
        if unraisable.exc_value is not None:
            text += f" ({type(unraisable.exc_value).__name__}: {unraisable.exc_value})"
        met.append(Garbage(test_id, where, text))

    saved = sys.unraisablehook
    sys.unraisablehook = keep
    try:
        # (The test's warning filters apply: under -W error a finalizer's
        # warning is an unraisable exception, otherwise a warning of the test.)
        gc.collect()
    finally:
        sys.unraisablehook = saved
    return met


def loop_seed(seed: int, index: int) -> int:
    """The seed of the ``index``-th loop a test makes in universe ``seed``: the
    universe's own seed for the first, a fixed mix of both for the others."""
    if index == 0:
        return seed
    return (seed * 0x9E3779B1 + index * 0x85EBCA77) % (1 << 63)


_current: Universe | None = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A loop for whoever asks: the running universe's next SimLoop on the test's
    thread, the stock loop anywhere else."""
    universe = _current
    if universe is None or threading.get_ident() != universe.thread:
        return asyncio.SelectorEventLoop()
    return universe.new_loop()


class _Policy(asyncio.DefaultEventLoopPolicy):
    """The event-loop policy while a universe runs: new loops are its SimLoops."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return new_event_loop()


class PytestAsyncioLoops:
    """pytest-asyncio's loop-factory hook (registered only when pytest-asyncio is
    loaded): its runners make their loops through :func:`new_event_loop`. A
    factory of the suite's own (its conftest implementing the hook) wins."""

    @pytest.hookimpl(trylast=True)
    def pytest_asyncio_loop_factories(
        self, config: Any, item: Any
    ) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
        return {"simloom": new_event_loop}


def _note_run(loop: SimLoop) -> None:
    universe = _current
    if universe is None or threading.get_ident() != universe.thread:
        return
    if not any(made is loop for made in universe.loops):
        universe.foreign_runs += 1


def run_in_universe(universe: Universe, run: Callable[[], Any]) -> Any:
    """``run()`` with ``universe`` current, the policy installed and the loop runs
    observed; all undone on every way out (an interrupt included)."""
    global _current
    saved = asyncio.get_event_loop_policy()
    saved_observer = _causal.run_observer
    asyncio.set_event_loop_policy(_Policy())
    _current = universe

    def observe(loop: SimLoop) -> None:
        _note_run(loop)
        if saved_observer is not None:  # (a causal trace being recorded)
            saved_observer(loop)

    _causal.run_observer = observe
    try:
        return run()
    finally:
        _causal.run_observer = saved_observer
        _current = None
        asyncio.set_event_loop_policy(saved)


def make_universe(
    settings: Settings, seed: int | None, strict: bool, fifo_decisions: int
) -> Universe:
    config = settings.config(strict)
    if seed is None:
        return Universe(None, parse_scheduler("fifo"), "fifo", config)
    name = _scheduler_for_seed(settings.scheduler, seed)
    spec = parse_scheduler(name)
    if spec.auto_horizon:
        # pct:auto's horizon: the decisions of the test's FIFO run.
        spec = SchedulerSpec(
            "pct", depth=spec.depth, horizon=max(1, fifo_decisions), eager=spec.eager
        )
    return Universe(seed, spec, name, config)


def shrink(
    test_id: str,
    found: Universe,
    result: RunResult,
    run_test: Callable[[Universe], bool],
) -> tuple[RunResult, _Shrink]:
    """Shrink the failing universe ``found`` (whose one loop gave ``result``) with
    the machinery of ``@simloom.test``: Hypothesis replays its tape and shrinks it
    toward FIFO, each candidate a whole run of the test (``run_test(universe)``
    says whether it failed). Returns the smallest failing result found."""
    from hypothesis import settings

    if len(found.loops) != 1:
        why = f"the test made {len(found.loops)} event loops; simloom shrinks a test's one loop"
        return result, _Shrink(NOT_SHRUNK, why=why)

    def program(make_loop: Callable[[], SimLoop]) -> RunResult:
        universe = Universe(None, found.scheduler, "hypothesis", found.config, make_loop=make_loop)
        failed = run_test(universe)
        results = universe.results(failed)
        if not results:
            raise RuntimeError("the test made no event loop in this universe")
        return results[-1]

    base = settings(settings.default, database=None)
    question_model = replay_questions(found.scheduler)
    hypothesis_run = _HypothesisRun(
        test_id, _no_main, base, found.config, loops=program, scheduler=question_model
    )
    hypothesis_run.save(result.tape)
    started = time.perf_counter()
    hypothesis_run.run()
    seconds = time.perf_counter() - started
    ran, stopped = hypothesis_run.shrink_result()
    final = hypothesis_run.last
    if final is None or final.error is None:
        why = "Hypothesis did not reproduce the failure from its tape"
        return result, _Shrink(
            NOT_SHRUNK, why=why, candidates=hypothesis_run.candidates, seconds=seconds
        )
    state = FINISHED if ran and stopped is None else PARTLY
    shrunk = _Shrink(
        state,
        why="" if stopped is None else f"Hypothesis stopped: {stopped}",
        candidates=hypothesis_run.candidates,
        seconds=seconds,
    )
    return final, shrunk


def in_code(found: Universe, result: RunResult, run_test: Callable[[Universe], bool]) -> list[str]:
    """``result`` (the failing universe's one loop, shrunk) explained: its
    deviations told in code and the nearest passing universe, from runs of the
    test replaying tapes with the causal trace recorded."""
    scheduler = found.scheduler if replay_questions(found.scheduler) else "fifo"

    def replay(tape: Tape) -> tuple[bool, str | None, _causal.CausalTrace]:
        def replay_loop() -> SimLoop:
            return SimLoop(tape=tape, scheduler=scheduler, config=found.config)

        universe = Universe(None, found.scheduler, "replay", found.config, make_loop=replay_loop)
        failed, trace = _causal.traced(lambda: run_test(universe))
        replayed = universe.results(failed)
        digest = replayed[0].digest if len(replayed) == 1 else None
        return failed, digest, trace

    return _causal.explain(replay, result)


def collect_failed_universes() -> None:
    """Collect what the failing universe and the shrink's candidate runs left
    behind (each a run of the same failing test: coroutines its failure left
    unawaited, tasks it left pending), so that its "never awaited" and "exception
    ignored" echoes are not reported against the next test. The failure itself is
    what the test reports."""
    saved = sys.unraisablehook
    sys.unraisablehook = _ignore_unraisable
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gc.collect()
    finally:
        sys.unraisablehook = saved


def _ignore_unraisable(unraisable: Any) -> None:
    pass


async def _no_main() -> None:  # pragma: no cover - never run (loops= runs instead)
    pass


def replay_command(test_id: str, seed: int, settings: Settings, strict: bool) -> str:
    command = _rerun_command(test_id, seed, "", boundary=True) + " --simloom"
    if settings.scheduler != DEFAULT_SCHEDULER:
        command += f" --simloom-scheduler={settings.scheduler}"
    if strict and settings.strict:  # (a marker's strict=True comes with the test)
        command += " --simloom-strict"
    return command


def schedule_dependent_report(
    test_id: str,
    *,
    seed: int,
    universe: Universe,
    universes: int,
    explored: int,
    settings: Settings,
    strict: bool,
    results: list[RunResult],
    shrunk: tuple[RunResult, _Shrink] | None = None,
    told: list[str] | None = None,
) -> str:
    """What ``pytest --simloom`` says about a test that passed on FIFO and failed
    in universe ``seed`` (``told``: its minimal schedule in code)."""
    name = test_id.split("::")[-1]
    lines = [
        f"simloom: {name} is schedule-dependent: it passed in the polite (FIFO) universe "
        f"and failed in universe {seed} (explored {explored} of {universes})",
        f"  seed: {seed}   (scheduler {universe.scheduler_name})",
        f"  replay it: {replay_command(test_id, seed, settings, strict)}",
    ]
    if not results:
        lines.append("  schedule: (the test made no event loop that it closed)")
    for index, result in enumerate(results):
        which = "" if len(results) == 1 else f" of loop {index + 1} of {len(results)}"
        story = result.explain().replace("\n", "\n  ")
        lines.append(
            f"  schedule{which} ({result.decisions} decisions, {result.deviations} "
            f"deviations, {result.virtual_time:g} virtual s): {story}"
        )
    if shrunk is not None and results:
        final, how = shrunk
        lines.extend(_shrink_lines(results[0], final, how))
        if final is not results[0]:
            story = final.explain().replace("\n", "\n  ")
            lines.append(f"  minimal schedule: {story}")
    if told:
        lines.append("  the schedule in code:")
        lines.extend(f"    {line}" for line in told)
    return "\n".join(lines)
