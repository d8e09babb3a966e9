"""Threads in lockstep: a ``threading.Thread`` started inside a universe runs on a
real thread, one party at a time, and its blocking waits are switch points.

Each test fails without the feature: a thread started in a universe would run free
(racing the loop, reading the real clock), its waits would block for real, and the
same seed would not give the same universe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import simloom
from simloom.errors import EscapedSimulationError, SimDeadlockError

TESTS = Path(__file__).parent


def _contending() -> Any:
    import torture_programs as tp

    return tp.threads_contending


def test_a_thread_started_in_a_universe_runs_on_virtual_time() -> None:
    seen: list[float] = []

    def sleeper() -> None:
        seen.append(time.monotonic())
        time.sleep(30)  # virtual: the test does not wait 30 seconds
        seen.append(time.monotonic())

    async def main() -> float:
        thread = threading.Thread(target=sleeper)
        thread.start()
        await asyncio.to_thread(thread.join)
        return asyncio.get_running_loop().time()

    started = time.monotonic()
    result = simloom.run(main)
    assert result.error is None
    assert time.monotonic() - started < 5
    assert seen == [0.0, 30.0]
    assert result.value == 30.0


def test_locks_events_queues_and_joins_switch_between_threads() -> None:
    async def main() -> Any:
        lock = threading.Lock()
        items: queue.Queue[int] = queue.Queue(maxsize=1)
        ready = threading.Event()
        order: list[str] = []

        def holder() -> None:
            with lock:
                ready.set()
                time.sleep(1)
                order.append("holder releases")

        def contender() -> None:
            ready.wait()
            with lock:  # parks until the holder releases (virtual t=1)
                order.append("contender has the lock")
            for i in range(3):
                items.put(i)  # maxsize 1: parks until the loop's consumer takes

        threads = [threading.Thread(target=holder), threading.Thread(target=contender)]
        for thread in threads:
            thread.start()
        got = [await asyncio.to_thread(items.get) for _ in range(3)]
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        return order, got

    result = simloom.run(main, seed=5)
    assert result.error is None
    assert result.value == (["holder releases", "contender has the lock"], [0, 1, 2])


def test_the_loop_setting_an_event_wakes_the_waiting_thread() -> None:
    async def main() -> Any:
        event = threading.Event()
        loop = asyncio.get_running_loop()

        def waiter() -> float:
            event.wait()
            return loop.time()

        job = asyncio.ensure_future(asyncio.to_thread(waiter))
        await asyncio.sleep(2)
        event.set()
        return await job

    result = simloom.run(main)
    assert result.error is None
    assert result.value == 2.0


def test_call_soon_threadsafe_copies_the_threads_context() -> None:
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="loop")

    async def main() -> str:
        loop = asyncio.get_running_loop()
        seen = loop.create_future()

        def in_thread() -> None:
            var.set("thread")
            loop.call_soon_threadsafe(lambda: seen.set_result(var.get()))

        await asyncio.to_thread(in_thread)
        return await seen

    assert simloom.run(main).value == "thread"


def test_threads_waiting_on_each_other_are_a_deadlock_that_names_them() -> None:
    async def main() -> None:
        first, second = threading.Lock(), threading.Lock()
        both = threading.Barrier(2)

        def one() -> None:
            with first:
                both.wait()
                with second:
                    pass

        def two() -> None:
            with second:
                both.wait()
                with first:
                    pass

        threads = [
            threading.Thread(target=one, name="one"),
            threading.Thread(target=two, name="two"),
        ]
        for thread in threads:
            thread.start()
        await asyncio.to_thread(lambda: [t.join() for t in threads])

    started = time.monotonic()
    result = simloom.run(main)
    assert time.monotonic() - started < 5
    assert isinstance(result.error, SimDeadlockError)
    message = str(result.error)
    assert "thread 'one' waits on a lock" in message
    assert "thread 'two' waits on a lock" in message
    assert "deadlock_that_names_them.<locals>.main.<locals>.one" in message


def test_a_thread_blocking_in_accept_parks_and_is_stopped_at_universe_end() -> None:
    raised: list[BaseException] = []

    def serve() -> None:
        server = socket.socket()
        try:
            server.bind(("127.0.0.1", 0))
            server.listen()
            server.accept()
        except BaseException as error:
            raised.append(error)
            raise
        finally:
            server.close()

    async def main() -> None:
        thread = threading.Thread(target=serve, name="server")  # not a daemon
        thread.start()
        await asyncio.sleep(1)

    # The socket is a simulated one: its blocking accept parks the thread until a
    # connection comes; none does, and the universe's end stops and joins it.
    started = time.monotonic()
    result = simloom.run(main)
    assert time.monotonic() - started < 5
    assert result.error is None
    assert raised and isinstance(raised[0], concurrent.futures.CancelledError)
    assert not [t for t in threading.enumerate() if t.name == "server"]


def test_a_thread_left_waiting_at_universe_end_is_stopped_and_joined() -> None:
    stopped: list[str] = []

    def forever() -> None:
        try:
            threading.Event().wait()
        except BaseException as error:
            stopped.append(type(error).__name__)
            raise

    async def main() -> None:
        threading.Thread(target=forever, name="forever").start()
        await asyncio.sleep(1)

    result = simloom.run(main)
    assert result.error is None
    assert stopped == ["CancelledError"]
    assert not [t for t in threading.enumerate() if t.name == "forever"]


def test_thread_switching_is_a_function_of_the_seed() -> None:
    program = _contending()
    digests = set()
    for seed in range(12):
        first = simloom.run(program, seed=seed, scheduler="random")
        again = simloom.run(program, seed=seed, scheduler="random")
        replayed = simloom.replay(program, first.tape)
        assert first.error is None, first.error
        assert first.digest == again.digest == replayed.digest, seed
        assert first.value == again.value == replayed.value
        digests.add(first.digest)
    assert len(digests) > 6  # the interleaving really varies with the seed


_CHILD = """
import json, sys
sys.path.insert(0, {tests!r})
import simloom, torture_programs as tp
tape = simloom.Tape.loads({tape!r}) if {tape!r} else None
out = []
for seed in range(6):
    r = simloom.run(tp.threads_contending, seed=seed, scheduler="random")
    out.append([r.digest, r.tape.to_json()])
if tape is not None:
    out.append([simloom.replay(tp.threads_contending, tape).digest, None])
print(json.dumps(out))
"""


def _child(tape: str | None) -> list[list[Any]]:
    code = _CHILD.format(tests=str(TESTS), tape=tape or "")
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    result: list[list[Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_two_fresh_processes_agree_and_replay_each_others_tapes() -> None:
    first = _child(None)
    second = _child(first[3][1])
    assert [d for d, _ in first] == [d for d, _ in second[:6]]
    assert second[6][0] == first[3][0]


def test_the_loops_thread_joining_a_thread_lets_it_run_while_the_loop_is_blocked() -> None:
    # As on a real machine: the loop's thread blocked in join() runs nothing of
    # the loop's, the thread runs (its sleep passes in virtual time), join returns.
    async def main() -> list[Any]:
        out: list[Any] = []

        def work() -> None:
            time.sleep(0.5)
            out.append("thread done")

        thread = threading.Thread(target=work, name="worker")
        thread.start()
        thread.join()  # no await: the loop's own thread waits
        out.append(("joined at", asyncio.get_running_loop().time()))
        return out

    digests = set()
    for seed in range(5):
        result = simloom.run(main, seed=seed)
        assert result.value == ["thread done", ("joined at", 0.5)], result.error
        digests.add(simloom.replay(main, result.tape).digest)
        assert result.digest in digests


def test_the_loops_thread_waits_for_a_lock_a_thread_holds() -> None:
    async def main() -> list[Any]:
        lock = threading.Lock()
        out: list[Any] = []
        taken = threading.Event()

        def holder() -> None:
            with lock:
                taken.set()
                time.sleep(1)
                out.append("released")

        thread = threading.Thread(target=holder)
        thread.start()
        while not taken.is_set():
            await asyncio.sleep(0.01)
        with lock:  # held by the thread: the loop's thread waits for its release
            out.append(("loop has the lock", asyncio.get_running_loop().time()))
        thread.join()
        return out

    result = simloom.run(main, scheduler="fifo")
    assert result.error is None, result.error
    assert result.value[0] == "released"
    assert result.value[1][0] == "loop has the lock" and result.value[1][1] >= 1.0


def test_the_loops_thread_joining_a_thread_that_waits_on_the_loop_is_still_an_escape() -> None:
    # The thread waits for an event only the (blocked) loop would set: on a real
    # machine this join never returns. Named at the call, never a hang.
    async def main() -> None:
        event = threading.Event()
        thread = threading.Thread(target=event.wait, name="waiter")
        thread.start()
        try:
            thread.join()
        finally:
            event.set()

    result = simloom.run(main)
    assert isinstance(result.error, EscapedSimulationError)
    assert "threading.Thread.join" in str(result.error)


def test_the_loops_thread_joining_a_thread_that_polls_for_the_loop_ends_not_hangs() -> None:
    # The thread polls (sleeping) for a flag only the blocked loop would set: its
    # sleeps pass in virtual time, turn after turn, and the join is an escape
    # after a bounded number of turns instead of spinning forever.
    async def main() -> None:
        flag = threading.Event()

        def poller() -> None:
            while not flag.is_set():
                time.sleep(0.01)

        thread = threading.Thread(target=poller, name="poller")
        thread.start()
        try:
            thread.join()
        finally:
            flag.set()

    wall = time.perf_counter()
    result = simloom.run(main)
    assert isinstance(result.error, EscapedSimulationError)
    assert "threading.Thread.join" in str(result.error)
    assert time.perf_counter() - wall < 60
    # The poller was stopped and joined at the universe's end. Before (3.12), the
    # escape raised inside Thread.join's wait made threading mark the running
    # thread stopped, so the close skipped it: it stayed parked, registered in the
    # boundary, and broke every later universe's restoration check.
    from simloom import _boundary

    assert not [t for t in threading.enumerate() if t.name == "poller"]
    assert not _boundary.lockstep_parties
    assert not _boundary._active


# ------------------------------------------- an event loop of a thread's own


def _loop_in_a_thread(body: Any) -> Any:
    """A universe whose thread runs a stock asyncio loop of its own (as anyio's
    blocking portal does) until the universe's loop stops it; ``body(loop, stop)``
    is the universe's side."""

    async def main() -> Any:
        started: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def serve() -> Any:
            async def run() -> Any:
                stop = asyncio.get_running_loop().create_future()
                started.set_result((asyncio.get_running_loop(), stop))
                return await stop

            return asyncio.run(run())

        thread_result: concurrent.futures.Future[Any] = concurrent.futures.Future()
        thread = threading.Thread(target=lambda: thread_result.set_result(serve()))
        thread.start()
        other, stop = await asyncio.wrap_future(started)
        assert not isinstance(other, simloom.SimLoop)
        await body(other, stop)
        return await asyncio.wrap_future(thread_result)

    return main


def test_a_threads_own_loop_waits_for_call_soon_threadsafe_as_a_switch_point() -> None:
    """Without the switch point the thread's loop blocks in epoll for real and the
    universe ends on a wall-clock limit; without the self-pipe exemption the wake-up
    byte is an escape."""

    async def body(other: asyncio.AbstractEventLoop, stop: asyncio.Future[Any]) -> None:
        done: concurrent.futures.Future[str] = concurrent.futures.Future()

        async def on_other() -> str:
            await asyncio.sleep(0)
            return "ran on the thread's loop"

        asyncio.run_coroutine_threadsafe(on_other(), other).add_done_callback(
            lambda f: done.set_result(f.result())
        )
        assert await asyncio.wrap_future(done) == "ran on the thread's loop"
        other.call_soon_threadsafe(stop.set_result, "stopped")

    started = time.perf_counter()
    result = simloom.run(_loop_in_a_thread(body), watchdog=10)
    result.raise_error()
    assert result.value == "stopped"
    assert time.perf_counter() - started < 2.0  # never a wall-clock wait


def test_a_threads_own_loop_sleeps_in_virtual_time() -> None:
    async def body(other: asyncio.AbstractEventLoop, stop: asyncio.Future[Any]) -> None:
        async def nap() -> float:
            before = time.monotonic()
            await asyncio.sleep(30)
            return time.monotonic() - before

        slept = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(nap(), other))
        assert 30 <= slept < 30.1, slept
        other.call_soon_threadsafe(stop.set_result, asyncio.get_running_loop().time())

    started = time.perf_counter()
    result = simloom.run(_loop_in_a_thread(body), watchdog=10)
    result.raise_error()
    assert result.value >= 30  # the universe's virtual clock moved with the nap
    assert time.perf_counter() - started < 2.0


def test_the_loops_thread_blocking_on_a_threads_loop_lets_it_run() -> None:
    """The universe's thread waits in ``Future.result()`` (through simloom's parking
    wrapper) for a thread that runs its own loop: the threads run meanwhile, as
    with a join. Before, the wrapper's frame hid the program's wait and it blocked
    the process for ever."""

    async def main() -> Any:
        started: concurrent.futures.Future[Any] = concurrent.futures.Future()
        answers: list[Any] = []

        def serve() -> None:
            async def run() -> None:
                stop = asyncio.get_running_loop().create_future()
                started.set_result((asyncio.get_running_loop(), stop))
                await stop

            asyncio.run(run())

        thread = threading.Thread(target=serve)
        thread.start()
        other, stop = started.result()  # blocks the universe's thread, not the process

        async def add(a: int, b: int) -> int:
            await asyncio.sleep(0)
            return a + b

        answers.append(asyncio.run_coroutine_threadsafe(add(1, 2), other).result())
        other.call_soon_threadsafe(stop.set_result, None)
        thread.join()
        return answers

    result = simloom.run(main, watchdog=10)
    result.raise_error()
    assert result.value == [3]


def test_a_threads_own_loop_is_the_same_universe_for_the_same_seed() -> None:
    def program() -> Any:
        async def body(other: asyncio.AbstractEventLoop, stop: asyncio.Future[Any]) -> None:
            order: list[str] = []

            async def worker(name: str) -> None:
                for _ in range(3):
                    await asyncio.sleep(0.01)
                    order.append(name)

            for name in "ab":
                asyncio.run_coroutine_threadsafe(worker(name), other)
            await asyncio.sleep(1)
            other.call_soon_threadsafe(stop.set_result, tuple(order))

        return _loop_in_a_thread(body)

    runs = [simloom.run(program(), seed=5, scheduler="random") for _ in range(2)]
    for run in runs:
        run.raise_error()
    assert runs[0].value == runs[1].value
    assert len(runs[0].value) == 6
    assert runs[0].digest == runs[1].digest


def test_a_thread_pool_the_program_makes_waits_for_work_as_a_switch_point() -> None:
    """A ThreadPoolExecutor's workers wait for work in ``SimpleQueue.get``; before it
    was a switch point, the first idle worker blocked for real and the universe
    ended on ExecutorBlockedError."""

    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:

            def wake() -> int:
                loop.call_soon_threadsafe(event.set)
                return 1

            first = pool.submit(wake)
            await event.wait()
            await asyncio.sleep(3)  # the worker idles, parked, in virtual time
            squares = await asyncio.gather(
                *(loop.run_in_executor(pool, lambda n=n: n * n) for n in range(5))
            )
            got = await asyncio.wrap_future(first)
        return [got, squares, loop.time()]

    started = time.perf_counter()
    result = simloom.run(main, watchdog=10)
    result.raise_error()
    assert result.value == [1, [0, 1, 4, 9, 16], 3.0]
    assert time.perf_counter() - started < 2.0
    again = simloom.run(main, seed=3, scheduler="random")
    again.raise_error()
    assert simloom.run(main, seed=3, scheduler="random").digest == again.digest


def test_the_loops_thread_waiting_on_a_simple_queue_runs_the_threads() -> None:
    async def main() -> int:
        items: queue.SimpleQueue[int] = queue.SimpleQueue()
        thread = threading.Thread(target=lambda: items.put(7))
        thread.start()
        got = items.get(timeout=5)  # blocks the loop's thread: the thread runs
        thread.join()
        return got

    result = simloom.run(main, watchdog=10)
    result.raise_error()
    assert result.value == 7
