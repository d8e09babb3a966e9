"""The escape rows of the determinism boundary: inside a universe with the boundary,
a program that forks, execs, signals, listens on a real socket or waits for another
thread from the universe's thread gets EscapedSimulationError at the call, naming
what it called; ssl.RAND_bytes replays from the tape; and nothing of it outlives the
universe (no signal handler stays installed). Outside universes, and in other
threads, everything is real.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import re
import signal
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import simloom
from escape_probes import (
    AT_ONCE,
    CHILD_ATTEMPTS,
    MORE_WAIT_ATTEMPTS,
    SHORT,
    SIGNAL_ATTEMPTS,
    WAIT_ATTEMPTS,
    assert_names,
    child_messages,
    in_universe,
    message_of,
)
from simloom import _boundary
from simloom._lockstep import start_outside_the_universe

DOCS = Path(__file__).resolve().parent.parent / "docs" / "determinism.md"

# ------------------------------------------------------------------ processes


@pytest.mark.parametrize("api", sorted(CHILD_ATTEMPTS))
def test_forks_execs_and_signal_waits_escape_at_the_call_without_ever_running(api: str) -> None:
    # Run in a child process: were the escape missing, the fork, the exec or the
    # wait would happen there, not in the test run.
    assert_names(api, child_messages()[api])


def test_a_fork_outside_a_universe_is_the_real_one() -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7


# -------------------------------------------------------------------- signals


@pytest.mark.parametrize("api", sorted(SIGNAL_ATTEMPTS))
def test_signal_functions_escape_at_the_call(api: str) -> None:
    before = signal.getsignal(signal.SIGUSR1)
    try:
        assert_names(api, message_of(SIGNAL_ATTEMPTS[api]))
    finally:
        signal.signal(signal.SIGUSR1, before)  # only needed if the escape regressed


def all_signal_handlers() -> dict[int, object]:
    return {int(s): signal.getsignal(s) for s in signal.valid_signals() if signal.getsignal(s)}


def test_no_signal_handler_outlives_a_universe_that_tried_to_install_one() -> None:
    before = all_signal_handlers()
    before_sigint = signal.getsignal(signal.SIGINT)

    async def main() -> int:
        escaped = 0
        for signum in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
            try:
                signal.signal(signum, lambda *args: None)
            except simloom.EscapedSimulationError:
                escaped += 1
        try:
            signal.setitimer(signal.ITIMER_REAL, 30)
        except simloom.EscapedSimulationError:
            escaped += 1
        return escaped

    try:
        assert in_universe(main) == 5
        assert all_signal_handlers() == before
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        for signum, handler in before.items():  # only needed if the escape regressed
            signal.signal(signum, handler)  # type: ignore[arg-type]
        signal.setitimer(signal.ITIMER_REAL, 0)
    assert signal.getsignal(signal.SIGINT) is before_sigint


def test_reading_signal_handlers_is_allowed() -> None:
    async def main() -> object:
        return signal.getsignal(signal.SIGINT), signal.getitimer(signal.ITIMER_REAL)

    assert in_universe(main) == (signal.getsignal(signal.SIGINT), (0.0, 0.0))


async def sigint_handler_while_running() -> object:
    await asyncio.sleep(1)
    return signal.getsignal(signal.SIGINT)


def test_asyncio_run_with_a_simloop_still_installs_and_restores_its_sigint_handler() -> None:
    # asyncio.Runner installs its Ctrl-C handler around the run (outside the loop's
    # steps), from the main thread: that is not the program's, and still works.
    assert threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT)
    during = asyncio.run(sigint_handler_while_running(), loop_factory=simloom.SimLoop)
    if before is signal.default_int_handler:
        assert isinstance(during, functools.partial)  # Runner._on_sigint
    assert signal.getsignal(signal.SIGINT) is before


def test_an_asyncio_runner_with_a_simloop_runs_twice_and_restores_sigint() -> None:
    before = signal.getsignal(signal.SIGINT)
    with asyncio.Runner(loop_factory=simloom.SimLoop) as runner:
        runner.run(sigint_handler_while_running())
        assert signal.getsignal(signal.SIGINT) is before
        runner.run(sigint_handler_while_running())
    assert signal.getsignal(signal.SIGINT) is before


# -------------------------------------------------------------------- sockets


def test_binding_a_real_socket_escapes_without_a_world() -> None:
    with socket.socket() as sock:
        message = message_of(lambda: sock.bind(("127.0.0.1", 0)), world=False)
        assert_names("socket.socket.bind", message)


def test_listening_on_a_real_socket_escapes() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # outside the universe: real, and allowed
        assert_names("socket.socket.listen", message_of(sock.listen))


def test_the_simulated_network_still_listens_and_connects() -> None:
    async def main() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readexactly(5))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 8080)
        async with server:
            # Happy-eyeballs style: a socket.socket connected by loop.sock_connect.
            loop = asyncio.get_running_loop()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", 8080))
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(b"hello")
            data = await reader.readexactly(5)
            writer.close()
            return data

    assert in_universe(main) == b"hello"


# ------------------------------------------------------------ ssl randomness


def ssl_program() -> Callable[[], Awaitable[bytes]]:
    async def main() -> bytes:
        drawn = ssl.RAND_bytes(16)
        # Decide with the bytes: the schedule (so the digest) depends on them.
        for byte in drawn[:4]:
            await asyncio.sleep(byte / 1000)
        return drawn

    return main


def test_ssl_rand_bytes_replays_from_the_tape() -> None:
    runs = [simloom.run(ssl_program(), seed=5, boundary=True) for _ in range(10)]
    assert {run.digest for run in runs} == {runs[0].digest}
    assert {run.value for run in runs} == {runs[0].value}
    other = simloom.run(ssl_program(), seed=6, boundary=True)
    assert other.value != runs[0].value
    replayed = simloom.replay(ssl_program(), runs[0].tape, boundary=True)
    assert (replayed.value, replayed.digest) == (runs[0].value, runs[0].digest)


def test_ssl_rand_bytes_has_its_own_stream() -> None:
    async def urandom_only() -> bytes:
        return os.urandom(8)

    async def both() -> bytes:
        ssl.RAND_bytes(100)
        return os.urandom(8)

    assert in_universe(urandom_only, seed=3) == in_universe(both, seed=3)


def test_ssl_rand_bytes_outside_a_universe_is_the_real_one() -> None:
    assert ssl.RAND_bytes(16) != ssl.RAND_bytes(16)
    with pytest.raises(ValueError):
        in_universe(lambda: _call_async(ssl.RAND_bytes, -1))


async def _call_async(function: Callable[..., object], *args: object) -> object:
    return function(*args)


# ---------------------------------------------------------------------- threads


@pytest.mark.parametrize("api", sorted(WAIT_ATTEMPTS))
def test_waiting_for_another_thread_from_the_universe_thread_escapes(api: str) -> None:
    started = time.monotonic()
    assert_names(api, message_of(WAIT_ATTEMPTS[api]))
    assert time.monotonic() - started < SHORT  # at once: no real time passed


@pytest.mark.parametrize("case", sorted(MORE_WAIT_ATTEMPTS))
def test_every_way_of_waiting_is_named_after_what_the_program_called(case: str) -> None:
    api, attempt = MORE_WAIT_ATTEMPTS[case]
    assert_names(api, message_of(attempt))


@pytest.mark.parametrize("case", sorted(AT_ONCE))
def test_a_wait_that_would_return_at_once_is_allowed(case: str) -> None:
    attempt, expected = AT_ONCE[case]
    assert message_of(attempt) == f"no escape: returned {expected!r}"


def test_other_threads_wait_for_real_during_a_universe() -> None:
    results: list[object] = []
    go = threading.Event()

    def other() -> None:
        results.append(go.wait(10))
        results.append(threading.Event().wait(SHORT))
        lock = threading.Lock()
        lock.acquire()
        results.append(lock.acquire(timeout=SHORT))

    async def main() -> None:
        thread = threading.Thread(target=other)
        # Not the universe's (a thread started in it would be a lockstep thread):
        # Thread.start waits for the thread to run, allowed.
        start_outside_the_universe(thread)
        go.set()
        RUNNING.append(thread)

    RUNNING: list[threading.Thread] = []
    in_universe(main)
    RUNNING[0].join()
    assert results == [True, False, False]


class Quiet(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        """Nothing: only the handler's lock matters here."""


def test_the_stdlibs_own_locks_may_wait_briefly() -> None:
    # logging's handler lock, held by another thread for a moment: the universe's
    # thread waits for it (a mutex, not a wait for another thread's work).
    handler = Quiet()
    logger = logging.getLogger("simloom.test.escapes")
    logger.addHandler(handler)
    logger.propagate = False
    held = threading.Event()

    def hold() -> None:
        handler.acquire()
        held.set()
        time.sleep(SHORT)
        handler.release()

    async def main() -> str:
        start_outside_the_universe(threading.Thread(target=hold))
        while not held.is_set():
            time.sleep(0)
        logger.warning("from the universe")
        return "logged"

    try:
        assert in_universe(main) == "logged"
    finally:
        logger.removeHandler(handler)


def test_machinery_waits_for_real() -> None:
    async def main() -> object:
        lock = threading.Lock()
        lock.acquire()
        return _boundary.machinery(lambda: lock.acquire(timeout=SHORT))()

    assert in_universe(main) is False


def simloom_own(source: str) -> Callable[[], object]:
    """``source``'s function ``own`` as if simloom's own code defined it."""
    namespace: dict[str, object] = {
        "__name__": "simloom._own_code_for_a_test",
        "signal": signal,
        "threading": threading,
        "SHORT": SHORT,
    }
    exec(source, namespace)
    own = namespace["own"]
    assert callable(own)
    return own


def test_simloom_own_code_may_mask_signals_and_wait_in_a_universe() -> None:
    mask_signals = simloom_own(
        "def own():\n    return signal.pthread_sigmask(signal.SIG_BLOCK, [])\n"
    )
    wait = simloom_own(
        "def own():\n"
        "    lock = threading.Lock()\n"
        "    lock.acquire()\n"
        "    return lock.acquire(timeout=SHORT)\n"
    )

    async def main() -> object:
        return mask_signals(), wait()

    assert in_universe(main) == (signal.pthread_sigmask(signal.SIG_BLOCK, []), False)


def test_waits_outside_a_universe_are_the_real_ones() -> None:
    assert threading.Event().wait(SHORT) is False
    assert concurrent.futures.wait([concurrent.futures.Future()], timeout=SHORT).done == set()


def test_a_program_can_catch_the_escape_and_the_primitive_still_works() -> None:
    async def main() -> object:
        condition = threading.Condition()
        with condition:
            with pytest.raises(simloom.EscapedSimulationError):
                condition.wait(SHORT)
            condition.notify_all()  # still owned, no waiter left behind
            owned = condition._is_owned()  # type: ignore[attr-defined]
        return owned, len(condition._waiters)  # type: ignore[attr-defined]

    assert in_universe(main) == (True, 0)


# ---------------------------------------------------------------- the table


def test_every_boundary_row_is_in_the_docs_with_its_area_and_treatment() -> None:
    text = DOCS.read_text()
    missing = [
        f"| `{entry.api}` | {entry.area} | {entry.treatment} |"
        for entry in simloom.boundary()
        if not re.search(
            rf"^\| `{re.escape(entry.api)}` \| {entry.area} \| {entry.treatment} \|",
            text,
            re.MULTILINE,
        )
    ]
    assert not missing, "docs/determinism.md lacks the rows:\n" + "\n".join(missing)


def test_the_docs_list_no_row_the_table_lacks() -> None:
    apis = {entry.api for entry in simloom.boundary()}
    listed = re.findall(r"^\| `([^`]+)` \| [a-z]+ \| [a-z]+ \|", DOCS.read_text(), re.MULTILINE)
    assert set(listed) <= apis
    assert len(listed) == len(set(listed))


def test_a_world_can_still_answer_the_new_escapes() -> None:
    async def main() -> object:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, simloom.SimLoop)
        _boundary.simulate(loop, "socket.socket.recvmsg_into", lambda sock, *args: 1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            assert sock.recvmsg_into([bytearray(4)]) == 1
        return "sent"

    assert in_universe(main) == "sent"


def test_the_digest_of_a_universe_without_these_apis_is_unchanged() -> None:
    async def main() -> None:
        await asyncio.sleep(1)

    with_boundary = simloom.run(main, seed=1, boundary=True)
    without = simloom.run(main, seed=1)
    assert with_boundary.digest == without.digest


def test_each_loop_escape_is_written_once_and_raised_by_the_loop_as_listed() -> None:
    from simloom import _boundary

    rows = {entry.api: entry for entry in simloom.boundary()}
    loop = simloom.SimLoop()
    try:
        for name, (area, what) in _boundary.LOOP_ESCAPES.items():
            entry = rows[f"loop.{name}"]
            assert (entry.area, entry.treatment) == (area, "escape")
            assert entry.how.endswith(what)
            method = getattr(loop, name)
            arguments = [None] * (method.__code__.co_argcount - 1)
            with pytest.raises(simloom.EscapedSimulationError) as raised:
                method(*arguments)
            assert str(raised.value).startswith(f"loop.{name}()")
            assert what in str(raised.value)
    finally:
        loop.close()


def test_a_builtin_wrapped_by_another_tool_still_reaches_the_boundary(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """blockbuster (anyio's suite turns it on for every test) replaces time.sleep and
    socket methods with Python wrappers that call the originals: the boundary, which
    redirects the C builtins themselves, still sees those calls."""
    from simloom import _boundary

    original = time.sleep
    calls: list[float] = []

    @functools.wraps(original)
    def wrapper(seconds: float) -> None:
        calls.append(seconds)
        original(seconds)

    monkeypatch.setattr(time, "sleep", wrapper)
    # Resolved through the wrapper, should the boundary be first used only now.
    assert _boundary._original_builtin("time.sleep") is original

    async def main() -> float:
        started = time.monotonic()
        time.sleep(30)  # through the wrapper: virtual time, not 30 real seconds
        return time.monotonic() - started

    wall = time.perf_counter()
    assert simloom.run(main, scheduler="fifo").value == 30
    assert calls == [30] and time.perf_counter() - wall < 10
