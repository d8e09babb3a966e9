"""simloom: deterministic simulation testing for asyncio.

Run an unmodified asyncio program in a simulated universe whose every scheduling
choice comes from one choice tape: seeded, replayable, shrinkable.

    result = simloom.run(main, seed=17, scheduler="pct")
    again = simloom.replay(main, result.tape)
    assert again.digest == result.digest
"""

import typing as _typing

from ._api import Event, RunResult, decode_events, draw, reached, replay, run, sometimes
from ._boundary import BoundaryEntry, boundary
from ._config import UniverseConfig
from ._hashseed import pin_hashseed
from ._monitors import always, eventually, leads_to
from ._scheduler import SCHEDULERS, SchedulerSpec, parse_scheduler
from ._systematic import SystematicResult, explore_systematic
from ._version import __version__
from .disk import Disk, DiskFile
from .errors import (
    CorruptTapeError,
    CoverageNotReachedError,
    EscapedSimulationError,
    EventLogError,
    ExecutorBlockedError,
    ForeignTapeError,
    LinearizabilityCheckError,
    MonitorViolationError,
    NotLinearizableError,
    NotSerializableError,
    SimBudgetExceededError,
    SimDeadlockError,
    SimLivelockError,
    SimloomError,
    SimloomNondeterminismError,
    SimloomUsageError,
    SimStepBudgetError,
    SimTimeBudgetError,
    SimWatchdogError,
    TapeError,
    TapeMisalignedError,
    TapeVersionError,
    TruncatedTapeError,
    UnhandledExceptionError,
)
from .history import History, LinearizabilityResult, OperationFailed
from .loop import SimLoop
from .net import Net
from .tape import Tape
from .testing import test
from .world import Host, World, current_host

if _typing.TYPE_CHECKING:
    from .hypothesis import Universe, universes


def __getattr__(name: str) -> object:
    # ``universes`` needs Hypothesis; import it on first use so ``import simloom``
    # stays fast.
    if name in ("universes", "Universe"):
        from . import hypothesis as _hypothesis

        return getattr(_hypothesis, name)
    raise AttributeError(f"module 'simloom' has no attribute {name!r}")


__all__ = [
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
    "UnhandledExceptionError",
    "Universe",
    "UniverseConfig",
    "World",
    "__version__",
    "always",
    "boundary",
    "current_host",
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
]
