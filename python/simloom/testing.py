"""``@simloom.test``: explore seeded universes, shrink the first failure with
Hypothesis, save it, report it, replay it.

    @simloom.test(runs=2000)
    async def test_counter_is_atomic():
        ...

pytest collects the decorated function like any test (every parameter other than
``world`` is an ordinary fixture). Calling it:

1. replays failures saved in Hypothesis's example database for this test, if any,
   and goes on shrinking one whose shrink an earlier run did not finish;
2. explores ``runs`` seeded universes on the Rust fast path (seed ``i`` is universe
   ``i``, so ``--simloom-seed=i`` replays it);
3. hands the first failing universe's tape to Hypothesis, which re-checks it,
   shrinks it with its own shrinker and saves it under the test's database key;
4. raises the program's own error, with the report (seed, re-run command, how far
   it was shrunk, the schedule in words, artifact paths) attached as a note, and
   writes the artifacts to ``.sim/failures/`` (one that cannot be written is a
   warning line in the report, never in its place).

Owns: the decorator (its arguments, validated where it is written) and the
session's state: the options the pytest plugin installs with :func:`configure`,
the test being run, every test's :class:`TestStats`. The steps above live in
``_explore.py`` (the exploration policy), ``_shrink.py`` (1, 3), ``_report.py``
and ``_artifacts.py`` (4). Must not: import pytest (the plugin,
``pytest_plugin.py``, feeds options in through :func:`configure`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

# (``x as x``: names the pytest plugin, tests and users reach through this module.)
from . import _boundary, _budgets
from ._artifacts import ARTIFACT_DIGEST_CHARS as ARTIFACT_DIGEST_CHARS
from ._artifacts import ARTIFACT_DIR as ARTIFACT_DIR
from ._artifacts import MAX_ARTIFACT_STEM as MAX_ARTIFACT_STEM
from ._artifacts import TapeArtifact, load_tape_artifact
from ._artifacts import _artifact_stem as _artifact_stem
from ._config import UniverseConfig, config_from
from ._explore import (
    DEFAULT_MIX,
    DEFAULT_RUNS,
    DEFAULT_SCHEDULER,
    Options,
    TestStats,
    _Exploration,
    _scheduler_for_seed,
)
from ._explore import _check_scheduler as _check_scheduler
from ._shrink import _HypothesisRun as _HypothesisRun
from ._validation import check_flag, check_int, check_labels
from .errors import CoverageNotReachedError, SimloomUsageError
from .loop import DEFAULT_LIVELOCK_STEPS

__all__ = [
    "DEFAULT_MIX",
    "DEFAULT_RUNS",
    "DEFAULT_SCHEDULER",
    "CoverageNotReachedError",
    "Options",
    "TapeArtifact",
    "TestStats",
    "configure",
    "load_tape_artifact",
    "scheduler_for_seed",
    "test",
]


def scheduler_for_seed(seed: int, scheduler: str = DEFAULT_SCHEDULER) -> str:
    """The scheduler ``@simloom.test(scheduler=...)`` runs universe ``seed`` under
    (``seed`` counts from 0): under ``"mixed"``, the default,
    ``DEFAULT_MIX[seed % len(DEFAULT_MIX)]``; any other name is every seed's. So
    ``simloom.run(main, seed=s, scheduler=scheduler_for_seed(s))`` re-runs the
    exploration's universe ``s``."""
    check_int("seed", seed, minimum=0)
    return _scheduler_for_seed(_check_scheduler(scheduler), seed)


_options = Options()
#: The pytest node id of the test being run (set by the plugin), else None.
_current_test_id: str | None = None
#: Every test run this session, in order (the plugin prints them).
session_stats: list[TestStats] = []


def configure(options: Options) -> None:
    """Install command-line options (the pytest plugin calls this)."""
    global _options
    _options = options


def options() -> Options:
    """The options installed by :func:`configure`."""
    return _options


def _set_current_test(test_id: str | None) -> None:
    global _current_test_id
    _current_test_id = test_id


def test(
    fn: Callable[..., Awaitable[Any]] | None = None,
    *,
    runs: int | None = None,
    scheduler: str | None = None,
    require_coverage: Iterable[str] = (),
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
) -> Any:
    """Turn an ``async def`` test into a simloom exploration collected by pytest.

    ``runs``: universes to explore (default 2000, or ``max_examples`` from an
    explicit Hypothesis ``@settings``; ``--simloom-runs`` overrides both).
    ``scheduler``: ``"mixed"`` (default: a swarm, mostly PCT with eager starts, some
    deeper PCT and random walk; ``simloom._explore.DEFAULT_MIX``),
    ``"random"``, ``"pct"``, ``"pct:auto"``, ``"fifo"``, ``"faithful"`` (only what a
    real loop can vary: ready callbacks keep their order; see ``docs/schedulers.md``).
    ``require_coverage``: ``sometimes``/``reached`` labels that some universe must
    reach, or the test fails.
    ``boundary`` (on by default): the stdlib clocks, ``random``, ``uuid`` and
    ``os.urandom`` are virtual or tape-driven, ``time.sleep`` moves virtual time,
    blocking sockets and DNS escape (see :func:`simloom.boundary`); the wall clock starts at
    ``wall_clock_epoch``.
    ``check_determinism``: run every universe twice and fail with
    :class:`~simloom.SimloomNondeterminismError` if the runs differ
    (``--simloom-check-determinism`` turns it on for every test).
    A parameter named ``world`` receives each universe's :class:`~simloom.World`
    (hosts, network, disks, faults); every other parameter is a pytest fixture.
    ``world=False``: no simulated world, and network use is an escape.
    ``files=False``: file I/O stays on the real disk (docs/files.md).
    ``max_steps``, ``max_virtual_time``, ``watchdog``: each universe's budgets (see
    :func:`simloom.run`; ``--simloom-max-steps``, ``--simloom-max-virtual-time`` and
    ``--simloom-watchdog`` override them).
    ``cancellations=True``: the explorer may also cancel a task, or make its
    ``asyncio.timeout``/``wait_for`` expire, at any await (``--simloom-cancellations``
    turns it on for every test); each injection shrinks away when the failure does
    not need it, and the report names the await where it landed.
    ``config=``: a :class:`~simloom.UniverseConfig` giving the universe options at
    once (then leave them at their defaults).
    """
    # Validated here, where the decorator is written, even in the
    # ``@simloom.test(...)`` form that receives the function later.
    if runs is not None:
        check_int("runs", runs)
    if scheduler is not None:
        _check_scheduler(scheduler)
    required = check_labels("require_coverage", require_coverage)
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
    if fn is None:
        return functools.partial(
            test,
            runs=runs,
            scheduler=scheduler,
            require_coverage=required,
            check_determinism=check_determinism,
            config=universe,
        )
    if not inspect.iscoroutinefunction(fn):
        raise SimloomUsageError(
            f"@simloom.test decorates an async def test; {getattr(fn, '__qualname__', fn)!r} "
            "is not a coroutine function"
        )

    signature = inspect.signature(fn)
    wants_world = "world" in signature.parameters
    visible = signature.replace(
        parameters=[p for name, p in signature.parameters.items() if name != "world"]
    )

    if wants_world and not universe.world:
        raise SimloomUsageError(
            f"{fn.__qualname__} takes a `world` parameter but is decorated with world=False"
        )

    @functools.wraps(fn)
    def run_simloom_test(*args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        exploration = _Exploration(
            fn,
            run_simloom_test,
            args,
            kwargs,
            options=_options,
            test_id=_current_test_id or f"{fn.__module__}.{fn.__qualname__}",
            runs=runs,
            scheduler=scheduler,
            required=required,
            config=universe,
            check_determinism=check_determinism,
            wants_world=wants_world,
        )
        session_stats.append(exploration.stats)
        exploration.run()

    del run_simloom_test.__wrapped__  # pytest must see the visible signature below
    run_simloom_test.__signature__ = visible  # type: ignore[attr-defined]
    run_simloom_test._simloom_test = True  # type: ignore[attr-defined]
    return run_simloom_test
