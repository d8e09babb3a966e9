"""Escapes and oracles: a simulated universe never reaches the real world, never hangs,
and never loses an exception.

* Every API that would touch the real world (file descriptors, sockets, DNS,
  processes, pipes, signals, TLS, foreign threads) raises
  ``simloom.EscapedSimulationError`` at the call site, naming the API.
* A universe where nothing can run is a ``SimDeadlockError`` that says who waits
  where; a universe that spins without the clock moving is a ``SimLivelockError``.
* An exception that the stock loop would only log (a failing callback, a task
  exception nobody retrieved, a broken exception handler) fails the universe with
  ``UnhandledExceptionError`` -- unless the program installed its own handler.
* After any of those failures the universe is torn down cleanly: no pending task is
  destroyed, no coroutine is left un-awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import os
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import simloom

SIMLOOM_DIR = os.path.dirname(os.path.abspath(simloom.__file__))


# --------------------------------------------------------------------- helpers


@dataclass
class RealWorld:
    """Real resources an escaping program might hand to the loop."""

    sock: socket.socket
    peer: socket.socket
    pipe_read: Any
    pipe_write: Any


@pytest.fixture
def world(tmp_path: Any) -> Iterator[RealWorld]:
    sock, peer = socket.socketpair()
    read_fd, write_fd = os.pipe()
    pipe_read = os.fdopen(read_fd, "rb")
    pipe_write = os.fdopen(write_fd, "wb")
    try:
        yield RealWorld(sock, peer, pipe_read, pipe_write)
    finally:
        for resource in (sock, peer, pipe_read, pipe_write):
            resource.close()


def _never(*args: Any) -> None:  # pragma: no cover - must never be called
    raise AssertionError("a callback of an escaped API ran")


async def _stream_handler(reader: Any, writer: Any) -> None:  # pragma: no cover
    raise AssertionError("a server of an escaped API accepted a connection")


# Each attempt reaches for the real world from inside the simulation. The expected
# text is the API name the error must contain.


async def attempt_add_reader(loop: Any, w: RealWorld) -> None:
    loop.add_reader(w.sock.fileno(), _never)


async def attempt_add_writer(loop: Any, w: RealWorld) -> None:
    loop.add_writer(w.sock.fileno(), _never)


async def attempt_remove_reader(loop: Any, w: RealWorld) -> None:
    loop.remove_reader(w.sock.fileno())


async def attempt_remove_writer(loop: Any, w: RealWorld) -> None:
    loop.remove_writer(w.sock.fileno())


async def attempt_sock_recv(loop: Any, w: RealWorld) -> None:
    await loop.sock_recv(w.sock, 16)


async def attempt_sock_recv_into(loop: Any, w: RealWorld) -> None:
    await loop.sock_recv_into(w.sock, bytearray(16))


async def attempt_sock_recvfrom(loop: Any, w: RealWorld) -> None:
    await loop.sock_recvfrom(w.sock, 16)


async def attempt_sock_recvfrom_into(loop: Any, w: RealWorld) -> None:
    await loop.sock_recvfrom_into(w.sock, bytearray(16))


async def attempt_sock_sendall(loop: Any, w: RealWorld) -> None:
    await loop.sock_sendall(w.sock, b"hello")


async def attempt_sock_sendto(loop: Any, w: RealWorld) -> None:
    await loop.sock_sendto(w.sock, b"hello", ("127.0.0.1", 9))


async def attempt_sock_connect(loop: Any, w: RealWorld) -> None:
    await loop.sock_connect(w.sock, ("127.0.0.1", 9))


async def attempt_sock_accept(loop: Any, w: RealWorld) -> None:
    await loop.sock_accept(w.sock)


async def attempt_sock_sendfile(loop: Any, w: RealWorld) -> None:
    await loop.sock_sendfile(w.sock, w.pipe_read)


async def attempt_create_connection(loop: Any, w: RealWorld) -> None:
    await loop.create_connection(asyncio.Protocol, "127.0.0.1", 9)


async def attempt_open_connection(loop: Any, w: RealWorld) -> None:
    await asyncio.open_connection("127.0.0.1", 9)


async def attempt_create_server(loop: Any, w: RealWorld) -> None:
    await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)


async def attempt_start_server(loop: Any, w: RealWorld) -> None:
    await asyncio.start_server(_stream_handler, "127.0.0.1", 0)


async def attempt_create_unix_connection(loop: Any, w: RealWorld) -> None:
    await loop.create_unix_connection(asyncio.Protocol, "/nonexistent/simloom.sock")


async def attempt_open_unix_connection(loop: Any, w: RealWorld) -> None:
    await asyncio.open_unix_connection("/nonexistent/simloom.sock")


async def attempt_create_unix_server(loop: Any, w: RealWorld) -> None:
    await loop.create_unix_server(asyncio.Protocol, "/nonexistent/simloom.sock")


async def attempt_start_unix_server(loop: Any, w: RealWorld) -> None:
    await asyncio.start_unix_server(_stream_handler, "/nonexistent/simloom.sock")


async def attempt_create_datagram_endpoint(loop: Any, w: RealWorld) -> None:
    await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))


async def attempt_getaddrinfo(loop: Any, w: RealWorld) -> None:
    await loop.getaddrinfo("localhost", 80)


async def attempt_getnameinfo(loop: Any, w: RealWorld) -> None:
    await loop.getnameinfo(("127.0.0.1", 80))


async def attempt_subprocess_exec(loop: Any, w: RealWorld) -> None:
    await loop.subprocess_exec(asyncio.SubprocessProtocol, "true")


async def attempt_create_subprocess_exec(loop: Any, w: RealWorld) -> None:
    await asyncio.create_subprocess_exec("true")


async def attempt_subprocess_shell(loop: Any, w: RealWorld) -> None:
    await loop.subprocess_shell(asyncio.SubprocessProtocol, "true")


async def attempt_create_subprocess_shell(loop: Any, w: RealWorld) -> None:
    await asyncio.create_subprocess_shell("true")


async def attempt_connect_read_pipe(loop: Any, w: RealWorld) -> None:
    await loop.connect_read_pipe(asyncio.Protocol, w.pipe_read)


async def attempt_connect_write_pipe(loop: Any, w: RealWorld) -> None:
    await loop.connect_write_pipe(asyncio.Protocol, w.pipe_write)


async def attempt_add_signal_handler(loop: Any, w: RealWorld) -> None:
    loop.add_signal_handler(signal.SIGUSR1, _never)


async def attempt_remove_signal_handler(loop: Any, w: RealWorld) -> None:
    loop.remove_signal_handler(signal.SIGUSR1)


async def attempt_sendfile(loop: Any, w: RealWorld) -> None:
    await loop.sendfile(asyncio.WriteTransport(), w.pipe_read)


async def attempt_start_tls(loop: Any, w: RealWorld) -> None:
    await loop.start_tls(asyncio.Transport(), asyncio.Protocol(), ssl.create_default_context())


async def attempt_connect_accepted_socket(loop: Any, w: RealWorld) -> None:
    await loop.connect_accepted_socket(asyncio.Protocol, w.sock)


Attempt = Callable[[Any, RealWorld], Awaitable[None]]

ESCAPES: list[tuple[Attempt, str]] = [
    (attempt_add_reader, "loop.add_reader()"),
    (attempt_add_writer, "loop.add_writer()"),
    (attempt_remove_reader, "loop.remove_reader()"),
    (attempt_remove_writer, "loop.remove_writer()"),
    (attempt_sock_recv, "loop.sock_recv()"),
    (attempt_sock_recv_into, "loop.sock_recv_into()"),
    (attempt_sock_recvfrom, "loop.sock_recvfrom()"),
    (attempt_sock_recvfrom_into, "loop.sock_recvfrom_into()"),
    (attempt_sock_sendall, "loop.sock_sendall()"),
    (attempt_sock_sendto, "loop.sock_sendto()"),
    (attempt_sock_connect, "loop.sock_connect()"),
    (attempt_sock_accept, "loop.sock_accept()"),
    (attempt_sock_sendfile, "loop.sock_sendfile()"),
    (attempt_create_connection, "loop.create_connection()"),
    (attempt_open_connection, "asyncio.open_connection()"),
    (attempt_create_server, "loop.create_server()"),
    (attempt_start_server, "asyncio.start_server()"),
    (attempt_create_unix_connection, "loop.create_unix_connection()"),
    (attempt_open_unix_connection, "asyncio.open_unix_connection()"),
    (attempt_create_unix_server, "loop.create_unix_server()"),
    (attempt_start_unix_server, "asyncio.start_unix_server()"),
    (attempt_create_datagram_endpoint, "loop.create_datagram_endpoint()"),
    (attempt_getaddrinfo, "loop.getaddrinfo()"),
    (attempt_getnameinfo, "loop.getnameinfo()"),
    (attempt_subprocess_exec, "loop.subprocess_exec()"),
    (attempt_create_subprocess_exec, "asyncio.create_subprocess_exec()"),
    (attempt_subprocess_shell, "loop.subprocess_shell()"),
    (attempt_create_subprocess_shell, "asyncio.create_subprocess_shell()"),
    (attempt_connect_read_pipe, "loop.connect_read_pipe()"),
    (attempt_connect_write_pipe, "loop.connect_write_pipe()"),
    (attempt_add_signal_handler, "loop.add_signal_handler()"),
    (attempt_remove_signal_handler, "loop.remove_signal_handler()"),
    (attempt_sendfile, "loop.sendfile()"),
    (attempt_start_tls, "loop.start_tls()"),
    (attempt_connect_accepted_socket, "loop.connect_accepted_socket()"),
]

ESCAPE_IDS = [attempt.__name__.removeprefix("attempt_") for attempt, _ in ESCAPES]


def _program(attempt: Attempt, w: RealWorld, reached_after: list[str]) -> Callable[[], Any]:
    async def main() -> str:
        await asyncio.sleep(0)
        await attempt(asyncio.get_running_loop(), w)
        reached_after.append("the escape returned")
        return "escaped"

    return main


def _frames(error: BaseException) -> list[tuple[str, str]]:
    return [(f.filename, f.name) for f in traceback.extract_tb(error.__traceback__)]


def _assert_names_api(error: BaseException | None, api: str) -> None:
    assert isinstance(error, simloom.EscapedSimulationError), repr(error)
    message = str(error)
    assert api in message, message
    assert "simulated world" in message, message
    assert "replay" in message, message


# ---------------------------------------------------------------------- escapes


def test_escaped_simulation_error_is_a_runtime_error() -> None:
    assert issubclass(simloom.EscapedSimulationError, simloom.SimloomError)
    assert issubclass(simloom.EscapedSimulationError, RuntimeError)


@pytest.mark.parametrize(("attempt", "api"), ESCAPES, ids=ESCAPE_IDS)
def test_real_world_api_in_run_is_an_escape_naming_the_api(
    attempt: Attempt, api: str, world: RealWorld
) -> None:
    reached_after: list[str] = []
    result = simloom.run(_program(attempt, world, reached_after), seed=0, world=False)
    _assert_names_api(result.error, api)
    assert result.value is None
    assert reached_after == [], "the escaping call must raise at the call site"


@pytest.mark.parametrize(("attempt", "api"), ESCAPES, ids=ESCAPE_IDS)
def test_real_world_api_under_asyncio_run_raises_an_escape_naming_the_api(
    attempt: Attempt, api: str, world: RealWorld
) -> None:
    reached_after: list[str] = []
    main = _program(attempt, world, reached_after)
    with pytest.raises(simloom.EscapedSimulationError) as info:
        asyncio.run(main(), loop_factory=lambda: simloom.SimLoop(world=False))
    _assert_names_api(info.value, api)
    assert reached_after == []


@pytest.mark.parametrize(("attempt", "api"), ESCAPES, ids=ESCAPE_IDS)
def test_escape_traceback_shows_the_users_call_site(
    attempt: Attempt, api: str, world: RealWorld
) -> None:
    result = simloom.run(_program(attempt, world, []), seed=0, world=False)
    assert isinstance(result.error, simloom.EscapedSimulationError)
    assert (__file__, attempt.__name__) in _frames(result.error)


def test_escape_traceback_line_is_the_escaping_call(world: RealWorld) -> None:
    where: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        where.append(inspect.currentframe().f_lineno + 1)  # type: ignore[union-attr]
        loop.add_reader(world.sock.fileno(), _never)

    result = simloom.run(main, seed=0)
    assert isinstance(result.error, simloom.EscapedSimulationError)
    user_frames = [
        f for f in traceback.extract_tb(result.error.__traceback__) if f.filename == __file__
    ]
    assert [(f.name, f.lineno) for f in user_frames][-1:] == [("main", where[0])]
    assert "loop.add_reader(" in (user_frames[-1].line or "")


def test_escape_can_be_caught_by_the_program_and_the_universe_goes_on(world: RealWorld) -> None:
    async def main() -> str:
        try:
            await asyncio.open_connection("127.0.0.1", 9)
        except simloom.EscapedSimulationError as exc:
            await asyncio.sleep(5)
            return f"fell back after: {exc}"
        return "connected"

    result = simloom.run(main, seed=0, world=False)
    assert result.error is None
    assert result.value.startswith("fell back after: loop.create_connection()")
    assert result.virtual_time == 5


def test_call_soon_threadsafe_from_a_foreign_thread_is_an_escape() -> None:
    async def main() -> tuple[list[BaseException], list[str]]:
        loop = asyncio.get_running_loop()
        errors: list[BaseException] = []
        ran: list[str] = []

        def foreign() -> None:
            try:
                loop.call_soon_threadsafe(ran.append, "from the thread")
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=foreign)
        thread.start()
        thread.join()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return errors, ran

    # The boundary off: with it, joining the thread from the universe's thread is
    # itself an escape whenever the thread has not quite finished.
    for outcome in (
        simloom.run(main, seed=0, boundary=False).value,
        asyncio.run(main(), loop_factory=lambda: simloom.SimLoop(boundary=False)),
    ):
        errors, ran = outcome
        assert ran == []
        assert len(errors) == 1
        assert isinstance(errors[0], simloom.EscapedSimulationError)
        assert "loop.call_soon_threadsafe()" in str(errors[0])
        assert "another thread" in str(errors[0])


def test_call_soon_threadsafe_from_the_loops_own_thread_works() -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        ran: list[str] = []
        future = loop.create_future()
        loop.call_soon_threadsafe(ran.append, "callback")
        loop.call_soon_threadsafe(future.set_result, "result")
        ran.append(await future)
        return ran

    assert simloom.run(main, seed=0).value == ["callback", "result"]
    assert asyncio.run(main(), loop_factory=simloom.SimLoop) == ["callback", "result"]


# --------------------------------------------------------------------- deadlock


def test_waiting_on_an_event_nobody_sets_is_a_deadlock_naming_the_wait() -> None:
    where: list[int] = []

    async def waits_forever() -> None:
        where.append(inspect.currentframe().f_lineno + 1)  # type: ignore[union-attr]
        await asyncio.Event().wait()

    result = simloom.run(waits_forever, seed=0)
    error = result.error
    assert isinstance(error, simloom.SimDeadlockError)
    assert isinstance(error, RuntimeError)
    message = str(error)
    assert message.startswith("deadlock:")
    assert "Task-1" in message
    assert f"waits_forever ({__file__}:{where[0]})" in message
    assert SIMLOOM_DIR not in message
    assert "_api.py" not in message


def test_deadlock_under_asyncio_run_propagates() -> None:
    async def waits_forever() -> None:
        await asyncio.Event().wait()

    start = time.process_time()  # CPU time: a machine busy with other work is no failure
    with pytest.raises(simloom.SimDeadlockError, match="waits_forever"):
        asyncio.run(waits_forever(), loop_factory=simloom.SimLoop)
    assert time.process_time() - start < 2.0


def _lock_order_program(where: dict[str, int]) -> Callable[[], Any]:
    async def main() -> None:
        first, second = asyncio.Lock(), asyncio.Lock()

        async def forward() -> None:
            async with first:
                await asyncio.sleep(0)
                where["forward"] = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
                async with second:
                    pass

        async def backward() -> None:
            async with second:
                await asyncio.sleep(0)
                where["backward"] = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
                async with first:
                    pass

        left = asyncio.create_task(forward(), name="left")
        right = asyncio.create_task(backward(), name="right")
        await asyncio.gather(left, right)

    return main


def test_lock_order_deadlock_lists_every_waiting_task_and_where_it_waits() -> None:
    where: dict[str, int] = {}
    result = simloom.run(_lock_order_program(where), scheduler="fifo")
    error = result.error
    assert isinstance(error, simloom.SimDeadlockError), repr(error)
    message = str(error)
    lines = message.splitlines()
    left = next(line for line in lines if line.strip().startswith("left:"))
    right = next(line for line in lines if line.strip().startswith("right:"))
    assert f"forward ({__file__}:{where['forward']})" in left
    assert f"backward ({__file__}:{where['backward']})" in right
    assert any(line.strip().startswith("Task-1:") for line in lines), message
    assert SIMLOOM_DIR not in message


def test_lock_order_deadlock_is_deterministic() -> None:
    messages = {str(simloom.run(_lock_order_program({}), scheduler="fifo").error) for _ in range(3)}
    assert len(messages) == 1


# --------------------------------------------------------------------- livelock


async def _spin_forever() -> None:
    async def spinner() -> None:
        while True:
            await asyncio.sleep(0)

    await asyncio.create_task(spinner(), name="spinner")


def test_spinning_task_is_a_livelock_within_a_second() -> None:
    start = time.process_time()  # CPU time: a machine busy with other work is no failure
    result = simloom.run(_spin_forever, seed=0)
    elapsed = time.process_time() - start
    assert isinstance(result.error, simloom.SimLivelockError), repr(result.error)
    assert isinstance(result.error, RuntimeError)
    assert elapsed < 1.0
    message = str(result.error)
    assert message.startswith("livelock:")
    assert "spinner" in message
    assert "steps ran without the virtual clock moving" in message


def test_livelock_under_asyncio_run_propagates() -> None:
    start = time.process_time()  # CPU time: a machine busy with other work is no failure
    with pytest.raises(simloom.SimLivelockError, match="spinner"):
        asyncio.run(_spin_forever(), loop_factory=simloom.SimLoop)
    assert time.process_time() - start < 2.0


def test_livelock_is_found_within_a_second_even_when_the_host_heap_is_large() -> None:
    # The host process (a big test suite, an application) may hold millions of objects;
    # the periodic collections a simulation makes must not scan all of them each time.
    # Measured against the same detection with a small heap, in the same process (a
    # loaded machine slows both alike; scanning the heap would make it many times
    # slower).
    attempts = (
        ("simloom.run", lambda: simloom.run(_spin_forever, seed=0).raise_error()),
        ("asyncio.run", lambda: asyncio.run(_spin_forever(), loop_factory=simloom.SimLoop)),
    )

    def detect(attempt: Callable[[], object]) -> float:
        start = time.perf_counter()
        with pytest.raises(simloom.SimLivelockError):
            attempt()
        return time.perf_counter() - start

    small = {label: detect(attempt) for label, attempt in attempts}
    ballast = [[i] for i in range(1_000_000)]
    try:
        for label, attempt in attempts:
            elapsed = detect(attempt)
            assert elapsed < 1.0 or elapsed < 2.5 * small[label] + 0.2, (
                f"{label}: livelock took {elapsed:.2f}s to detect with a large heap, "
                f"{small[label]:.2f}s without"
            )
    finally:
        del ballast


def test_a_small_livelock_steps_triggers_earlier() -> None:
    result = simloom.run(_spin_forever, seed=0, livelock_steps=1000)
    assert isinstance(result.error, simloom.SimLivelockError)
    assert "1000 steps" in str(result.error)
    assert result.steps < 2000

    with pytest.raises(simloom.SimLivelockError, match="1000 steps"):
        asyncio.run(_spin_forever(), loop_factory=lambda: simloom.SimLoop(livelock_steps=1000))


def test_many_zero_sleeps_below_the_livelock_bound_are_fine() -> None:
    async def busy_but_finite() -> str:
        for _ in range(10_000):
            await asyncio.sleep(0)
        return "finished"

    result = simloom.run(busy_but_finite, seed=0, livelock_steps=20_000)
    assert result.error is None
    assert result.value == "finished"
    assert result.steps >= 10_000


def test_a_moving_clock_is_not_a_livelock() -> None:
    async def ticks() -> int:
        for _ in range(3000):
            await asyncio.sleep(0.001)
        return 3000

    result = simloom.run(ticks, seed=0, livelock_steps=1000)
    assert result.error is None
    assert result.value == 3000


# ------------------------------------------------------------- lost exceptions


async def _callback_raises() -> str:
    def fails() -> None:
        raise ZeroDivisionError("callback went wrong")

    asyncio.get_running_loop().call_soon(fails)
    await asyncio.sleep(1)
    return "not reached"


async def _forgotten_task_raises() -> str:
    async def fails() -> None:
        raise KeyError("nobody retrieved me")

    asyncio.get_running_loop().create_task(fails())  # fire and forget: no reference kept
    await asyncio.sleep(1)
    return "not reached"


async def _handler_raises() -> str:
    loop = asyncio.get_running_loop()

    def handler(loop: Any, context: dict[str, Any]) -> None:
        raise OSError("the handler itself broke")

    loop.set_exception_handler(handler)
    loop.call_soon(lambda: 1 / 0)
    await asyncio.sleep(1)
    return "not reached"


LOST = [
    (_callback_raises, ZeroDivisionError, "callback went wrong", "Exception in callback"),
    (_forgotten_task_raises, KeyError, "nobody retrieved me", "Task exception was never retrieved"),
    (_handler_raises, OSError, "the handler itself broke", "Unhandled error in exception handler"),
]
LOST_IDS = ["callback", "forgotten-task", "broken-handler"]


@pytest.mark.parametrize(("program", "kind", "text", "headline"), LOST, ids=LOST_IDS)
def test_lost_exception_fails_the_universe_with_the_original_as_cause(
    program: Callable[[], Any], kind: type[BaseException], text: str, headline: str
) -> None:
    result = simloom.run(program, seed=0)
    error = result.error
    assert isinstance(error, simloom.UnhandledExceptionError), repr(error)
    assert isinstance(error, RuntimeError)
    assert isinstance(error.__cause__, kind)
    assert text in str(error.__cause__)
    message = str(error)
    assert headline in message
    assert kind.__name__ in message
    assert text in message
    assert error.context["exception"] is error.__cause__
    assert result.value is None


@pytest.mark.parametrize(("program", "kind", "text", "headline"), LOST, ids=LOST_IDS)
def test_lost_exception_under_asyncio_run_propagates(
    program: Callable[[], Any], kind: type[BaseException], text: str, headline: str
) -> None:
    with pytest.raises(simloom.UnhandledExceptionError, match=headline) as info:
        asyncio.run(program(), loop_factory=simloom.SimLoop)
    assert isinstance(info.value.__cause__, kind)


def test_forgotten_task_failure_names_the_task() -> None:
    result = simloom.run(_forgotten_task_raises, seed=0)
    assert isinstance(result.error, simloom.UnhandledExceptionError)
    assert "(task 'Task-2')" in str(result.error)


def test_a_custom_exception_handler_receives_the_context_and_the_run_succeeds() -> None:
    contexts: list[dict[str, Any]] = []

    async def main() -> str:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: contexts.append(context))

        def fails() -> None:
            raise ZeroDivisionError("callback went wrong")

        async def task_fails() -> None:
            raise KeyError("nobody retrieved me")

        loop.call_soon(fails)
        loop.create_task(task_fails())  # noqa: RUF006 - fire and forget on purpose
        await asyncio.sleep(1)
        return "survived"

    result = simloom.run(main, seed=0)
    assert result.error is None
    assert result.value == "survived"
    by_type = {type(c["exception"]): c for c in contexts}
    assert set(by_type) == {ZeroDivisionError, KeyError}
    assert by_type[ZeroDivisionError]["message"].startswith("Exception in callback")
    assert "callback went wrong" in str(by_type[ZeroDivisionError]["exception"])
    assert by_type[KeyError]["message"] == "Task exception was never retrieved"
    assert by_type[KeyError]["future"].get_name() == "Task-2"


def test_a_retrieved_task_exception_is_not_lost() -> None:
    async def main() -> str:
        async def fails() -> None:
            raise KeyError("retrieved")

        task = asyncio.create_task(fails())
        await asyncio.sleep(0)
        return repr(task.exception())

    result = simloom.run(main, seed=0)
    assert result.error is None
    assert result.value == "KeyError('retrieved')"


# ------------------------------------------------------------------- teardown


def _crowded(failure: Callable[[], Awaitable[None]], spawned: list[asyncio.Task[Any]]) -> Any:
    """A program that leaves several kinds of pending work behind, then fails."""

    async def main() -> None:
        async def waits(event: asyncio.Event) -> None:
            await event.wait()

        async def sleeps() -> None:
            await asyncio.sleep(10**4)  # pending at teardown (within the time budget)

        async def cleans_up() -> None:
            try:
                await asyncio.Event().wait()
            finally:
                await asyncio.sleep(0)

        async def numbers() -> Any:
            try:
                yield 1
                yield 2
            finally:
                await asyncio.sleep(0)

        event = asyncio.Event()
        spawned.extend(
            [
                asyncio.create_task(waits(event)),
                asyncio.create_task(sleeps()),
                asyncio.create_task(cleans_up()),
            ]
        )
        generator = numbers()
        await generator.__anext__()
        await asyncio.sleep(0)
        await failure()

    return main


async def _deadlocks() -> None:
    await asyncio.Event().wait()


async def _livelocks() -> None:
    while True:
        await asyncio.sleep(0)


async def _escapes() -> None:
    asyncio.get_running_loop().add_reader(0, print)


FAILURES = [
    (_deadlocks, simloom.SimDeadlockError),
    (_livelocks, simloom.SimLivelockError),
    (_escapes, simloom.EscapedSimulationError),
]
FAILURE_IDS = ["deadlock", "livelock", "escape"]

TEARDOWN_NOISE = ("Task was destroyed but it is pending", "never awaited", "Exception ignored")


@pytest.mark.parametrize(("failure", "kind"), FAILURES, ids=FAILURE_IDS)
def test_run_tears_down_cleanly_after_a_failure(
    failure: Callable[[], Awaitable[None]],
    kind: type[BaseException],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    spawned: list[asyncio.Task[Any]] = []
    _forget_earlier_garbage(capsys, caplog)
    with warnings.catch_warnings(record=True) as caught, _unraisables() as unraisable:
        warnings.simplefilter("always")
        result = simloom.run(_crowded(failure, spawned), seed=0, livelock_steps=5000)
        assert isinstance(result.error, kind), repr(result.error)
        assert len(spawned) == 3
        assert all(task.done() for task in spawned)
        del spawned[:], result
        gc.collect()
    _assert_quiet(caught, unraisable, capsys, caplog)


@pytest.mark.parametrize(("failure", "kind"), FAILURES, ids=FAILURE_IDS)
def test_asyncio_run_tears_down_cleanly_after_a_failure(
    failure: Callable[[], Awaitable[None]],
    kind: type[BaseException],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    spawned: list[asyncio.Task[Any]] = []
    _forget_earlier_garbage(capsys, caplog)
    with warnings.catch_warnings(record=True) as caught, _unraisables() as unraisable:
        warnings.simplefilter("always")
        with pytest.raises(kind):
            asyncio.run(
                _crowded(failure, spawned)(),
                loop_factory=lambda: simloom.SimLoop(livelock_steps=5000),
            )
        assert len(spawned) == 3
        assert all(task.done() for task in spawned)
        del spawned[:]
        gc.collect()
    _assert_quiet(caught, unraisable, capsys, caplog)


def _forget_earlier_garbage(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Collect what earlier tests left behind, so its noise is not blamed on this one."""
    gc.collect()
    capsys.readouterr()
    caplog.clear()


@contextlib.contextmanager
def _unraisables() -> Iterator[list[str]]:
    """Record exceptions reported through ``sys.unraisablehook`` (e.g. a coroutine
    that ignored GeneratorExit when it was garbage-collected)."""
    seen: list[str] = []
    previous = sys.unraisablehook

    def hook(info: Any) -> None:
        seen.append(
            f"{info.err_msg or 'Exception ignored in'}: {info.object!r}: {info.exc_value!r}"
        )

    sys.unraisablehook = hook
    try:
        yield seen
    finally:
        sys.unraisablehook = previous


def _assert_quiet(
    caught: list[warnings.WarningMessage],
    unraisable: list[str],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert unraisable == []
    bad = [
        str(w.message)
        for w in caught
        if issubclass(w.category, ResourceWarning | RuntimeWarning)
        or "never awaited" in str(w.message)
    ]
    assert bad == []
    out, err = capsys.readouterr()
    logged = caplog.text
    for noise in TEARDOWN_NOISE:
        assert noise not in out
        assert noise not in err
        assert noise not in logged
