"""The pytest plugin (loaded automatically through the ``pytest11`` entry point).

Adds the ``--simloom-*`` options, validates them up front, runs ``async def`` tests
that take a ``simloom.universes()`` argument inside their universe (through
Hypothesis's ``inner_test`` hook), and prints what each ``@simloom.test`` explored.

Owns: pytest integration. Must not: explore or shrink (``testing.py`` does).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import os
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from . import _budgets, _cancellations, _hashseed, _hostfs, _report, testing
from . import _pytest_universes as universes
from .errors import SimloomUsageError, TapeError

__all__: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("simloom", "simloom: deterministic simulation testing")
    group.addoption(
        "--simloom",
        nargs="?",
        const="",
        default=None,
        metavar="N",
        help="run every asyncio test on SimLoop: the polite (FIFO) universe, then N "
        "explored universes (bare --simloom: the ini option's N, else 0); write "
        "--simloom=N, or put it after the paths, so that a path is not taken for N",
    )
    group.addoption(
        "--simloom-strict",
        action="store_true",
        default=False,
        help="under --simloom, fail a universe on an exception the stock loop only "
        "logs (never-retrieved task exceptions, call_exception_handler)",
    )
    parser.addini(
        "simloom",
        "universes to explore per asyncio test after the FIFO one, as --simloom=N "
        "(empty or 'off': only with --simloom)",
        default="",
    )
    group.addoption(
        "--simloom-seed",
        type=int,
        metavar="N",
        help="replay universe N (seed N) of each selected @simloom.test exactly",
    )
    group.addoption(
        "--simloom-tape",
        metavar="PATH",
        help="replay a saved tape (an artifact from .sim/failures/) in the test it belongs to",
    )
    group.addoption(
        "--simloom-runs",
        type=int,
        metavar="N",
        help="universes to explore per @simloom.test (overrides runs= and max_examples)",
    )
    group.addoption(
        "--simloom-scheduler",
        metavar="NAME",
        help="scheduler for every @simloom.test: mixed, random, pct, pct:auto, fifo",
    )
    group.addoption(
        "--simloom-no-shrink",
        action="store_true",
        default=False,
        help="report the first failing universe as found, without shrinking it",
    )
    group.addoption(
        "--simloom-check-determinism",
        action="store_true",
        default=False,
        help="run every universe of each @simloom.test twice and fail, naming the "
        "first difference, if the two runs differ",
    )
    group.addoption(
        "--simloom-cancellations",
        action="store_true",
        default=False,
        help="let explored universes cancel a task, or make its asyncio.timeout/wait_for "
        "expire, at any await (cancellations=True for every @simloom.test and --simloom)",
    )
    group.addoption(
        "--simloom-max-steps",
        metavar="N",
        help="steps each universe's run may take before SimStepBudgetError "
        f"(default {_budgets.DEFAULT_MAX_STEPS:,}; 'none': unbounded); overrides max_steps=",
    )
    group.addoption(
        "--simloom-max-virtual-time",
        metavar="SECONDS",
        help="virtual seconds each universe's run may last before SimTimeBudgetError "
        f"(default {_budgets.DEFAULT_MAX_VIRTUAL_TIME:g}, one day; 'none': unbounded); "
        "overrides max_virtual_time=",
    )
    group.addoption(
        "--simloom-watchdog",
        metavar="SECONDS",
        help="wall-clock seconds one step may run before SimWatchdogError "
        f"(default {_budgets.DEFAULT_WATCHDOG:g}; 0 or 'none': off); overrides watchdog=",
    )
    group.addoption(
        "--simloom-pin-hashseed",
        action="store_true",
        default=False,
        help="re-run pytest with PYTHONHASHSEED=0 unless the hash seed is already "
        "pinned (so str/bytes set orders, and replays, are the same in every process)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("simloom_pin_hashseed") and _hashseed.current_hashseed() is None:
        # Re-execute before anything runs; output capture would swallow the new
        # process's output, so stop it first.
        capture: Any = config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.stop_global_capturing()
        _hashseed.pin_hashseed()
    config.addinivalue_line(
        "markers",
        "simloom(universes=N, strict=False): run this test on SimLoop, the FIFO universe "
        "then N explored ones (with --simloom or without); added bare by @simloom.test",
    )
    config.addinivalue_line(
        "markers", "no_simloom: run this test on the stock loop even under --simloom"
    )
    seed = config.getoption("simloom_seed")
    tape = config.getoption("simloom_tape")
    runs = config.getoption("simloom_runs")
    scheduler = config.getoption("simloom_scheduler")
    if seed is not None and seed < 0:
        raise pytest.UsageError(f"--simloom-seed must be a non-negative integer, got {seed}")
    if runs is not None and runs < 1:
        raise pytest.UsageError(f"--simloom-runs must be a positive integer, got {runs}")
    if seed is not None and tape is not None:
        raise pytest.UsageError(
            "--simloom-seed and --simloom-tape replay different things; pass one"
        )
    if scheduler is not None:
        try:
            testing._check_scheduler(scheduler)
        except ValueError as exc:
            raise pytest.UsageError(f"--simloom-scheduler: {exc}") from None
    budget_overrides: dict[str, int | float | None] = {}
    budget_flags: dict[str, str] = {}
    for name in ("max_steps", "max_virtual_time", "watchdog"):
        text = config.getoption(f"simloom_{name}")
        if text is None:
            continue
        flag = "--simloom-" + name.replace("_", "-")
        budget_flags[flag] = text
        try:
            budget_overrides[name] = _budgets.parse_option(name, text)
            _budgets.budgets(**budget_overrides)
        except SimloomUsageError as exc:
            raise pytest.UsageError(f"{flag}: {exc}") from None
    tape_path = None
    artifact = None
    if tape is not None:
        tape_path = Path(tape)
        if not tape_path.is_file():
            raise pytest.UsageError(f"--simloom-tape: no such file: {tape}")
        try:
            # Read and decoded here, once: collection and the test reuse it.
            artifact = testing.load_tape_artifact(tape_path)
        except TapeError as exc:
            raise pytest.UsageError(f"--simloom-tape={tape}: {type(exc).__name__}: {exc}") from None
    testing.session_stats.clear()
    _report.set_session_flags(
        budget_flags,
        ("--simloom-cancellations",) if config.getoption("simloom_cancellations") else (),
    )
    _configure_universes(config, seed, scheduler, budget_overrides)
    testing.configure(
        testing.Options(
            seed=seed,
            tape=tape_path,
            tape_artifact=artifact,
            runs=runs,
            scheduler=scheduler,
            shrink=not config.getoption("simloom_no_shrink"),
            check_determinism=config.getoption("simloom_check_determinism"),
            cancellations=config.getoption("simloom_cancellations"),
            budgets=budget_overrides,
        )
    )


def _parse_universes(text: str, where: str) -> int | None:
    """N from ``--simloom=N`` or the ini option (``None``: off)."""
    text = text.strip()
    if text.lower() in ("off", "false", "no", "none"):
        return None
    try:
        count = int(text)
    except ValueError:
        raise pytest.UsageError(
            f"{where} takes a number of universes (a non-negative integer), got {text!r}"
            + (
                "; a path right after a bare --simloom is read as its value: write "
                "--simloom=N or put --simloom after the paths"
                if where == "--simloom" and not text.isdigit()
                else ""
            )
        ) from None
    if count < 0:
        raise pytest.UsageError(f"{where} must be a non-negative integer, got {text!r}")
    return count


def _configure_universes(
    config: pytest.Config,
    seed: int | None,
    scheduler: str | None,
    budgets: dict[str, int | float | None],
) -> None:
    option = config.getoption("simloom")
    ini = str(config.getini("simloom") or "")
    from_ini = _parse_universes(ini, "the ini option simloom") if ini.strip() else None
    count: int | None
    if option is None:
        count = None  # only tests marked simloom(...) run in universes
    elif option == "":
        count = from_ini or 0
    else:
        count = _parse_universes(option, "--simloom")
    if option is None and from_ini is not None:
        count = from_ini
    if count is not None and scheduler is not None and scheduler.startswith("systematic"):
        raise pytest.UsageError(
            f"--simloom-scheduler={scheduler}: the systematic search runs @simloom.test "
            "explorations; the universes of pytest --simloom take faithful (default), "
            "random, pct, pct:auto, mixed or fifo"
        )
    settings = universes.Settings(
        universes=count if count is not None else 0,
        strict=config.getoption("simloom_strict"),
        scheduler=scheduler or universes.DEFAULT_SCHEDULER,
        seed=seed,
        budgets=budgets,
        cancellations=config.getoption("simloom_cancellations"),
    )
    config.stash[_ACTIVE] = count is not None
    config.stash[_SETTINGS] = settings
    config.stash[_SCHEDULE_DEPENDENT] = []
    config.stash[_NOT_EXPLORED] = []
    config.stash[_GARBAGE] = []
    _workers_garbage.clear()
    # pytest-asyncio's loops come through its loop-factory hook. Outside a universe
    # the factory makes the stock loop; without pytest.HIDDEN_PARAM (pytest < 8.4)
    # the hook would add "[simloom]" to node ids, so it is then only used under
    # --simloom.
    wanted = count is not None or hasattr(pytest, "HIDDEN_PARAM")
    if (
        wanted
        and config.pluginmanager.has_plugin("asyncio")
        and not config.pluginmanager.has_plugin("simloom-asyncio")
    ):
        config.pluginmanager.register(universes.PytestAsyncioLoops(), "simloom-asyncio")


_ACTIVE = pytest.StashKey[bool]()
_SETTINGS = pytest.StashKey[universes.Settings]()
_SCHEDULE_DEPENDENT = pytest.StashKey[list[str]]()
#: The session's exit status (for the exit that does not wait on stuck threads).
_EXIT_STATUS = pytest.StashKey[int]()
#: Tests whose explored universes could not run, and why.
_NOT_EXPLORED = pytest.StashKey[list[str]]()
#: Unraisable exceptions from garbage a universe's run did not make.
_GARBAGE = pytest.StashKey[list[universes.Garbage]]()


def _is_simloom_test(item: pytest.Item) -> bool:
    return bool(getattr(getattr(item, "obj", None), "_simloom_test", False))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tape = config.getoption("simloom_tape")
    artifact = testing.options().tape_artifact
    owner = artifact.test if tape and artifact is not None else None
    simloom_items = [item for item in items if _is_simloom_test(item)]
    for item in simloom_items:
        item.add_marker(pytest.mark.simloom)
        # `@settings(...)` over `@simloom.test` is how Hypothesis settings reach the
        # exploration; Hypothesis's own plugin would reject it as "settings without
        # @given", so the marker it looks for is dropped (the settings stay).
        obj = getattr(item, "obj", None)
        if hasattr(obj, "_hypothesis_internal_settings_applied"):
            delattr(obj, "_hypothesis_internal_settings_applied")
    if owner is not None and simloom_items:
        matching = [item for item in simloom_items if item.nodeid == owner]
        if not matching:
            if len(simloom_items) == 1:
                return  # the test itself refuses it, naming both tests
            raise pytest.UsageError(
                f"--simloom-tape={tape} belongs to test {owner!r}, which is not among the "
                "selected tests; select it by node id or -k"
            )
        for item in simloom_items:
            if item.nodeid != owner:
                item.add_marker(pytest.mark.skip(reason=f"--simloom-tape belongs to {owner}"))
    for item in items:
        _run_async_given_tests_in_their_universe(item)
    _check_universe_markers(items)


def _run_async_given_tests_in_their_universe(item: pytest.Item) -> None:
    """``@given(..., simloom.universes())`` on an ``async def`` test: run the body
    inside the drawn universe, through Hypothesis's ``inner_test`` hook."""
    handle: Any = getattr(getattr(item, "obj", None), "hypothesis", None)
    inner = getattr(handle, "inner_test", None)
    if handle is None or inner is None or not inspect.iscoroutinefunction(inner):
        return
    from .hypothesis import Universe

    @functools.wraps(inner)
    def run_in_universe(*args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        drawn = [v for v in (*args, *kwargs.values()) if isinstance(v, Universe)]
        if len(drawn) != 1:
            raise SimloomUsageError(
                f"async test {inner.__qualname__} needs exactly one simloom.universes() "
                f"argument to run in, got {len(drawn)}"
            )
        drawn[0].run(lambda: inner(*args, **kwargs))

    handle.inner_test = run_in_universe


def _universe_plan(item: pytest.Item) -> tuple[int, bool] | None:
    """``(explored universes, strict)`` for a test that runs in universes, else
    ``None`` (a ``@simloom.test`` explores itself; ``no_simloom`` opts out)."""
    config = item.config
    if _SETTINGS not in config.stash or _is_simloom_test(item):
        return None
    if item.get_closest_marker("no_simloom") is not None:
        return None
    settings = config.stash[_SETTINGS]
    marker = item.get_closest_marker("simloom")
    if marker is None:
        if not config.stash[_ACTIVE]:
            return None
        return settings.universes, settings.strict
    return _marker_plan(marker, settings, item.nodeid)


def _marker_plan(
    marker: pytest.Mark, settings: universes.Settings, nodeid: str
) -> tuple[int, bool]:
    unknown = set(marker.kwargs) - {"universes", "strict"}
    if marker.args or unknown:
        raise pytest.UsageError(
            f"{nodeid}: @pytest.mark.simloom takes universes=N and strict=True/False, got "
            + ", ".join([*map(repr, marker.args), *(f"{k}=" for k in sorted(unknown))])
        )
    count = marker.kwargs.get("universes", settings.universes)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise pytest.UsageError(
            f"{nodeid}: @pytest.mark.simloom(universes=...) must be a non-negative "
            f"integer, got {count!r}"
        )
    strict = marker.kwargs.get("strict", settings.strict)
    if not isinstance(strict, bool):
        raise pytest.UsageError(
            f"{nodeid}: @pytest.mark.simloom(strict=...) must be True or False, got {strict!r}"
        )
    return count, strict


def _check_universe_markers(items: list[pytest.Item]) -> None:
    for item in items:
        if _SETTINGS in item.config.stash and not _is_simloom_test(item):
            marker = item.get_closest_marker("simloom")
            if marker is not None:
                _marker_plan(marker, item.config.stash[_SETTINGS], item.nodeid)


def _failed(reports: list[pytest.TestReport]) -> bool:
    return any(report.failed for report in reports)


def _run_fresh(
    item: pytest.Item, make: Callable[[], universes.Universe], where: str
) -> tuple[universes.Universe, list[pytest.TestReport]]:
    """A universe made by ``make`` runs the test. A run failed only by unraisable
    exceptions (a finalizer's warning that ``-W error`` turns into an error, say
    an unclosed socket's) may have met garbage made before it: the collector runs
    when allocations say so, and a universe allocates more than the stock loop.
    Then the garbage is collected first and the same universe runs again; if that
    run passes, the first run's unraisable exceptions and the collection's are
    the session's (said in the summary), not the run's."""
    universe = make()
    reports = _run_universe(item, universe)
    if not (_failed(reports) and universe.failed_on_garbage()):
        return universe, reports
    met = universes.collect_garbage_first(item.nodeid, where)
    again = make()
    rerun = _run_universe(item, again)
    if _failed(rerun):
        # The run fails again on a clean heap: the failure is its own (reported
        # from this run, whose garbage is its own).
        item.config.stash[_GARBAGE].extend(met)
        return again, rerun
    met[:0] = [
        universes.Garbage(item.nodeid, where, universes.garbage_message(error))
        for error in universe.failures
    ]
    item.config.stash[_GARBAGE].extend(met)
    for garbage in met:
        item.user_properties.append((_GARBAGE_PROPERTY, dataclasses.asdict(garbage)))
    return again, rerun


#: The report property carrying a :class:`universes.Garbage` (for xdist's controller).
_GARBAGE_PROPERTY = "simloom_garbage"


def _run_universe(item: pytest.Item, universe: universes.Universe) -> list[pytest.TestReport]:
    """One whole run of the test (set-up, call, teardown) in ``universe``; what is
    set up above the test (module, class, session fixtures) stays up."""
    from _pytest.runner import runtestprotocol

    parent: Any = item.parent
    reports: list[pytest.TestReport] = universes.run_in_universe(
        universe, lambda: runtestprotocol(item, nextitem=parent, log=False)
    )
    return reports


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    universe = universes._current
    if universe is not None and report.failed and call.excinfo is not None:
        universe.failures.append(call.excinfo.value)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    plan = _universe_plan(item)
    if plan is None:
        return None
    explored, strict = plan
    settings = item.config.stash[_SETTINGS]
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    reports = _run_universes(item, settings, explored, strict)
    # The universes left what is above the test set up; tear down what the next
    # test does not need, as pytest's own protocol does.
    # (The teardown hook itself ran in each universe; only the set-up state is
    # left, pytest's own SetupState, as its runner tears it down.)
    setup_state: Any = item.session._setupstate
    call = pytest.CallInfo.from_call(
        lambda: setup_state.teardown_exact(nextitem),
        when="teardown",
        reraise=(pytest.exit.Exception, KeyboardInterrupt),
    )
    final = item.ihook.pytest_runtest_makereport(item=item, call=call)
    if final.failed:
        reports.append(final)
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def _run_universes(
    item: pytest.Item, settings: universes.Settings, explored: int, strict: bool
) -> list[pytest.TestReport]:
    if settings.seed is not None:
        # Replaying one universe (the report's command).
        replayed = settings.seed
        return _run_fresh(
            item,
            lambda: universes.make_universe(settings, replayed, strict, 0),
            f"universe {replayed}",
        )[1]
    fifo, reports = _run_fresh(
        item, lambda: universes.make_universe(settings, None, strict, 0), "the polite universe"
    )
    if _failed(reports) or explored == 0:
        return reports
    if fifo.foreign_runs:
        # Its loop was made for a wider scope (an earlier test's universe made
        # it); every universe would run the test on that same loop and schedule.
        return _not_explored(item, explored, reports)
    if not fifo.loops:
        return reports
    if any(report.skipped for report in reports):
        return reports
    fifo_results = fifo.results(failed=False)
    decisions = max((result.decisions for result in fifo_results), default=0)
    for seed in range(explored):
        universe, found = _run_fresh(
            item,
            functools.partial(universes.make_universe, settings, seed, strict, decisions),
            f"universe {seed}",
        )
        if universe.foreign_runs:
            # The FIFO universe made a loop of a wider scope (the first test of
            # its scope): this universe ran on it, not on a loop of its own.
            return _not_explored(item, explored, found)
        if _failed(found):
            results = universe.results(failed=True)
            if results and all(result.deviations == 0 for result in results):
                return _same_schedule_failure(item, seed, settings, strict, found)
            again = universes.make_universe(settings, seed, strict, decisions)
            if not _failed(_run_universe(item, again)):
                return _unreproduced_failure(item, seed, settings, strict, found)
            shrunk = None
            told: list[str] = []
            if results:

                def run_test(candidate: universes.Universe) -> bool:
                    return _failed(_run_universe(item, candidate))

                shrunk = universes.shrink(item.nodeid, universe, results[0], run_test)
                told = universes.in_code(universe, shrunk[0] if shrunk else results[0], run_test)
            universes.collect_failed_universes()
            report = universes.schedule_dependent_report(
                item.nodeid,
                seed=seed,
                universe=universe,
                universes=explored,
                explored=seed + 1,
                settings=settings,
                strict=strict,
                results=results,
                shrunk=shrunk,
                told=told,
            )
            return _attach(
                item,
                found,
                ("simloom: schedule-dependent", report),
                f"schedule-dependent seed={seed}",
                f"{item.nodeid}: schedule-dependent, fails in universe {seed}; replay: "
                + universes.replay_command(item.nodeid, seed, settings, strict),
            )
    return reports


def _same_schedule_failure(
    item: pytest.Item,
    seed: int,
    settings: universes.Settings,
    strict: bool,
    found: list[pytest.TestReport],
) -> list[pytest.TestReport]:
    """An explored universe failed with no deviation at all: its schedule (and
    every other choice) is the polite universe's, which passed. The schedule did
    not decide it; something outside the simulation did. Said as such, never as
    a schedule-dependent failure."""
    universes.collect_failed_universes()
    replay = universes.replay_command(item.nodeid, seed, settings, strict)
    report = (
        f"simloom: {item.nodeid.split('::')[-1]} is not schedule-dependent: universe {seed} "
        "failed with no deviation, on the very schedule and choices of the polite (FIFO) "
        "universe it passed in. Its outcome depends on something outside the simulation: "
        "state an earlier test left behind (an object collected during it, a module "
        "global), a real thread or the real clock.\n"
        f"  replay it: {replay}"
    )
    return _attach(
        item,
        found,
        ("simloom: not schedule-dependent", report),
        f"same-schedule failure seed={seed}",
        f"{item.nodeid}: NOT schedule-dependent (failed on the FIFO schedule in universe "
        f"{seed}: depends on state outside the simulation); replay: {replay}",
    )


def _unreproduced_failure(
    item: pytest.Item,
    seed: int,
    settings: universes.Settings,
    strict: bool,
    found: list[pytest.TestReport],
) -> list[pytest.TestReport]:
    """An explored universe failed, and the same universe (its seed, so its
    schedule and every other choice) passed when run again: the schedule did
    not decide the failure. Said as such, never as a schedule-dependent one."""
    universes.collect_failed_universes()
    replay = universes.replay_command(item.nodeid, seed, settings, strict)
    report = (
        f"simloom: {item.nodeid.split('::')[-1]} is not schedule-dependent: universe {seed} "
        "failed, and the very same universe (its schedule and every other choice) passed "
        "when run again. Its outcome depends on something outside the simulation: an "
        "object collected during it, state an earlier run left behind, a real thread, "
        "real I/O or the real clock.\n"
        f"  replay it: {replay}"
    )
    return _attach(
        item,
        found,
        ("simloom: not schedule-dependent", report),
        f"unreproduced failure seed={seed}",
        f"{item.nodeid}: NOT schedule-dependent (universe {seed} failed once and passed "
        f"when run again: depends on something outside the simulation); replay: {replay}",
    )


def _attach(
    item: pytest.Item,
    found: list[pytest.TestReport],
    section: tuple[str, str],
    verdict: str,
    summary: str,
) -> list[pytest.TestReport]:
    """Put an explored universe's report on the first failing report of its run
    (a section and a ``simloom`` user property) and its line in the summary."""
    for entry in found:
        if entry.failed:
            entry.sections.append(section)
            entry.user_properties.append(("simloom", verdict))
            break
    item.config.stash[_SCHEDULE_DEPENDENT].append(summary)
    return found


def _not_explored(
    item: pytest.Item, explored: int, reports: list[pytest.TestReport]
) -> list[pytest.TestReport]:
    """Remember that the test's explored universes cannot run (said in the
    summary: never a silent pass)."""
    item.config.stash[_NOT_EXPLORED].append(item.nodeid)
    return reports


#: Test ids listed under "FIFO only" in the summary without -v.
_NOT_EXPLORED_LISTED = 10


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    testing._set_current_test(item.nodeid if _is_simloom_test(item) else None)
    explored = len(testing.session_stats)
    # The test's tmp_path exists (empty) in every host's tree, so a program that
    # writes under it runs unchanged, on the host's disk (docs/files.md).
    _hostfs.test_directories = _hostfs.directories_of(getattr(item, "funcargs", {}))
    try:
        outcome = yield
        # A unittest TestCase's errors are kept on the item, not raised (pytest's
        # unittest support reports them): an injected cancellation let through
        # goes from there too.
        kept = getattr(item, "_excinfo", None)
        if isinstance(kept, list) and kept:
            kept[:] = [info for info in kept if not _let_through(info.value)]
        return outcome
    except _MAY_BE_INJECTED as error:
        if not _let_through(error):
            raise
        return None
    finally:
        testing._set_current_test(None)
        _hostfs.test_directories = frozenset()
        # On the test's report, so that a pytest-xdist controller can summarise
        # the explorations its worker processes ran.
        for entry in testing.session_stats[explored:]:
            item.user_properties.append((_STATS_PROPERTY, dataclasses.asdict(entry)))


#: The report property carrying an exploration's :class:`~simloom.testing.TestStats`.
_STATS_PROPERTY = "simloom_stats"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Under pytest-xdist the tests run in worker processes: the controller (which
    prints the summary) learns their explorations from their reports, which xdist
    marks with the worker node they came from."""
    if getattr(report, "node", None) is None or report.when != "call":
        return
    for name, value in report.user_properties:
        if name == _STATS_PROPERTY and isinstance(value, dict):
            testing.session_stats.append(testing.TestStats(**value))
        elif name == _GARBAGE_PROPERTY and isinstance(value, dict):
            _workers_garbage.append(universes.Garbage(**value))


#: What pytest-xdist's worker processes reported under ``_GARBAGE_PROPERTY``.
_workers_garbage: list[universes.Garbage] = []


#: What an injected cancellation reaching a test phase's top can be.
_MAY_BE_INJECTED = (asyncio.CancelledError, TimeoutError, BaseExceptionGroup)


def _let_through(error: BaseException) -> bool:
    """An injected cancellation reached the top of a test phase (set-up, call or
    teardown) in a universe of ``pytest --simloom --simloom-cancellations``: the code
    let it through, as cancelled code should; the phase ends there, passing."""
    current = universes._current
    return (
        current is not None
        and current.config.cancellations
        and _cancellations.propagated(error, current.injected())
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    try:
        return (yield)
    except _MAY_BE_INJECTED as error:
        if not _let_through(error):
            raise
        # The test cannot run without its fixtures: skipped in this universe.
        pytest.skip("an injected cancellation ended the set-up (simloom)")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, Any, Any]:
    try:
        return (yield)
    except _MAY_BE_INJECTED as error:
        if not _let_through(error):
            raise
        return None


def pytest_report_header(config: pytest.Config) -> str:
    header = f"simloom: hash seed {_hashseed.describe_hashseed()}"
    if config.stash.get(_ACTIVE, False):
        settings = config.stash[_SETTINGS]
        header += (
            f"; --simloom: asyncio tests on SimLoop, FIFO then {settings.universes} "
            f"explored universes ({settings.scheduler}"
            + (", strict" if settings.strict else "")
            + ")"
        )
    return header


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # Only tests pytest ran (node ids); explorations a test started by calling a
    # decorated function directly are its own business.
    stats = [entry for entry in testing.session_stats if "::" in entry.test_id]
    dependent = terminalreporter.config.stash.get(_SCHEDULE_DEPENDENT, [])
    not_explored = terminalreporter.config.stash.get(_NOT_EXPLORED, [])
    garbage = [*terminalreporter.config.stash.get(_GARBAGE, []), *_workers_garbage]
    if not stats and not dependent and not not_explored and not garbage:
        return
    terminalreporter.section("simloom")
    for line in dependent:
        terminalreporter.write_line(line)
    if garbage:
        terminalreporter.write_line(
            f"{len(garbage)} unraisable exception(s) from garbage that the universe's run "
            "which met it did not make: the collector ran inside the run, which then "
            "failed; collected first, the same universe passed. They belong to the "
            "session (an earlier test or run), as garbage pytest collects at exit:",
            yellow=True,
        )
        for entry in garbage:
            first, *rest = entry.message.splitlines() or [""]
            terminalreporter.write_line(f"  {entry.test_id} ({entry.where}): {first}")
            for line in rest:
                terminalreporter.write_line(f"    {line}")
    if not_explored:
        terminalreporter.write_line(
            f"{len(not_explored)} test(s) ran FIFO only, their explored universes not run: "
            "each runs on an event loop of a wider scope (module, class, package or "
            "session) that outlives the test, and simloom explores the loops a test "
            "makes (a function-scoped loop explores them):",
            yellow=True,
        )
        verbose = terminalreporter.config.getoption("verbose") > 0
        shown = not_explored if verbose else not_explored[:_NOT_EXPLORED_LISTED]
        for test_id in shown:
            terminalreporter.write_line(f"  {test_id}")
        if len(shown) < len(not_explored):
            terminalreporter.write_line(
                f"  ... and {len(not_explored) - len(shown)} more (-v lists them)"
            )
    for entry in stats:
        coverage = ", ".join(
            f"{label}={hits}"
            + (
                f" (in {reaching} universes)"
                if (reaching := entry.universes_reaching.get(label, hits)) != hits
                else ""
            )
            for label, hits in sorted(entry.coverage.items())
        )
        line = f"{entry.test_id}: {entry.universes} universes, {entry.outcome}"
        if coverage:
            line += f"; coverage: {coverage}"
        if entry.outcome == "passed" and entry.note:
            line += f" ({entry.note})"
        terminalreporter.write_line(line)
        guarantee = entry.guarantee() if entry.outcome == "passed" else None
        if guarantee is not None:
            terminalreporter.write_line(f"  {guarantee}")


#: How long (wall clock) the end of a ``--simloom`` session waits for threads the
#: program started outside the simulation before it names them and exits anyway.
LEFTOVER_THREAD_WAIT = 2.0


def _exits_at_shutdown(thread: threading.Thread) -> bool:
    """A ``concurrent.futures`` worker: idle until the interpreter's shutdown tells
    it to stop (not stuck)."""
    import concurrent.futures.thread

    return getattr(thread, "_target", None) is concurrent.futures.thread._worker


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Under ``--simloom``, never let pytest hang at exit on a thread the tests
    started outside the simulation: a real server thread whose client the
    simulation refused (a named escape) still waits in a real ``accept()``. Such
    non-daemon threads are named, and the process exits without waiting for them."""
    if not config.stash.get(_ACTIVE, False):
        return
    status = config.stash.get(_EXIT_STATUS, None)
    if status is None:
        return
    deadline = time.monotonic() + LEFTOVER_THREAD_WAIT
    stuck = []
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon or _exits_at_shutdown(thread):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            stuck.append(thread)
    if not stuck:
        return
    frames = sys._current_frames()
    lines = [
        f"simloom: {len(stuck)} non-daemon thread(s) started outside the simulation were "
        f"still running after the session (waited {LEFTOVER_THREAD_WAIT:g} s); exiting "
        "without waiting for them (a real server's thread whose client the simulation "
        "refused, say, waits in a real accept() forever):"
    ]
    stdlib = sysconfig.get_paths()["stdlib"] + os.sep
    for thread in stuck:
        frame = frames.get(thread.ident or -1)
        innermost = frame
        while frame is not None and frame.f_code.co_filename.startswith(stdlib):
            frame = frame.f_back
        frame = frame or innermost
        where = ""
        if frame is not None:
            where = f" at {frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno})"
        lines.append(f"  {thread.name}{where}")
    sys.stdout.flush()
    print("\n".join(lines), file=sys.stderr, flush=True)
    os._exit(status)
