"""The public surface: ``simloom.__all__`` is exactly what the package exports, and
``simloom.SimLoop`` implements the whole ``asyncio.AbstractEventLoop`` interface."""

from __future__ import annotations

import asyncio
import inspect
import types

import pytest
import simloom

EXPECTED_ALL = {
    "SCHEDULERS",
    "BoundaryEntry",
    "CorruptTapeError",
    "CoverageNotReachedError",
    "Disk",
    "DiskFile",
    "EscapedSimulationError",
    "Event",
    "EventLogError",
    "ExecutorBlockedError",
    "ForeignTapeError",
    "History",
    "Host",
    "LinearizabilityCheckError",
    "LinearizabilityResult",
    "MonitorViolationError",
    "Net",
    "NotLinearizableError",
    "NotSerializableError",
    "OperationFailed",
    "RunResult",
    "SchedulerSpec",
    "SimBudgetExceededError",
    "SimDeadlockError",
    "SimLivelockError",
    "SimLoop",
    "SimStepBudgetError",
    "SimTimeBudgetError",
    "SimWatchdogError",
    "SimloomError",
    "SimloomNondeterminismError",
    "SimloomUsageError",
    "SystematicResult",
    "Tape",
    "TapeError",
    "TapeMisalignedError",
    "TapeVersionError",
    "TruncatedTapeError",
    "UniverseConfig",
    "UnhandledExceptionError",
    "Universe",
    "World",
    "__version__",
    "current_host",
    "always",
    "boundary",
    "decode_events",
    "draw",
    "eventually",
    "explore_systematic",
    "leads_to",
    "parse_scheduler",
    "pin_hashseed",
    "reached",
    "replay",
    "run",
    "sometimes",
    "test",
    "universes",
}

ERRORS = [
    "CorruptTapeError",
    "CoverageNotReachedError",
    "EscapedSimulationError",
    "EventLogError",
    "ForeignTapeError",
    "LinearizabilityCheckError",
    "MonitorViolationError",
    "NotLinearizableError",
    "NotSerializableError",
    "SimBudgetExceededError",
    "SimDeadlockError",
    "SimLivelockError",
    "SimStepBudgetError",
    "SimTimeBudgetError",
    "SimWatchdogError",
    "SimloomError",
    "SimloomNondeterminismError",
    "SimloomUsageError",
    "TapeError",
    "TapeMisalignedError",
    "TapeVersionError",
    "TruncatedTapeError",
    "UnhandledExceptionError",
]


def test_all_is_exactly_the_expected_set() -> None:
    assert set(simloom.__all__) == EXPECTED_ALL
    assert len(simloom.__all__) == len(EXPECTED_ALL), "no name is listed twice"


def test_every_name_in_all_exists() -> None:
    missing = [name for name in simloom.__all__ if not hasattr(simloom, name)]
    assert missing == []


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from simloom import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == EXPECTED_ALL


def test_nothing_public_is_missing_from_all() -> None:
    public = {
        name
        for name, value in vars(simloom).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - set(simloom.__all__) == set()


def test_version_is_a_string() -> None:
    assert isinstance(simloom.__version__, str)
    assert simloom.__version__.count(".") >= 2


@pytest.mark.parametrize("name", ERRORS)
def test_every_error_is_a_simloom_error_exported_from_errors(name: str) -> None:
    error = getattr(simloom, name)
    assert issubclass(error, simloom.SimloomError)
    assert error is getattr(simloom.errors, name)
    assert name in simloom.errors.__all__


def test_simloop_is_an_abstract_event_loop() -> None:
    assert issubclass(simloom.SimLoop, asyncio.AbstractEventLoop)
    loop = simloom.SimLoop()
    try:
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()


PUBLIC_LOOP_METHODS = sorted(
    name
    for name in dir(asyncio.AbstractEventLoop)
    if not name.startswith("_") and callable(getattr(asyncio.AbstractEventLoop, name))
)


def test_the_abstract_loop_has_the_expected_surface() -> None:
    # Guards the parametrisation below against an empty or partial list.
    for name in ("call_soon", "create_task", "run_until_complete", "add_reader", "sendfile"):
        assert name in PUBLIC_LOOP_METHODS


@pytest.mark.parametrize("name", PUBLIC_LOOP_METHODS)
def test_simloop_overrides_every_public_abstract_loop_method(name: str) -> None:
    assert name in dir(simloom.SimLoop)
    ours = inspect.getattr_static(simloom.SimLoop, name)
    theirs = inspect.getattr_static(asyncio.AbstractEventLoop, name)
    assert ours is not theirs
    assert getattr(simloom.SimLoop, name) is not getattr(asyncio.AbstractEventLoop, name)
