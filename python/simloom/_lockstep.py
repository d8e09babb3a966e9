"""Lockstep threads: real worker threads of which exactly one party runs at a time.

An executor job (``loop.run_in_executor``, ``asyncio.to_thread``) runs on a real
thread, so code that blocks the way thread code does — ``run_coroutine_threadsafe(
coro, loop).result()``, ``concurrent.futures.wait`` — works. To keep the universe
deterministic the loop thread and the worker hold a *baton*: exactly one of them
runs. The loop hands the baton to the worker when the job's step runs and waits
until the worker gives it back, which it does when it

* finishes (the job's future is then resolved in that same step),
* parks on a blocking primitive that depends on the loop: ``Future.result()`` /
  ``Future.exception()`` of a ``concurrent.futures.Future`` that is not done, or
  ``concurrent.futures.wait`` / ``as_completed`` on such futures. When what it waits
  for is done (or its timeout, in *virtual* time, expires) a resume step is
  scheduled on the loop — a deterministic position in the schedule — which hands the
  baton back to the worker;
* asks the loop to run something for it (``loop.call_soon_threadsafe``): the loop
  thread runs it and hands the baton straight back, within the same step.

A worker that blocks on anything else (a real ``threading.Event`` nobody will set)
never gives the baton back: after :data:`WALL_LIMIT_SECONDS` of wall-clock time the
step raises :class:`~simloom.errors.ExecutorBlockedError` with the worker's stack.
When the loop closes, a parked worker gets ``concurrent.futures.CancelledError``
raised inside it and is joined, so no thread outlives its universe.

Every ``threading.Thread`` started inside a universe (on the loop's thread, or by a
lockstep thread) is a lockstep party too (:func:`thread_start`): its real thread
bootstraps, then waits in ``run`` for its first turn (a ``_ThreadStart`` step). Its
waits are switch points (:class:`_Party`, called by the boundary's handlers): a
blocking acquire of a held lock (so Condition/Event/Semaphore/Barrier/Queue waits and
Thread.join on 3.12), ``_ThreadHandle.join`` (3.13) and ``time.sleep`` park the
thread with a predicate or a virtual timeout. Predicates are re-checked at poll
points, all on the loop thread between turns — after any lockstep thread's turn,
after a ``Condition.notify`` by the loop thread, and when the loop would be idle —
and one that holds schedules a ``_ThreadWake`` step (``thread.wake``) with
``call_soon``, so where the thread resumes is a tape choice. No decision depends on
wall-clock timing: thread switching is a function of the tape. The thread runs with
the universe's boundary (virtual clocks; escapes raised at the call site in it).

Owns: the baton, the parking wrappers of ``concurrent.futures`` and
``Condition.notify`` (installed while a lockstep worker is alive; every other thread
gets the originals' behaviour), lockstep threads' switch points, worker clean-up.
Must not: decide scheduling order (resumes are ordinary loop callbacks).
"""

from __future__ import annotations

import _thread
import asyncio
import asyncio.futures
import concurrent.futures
import concurrent.futures._base as _futures_base
import contextvars
import functools
import queue
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from . import _boundary, _causal, _sim_unix
from .errors import EscapedSimulationError, ExecutorBlockedError

if TYPE_CHECKING:
    from .loop import SimLoop

__all__ = ["WALL_LIMIT_SECONDS", "Lockstep", "Worker", "current_worker"]

#: How long (wall clock) the loop waits for a worker holding the baton to finish,
#: park or ask the loop for something before it calls the worker blocked.
WALL_LIMIT_SECONDS = 3.0

#: Cancellation rounds at close: a worker that catches the CancelledError and parks
#: again gets it again, this many times, before it is abandoned.
_CLOSE_ROUNDS = 8

_local = threading.local()

#: The C lock type's own ``acquire`` and ``release``, taken when simloom is imported:
#: the baton is passed with them, not through ``lock.acquire``, so a tool that wraps
#: the lock methods while tests run (blockbuster, which anyio's suite turns on
#: around each test) neither sees the baton as a blocking call made in a thread
#: that runs an event loop (a lockstep thread running its own loop) nor crashes a
#: thread that looks the method up again after the wrapper is gone.
_acquire = _thread.LockType.acquire
_release = _thread.LockType.release


def current_worker() -> Worker | None:
    """The lockstep worker running on this thread (it holds the baton), if any."""
    return getattr(_local, "worker", None)


# --------------------------------------------------------------- the messages
#
# A worker gives the baton back with one message: it finished, it parked (on what,
# for how long, and the condition that ends the wait), or it asks the loop thread to
# run a function for it. The loop hands the baton over with a reply.


class _Finished:
    __slots__ = ("error", "result")

    def __init__(self, result: Any, error: BaseException | None) -> None:
        self.result = result
        self.error = error


class _Parked:
    __slots__ = ("done", "futures", "poll", "timeout", "where")

    def __init__(
        self,
        futures: list[concurrent.futures.Future[Any]],
        timeout: float | None,
        done: Callable[[], bool],
        where: str = "a concurrent.futures wait",
        *,
        poll: bool = False,
    ) -> None:
        self.futures = futures
        self.timeout = timeout
        self.done = done
        #: What the thread waits on, for the deadlock report.
        self.where = where
        #: Whether ``done`` is re-checked at the lockstep's poll points (a thread
        #: primitive: nothing calls back when it frees up) rather than only when one
        #: of ``futures`` finishes.
        self.poll = poll


class _Request:
    __slots__ = ("function",)

    def __init__(self, function: Callable[[], Any]) -> None:
        self.function = function


class _Reply:
    """What the loop hands the worker with the baton."""

    __slots__ = ("cancel", "error", "value")

    def __init__(
        self, value: Any = None, error: BaseException | None = None, *, cancel: bool = False
    ) -> None:
        self.value = value
        self.error = error
        self.cancel = cancel


_Message = _Finished | _Parked | _Request


class Worker:
    """One executor job on its own thread, run in lockstep with its loop."""

    def __init__(
        self,
        lockstep: Lockstep,
        future: asyncio.Future[Any] | None,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        name: str,
        thread: threading.Thread | None = None,
    ) -> None:
        self.lockstep = lockstep
        self.loop = lockstep.loop
        self.future = future
        self._func = func
        self._args = args
        # The baton is two binary semaphores, each held until its party may run:
        # plain lock acquire/release in C, so an interrupt (Ctrl-C lands in the loop
        # thread) can never leave one half-signalled, as a Condition's Python-level
        # wait can.
        self._loop_may_run = _thread.allocate_lock()
        _acquire(self._loop_may_run)
        self._worker_may_run = _thread.allocate_lock()
        _acquire(self._worker_may_run)
        self._turn = "loop"
        #: Set by this worker's own thread while it hands the baton over and waits
        #: for it (its baton waits are simloom's, not switch points).
        self._switching = False
        self._message: _Message | None = None
        self._reply: _Reply | None = None
        #: A program's own ``threading.Thread`` (already started, waiting for its
        #: first turn inside its ``run``), or simloom's thread for an executor job.
        # The universe, read here (on the loop thread or a lockstep thread holding
        # the baton): while the loop waits for a baton its own entry is set aside.
        caller = current_worker()
        self.universe: _boundary._Universe | None = (
            caller.universe if caller is not None else _boundary._here()
        )
        #: The host the job or thread was started on (its incarnation, 0 for
        #: "main"): it runs there, so its sockets and files are that host's.
        host_var = _causal.host_var
        self.host_incarnation: int = host_var.get(0) if host_var is not None else 0
        self.program_thread = thread is not None
        if thread is None:
            thread = threading.Thread(target=self._main, name=name, daemon=True)
            thread._simloom_internal = True  # type: ignore[attr-defined]
        self._thread = thread
        self.name = thread.name
        #: Bumped at every park, so a wake-up for an earlier park is ignored.
        self._park_number = 0
        self._parked: _Parked | None = None
        self._resume_scheduled = False
        self._timer: Any = None
        self.finished = False
        self.abandoned = False
        self._started = False

    # ------------------------------------------------------------ loop side

    def start(self) -> None:
        """The job's step: start the thread and run it until it yields the baton."""
        if self._started:
            return  # it had its first turn already (the loop's thread waited on it)
        self._started = True
        if self.future is not None and self.future.cancelled():
            self.finished = True
            self.lockstep._forget(self)
            return
        self._hand_over(_Reply(), start=True)

    def _hand_over(self, reply: _Reply, *, start: bool = False) -> None:
        """Give the baton to the worker with ``reply`` and serve it until it
        finishes or parks. Runs on the loop thread, inside a loop step."""
        self._give_turn(reply, start=start)
        self._serve()

    def _give_turn(self, reply: _Reply, *, start: bool = False) -> None:
        self._reply = reply
        self._turn = "worker"
        _release(self._worker_may_run)
        if start and not self.program_thread:
            _original_thread_start(self._thread)

    @_boundary.machinery
    def _wait_for_the_baton(self) -> tuple[bool, _Message | None]:
        """Wait (wall clock) until the worker gives the baton back; take its message.

        Run as simloom's machinery: with the boundary on, ``time.monotonic`` in the
        universe's thread is the virtual clock, which stands still during a step, so
        a Python-level deadline would never come (this acquire times out in C)."""
        returned = _acquire(self._loop_may_run, True, WALL_LIMIT_SECONDS)
        message, self._message = self._message, None
        return returned, message

    def _serve(self) -> None:
        """Wait while the worker holds the baton; run what it asks the loop for
        (handing the baton straight back) until it finishes or parks; then poll the
        parked threads (what this one did may have freed what they wait on)."""
        try:
            self._serve_until_yielded()
        finally:
            self.lockstep.poll()

    def _serve_until_yielded(self) -> None:
        while True:
            returned, message = self._wait_for_the_baton()
            if not returned:
                self._blocked()
                return
            if isinstance(message, _Request):
                try:
                    reply = _Reply(message.function())
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as error:
                    reply = _Reply(error=error)
                self._give_turn(reply)
                continue
            if isinstance(message, _Finished):
                self._finish(message)
            elif isinstance(message, _Parked):
                self._park(message)
            return

    def _blocked(self) -> None:
        """The worker kept the baton past the wall-clock limit: fail the universe
        with its stack. The thread cannot be stopped; it is abandoned (a daemon that
        never touches the loop again) and its job's future stays pending."""
        self.abandoned = True
        self.lockstep._forget(self)
        frame = sys._current_frames().get(self._thread.ident or -1)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(gone)\n"
        kind = "thread" if self.program_thread else "executor job"
        self.loop._fail_universe(
            ExecutorBlockedError(
                f"{kind} {self._thread.name!r} ({_describe(self._func)}) ran for "
                f"{WALL_LIMIT_SECONDS:g}s of wall-clock time without finishing or waiting "
                "on the loop: it blocks on something the simulation cannot see (a real "
                "lock, event, socket or sleep) or computes for too long. Executor jobs "
                "run in lockstep with the loop and may only wait on it "
                "(concurrent.futures futures, run_coroutine_threadsafe). Its stack:\n"
                f"{stack}"
            )
        )

    def _finish(self, message: _Finished) -> None:
        self.finished = True
        self._thread.join()
        self.lockstep._forget(self)
        if self.program_thread and isinstance(message.error, EscapedSimulationError):
            # A thread that reached the real world fails the universe with that
            # message (raised at the call site, in the thread).
            self.loop._fail_universe(message.error)
        future = self.future
        if future is None or future.done() or self.loop.is_closed():
            return
        if message.error is not None:
            # As asyncio's wrap_future does: concurrent's CancelledError and
            # TimeoutError become asyncio's.
            future.set_exception(asyncio.futures._convert_future_exc(message.error))  # type: ignore[attr-defined]
        else:
            future.set_result(message.result)

    def _park(self, parked: _Parked) -> None:
        self._park_number += 1
        self._parked = parked
        self._resume_scheduled = False
        number = self._park_number
        if self.loop.is_closed():
            return  # parked while the loop closes: close() cancels it next round
        if parked.done():
            self._schedule_resume(number)
            return
        if parked.timeout is not None:
            self._timer = self.loop.call_later(
                max(0.0, parked.timeout), _ExecutorResume(self, number, timed_out=True)
            )
        for future in parked.futures:
            future.add_done_callback(lambda _f, number=number: self._wake(number))  # type: ignore[misc]

    def _wake(self, number: int) -> None:
        """A future the worker waits on is done (on whichever thread finished it)."""
        parked = self._parked
        if number != self._park_number or parked is None or self._resume_scheduled:
            return
        if parked.done():
            self._schedule_resume(number)

    def _schedule_resume(self, number: int) -> None:
        self._resume_scheduled = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.loop.is_closed():
            return  # close() resumes (cancels) every parked worker itself
        wake = _ThreadWake if self._parked is not None and self._parked.poll else _ExecutorResume
        self.loop.call_soon_threadsafe(wake(self, number, timed_out=False))

    def poll(self) -> None:
        """A poll point (loop thread, inside a step): resume this thread if it is
        parked on a thread primitive that has freed up."""
        parked = self._parked
        if parked is None or not parked.poll or self._resume_scheduled or self.finished:
            return
        if parked.done():
            self._schedule_resume(self._park_number)

    def run_now(self) -> bool:
        """Give this thread a turn now, inside the current step, if it can run:
        its first turn, or a resume whose wait is over. The loop's thread does this
        while it waits on the threads itself (see :func:`loop_thread_waits`); the
        wake step scheduled for it, if any, then finds nothing to do."""
        if self.finished or self.abandoned or self._turn == "worker":
            return False
        if not self._started:
            self.start()
            return True
        parked = self._parked
        if parked is None or not parked.done():
            return False
        self._resume_now(timed_out=False)
        return True

    def _resume_now(self, *, timed_out: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._parked = None
        self._hand_over(_Reply(timed_out))

    def _resume(self, number: int, timed_out: bool) -> None:
        """The resume step: give the baton back to the parked worker."""
        if number != self._park_number or self._parked is None or self.finished:
            return
        # (Its timer, if this is it, has started: cancelling it is a no-op.)
        self._resume_now(timed_out=timed_out)

    def _cancel(self) -> None:
        """At close: raise CancelledError in the parked worker and wait for it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._turn == "worker":
            # A KeyboardInterrupt cut the job's step short while the worker ran:
            # let it get to its next finish or park first.
            self._serve()
            if self.finished or self.abandoned:
                return
        self._parked = None
        self._park_number += 1
        self._hand_over(_Reply(cancel=True))

    # ---------------------------------------------------------- worker side

    def _main(self) -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            reply = self._wait_for_turn()
            _local.worker = self
            ident = _thread.get_ident()
            # The thread is part of the universe: the boundary answers in it as in
            # the loop's thread (virtual clocks, escapes raised here), and its
            # waits are switch points.
            universe = self.universe
            if universe is not None:
                _boundary._active[ident] = universe
            _boundary.lockstep_parties[ident] = _Party(self)
            if reply.cancel:
                raise concurrent.futures.CancelledError(
                    "the simulated loop closed before this thread got its first turn"
                )
            if self.host_incarnation:
                # A new thread starts with an empty context; this one's holds the
                # host it runs on (world.current_host), as a task's does.
                context = contextvars.Context()
                context.run(_causal.host_var.set, self.host_incarnation)
                result = context.run(self._func, *self._args)
            else:
                result = self._func(*self._args)
        except BaseException as exc:
            error = exc
        finally:
            _local.worker = None
            _boundary.lockstep_parties.pop(_thread.get_ident(), None)
            _boundary._active.pop(_thread.get_ident(), None)
        if not self.abandoned:
            self._give_back(_Finished(result, error), wait=False)
        if (
            error is not None
            and self.program_thread
            and not isinstance(error, concurrent.futures.CancelledError)
        ):
            # As a real thread: threading's excepthook reports it (the loop thread
            # joins this thread in the finish step, so the report is in order).
            raise error

    def _wait_for_turn(self) -> _Reply:
        _acquire(self._worker_may_run)
        reply, self._reply = self._reply, None
        assert reply is not None
        return reply

    def _give_back(self, message: _Message, *, wait: bool = True) -> _Reply | None:
        if self.abandoned:
            # The loop gave up on this worker (it blocked); it runs on alone, but
            # must never touch the loop again.
            raise concurrent.futures.CancelledError(
                "this executor job was abandoned by its simulated loop"
            )
        self._switching = True
        try:
            self._message = message
            self._turn = "loop"
            _release(self._loop_may_run)
            if not wait:
                return None
            return self._wait_for_turn()
        finally:
            self._switching = False

    def park(
        self,
        futures: list[concurrent.futures.Future[Any]],
        timeout: float | None,
        done: Callable[[], bool],
        where: str = "a concurrent.futures wait",
        *,
        poll: bool = False,
    ) -> bool:
        """Give the baton to the loop until ``done()`` holds (re-checked whenever one
        of ``futures`` finishes, and at every poll point when ``poll``) or
        ``timeout`` virtual seconds pass. Returns False on a timeout. Raises
        CancelledError if the loop closes meanwhile."""
        reply = self._give_back(_Parked(futures, timeout, done, where, poll=poll))
        assert reply is not None
        if reply.cancel:
            raise concurrent.futures.CancelledError(
                "the simulated loop closed while this executor job waited on it"
            )
        return not reply.value

    def on_loop(self, function: Callable[[], Any]) -> Any:
        """Run ``function()`` on the loop thread (within the current step) and return
        its result or raise its exception here."""
        reply = self._give_back(_Request(function))
        assert reply is not None
        if reply.cancel:
            raise concurrent.futures.CancelledError("the simulated loop closed")
        if reply.error is not None:
            raise reply.error
        return reply.value


class Lockstep:
    """The lockstep workers of one loop."""

    def __init__(self, loop: SimLoop) -> None:
        self.loop = loop
        self._workers: list[Worker] = []
        self._count = 0
        self._nudged = False

    def job(
        self, future: asyncio.Future[Any], func: Callable[..., Any], args: tuple[Any, ...]
    ) -> Worker:
        """A worker for one executor job; its :meth:`Worker.start` is the job's step."""
        self._count += 1
        worker = Worker(self, future, func, args, f"simloom-executor-{self._count}")
        if not self._workers:
            _install()
        self._workers.append(worker)
        return worker

    def thread(self, thread: threading.Thread) -> Worker:
        """A lockstep party for a program's ``threading.Thread`` that is about to
        start: its ``run`` waits for the baton first; its first turn is a step."""
        worker = Worker(self, None, thread.run, (), thread.name, thread=thread)
        if not self._workers:
            _install()
        self._workers.append(worker)
        return worker

    def poll(self) -> None:
        """A poll point: resume (schedule the wake step of) every thread parked on a
        thread primitive that has freed up, in the order the threads were created.
        Runs on the loop thread, between parties' turns, so what it sees depends
        only on what the parties did: on the schedule, never on wall-clock timing."""
        for worker in list(self._workers):
            worker.poll()

    def settle(self) -> None:
        """The loop's run ended (``stop()``): give a turn to every thread that can run
        now (a first turn, or a wait that is already over), in creation order,
        until none can. On a real machine they run on while the loop's thread does
        whatever follows the run (a worker told to stop in the run's last batch has
        exited by the time the program joins it). No virtual time passes: a thread
        that waits for a timeout, or for the loop, waits for the next run."""
        for _ in range(LOOP_WAIT_TURNS):
            if not any(worker.run_now() for worker in list(self._workers)):
                return

    def nudge(self) -> None:
        """The loop's thread did something a parked thread may wait for: look again
        after the current step (one look pending at a time; none without a parked
        thread that polls)."""
        if self._nudged or self.loop.is_closed():
            return
        if not any(w._parked is not None and w._parked.poll for w in self._workers):
            return
        self._nudged = True
        self.loop.call_soon(self._nudged_poll)

    def _nudged_poll(self) -> None:
        self._nudged = False
        self.poll()

    def parked_report(self) -> list[str]:
        """One line per lockstep thread that waits: its name and what it waits on."""
        lines = []
        for worker in self._workers:
            parked = worker._parked
            if parked is not None and not worker.finished:
                lines.append(f"  thread {worker.name!r} waits on {parked.where}")
            elif not worker.finished and worker._turn == "loop" and worker.program_thread:
                lines.append(f"  thread {worker.name!r} waits for its first turn")
        return lines

    def _forget(self, worker: Worker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
            if not self._workers:
                _uninstall()

    def close(self) -> None:
        """Cancel every parked worker (CancelledError inside it) and join it."""
        for _ in range(_CLOSE_ROUNDS):
            # (A parked worker counts even if its Thread says it is not alive: a
            # program can confuse Thread's own bookkeeping.)
            parked = [
                w
                for w in self._workers
                if not w.finished and (w._parked is not None or w._thread.is_alive())
            ]
            if not parked:
                break
            for worker in parked:
                worker._cancel()
        for worker in list(self._workers):
            # Still parked after every round: abandon it (daemon thread).
            worker.abandoned = True
            self._forget(worker)


class _ExecutorResume:
    """The step that hands the baton back to a parked executor job (its own type, so
    the event log names it)."""

    __slots__ = ("number", "timed_out", "worker")

    def __init__(self, worker: Worker, number: int, *, timed_out: bool) -> None:
        self.worker = worker
        self.number = number
        self.timed_out = timed_out

    def __call__(self) -> None:
        self.worker._resume(self.number, self.timed_out)


class _ThreadWake(_ExecutorResume):
    """The step that resumes a thread parked on a thread primitive (a lock, an
    event, a queue, a join, a sleep): the event log names it ``thread.wake``."""

    __slots__ = ()


class _ThreadStart:
    """The step that gives a program's ``threading.Thread`` its first turn."""

    __slots__ = ("worker",)

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def __call__(self) -> None:
        self.worker.start()


def _describe(func: Callable[..., Any]) -> str:
    """The job's function by name; ``asyncio.to_thread`` passes
    ``partial(context.run, function, ...)``."""
    target: Any = func
    if isinstance(target, functools.partial):
        runs_in_context = isinstance(getattr(target.func, "__self__", None), contextvars.Context)
        target = target.args[0] if runs_in_context and target.args else target.func
    return getattr(target, "__qualname__", None) or repr(target)


# ------------------------------------------- concurrent.futures, parking versions

_original_result = concurrent.futures.Future.result
_original_exception = concurrent.futures.Future.exception
_original_wait = _futures_base.wait
_original_as_completed = _futures_base.as_completed
_installed = 0


def _result(self: concurrent.futures.Future[Any], timeout: float | None = None) -> Any:
    worker = current_worker()
    if worker is not None and not self.done() and (timeout is None or timeout > 0):
        worker.park([self], timeout, self.done)
        return _original_result(self, None if self.done() else 0)
    return _original_result(self, timeout)


def _exception(
    self: concurrent.futures.Future[Any], timeout: float | None = None
) -> BaseException | None:
    worker = current_worker()
    if worker is not None and not self.done() and (timeout is None or timeout > 0):
        worker.park([self], timeout, self.done)
        return _original_exception(self, None if self.done() else 0)
    return _original_exception(self, timeout)


def _wait_condition(
    futures: list[concurrent.futures.Future[Any]], return_when: str
) -> Callable[[], bool]:
    def done() -> bool:
        finished = [f for f in futures if f.done()]
        if return_when == concurrent.futures.FIRST_COMPLETED:
            return bool(finished)
        if return_when == concurrent.futures.FIRST_EXCEPTION and any(
            not f.cancelled() and f.exception(0) is not None for f in finished
        ):
            return True
        return len(finished) == len(futures)

    return done


def _wait(
    fs: Iterable[concurrent.futures.Future[Any]],
    timeout: float | None = None,
    return_when: str = concurrent.futures.ALL_COMPLETED,
) -> Any:
    worker = current_worker()
    futures = list(dict.fromkeys(fs))
    if worker is not None and (timeout is None or timeout > 0):
        done = _wait_condition(futures, return_when)
        if not done():
            worker.park(futures, timeout, done)
        return _original_wait(futures, 0, return_when)
    return _original_wait(futures, timeout, return_when)


def _as_completed(
    fs: Iterable[concurrent.futures.Future[Any]], timeout: float | None = None
) -> Iterator[concurrent.futures.Future[Any]]:
    worker = current_worker()
    if worker is None:
        return _original_as_completed(fs, timeout)
    return _as_completed_in_lockstep(worker, list(dict.fromkeys(fs)), timeout)


def _as_completed_in_lockstep(
    worker: Worker, futures: list[concurrent.futures.Future[Any]], timeout: float | None
) -> Iterator[concurrent.futures.Future[Any]]:
    """As ``concurrent.futures.as_completed``: the futures already done (in argument
    order), then each as it finishes; the timeout is virtual time."""
    loop = worker.loop
    deadline = None if timeout is None else loop.time() + timeout
    finished: list[concurrent.futures.Future[Any]] = []
    for future in futures:
        # Runs at once for a future already done; otherwise on whichever thread
        # finishes it, which holds the baton: the order is the schedule's.
        future.add_done_callback(finished.append)
    yielded = 0
    while True:
        while yielded < len(finished):
            yielded += 1
            yield finished[yielded - 1]
        if yielded == len(futures):
            return
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            raise TimeoutError(f"{len(futures) - yielded} (of {len(futures)}) futures unfinished")
        pending = [f for f in futures if not f.done()]
        worker.park(pending, remaining, functools.partial(_grew, finished, yielded))


# On the universe's thread these call the originals: the wait is the program's.
_boundary.transparent_code.update(
    function.__code__ for function in (_result, _exception, _wait, _as_completed)
)


def _grew(items: list[Any], length: int) -> bool:
    return len(items) > length


def _install() -> None:
    global _installed
    _installed += 1
    if _installed == 1:
        threading.Condition.notify = _notify  # type: ignore[method-assign]
        concurrent.futures.Future.result = _result  # type: ignore[method-assign]
        concurrent.futures.Future.exception = _exception  # type: ignore[method-assign]
        concurrent.futures.wait = _futures_base.wait = _wait
        concurrent.futures.as_completed = _futures_base.as_completed = _as_completed  # type: ignore[assignment]


def _uninstall() -> None:
    global _installed
    _installed = max(0, _installed - 1)
    if _installed == 0:
        threading.Condition.notify = _original_notify  # type: ignore[method-assign]
        concurrent.futures.Future.result = _original_result  # type: ignore[method-assign]
        concurrent.futures.Future.exception = _original_exception  # type: ignore[method-assign]
        concurrent.futures.wait = _futures_base.wait = _original_wait
        concurrent.futures.as_completed = _futures_base.as_completed = _original_as_completed


# ------------------------------------------------ threads and their switch points

_original_thread_start = threading.Thread.start


#: Turns the lockstep threads get while the loop's thread waits on them, before
#: the wait counts as one that never ends (an escape at the call, not a hang).
LOOP_WAIT_TURNS = 10_000


def loop_thread_waits(done: Callable[[], bool]) -> bool:
    """The universe's own thread is about to wait for another thread (a join, a
    lock a thread holds): as on a real machine the loop is blocked meanwhile and
    the threads run. Give the lockstep threads turns, inside the current step and
    in the order they were created (a pure function of the schedule), until
    ``done()`` holds or none of them can run. Returns ``done()``; False leaves the
    wait to the boundary (an escape: it waits on the real world, or a deadlock)."""
    if current_worker() is not None:
        return done()
    universe = _boundary._here()
    loop = universe.loop if universe is not None else None
    lockstep: Lockstep | None = getattr(loop, "_lockstep", None)
    if lockstep is None:
        return done()
    for _ in range(LOOP_WAIT_TURNS):
        if done():
            return True
        if any(worker.run_now() for worker in list(lockstep._workers)):
            continue
        # None can run before a timeout of its own (a sleep, a wait with a
        # timeout): the loop stays blocked while that time passes.
        timed = [
            worker
            for worker in lockstep._workers
            if worker._parked is not None and worker._timer is not None and not worker.finished
        ]
        if not timed:
            return False
        first = min(timed, key=lambda worker: worker._timer.when())
        assert loop is not None
        loop._advance_clock(max(0.0, first._timer.when() - loop.time()))
        first._resume_now(timed_out=True)
    # Threads that keep running (a poll loop waiting for the blocked loop) without
    # ending the wait: as good as waiting forever. The boundary names it.
    return done()


_boundary.loop_thread_waits = loop_thread_waits


def _nudge(loop: Any) -> None:
    lockstep: Lockstep | None = getattr(loop, "_lockstep", None)
    if lockstep is not None and current_worker() is None:
        lockstep.nudge()


_boundary.threads_nudged = _nudge


def socket_waits(done: Callable[[], bool], timeout: float | None, where: str) -> bool:
    """A blocking simulated socket call waits (:mod:`simloom._sim_unix`): a
    lockstep thread parks until ``done()`` holds or ``timeout`` virtual seconds
    pass; the loop's thread gives the lockstep threads their turns
    (:func:`loop_thread_waits`). Returns ``done()``."""
    worker = current_worker()
    if worker is None:
        return loop_thread_waits(done)
    if not _Party(worker)._may_park():
        return done()
    deadline = None if timeout is None else worker.loop.time() + timeout
    while not done():
        remaining = None if deadline is None else deadline - worker.loop.time()
        if remaining is not None and remaining <= 0:
            return False
        worker.park([], remaining, done, where, poll=True)
    return True


_sim_unix.wait_hook = socket_waits
_sim_unix.nudge_hook = _nudge
_sim_unix.in_lockstep_thread = lambda: current_worker() is not None


def _on_loop(function: Callable[[], Any]) -> Any:
    worker = current_worker()
    return function() if worker is None else worker.on_loop(function)


_sim_unix.on_loop_hook = _on_loop


def _loop_for_new_thread() -> SimLoop | None:
    """The simulated loop a thread started here joins: the current lockstep
    thread's, or the loop of the universe running on this thread."""
    worker = current_worker()
    if worker is not None:
        return worker.loop
    universe = _boundary._here()
    if universe is None:
        return None
    loop: SimLoop = universe.loop
    return loop if loop.is_running() else None


def thread_start(thread: threading.Thread) -> None:
    """``threading.Thread.start`` while a universe runs: a thread started by the
    universe (on its loop's thread or by a lockstep thread) becomes a lockstep
    thread of that loop; any other start is the original."""
    loop = _loop_for_new_thread()
    if loop is None or getattr(thread, "_simloom_internal", False) or thread.is_alive():
        _original_thread_start(thread)
        return
    worker = loop._lockstep.thread(thread)
    thread.run = worker._main  # type: ignore[method-assign]
    # The real start: the new thread bootstraps (Thread.start waits for that, a
    # brief wait the boundary allows) and then waits inside run for its first turn.
    _original_thread_start(thread)
    step = _ThreadStart(worker)
    caller = current_worker()
    if caller is not None:
        caller.on_loop(lambda: loop.call_soon(step))
    else:
        loop.call_soon(step)


def start_outside_the_universe(thread: threading.Thread) -> None:
    """Start ``thread`` as a real thread the universe does not own, even from inside
    one (for tests standing in for the outside world: a thread holding a lock the
    universe must not see through)."""
    _original_thread_start(thread)


def _in_thread_start(frame: Any) -> bool:
    """Whether a wait is Thread.start's wait for the new thread to bootstrap (a
    real, brief wait: the new thread runs free until its first turn)."""
    depth = 0
    while frame is not None and depth < 8:
        if frame.f_code is _THREAD_START_CODE:
            return True
        frame = frame.f_back
        depth += 1
    return False


_THREAD_START_CODE = _original_thread_start.__code__


def _lock_free(lock: Any) -> Callable[[], bool]:
    if type(lock) is _thread.RLock:
        return lambda: not repr(lock).startswith("<locked")
    return lambda: not lock.locked()


def _descriptor_look(
    receiver: object, args: tuple[object, ...], kwargs: dict[str, object]
) -> Callable[[], Any]:
    """The call of a descriptor wait, made without waiting (timeout 0: the real call)."""
    if isinstance(receiver, types.ModuleType) or receiver is None:
        import select

        rlist: Any = args[0]
        wlist: Any = args[1]
        xlist: Any = args[2]
        return lambda: select.select(rlist, wlist, xlist, 0)
    poll = receiver.poll  # type: ignore[attr-defined]
    if "maxevents" in kwargs or len(args) > 1:
        maxevents = kwargs.get("maxevents", args[1] if len(args) > 1 else -1)
        return lambda: poll(0, maxevents)
    return lambda: poll(0)


def _not_empty(items: Any) -> Callable[[], bool]:
    return lambda: not items.empty()


def _any_ready(ready: Any) -> bool:
    """Whether a descriptor wait's result names a ready descriptor."""
    if isinstance(ready, tuple):  # select.select: three lists
        return any(ready)
    return bool(ready)


class _Party:
    """A lockstep thread's switch points, called by the boundary's handlers in that
    thread (see :data:`simloom._boundary.lockstep_parties`)."""

    __slots__ = ("worker",)

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def _may_park(self) -> bool:
        worker = self.worker
        return worker is current_worker() and not worker._switching

    def acquire(self, lock: Any, timeout: object, caller: Any) -> object:
        """A blocking acquire of a held lock: the thread parks until the lock is
        free (or ``timeout`` virtual seconds pass) and takes it in its wake step.
        NotImplemented for a wait left to the real acquire (Thread.start's wait for
        the new thread to bootstrap, simloom's baton)."""
        if not self._may_park() or _in_thread_start(caller):
            return NotImplemented
        worker = self.worker
        loop = worker.loop
        seconds = float(timeout)  # type: ignore[arg-type]
        deadline = None if seconds < 0 else loop.time() + seconds
        where = f"a {type(lock).__name__} {_where(caller)}"
        while True:
            if lock.acquire(False):
                return True
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            worker.park([], remaining, _lock_free(lock), where, poll=True)

    def join(self, handle: Any, timeout: object, caller: Any) -> object:
        """``_thread._ThreadHandle.join`` (Thread.join on 3.13)."""
        if not self._may_park():
            return NotImplemented
        seconds = None if timeout is None else float(timeout)  # type: ignore[arg-type]
        self.worker.park([], seconds, handle.is_done, f"Thread.join {_where(caller)}", poll=True)
        return NotImplemented  # the real join now returns at once (or times out: 0 left)

    def wait_descriptors(
        self,
        receiver: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        seconds: float | None,
    ) -> object:
        """``epoll.poll`` or ``select.select`` waiting ``seconds``
        (``None``: no limit): the thread parks until a descriptor is ready (looked at
        without waiting, at poll points) or the time passes in virtual time, then
        makes the call without waiting. An event loop of the thread's own waits like
        this for ``call_soon_threadsafe``'s wake-up byte, written by another party."""
        if not self._may_park():
            return NotImplemented
        look = _descriptor_look(receiver, args, kwargs)
        ready = look()
        if _any_ready(ready):
            return ready
        what = (
            "select.select"
            if isinstance(receiver, types.ModuleType) or receiver is None
            else (f"{type(receiver).__name__}.poll")
        )
        self.worker.park(
            [], seconds, lambda: _any_ready(look()), f"{what} (descriptors)", poll=True
        )
        return look()

    def queue_get(self, items: Any, timeout: float | None) -> object:
        """``SimpleQueue.get`` on an empty queue: park until an item is there (or
        ``timeout`` virtual seconds pass: ``queue.Empty``), then take it."""
        if not self._may_park():
            return NotImplemented
        worker = self.worker
        loop = worker.loop
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if not items.empty():
                return items.get(False)  # the real get: another party may not take it now
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise queue.Empty
            worker.park([], remaining, _not_empty(items), "a SimpleQueue.get", poll=True)

    def sleep(self, seconds: float) -> object:
        """``time.sleep``: ``seconds`` of virtual time, other parties running."""
        if not self._may_park():
            return NotImplemented
        self.worker.park([], seconds, _never, f"time.sleep({seconds:g})")
        return None


def _never() -> bool:
    return False


def _where(frame: Any) -> str:
    """The program's call site of a wait: the first frame outside threading/queue."""
    while frame is not None and frame.f_globals.get("__name__") in _PRIMITIVE_MODULES:
        frame = frame.f_back
    if frame is None:
        return "(unknown)"
    return f"at {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_qualname}"


_PRIMITIVE_MODULES = frozenset(
    {"threading", "queue", "concurrent.futures._base", "simloom._lockstep", "simloom._boundary"}
)


_original_notify = threading.Condition.notify


def _notify(self: threading.Condition, n: int = 1) -> None:
    """``Condition.notify`` (Event.set, Queue.put, Semaphore.release all notify): a
    poll point when the loop thread notifies, so the waiters wake at once."""
    _original_notify(self, n)
    loop = _loop_for_new_thread()
    if loop is not None and current_worker() is None:
        loop._lockstep.poll()
