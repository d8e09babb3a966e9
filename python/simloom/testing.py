"""``@simloom.test``: explore seeded universes, shrink the first failure with
Hypothesis, save it, report it, replay it.

    @simloom.test(runs=2000)
    async def test_counter_is_atomic():
        ...

pytest collects the decorated function like any test (every parameter other than
``world`` is an ordinary fixture). Calling it:

1. replays failures saved in Hypothesis's example database for this test, if any;
2. explores ``runs`` seeded universes on the Rust fast path (seed ``i`` is universe
   ``i``, so ``--simloom-seed=i`` replays it);
3. hands the first failing universe's tape to Hypothesis, which re-checks it,
   shrinks it with its own shrinker and saves it under the test's database key;
4. raises the program's own error, with the report (seed, re-run command, shrink
   story, minimal schedule in words, artifact paths) attached as a note, and writes
   the artifacts to ``.sim/failures/``.

Owns: the exploration policy, the report and the artifacts. Must not: import
pytest (the plugin, ``pytest_plugin.py``, feeds options in through
:func:`configure`).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import sys
import time
import types
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import _api, _boundary, _budgets, _hashseed
from ._api import RunResult, decode_events
from ._scheduler import SchedulerSpec, parse_scheduler
from .errors import CoverageNotReachedError, SimloomNondeterminismError, SimloomUsageError
from .loop import DEFAULT_LIVELOCK_STEPS
from .tape import Tape, atomic_write

__all__ = [
    "DEFAULT_RUNS",
    "DEFAULT_SCHEDULER",
    "CoverageNotReachedError",
    "Options",
    "TestStats",
    "configure",
    "test",
]

#: Universes explored per test when neither ``runs`` nor Hypothesis's
#: ``max_examples`` (from an explicit ``@settings``) says otherwise.
DEFAULT_RUNS = 2000
#: Seeds alternate between a uniform random walk (even seeds) and PCT with a
#: measured horizon (odd seeds): each finds bug classes the other rarely does.
DEFAULT_SCHEDULER = "mixed"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
ARTIFACT_DIR = Path(".sim") / "failures"


@dataclass
class Options:
    """Command-line options, set by the pytest plugin (``--simloom-*``)."""

    seed: int | None = None
    tape: Path | None = None
    runs: int | None = None
    scheduler: str | None = None
    shrink: bool = True
    artifact_dir: Path = ARTIFACT_DIR
    check_determinism: bool = False
    #: ``--simloom-max-steps`` and friends given on the command line (argument name
    #: → value, ``None`` for "none"); they override the test's own.
    budgets: dict[str, int | float | None] = field(default_factory=dict)


@dataclass
class TestStats:
    """What one ``@simloom.test`` run did, for the end-of-session summary."""

    test_id: str
    universes: int = 0
    #: Label → hits over the exploration, and in how many universes it fired.
    coverage: dict[str, int] = field(default_factory=dict)
    universes_reaching: dict[str, int] = field(default_factory=dict)
    outcome: str = "passed"
    note: str = ""


_options = Options()
#: The pytest node id of the test being run (set by the plugin), else None.
_current_test_id: str | None = None
#: Every test run this session, in order (the plugin prints them).
session_stats: list[TestStats] = []


def configure(options: Options) -> None:
    """Install command-line options (the pytest plugin calls this)."""
    global _options
    _options = options


def _set_current_test(test_id: str | None) -> None:
    global _current_test_id
    _current_test_id = test_id


# ------------------------------------------------------------------ schedulers


def _scheduler_for_seed(name: str, seed: int) -> str:
    if name == "mixed":
        return "random" if seed % 2 == 0 else "pct:auto"
    return name


def _check_scheduler(name: str) -> str:
    if name == "mixed":
        return name
    try:
        parse_scheduler(name)
    except SimloomUsageError as exc:
        raise SimloomUsageError(
            f"{exc} (or 'mixed', the exploration default: random and pct:auto on alternate seeds)"
        ) from None
    return name


# ------------------------------------------------------------------ reporting


def _strip_simloom_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback without simloom's own frames, so a report shows the user's
    code and nothing of the machinery."""
    frames: list[types.TracebackType] = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            frames.append(tb)
        tb = tb.tb_next
    rebuilt: types.TracebackType | None = None
    for frame in reversed(frames):
        rebuilt = types.TracebackType(rebuilt, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
    return rebuilt


def _safe_name(test_id: str) -> str:
    """A file name for a test: its whole node id (module included, so same-named
    tests in different modules never share artifacts), filesystem-safe."""
    name = test_id.removeprefix("__main__.")
    name = name.replace(".py::", ".").replace("::", ".").replace("/", ".")
    return re.sub(r"[^A-Za-z0-9_.\[\]-]+", "_", name).strip("_.") or "test"


def _error_line(error: BaseException) -> str:
    """``Type: first line of the message`` (pytest's assertion rewriting adds lines
    with object addresses, which would make artifacts differ from run to run)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _write_artifacts(
    options: Options,
    test_id: str,
    seed: int | None,
    scheduler: str,
    result: RunResult,
    original: Tape | None,
    shrunk: bool,
) -> list[Path]:
    stem = f"{_safe_name(test_id)}-seed{seed}" if seed is not None else _safe_name(test_id)
    if not shrunk:
        # Never overwrite a shrunk failure with an unshrunk one or a replay.
        stem += "-unshrunk" if seed is not None else "-replay"
    tape_path = options.artifact_dir / f"{stem}.tape.json"
    events_path = options.artifact_dir / f"{stem}.events.jsonl"
    from . import __version__

    document: dict[str, Any] = json.loads(result.tape.to_json())
    document.update(
        {
            "test": test_id,
            "seed": seed,
            "scheduler": scheduler,
            "error": _error_line(result.error) if result.error else None,
            "digest": result.digest,
            "hashseed": _hashseed.current_hashseed(),
            "python": sys.version.split()[0],
            "simloom": __version__,
        }
    )
    if original is not None:
        document["unshrunk_deviations"] = [list(d) for d in original.deviations]
    atomic_write(tape_path, (json.dumps(document, indent=2) + "\n").encode())
    lines = []
    decision = 0
    for index, event in enumerate(decode_events(result.event_log_bytes)):
        record: dict[str, Any] = {"i": index, "kind": event.kind, "t_ns": event.time_ns}
        if event.label is not None:
            record["label"] = event.label
        if event.kind == "decision":
            record.update(decision=decision, bound=event.bound, value=event.value)
            decision += 1
        elif event.value is not None:
            record["value"] = event.value
        lines.append(json.dumps(record))
    atomic_write(events_path, ("\n".join(lines) + "\n").encode())
    return [tape_path, events_path]


def _draw_count(tape: Tape) -> int:
    return len(tape.to_draws())


@dataclass
class _Shrink:
    result: RunResult
    candidates: int
    seconds: float


def _rerun_command(
    test_id: str, seed: int, scheduler: str, *, boundary: bool, check_determinism: bool = False
) -> str:
    """How to run universe ``seed`` of a test again: the pytest command line, or the
    ``simloom.run`` call outside pytest."""
    if "::" in test_id:
        command = f"pytest '{test_id}' --simloom-seed={seed}"
        return command + (" --simloom-check-determinism" if check_determinism else "")
    options = (", boundary=True" if boundary else "") + (
        ", check_determinism=True" if check_determinism else ""
    )
    return f"simloom.run(main, seed={seed}, scheduler={scheduler!r}{options})"


def _report(
    test_id: str,
    *,
    boundary: bool,
    how: str,
    seed: int | None,
    scheduler: str,
    found: RunResult,
    final: RunResult,
    shrink: _Shrink | None,
    artifacts: Sequence[Path],
    universes: int,
) -> str:
    assert final.error is not None
    name = test_id.split("::")[-1]
    lines = [f"simloom found a failing universe in {name} ({how})"]
    under_pytest = "::" in test_id
    quoted = f"'{test_id}'"
    if seed is not None:
        rerun = _rerun_command(test_id, seed, scheduler, boundary=boundary)
        lines.append(f"  seed: {seed}   (scheduler {scheduler}; re-run: {rerun})")
    lines.append(f"  error: {_error_line(final.error)}")
    lines.append(f"  hash seed: {_hashseed.describe_hashseed()}")
    if universes:
        lines.append(f"  universes explored: {universes}")
    if shrink is not None:
        lines.append(
            f"  shrunk: {_draw_count(found.tape)} draws → {_draw_count(final.tape)}, "
            f"schedule deviations {found.deviations} → {final.deviations} "
            f"({shrink.candidates} candidate runs, {shrink.seconds:.2f} s)"
        )
    story = final.explain().replace("\n", "\n  ")
    lines.append(f"  minimal schedule: {story}")
    if artifacts:
        replay = (
            f"pytest {quoted} --simloom-tape={artifacts[0]}"
            if under_pytest
            else f"simloom.replay(main, simloom.Tape.load({str(artifacts[0])!r})"
            + (", boundary=True)" if boundary else ")")
        )
        lines.append(f"  replay it: {replay}")
        lines.append("  artifacts: " + ", ".join(str(p) for p in artifacts))
    return "\n".join(lines)


# ------------------------------------------------------------------ shrinking


def _explicit_settings(fn: Any, wrapper: Any) -> Any:
    """Hypothesis settings applied to the test with ``@settings`` (above or below
    ``@simloom.test``), or ``None``."""
    return getattr(wrapper, "_hypothesis_internal_use_settings", None) or getattr(
        fn, "_hypothesis_internal_use_settings", None
    )


class _HypothesisRun:
    """One Hypothesis test over ``universes()`` for a simloom test: it replays
    database entries and shrinks, sharing the simloom test's database key."""

    def __init__(
        self,
        test_id: str,
        main: Callable[..., Awaitable[Any]],
        base: Any,
        boundary: bool,
        wall_clock_epoch: datetime | float,
        world: bool = True,
        budgets: _budgets.Budgets | None = None,
    ) -> None:
        from hypothesis import HealthCheck, Phase, given, settings

        from .hypothesis import _compat, universes

        self.candidates = 0
        #: The program's own notes on each error, before Hypothesis adds its own.
        self.notes: dict[int, list[str]] = {}
        self.last: RunResult | None = None
        self.first: RunResult | None = None
        outer = self

        def replay_universe(universe: Any) -> None:
            outer.candidates += 1
            result = universe.run_result(main)
            if outer.first is None:
                outer.first = result
            outer.last = result
            if result.error is not None:
                outer.notes[id(result.error)] = list(getattr(result.error, "__notes__", ()))
                raise result.error

        self.extra = b"simloom.test:" + test_id.encode()
        self.key = _compat.database_key(replay_universe, self.extra)
        # Without a database (``settings(database=None)``) the failure still reaches
        # the shrinker through a throwaway in-memory one.
        self.database = base.database
        if self.database is None:
            from hypothesis.database import InMemoryExampleDatabase

            self.database = InMemoryExampleDatabase()
        phases = [p for p in (Phase.reuse, Phase.shrink) if p in base.phases]
        wrapped = settings(
            base,
            database=self.database,
            phases=phases or [Phase.reuse],
            deadline=None,
            max_examples=1,
            report_multiple_bugs=False,
            suppress_health_check=list(HealthCheck),
        )(
            given(
                universes(
                    boundary=boundary,
                    wall_clock_epoch=wall_clock_epoch,
                    world=world,
                    **(budgets or _budgets.Budgets()).arguments(),
                )
            )(replay_universe)
        )
        self.test = wrapped

    def saved(self) -> list[bytes]:
        from .hypothesis import _compat

        return [
            *_compat.saved_choices(self.database, self.key),
            *_compat.saved_choices(self.database, _compat.secondary_key(self.key)),
        ]

    def restore_notes(self, error: BaseException) -> None:
        """Drop the notes Hypothesis attached ("Failing test case: ..."): the
        simloom report replaces them."""
        if id(error) in self.notes:
            error.__notes__ = list(self.notes[id(error)])

    def save(self, tape: Tape) -> None:
        from .hypothesis import _compat, choices_for_tape

        choices = choices_for_tape(tape)
        self.database.save(_compat.secondary_key(self.key), _compat.encode_choices(choices))

    def run(self) -> BaseException | None:
        """Run it; return the failure it ended with (``None`` if it passed)."""
        try:
            self.test()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            return exc
        return None


# ------------------------------------------------------------------ the decorator


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
    max_steps: int | None = _budgets.DEFAULT_MAX_STEPS,
    max_virtual_time: float | None = _budgets.DEFAULT_MAX_VIRTUAL_TIME,
    watchdog: float | None = _budgets.DEFAULT_WATCHDOG,
) -> Any:
    """Turn an ``async def`` test into a simloom exploration collected by pytest.

    ``runs``: universes to explore (default 2000, or ``max_examples`` from an
    explicit Hypothesis ``@settings``; ``--simloom-runs`` overrides both).
    ``scheduler``: ``"mixed"`` (default: random walk and PCT on alternate seeds),
    ``"random"``, ``"pct"``, ``"pct:auto"``, ``"fifo"``.
    ``require_coverage``: ``sometimes``/``reached`` labels that some universe must
    reach, or the test fails.
    ``boundary`` (on by default): the stdlib clocks, ``random``, ``uuid`` and
    ``os.urandom`` are virtual or tape-driven, blocking sockets, DNS and
    ``time.sleep`` escapes (see :func:`simloom.boundary`); the wall clock starts at
    ``wall_clock_epoch``.
    ``check_determinism``: run every universe twice and fail with
    :class:`~simloom.SimloomNondeterminismError` if the runs differ
    (``--simloom-check-determinism`` turns it on for every test).
    A parameter named ``world`` receives each universe's :class:`~simloom.World`
    (hosts, network, disks, faults); every other parameter is a pytest fixture.
    ``world=False``: no simulated world, and network use is an escape.
    ``max_steps``, ``max_virtual_time``, ``watchdog``: each universe's budgets (see
    :func:`simloom.run`; ``--simloom-max-steps``, ``--simloom-max-virtual-time`` and
    ``--simloom-watchdog`` override them).
    """
    if fn is None:
        return functools.partial(
            test,
            runs=runs,
            scheduler=scheduler,
            require_coverage=require_coverage,
            livelock_steps=livelock_steps,
            boundary=boundary,
            wall_clock_epoch=wall_clock_epoch,
            check_determinism=check_determinism,
            world=world,
            max_steps=max_steps,
            max_virtual_time=max_virtual_time,
            watchdog=watchdog,
        )
    if not inspect.iscoroutinefunction(fn):
        raise SimloomUsageError(
            f"@simloom.test decorates an async def test; {getattr(fn, '__qualname__', fn)!r} "
            "is not a coroutine function"
        )
    if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
        raise SimloomUsageError(f"runs must be a positive integer, got {runs!r}")
    if scheduler is not None:
        _check_scheduler(scheduler)
    _boundary.settings(boundary, wall_clock_epoch)
    if not isinstance(check_determinism, bool):
        raise SimloomUsageError(
            f"check_determinism must be True or False, got {check_determinism!r}"
        )
    budgets = _budgets.budgets(max_steps, max_virtual_time, watchdog)
    required = [require_coverage] if isinstance(require_coverage, str) else list(require_coverage)
    for label in required:
        if not isinstance(label, str) or not label:
            raise SimloomUsageError(
                f"require_coverage labels must be non-empty strings, got {label!r}"
            )

    signature = inspect.signature(fn)
    wants_world = "world" in signature.parameters
    visible = signature.replace(
        parameters=[p for name, p in signature.parameters.items() if name != "world"]
    )

    if wants_world and not world:
        raise SimloomUsageError(
            f"{fn.__qualname__} takes a `world` parameter but is decorated with world=False"
        )

    @functools.wraps(fn)
    def run_simloom_test(*args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        _Exploration(
            fn,
            run_simloom_test,
            args,
            kwargs,
            runs=runs,
            scheduler=scheduler,
            required=required,
            livelock_steps=livelock_steps,
            boundary=boundary,
            wall_clock_epoch=wall_clock_epoch,
            check_determinism=check_determinism,
            world=world,
            wants_world=wants_world,
            budgets=budgets,
        ).run()

    del run_simloom_test.__wrapped__  # pytest must see the visible signature below
    run_simloom_test.__signature__ = visible  # type: ignore[attr-defined]
    run_simloom_test._simloom_test = True  # type: ignore[attr-defined]
    return run_simloom_test


class _Exploration:
    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        wrapper: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        runs: int | None,
        scheduler: str | None,
        required: list[str],
        livelock_steps: int,
        boundary: bool,
        wall_clock_epoch: datetime | float,
        check_determinism: bool,
        world: bool = True,
        wants_world: bool = False,
        budgets: _budgets.Budgets | None = None,
    ) -> None:
        self.fn = fn
        self.world = world
        self.options = _options
        self.test_id = _current_test_id or f"{fn.__module__}.{fn.__qualname__}"
        from hypothesis import settings

        explicit = _explicit_settings(fn, wrapper)
        # An explicit @settings applies (max_examples as runs); else the profile.
        self.settings: Any = explicit if explicit is not None else settings.default
        default_runs = explicit.max_examples if explicit is not None else DEFAULT_RUNS
        self.runs = self.options.runs or runs or default_runs
        self.scheduler = _check_scheduler(self.options.scheduler or scheduler or DEFAULT_SCHEDULER)
        self.required = required
        self.livelock_steps = livelock_steps
        self.budgets = (budgets or _budgets.Budgets()).overridden(self.options.budgets)
        self.boundary = boundary
        self.wall_clock_epoch = wall_clock_epoch
        self.patches = _boundary.settings(boundary, wall_clock_epoch)
        self.check_determinism = check_determinism or self.options.check_determinism
        self.resolved: dict[str, SchedulerSpec] = {}
        self.stats = TestStats(self.test_id)
        session_stats.append(self.stats)

        main: Callable[..., Awaitable[Any]]
        if wants_world:

            def main(world: Any) -> Awaitable[Any]:
                return fn(*args, world=world, **kwargs)

        else:

            def main() -> Awaitable[Any]:
                return fn(*args, **kwargs)

        self.main = main

    # -- helpers

    def _run_seed(self, seed: int) -> RunResult:
        name = _scheduler_for_seed(self.scheduler, seed)
        spec = self.resolved.get(name)
        if spec is None:
            # pct:auto's horizon comes from a FIFO probe run, which is the same for
            # every seed: measure it once per exploration, not once per universe.
            spec = _api._resolve_horizon(
                self.main,
                parse_scheduler(name),
                self.livelock_steps,
                self.patches,
                self.world,
                self.budgets,
            )
            self.resolved[name] = spec
        try:
            return _api.run(
                self.main,
                seed=seed,
                scheduler=spec,
                livelock_steps=self.livelock_steps,
                boundary=self.boundary,
                wall_clock_epoch=self.wall_clock_epoch,
                check_determinism=self.check_determinism,
                world=self.world,
                **self.budgets.arguments(),
            )
        except SimloomNondeterminismError as exc:
            exc.add_note(
                f"universe {seed} of {self.test_id}; re-run it: "
                + _rerun_command(
                    self.test_id,
                    seed,
                    _scheduler_for_seed(self.scheduler, seed),
                    boundary=self.boundary,
                    check_determinism=True,
                )
            )
            raise exc.with_traceback(_strip_simloom_frames(exc.__traceback__)) from None

    def _count(self, result: RunResult) -> None:
        self.stats.universes += 1
        for label, hits in result.coverage.items():
            self.stats.coverage[label] = self.stats.coverage.get(label, 0) + hits
            reaching = self.stats.universes_reaching
            reaching[label] = reaching.get(label, 0) + 1

    def _fail(
        self,
        *,
        how: str,
        seed: int | None,
        found: RunResult,
        hypothesis_run: _HypothesisRun | None,
        shrink_seconds: float,
    ) -> None:
        __tracebackhide__ = True
        final = found
        shrink: _Shrink | None = None
        if hypothesis_run is not None and hypothesis_run.last is not None:
            if hypothesis_run.last.error is not None:
                final = hypothesis_run.last
            shrink = _Shrink(final, hypothesis_run.candidates, shrink_seconds)
        assert final.error is not None
        scheduler = _scheduler_for_seed(self.scheduler, seed) if seed is not None else "replay"
        artifacts = _write_artifacts(
            self.options,
            self.test_id,
            seed,
            scheduler,
            final,
            found.tape if final is not found else None,
            shrunk=hypothesis_run is not None,
        )
        report = _report(
            self.test_id,
            boundary=self.boundary,
            how=how,
            seed=seed,
            scheduler=scheduler,
            found=found,
            final=final,
            shrink=shrink,
            artifacts=artifacts,
            universes=self.stats.universes,
        )
        self.stats.outcome = "failed"
        self.stats.note = report
        error = final.error
        if hypothesis_run is not None:
            hypothesis_run.restore_notes(error)
        error.add_note(report)
        raise error.with_traceback(_strip_simloom_frames(error.__traceback__))

    def _hypothesis_run(self) -> _HypothesisRun:
        return _HypothesisRun(
            self.test_id,
            self.main,
            self.settings,
            self.boundary,
            self.wall_clock_epoch,
            self.world,
            self.budgets,
        )

    def _shrink(self, tape: Tape) -> tuple[_HypothesisRun, float]:
        hypothesis_run = self._hypothesis_run()
        hypothesis_run.save(tape)
        started = time.perf_counter()
        hypothesis_run.run()
        return hypothesis_run, time.perf_counter() - started

    # -- the modes

    def run(self) -> None:
        __tracebackhide__ = True
        try:
            with _api.frozen_heap():
                self._run()
        except BaseException:
            if self.stats.outcome == "passed":
                self.stats.outcome = "error"
            raise

    def _run(self) -> None:
        __tracebackhide__ = True
        if self.options.tape is not None:
            return self._replay_tape(self.options.tape)
        if self.options.seed is not None:
            return self._replay_seed(self.options.seed)
        from hypothesis import Phase

        if Phase.reuse in self.settings.phases:
            self._replay_database()
        if Phase.generate in self.settings.phases:
            self._explore()
        self._check_coverage()
        return None

    def _replay_tape(self, path: Path) -> None:
        __tracebackhide__ = True
        document = _artifact_document(path)
        owner = document.get("test")
        if isinstance(owner, str) and owner != self.test_id:
            raise SimloomUsageError(
                f"--simloom-tape={path} belongs to test {owner!r}, not {self.test_id!r}; "
                "select that test (or drop --simloom-tape)"
            )
        result = _api.replay(
            self.main,
            Tape.load(path),
            livelock_steps=self.livelock_steps,
            boundary=self.boundary,
            wall_clock_epoch=self.wall_clock_epoch,
            world=self.world,
            **self.budgets.arguments(),
        )
        self._count(result)
        if result.error is not None:
            self._fail(
                how=f"replayed {path}",
                seed=None,
                found=result,
                hypothesis_run=None,
                shrink_seconds=0,
            )
        if result.misaligned:
            self.stats.note = f"--simloom-tape={path} no longer fits this test (misaligned replay)"
        else:
            self.stats.note = _replay_divergence(document, result) or ""

    def _replay_seed(self, seed: int) -> None:
        __tracebackhide__ = True
        result = self._run_seed(seed)
        self._count(result)
        if result.error is not None:
            self._fail_and_shrink(how=f"seed {seed} replayed", seed=seed, found=result)

    def _replay_database(self) -> None:
        __tracebackhide__ = True
        hypothesis_run = self._hypothesis_run()
        if not hypothesis_run.saved():
            return
        started = time.perf_counter()
        failure = hypothesis_run.run()
        if failure is None or hypothesis_run.first is None or hypothesis_run.last is None:
            return
        self.stats.universes += hypothesis_run.candidates
        self._fail(
            how="a failure saved in the example database, replayed",
            seed=None,
            found=hypothesis_run.first if hypothesis_run.first.error else hypothesis_run.last,
            hypothesis_run=hypothesis_run,
            shrink_seconds=time.perf_counter() - started,
        )

    def _explore(self) -> None:
        __tracebackhide__ = True
        for seed in range(self.runs):
            result = self._run_seed(seed)
            self._count(result)
            if result.error is not None:
                self._fail_and_shrink(
                    how=f"universe {seed + 1} of {self.runs}", seed=seed, found=result
                )

    def _fail_and_shrink(self, *, how: str, seed: int, found: RunResult) -> None:
        __tracebackhide__ = True
        from hypothesis import Phase

        if not self.options.shrink or Phase.shrink not in self.settings.phases:
            self._fail(how=how, seed=seed, found=found, hypothesis_run=None, shrink_seconds=0)
        hypothesis_run, seconds = self._shrink(found.tape)
        self._fail(
            how=how, seed=seed, found=found, hypothesis_run=hypothesis_run, shrink_seconds=seconds
        )

    def _check_coverage(self) -> None:
        missing = [label for label in self.required if not self.stats.coverage.get(label)]
        if missing:
            self.stats.outcome = "failed"
            raise CoverageNotReachedError(
                f"no universe of {self.stats.universes} reached "
                + ", ".join(repr(m) for m in missing)
                + " (require_coverage); reached: "
                + (
                    ", ".join(f"{k}={v}" for k, v in sorted(self.stats.coverage.items()))
                    or "nothing"
                )
            )


def _artifact_document(path: Path) -> dict[str, Any]:
    """The fields of an artifact tape file (empty if it cannot be read)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


def _artifact_test(path: Path) -> str | None:
    """The test id recorded in an artifact tape file, if any."""
    test_id = _artifact_document(path).get("test")
    return test_id if isinstance(test_id, str) else None


def _replay_divergence(document: dict[str, Any], result: RunResult) -> str | None:
    """Why a replayed artifact did not give the universe it recorded, if it did not:
    a different digest, and whether the hash seed may be the reason."""
    recorded = document.get("digest")
    if not isinstance(recorded, str) or recorded == result.digest:
        return None
    note = (
        f"the replay is not the recorded universe (digest {recorded[:12]}… recorded, "
        f"{result.digest[:12]}… now)"
    )
    recorded_seed = document.get("hashseed")
    current_seed = _hashseed.current_hashseed()
    if current_seed is None or recorded_seed != current_seed:
        recorded_with = "random" if recorded_seed is None else f"PYTHONHASHSEED={recorded_seed}"
        note += (
            f"; recorded with hash seed {recorded_with}, replayed with "
            f"{_hashseed.describe_hashseed()}"
        )
    return note
