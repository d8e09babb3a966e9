"""Every error simloom raises: one hierarchy under :class:`SimloomError`.

Errors that stand for a standard failure also subclass the standard exception users
already catch (a corrupt tape is a ``ValueError``, a misused API a ``TypeError`` or
``ValueError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = [
    "CorruptTapeError",
    "CoverageNotReachedError",
    "EscapedSimulationError",
    "EventLogError",
    "ExecutorBlockedError",
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


class SimloomError(Exception):
    """Base class of every simloom error."""


class SimloomUsageError(SimloomError, ValueError):
    """A simloom API was called with an invalid argument or in the wrong place."""


class EscapedSimulationError(SimloomError, RuntimeError):
    """Code under test reached for the real world (a socket, a signal, a thread...).

    Raised at the call site, naming the API, instead of letting the universe depend on
    something simloom cannot replay.
    """


#: The end of every :class:`EscapedSimulationError` message: why simloom refuses.
ESCAPE_HINT = (
    "simloom runs the program in a simulated world; this would reach the real one and "
    "make the universe impossible to replay"
)


def raise_escaped(api: str, what: str) -> NoReturn:
    """Refuse ``api`` at its call site: ``what`` it would do to the real world."""
    raise EscapedSimulationError(f"{api}: {what} ({ESCAPE_HINT}).")


class ExecutorBlockedError(SimloomError, RuntimeError):
    """An executor job (``run_in_executor``, ``asyncio.to_thread``) blocked on
    something the simulation cannot see (a real lock, event, socket or sleep) or held
    its turn for too long. Executor jobs run in lockstep with the loop; they may only
    wait on the loop (``concurrent.futures`` futures, ``run_coroutine_threadsafe``).
    The message holds the job thread's stack."""


class SimDeadlockError(SimloomError, RuntimeError):
    """Nothing can run, no timer is pending, and the main task has not finished."""


class SimLivelockError(SimloomError, RuntimeError):
    """Too many steps ran without the virtual clock moving (a task spins)."""


class UnhandledExceptionError(SimloomError, RuntimeError):
    """An exception reached the loop's exception handler (an exception in a callback,
    a task exception that was never retrieved...). In a simulation that fails the
    universe instead of being logged and forgotten. ``__cause__`` is the original
    exception, when there is one; ``context`` is the handler's context dict."""

    def __init__(self, message: str, context: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.context: dict[str, Any] = dict(context or {})


class SimloomNondeterminismError(SimloomError, RuntimeError):
    """The self-check (``check_determinism=True``) ran one universe twice with the
    same choices and the two runs differed: something outside the simulation (an
    identity-ordered set, an unpatched clock or random source, a thread) decided.

    The message names the first diverging event and, for each run, the source line
    that scheduled the step there; ``event_index`` is that event's index in the
    event log and ``first``/``second`` describe it in each run.
    """

    def __init__(
        self, message: str, *, event_index: int = 0, first: str = "", second: str = ""
    ) -> None:
        super().__init__(message)
        self.event_index = event_index
        self.first = first
        self.second = second


class TapeError(SimloomError, ValueError):
    """A tape could not be read."""


class ForeignTapeError(TapeError):
    """The data is not a simloom tape at all."""


class TapeVersionError(TapeError):
    """The tape was written by a newer simloom (a newer format version)."""


class CorruptTapeError(TapeError):
    """The data is a simloom tape, but its content is invalid."""


class TruncatedTapeError(TapeError):
    """The data ends before the tape does."""


class TapeMisalignedError(SimloomError):
    """Strict replay: the program no longer makes the decisions the tape recorded."""


class CoverageNotReachedError(SimloomError, AssertionError):
    """``@simloom.test(require_coverage=...)`` named labels that no universe of the
    exploration reached."""


class NotLinearizableError(SimloomError, AssertionError):
    """A recorded history is not linearizable for its model. Raised in a universe,
    it fails the universe like a failed assertion (and shrinks like one); its
    message is the counterexample drawn over time, and ``result`` the
    :class:`simloom.LinearizabilityResult`."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class NotSerializableError(SimloomError, AssertionError):
    """A history of transactions is not serializable (or not strictly so): its
    message names each anomaly with its transactions; ``result`` is the
    :class:`simloom.history.SerializabilityResult`."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class MonitorViolationError(SimloomError, AssertionError):
    """A monitor (``simloom.always``, ``eventually``, ``leads_to``) was violated: it
    fails the universe like a failed assertion and shrinks like one. ``monitor`` is
    its name, ``kind`` its kind, ``time_ns`` the virtual time of the violation
    (a deadline's, for a time limit) and ``step`` the step after which it was seen."""

    def __init__(self, message: str, *, monitor: str, kind: str, time_ns: int, step: int) -> None:
        super().__init__(message)
        self.monitor = monitor
        self.kind = kind
        self.time_ns = time_ns
        self.step = step


class LinearizabilityCheckError(SimloomError, RuntimeError):
    """The linearizability search gave up (its step budget) before it could answer."""


class EventLogError(SimloomError, ValueError):
    """Event-log bytes could not be decoded."""


class SimBudgetExceededError(SimloomError, RuntimeError):
    """A universe ran out of one of its budgets before it finished (see
    docs/testing.md, "Budgets"). The message says which budget, its value, how to
    raise it, and what was still scheduled. ``budget`` is the argument that sets it
    (``"max_steps"``, ``"max_virtual_time"``, ``"watchdog"``) and ``limit`` its
    value."""

    def __init__(self, message: str, *, budget: str = "", limit: float | None = None) -> None:
        super().__init__(message)
        self.budget = budget
        self.limit = limit


class SimStepBudgetError(SimBudgetExceededError):
    """A run took ``max_steps`` steps without finishing (a task spinning while the
    clock creeps, e.g. ``while True: await asyncio.sleep(1e-9)``)."""


class SimTimeBudgetError(SimBudgetExceededError):
    """A run reached ``max_virtual_time`` virtual seconds without finishing (a
    periodic timer keeping a finished or deadlocked program alive)."""


class SimWatchdogError(SimBudgetExceededError):
    """One step ran longer than ``watchdog`` seconds of wall-clock time: a callback
    that never yields (a CPU spin). The message carries the step's stack."""
