"""Injected cancellations and timeouts (``cancellations=True``).

Most asyncio bugs are cancellation bugs: a semaphore released only on the happy
path, a queue item taken and lost when the consumer is cancelled, a half-finished
update left behind by a timeout. They hide because nothing cancels the task at the
one await where it hurts. With ``cancellations=True`` the explorer may do so: just
before a task resumes from an await, one decision (label ``inject.cancel``) says
whether to leave it (0, the canonical answer, so an injection shrinks away when the
failure does not need it), to cancel it (1: ``task.cancel()``, so the await raises
:class:`asyncio.CancelledError`), or, when the task is inside an ``asyncio.timeout``
(``wait_for`` included) with a deadline, to make the innermost one expire now (2:
its ``async with`` ends in :class:`TimeoutError`, as if the awaited operation had
been slow). An injected cancellation that reaches the top of the universe (the
program let it through) ends the universe without failing it: see
:func:`propagated`.

Which tasks: every task except the universe's roots (the tasks created while no
task was running: the program's main task, which has nobody to be cancelled by),
only while suspended at an await (never before its first step), never a task that
is already being cancelled, and never while the universe is torn down. How often:
each universe draws one rate (label ``inject.rate``: 2, 5, 15 or 35 percent of the
eligible resumptions; a swarm, so some universes cancel rarely and some often).
FIFO answers every decision 0 and so never injects; a replayed tape injects exactly
where it says.

Owns: the injection decisions and the record of active timeouts. Must not: run
unless the universe asked for it (the loop installs it as its step hook only then).
"""

from __future__ import annotations

import asyncio
import asyncio.timeouts
import weakref
from typing import Any

from . import _core

__all__ = [
    "CANCEL_MESSAGE",
    "INJECT_LABEL",
    "RATES",
    "RATE_LABEL",
    "TIMEOUT_MESSAGE",
    "Injector",
    "propagated",
    "timeout_reschedule",
]

#: The message of an injected ``CancelledError`` (it travels with the error).
CANCEL_MESSAGE = "injected by simloom (cancellations=True)"
#: The message of the ``CancelledError`` behind an injected timeout expiry (the
#: ``TimeoutError``'s ``__cause__``).
TIMEOUT_MESSAGE = "timeout expiry injected by simloom (cancellations=True)"

#: The decision label of one injection.
INJECT_LABEL = "inject.cancel"
#: The decision label of the universe's injection rate.
RATE_LABEL = "inject.rate"
#: The rates (percent of eligible resumptions) a universe may draw; the canonical
#: (shrunk) one is the first.
RATES = (2, 5, 15, 35)

#: What an answer of ``inject.cancel`` did.
CANCELLED = 1
EXPIRED = 2

_Timeout = asyncio.timeouts.Timeout
_original_reschedule = _Timeout.reschedule
_ENTERED = asyncio.timeouts._State.ENTERED  # type: ignore[attr-defined]
_EXPIRING = asyncio.timeouts._State.EXPIRING  # type: ignore[attr-defined]


def _injected_cancel(error: BaseException | None, message: str) -> bool:
    return isinstance(error, asyncio.CancelledError) and error.args[:1] == (message,)


def propagated(error: BaseException, injected: bool = True) -> bool:
    """Whether ``error``, which reached the top of a universe, is only an injected
    cancellation the program let through: a ``CancelledError`` in a universe where
    something was injected (``injected``; the message does not always survive:
    ``asyncio.shield`` cancels its outer future with none), the ``TimeoutError`` of
    an injected expiry, or a group of nothing else. That is what a cancelled
    program should do: it ends the universe, and is not a failure (a cancellation
    bug shows as something else: a failed check, a deadlock, a leak)."""
    if isinstance(error, BaseExceptionGroup):
        return all(propagated(inner, injected) for inner in error.exceptions)
    if isinstance(error, asyncio.CancelledError):
        return injected or _injected_cancel(error, CANCEL_MESSAGE)
    return isinstance(error, TimeoutError) and _injected_cancel(error.__cause__, TIMEOUT_MESSAGE)


def timeout_reschedule(self: asyncio.Timeout, when: float | None) -> None:
    """``asyncio.Timeout.reschedule`` that also tells the running universe's
    injector (if any) which task the timeout guards: every ``async with
    asyncio.timeout(...)`` and ``wait_for`` passes here when it is entered."""
    _original_reschedule(self, when)
    loop = asyncio._get_running_loop()
    injector = getattr(loop, "_cancel_injector", None)
    if injector is not None:
        injector.note_timeout(self)


class Injector:
    """A loop's step hook while cancellations are injected."""

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        #: The universe's rate, drawn when the first injection is considered.
        self.rate: int | None = None
        #: Tasks created while no task was running: never cancelled.
        self.roots: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        #: A task's timeouts, in the order they were entered.
        self._timeouts: weakref.WeakKeyDictionary[asyncio.Task[Any], list[Any]] = (
            weakref.WeakKeyDictionary()
        )
        #: (decision index, task name, what was done) of every injection, in order.
        self.injected: list[tuple[int, str, int]] = []

    def note_timeout(self, timeout: asyncio.Timeout) -> None:
        task = getattr(timeout, "_task", None)
        if task is None:
            return
        entered = self._timeouts.setdefault(task, [])
        if not any(other is timeout for other in entered):
            entered.append(timeout)

    def _active_timeout(self, task: asyncio.Task[Any]) -> Any:
        """The innermost timeout of ``task`` that is entered and has a deadline."""
        entered = self._timeouts.get(task)
        if not entered:
            return None
        entered[:] = [t for t in entered if t._state is _ENTERED]
        for timeout in reversed(entered):
            if timeout._when is not None:
                return timeout
        return None

    def __call__(self, handle: _core.Handle) -> None:
        loop = self._loop
        if loop._tearing_down:
            return
        task = getattr(handle._callback, "__self__", None)
        if not isinstance(task, asyncio.Task) or task.done() or task in self.roots:
            return
        coro = task.get_coro()
        # Only at an await: a coroutine that has not started has none yet.
        if not getattr(coro, "cr_suspended", False) and not getattr(coro, "gi_suspended", False):
            return
        if task.cancelling() or getattr(task, "_must_cancel", False):
            return
        if self.rate is None:
            self.rate = RATES[int(loop._choose(RATE_LABEL, len(RATES)))]
        timeout = self._active_timeout(task)
        index = loop._decisions()
        answer = int(loop._choose(INJECT_LABEL, 3 if timeout is not None else 2, self.rate))
        if answer == 0:
            return
        loop._mark(f"inject:{'cancel' if answer == CANCELLED else 'timeout'}:{task.get_name()}")
        self.injected.append((index, task.get_name(), answer))
        if answer == EXPIRED and timeout is not None:
            handler = timeout._timeout_handler
            if handler is not None:
                handler.cancel()
            # What Timeout._on_timeout does, with a message that names the expiry
            # as injected (it becomes the TimeoutError's __cause__).
            task.cancel(msg=TIMEOUT_MESSAGE)
            timeout._state = _EXPIRING
            timeout._timeout_handler = None
        else:
            task.cancel(msg=CANCEL_MESSAGE)
