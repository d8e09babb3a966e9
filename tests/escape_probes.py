"""What a program tries, inside a universe with the boundary, at the edges the
escape rows close: processes, signals, real listeners, ssl randomness and waits for
other threads. Shared by test_boundary.py (one behaviour probe per table row) and
test_boundary_escapes.py (the specifications).

Every attempt is safe if its escape regresses: a fork's child exits at once, a wait
has a finite timeout or is released by a helper thread, a signal is one whose
delivery does nothing (signal 0, SIGWINCH). The attempts that could still replace,
kill or hang the process (exec, pause, sigwait) run only in a child process
(:func:`child_messages`), so a regression cannot take the test run with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import os
import pty
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import simloom
from simloom import _hashseed
from simloom._lockstep import start_outside_the_universe

TESTS_DIR = str(Path(__file__).resolve().parent)
#: A wait that regresses blocks this long, then the attempt returns instead of raising.
SHORT = 0.05


def in_universe(main: Callable[[], Awaitable[Any]], seed: int = 0, **options: Any) -> Any:
    result = simloom.run(main, seed=seed, boundary=True, **options)
    result.raise_error()
    return result.value


def message_of(action: Callable[[], object], **options: Any) -> str:
    """Run ``action`` in a universe (``options`` for ``simloom.run``): the
    EscapedSimulationError's message, or ``"no escape: <what it returned or
    raised>"``."""

    async def main() -> str:
        try:
            outcome = action()
        except simloom.EscapedSimulationError as escape:
            return str(escape)
        except Exception as error:
            return f"no escape: raised {error!r}"
        return f"no escape: returned {outcome!r}"

    return str(in_universe(main, **options))


def assert_names(api: str, message: str) -> None:
    assert message.startswith(f"{api}(): "), message
    assert "simulated world" in message, message


def escapes(api: str, action: Callable[[], object]) -> Callable[[], None]:
    """A probe: ``action`` in a universe raises EscapedSimulationError naming ``api``."""
    return lambda: assert_names(api, message_of(action))


# ------------------------------------------------------------------ processes


def _child_exits(pid: int) -> int:
    """In a fork's child (only if the escape regressed): leave at once."""
    if pid == 0:  # pragma: no cover
        os._exit(0)
    return pid


def _forkpty() -> object:
    pid, fd = os.forkpty()
    _child_exits(pid)
    os.close(fd)
    return pid


def _pty_fork() -> object:
    pid, fd = pty.fork()
    _child_exits(pid)
    os.close(fd)
    return pid


#: Attempts run in a child process: api named in the message → the attempt.
CHILD_ATTEMPTS: dict[str, Callable[[], object]] = {
    "os.fork": lambda: _child_exits(os.fork()),
    "os.forkpty": _forkpty,
    "pty.fork": _pty_fork,
    "pty.spawn": lambda: pty.spawn(["true"]),
    "os.spawnv": lambda: os.spawnv(os.P_WAIT, "/bin/true", ["true"]),
    "os.spawnlp": lambda: os.spawnlp(os.P_WAIT, "true", "true"),
    "os.execv": lambda: os.execv("/bin/true", ["true"]),
    "os.execve": lambda: os.execve("/bin/true", ["true"], dict(os.environ)),
    "os.execvp": lambda: os.execvp("true", ["true"]),
    "os.execlp": lambda: os.execlp("true", "true"),
    "signal.pause": signal.pause,
    "signal.sigwait": lambda: signal.sigwait([signal.SIGWINCH]),
    "signal.sigwaitinfo": lambda: signal.sigwaitinfo([signal.SIGWINCH]),
}

CHILD = """
import json, sys
sys.path.insert(0, {tests_dir!r})
import escape_probes
messages = {{
    api: escape_probes.message_of(attempt)
    for api, attempt in escape_probes.CHILD_ATTEMPTS.items()
}}
print(json.dumps(messages))
"""


@functools.cache
def child_messages() -> dict[str, str]:
    """Every :data:`CHILD_ATTEMPTS` attempt's message, from one child process."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(tests_dir=TESTS_DIR)],
        env=_hashseed.pinned_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines, f"the child printed nothing (was it replaced by exec?): {proc.stderr}"
    messages: dict[str, str] = json.loads(lines[-1])
    return messages


def escapes_in_a_child(api: str) -> Callable[[], None]:
    return lambda: assert_names(api, child_messages()[api])


# -------------------------------------------------------------------- signals


def _ignore(signum: int, frame: object) -> None:
    """A handler that must never be installed."""


#: Signal attempts harmless if they regress (they install nothing lasting or are
#: restored by the test), run in the test process.
SIGNAL_ATTEMPTS: dict[str, Callable[[], object]] = {
    "signal.signal": lambda: signal.signal(signal.SIGUSR1, _ignore),
    "signal.setitimer": lambda: signal.setitimer(signal.ITIMER_VIRTUAL, 0),
    "signal.alarm": lambda: signal.alarm(0),
    "signal.pthread_kill": lambda: signal.pthread_kill(threading.get_ident(), 0),
    "signal.raise_signal": lambda: signal.raise_signal(signal.SIGWINCH),
    "signal.set_wakeup_fd": lambda: signal.set_wakeup_fd(-1),
    "signal.siginterrupt": lambda: signal.siginterrupt(signal.SIGWINCH, False),
    "signal.pthread_sigmask": lambda: signal.pthread_sigmask(signal.SIG_BLOCK, []),
    "signal.sigtimedwait": lambda: signal.sigtimedwait([signal.SIGWINCH], 0),
    "os.kill": lambda: os.kill(os.getpid(), 0),
    "os.killpg": lambda: os.killpg(os.getpgid(0), 0),
}


# ---------------------------------------------------------------------- threads
#
# Each wait is ended by a real thread after RELEASE seconds, so that a regressed
# escape waits and then returns instead of hanging: the stdlib's timed waits loop
# on time.monotonic, which does not move in a universe (Queue.get(timeout=...)
# would loop forever).

RELEASE = 1.0


def _later(action: Callable[[], object]) -> None:
    """``action()`` in a real thread, RELEASE seconds from now."""
    timer = threading.Timer(RELEASE, action)
    timer.daemon = True
    start_outside_the_universe(timer)


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    _later(lock.release)
    return lock


def _with_held_lock() -> object:
    with _held_lock():
        return "entered"


def _held_elsewhere() -> threading.RLock:
    """An RLock another thread holds for RELEASE seconds."""
    lock = threading.RLock()
    taken = threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            time.sleep(RELEASE)

    start_outside_the_universe(threading.Thread(target=hold, daemon=True))
    while not taken.is_set():
        time.sleep(0)  # allowed: blocks nothing (taken.wait() would be an escape)
    return lock


def _event_wait() -> object:
    event = threading.Event()
    _later(event.set)
    return event.wait(SHORT)


def _condition_wait() -> object:
    condition = threading.Condition()
    with condition:
        return condition.wait(SHORT)


def _condition_wait_for() -> object:
    condition = threading.Condition()
    ready: list[bool] = []

    def notify() -> None:
        with condition:
            ready.append(True)
            condition.notify_all()

    _later(notify)
    with condition:
        return condition.wait_for(lambda: bool(ready), SHORT)


def _semaphore(value: int, bounded: bool = False) -> threading.Semaphore:
    semaphore = threading.BoundedSemaphore(1) if bounded else threading.Semaphore(value)
    if bounded:
        semaphore.acquire()
    _later(semaphore.release)
    return semaphore


def _barrier_wait() -> object:
    barrier = threading.Barrier(2)
    _later(barrier.abort)
    return barrier.wait(SHORT)


def _queue_released_later(kind: type[queue.Queue[int]] = queue.Queue) -> queue.Queue[int]:
    items = kind()
    _later(lambda: items.put(1))
    return items


def _simple_queue_released_later() -> queue.SimpleQueue[int]:
    items: queue.SimpleQueue[int] = queue.SimpleQueue()
    _later(lambda: items.put(1))
    return items


def _simple_queue_put_wakes_the_worker_before_the_loop_idles() -> None:
    """A put from the universe's thread onto a SimpleQueue a lockstep thread waits
    on: the worker takes the item after the step, while the loop still has a
    timer to run (before, only when the loop idled: after the 5 s sleep)."""

    async def main() -> tuple[float, float]:
        items: queue.SimpleQueue[float] = queue.SimpleQueue()
        taken: list[float] = []
        loop = asyncio.get_running_loop()

        def worker() -> None:
            items.get()
            taken.append(loop.time())

        thread = threading.Thread(target=worker)
        thread.start()
        await asyncio.sleep(1)
        items.put(loop.time())
        await asyncio.sleep(5)
        thread.join()
        return taken[0], loop.time()

    took, end = in_universe(main)
    assert took == 1.0 and end == 6.0, (took, end)


def _full_queue() -> queue.Queue[int]:
    full: queue.Queue[int] = queue.Queue(maxsize=1)
    full.put(1)
    _later(full.get_nowait)
    return full


def _unfinished_queue() -> object:
    work: queue.Queue[int] = queue.Queue()
    work.put(1)
    _later(work.task_done)
    work.join()
    return "joined"


def _future_done_later() -> concurrent.futures.Future[int]:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    _later(lambda: future.set_result(1))
    return future


def _thread_join(timeout: float | None) -> Callable[[], object]:
    def attempt() -> object:
        thread = threading.Thread(target=time.sleep, args=(RELEASE,), daemon=True)
        start_outside_the_universe(thread)
        thread.join(timeout)
        return None

    return attempt


def _run_coroutine_threadsafe_result() -> object:
    async def answer() -> int:
        return 42

    loop = asyncio.get_running_loop()
    future = asyncio.run_coroutine_threadsafe(answer(), loop)
    try:
        return future.result(timeout=SHORT)  # the stock loop: never returns
    finally:
        future.cancel()


#: api named in the message → an attempt that would wait for another thread.
WAIT_ATTEMPTS: dict[str, Callable[[], object]] = {
    "threading.Lock.acquire": lambda: _held_lock().acquire(timeout=SHORT),
    "threading.RLock.acquire": lambda: _held_elsewhere().acquire(timeout=SHORT),
    "threading.Event.wait": _event_wait,
    "threading.Condition.wait": _condition_wait,
    "threading.Semaphore.acquire": lambda: _semaphore(0).acquire(timeout=SHORT),
    "threading.Barrier.wait": _barrier_wait,
    "queue.Queue.get": lambda: _queue_released_later().get(timeout=SHORT),
    "queue.Queue.put": lambda: _full_queue().put(2, timeout=SHORT),
    "queue.Queue.join": _unfinished_queue,
    "concurrent.futures.Future.result": lambda: _future_done_later().result(SHORT),
    "concurrent.futures.wait": lambda: concurrent.futures.wait(
        [_future_done_later()], timeout=SHORT
    ),
    "threading.Thread.join": _thread_join(SHORT),
    "queue.SimpleQueue.get": lambda: _simple_queue_released_later().get(timeout=SHORT),
}

#: More ways to wait, each named after what the program called.
MORE_WAIT_ATTEMPTS: dict[str, tuple[str, Callable[[], object]]] = {
    "with lock:": ("threading.Lock.acquire", _with_held_lock),
    "lock.acquire() blocking": (
        "threading.Lock.acquire",
        lambda: _held_lock().acquire(),
    ),
    "Condition.wait_for": ("threading.Condition.wait_for", _condition_wait_for),
    "BoundedSemaphore.acquire": (
        "threading.Semaphore.acquire",
        lambda: _semaphore(0, bounded=True).acquire(timeout=SHORT),
    ),
    "Queue.get() forever": (
        "queue.Queue.get",
        lambda: _queue_released_later().get(),
    ),
    "LifoQueue.get": (
        "queue.Queue.get",
        lambda: _queue_released_later(queue.LifoQueue).get(timeout=SHORT),
    ),
    "Future.exception": (
        "concurrent.futures.Future.exception",
        lambda: _future_done_later().exception(SHORT),
    ),
    "as_completed": (
        "concurrent.futures.as_completed",
        lambda: list(concurrent.futures.as_completed([_future_done_later()], SHORT)),
    ),
    "Thread.join() forever": ("threading.Thread.join", _thread_join(None)),
    "run_coroutine_threadsafe(...).result()": (
        "concurrent.futures.Future.result",
        _run_coroutine_threadsafe_result,
    ),
}


def _rlock_reentered() -> object:
    lock = threading.RLock()
    with lock, lock:
        return lock.acquire(timeout=5)


def _set_event() -> object:
    event = threading.Event()
    event.set()
    return event.wait(5)


def _done_future() -> object:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    future.set_result(7)
    return future.result(timeout=5), concurrent.futures.wait([future], timeout=5).done == {future}


def _finished_thread() -> object:
    thread = threading.Thread(target=lambda: None)
    start_outside_the_universe(thread)
    while thread.is_alive():
        time.sleep(0)  # allowed: blocks nothing
    thread.join()
    thread.join(5)
    return "joined"


def _queue_with_an_item() -> object:
    items: queue.Queue[int] = queue.Queue()
    items.put(3)
    return items.get(timeout=5)


#: Calls that would return at once: allowed, with what they return.
AT_ONCE: dict[str, tuple[Callable[[], object], object]] = {
    "a free lock": (lambda: threading.Lock().acquire(), True),
    "a free lock, with a timeout": (lambda: threading.Lock().acquire(timeout=5), True),
    "a held lock without blocking": (lambda: _held_lock().acquire(False), False),
    "a held lock with timeout 0": (lambda: _held_lock().acquire(timeout=0), False),
    "re-entering this thread's RLock": (_rlock_reentered, True),
    "an Event already set": (_set_event, True),
    "Event.wait(0)": (lambda: threading.Event().wait(0), False),
    "a Semaphore with a slot": (lambda: threading.Semaphore(1).acquire(timeout=5), True),
    "a Queue with an item": (_queue_with_an_item, 3),
    "Queue.get(block=False)": (lambda: _raises(queue.Queue().get, False), "Empty"),
    "a done Future": (_done_future, (7, True)),
    "Future.result(timeout=0)": (
        lambda: _raises(concurrent.futures.Future().result, 0),
        "TimeoutError",
    ),
    "a finished Thread": (_finished_thread, "joined"),
    "Thread.join(0)": (lambda: _thread_join(0)(), None),
}


def _raises(call: Callable[..., object], *args: object) -> str:
    try:
        call(*args)
    except Exception as error:
        return type(error).__name__
    return "nothing"


def _ssl_bytes_replay_by_seed() -> None:
    async def main() -> bytes:
        return ssl.RAND_bytes(8)

    first = in_universe(main, seed=1)
    assert in_universe(main, seed=1) == first
    assert in_universe(main, seed=2) != first


def _bind() -> object:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
    return "bound"


def _bind_probe() -> None:
    """Simulated with a world (a port of the simulated network), an escape without."""
    assert_names("socket.socket.bind", message_of(_bind, world=False))

    async def main() -> object:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()

    assert in_universe(main) == ("127.0.0.1", 49152)


def _listen_probe() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # outside the universe
        assert_names("socket.socket.listen", message_of(sock.listen))


async def _connected_pair() -> tuple[socket.socket, socket.socket, socket.socket]:
    """A simulated listener, a connection accepted on it, and the client's side."""
    loop = asyncio.get_running_loop()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    client = socket.socket()
    client.setblocking(False)
    await loop.sock_connect(client, server.getsockname())
    conn, _ = await loop.sock_accept(server)
    conn.setblocking(False)
    return server, conn, client


def _getpeername_probe() -> None:
    async def main() -> bool:
        server, conn, client = await _connected_pair()
        with server, conn, client:
            return bool(conn.getpeername() == client.getsockname())

    assert in_universe(main) is True


def _shutdown_probe() -> None:
    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        server, conn, client = await _connected_pair()
        with server, conn, client:
            conn.shutdown(socket.SHUT_WR)
            return await loop.sock_recv(client, 10)  # end of file

    assert in_universe(main) == b""


def _close_probe() -> None:
    async def main() -> object:
        first = socket.socket()
        first.bind(("127.0.0.1", 0))
        port = first.getsockname()[1]
        first.close()  # the simulated port is free again
        with socket.socket() as again:
            again.bind(("127.0.0.1", port))
            return again.getsockname() == ("127.0.0.1", port)

    assert in_universe(main) is True


def _descriptor_wait_probe() -> None:
    """A lockstep thread's ``epoll.poll`` (a stock loop of its own waiting) and
    ``select.select`` park in virtual time: 20 virtual seconds, no wall-clock wait;
    ``select.select`` on the universe's thread with a zero timeout is the real call."""
    import select

    async def main() -> tuple[float, float, bool]:
        def in_thread() -> tuple[float, float]:
            before = time.monotonic()
            asyncio.run(asyncio.sleep(10))  # a stock loop: its epoll.poll waits 10 s
            middle = time.monotonic()
            r, w = os.pipe()
            try:
                select.select([r], [], [], 10)  # nothing to read: the full 10 s
            finally:
                os.close(r)
                os.close(w)
            return middle - before, time.monotonic() - middle

        slept = await asyncio.to_thread(in_thread)
        r, w = os.pipe()
        try:
            ready = select.select([r], [], [], 0) == ([], [], [])
        finally:
            os.close(r)
            os.close(w)
        return (*slept, ready)

    started = time.perf_counter()
    first, second, ready = in_universe(main)
    assert 10 <= first < 10.1 and 10 <= second < 10.1, (first, second)
    assert ready
    assert time.perf_counter() - started < 3


#: A behaviour probe for each table row these escapes add (test_boundary.py holds
#: the table and its probes together).
PROBES: dict[str, Callable[[], None]] = {
    "socket.socket.bind": _bind_probe,
    "socket.socket.listen": _listen_probe,
    "socket.socket.getsockname": _bind_probe,
    "socket.socket.getpeername": _getpeername_probe,
    "socket.socket.shutdown": _shutdown_probe,
    "socket.socket.close": _close_probe,
    "ssl.RAND_bytes": _ssl_bytes_replay_by_seed,
    **{api: escapes_in_a_child(api) for api in ("os.forkpty", "pty.fork", "os.spawnv", "os.execv")},
    **{api: escapes(api, attempt) for api, attempt in SIGNAL_ATTEMPTS.items()},
    **{
        api: escapes_in_a_child(api)
        for api in ("signal.pause", "signal.sigwait", "signal.sigwaitinfo")
    },
    **{api: escapes(api, attempt) for api, attempt in WAIT_ATTEMPTS.items()},
    "select.epoll.poll": _descriptor_wait_probe,
    "queue.SimpleQueue.put": _simple_queue_put_wakes_the_worker_before_the_loop_idles,
}
