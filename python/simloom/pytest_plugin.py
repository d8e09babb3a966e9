"""The pytest plugin (loaded automatically through the ``pytest11`` entry point).

Adds the ``--simloom-*`` options, validates them up front, runs ``async def`` tests
that take a ``simloom.universes()`` argument inside their universe (through
Hypothesis's ``inner_test`` hook), and prints what each ``@simloom.test`` explored.

Owns: pytest integration. Must not: explore or shrink (``testing.py`` does).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import _budgets, _hashseed, testing
from .errors import SimloomUsageError, TapeError

__all__: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("simloom", "simloom: deterministic simulation testing")
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
        "markers", "simloom: a test explored by simloom (added by @simloom.test)"
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
    for name in ("max_steps", "max_virtual_time", "watchdog"):
        text = config.getoption(f"simloom_{name}")
        if text is None:
            continue
        flag = "--simloom-" + name.replace("_", "-")
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
    testing.configure(
        testing.Options(
            seed=seed,
            tape=tape_path,
            tape_artifact=artifact,
            runs=runs,
            scheduler=scheduler,
            shrink=not config.getoption("simloom_no_shrink"),
            check_determinism=config.getoption("simloom_check_determinism"),
            budgets=budget_overrides,
        )
    )


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    testing._set_current_test(item.nodeid if _is_simloom_test(item) else None)
    try:
        return (yield)
    finally:
        testing._set_current_test(None)


def pytest_report_header(config: pytest.Config) -> str:
    return f"simloom: hash seed {_hashseed.describe_hashseed()}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    # Only tests pytest ran (node ids); explorations a test started by calling a
    # decorated function directly are its own business.
    stats = [entry for entry in testing.session_stats if "::" in entry.test_id]
    if not stats:
        return
    terminalreporter.section("simloom")
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
