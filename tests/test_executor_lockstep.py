"""Executor jobs run on real threads in lockstep with the simulated loop.

``run_in_executor`` / ``asyncio.to_thread`` start a real worker thread, but exactly
one of {loop, worker} runs at a time: the worker may block on the loop
(``run_coroutine_threadsafe(...).result()``, ``concurrent.futures.wait`` /
``as_completed``) and the universe stays deterministic; a worker blocked on anything
else ends the universe with ``ExecutorBlockedError`` instead of hanging; and no
thread outlives its universe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import simloom
from simloom import _lockstep
from simloom.errors import EscapedSimulationError, ExecutorBlockedError, SimDeadlockError


@pytest.fixture(autouse=True)
def _no_thread_outlives_its_test() -> Iterator[None]:
    baseline = threading.active_count()
    yield
    deadline = time.monotonic() + 5
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.01)
    # (At most: a daemon Timer an earlier test file left may end meanwhile.)
    assert threading.active_count() <= baseline, threading.enumerate()


async def _add(a: int, b: int) -> int:
    await asyncio.sleep(0.05)
    return a + b


def _add_on_loop(loop: asyncio.AbstractEventLoop, timeout: float | None = None) -> int:
    """Executor code that waits on the loop: the pattern of CPython's
    RunCoroutineThreadsafeTests."""
    future = asyncio.run_coroutine_threadsafe(_add(1, 2), loop)
    try:
        return future.result(timeout)
    finally:
        future.done() or future.cancel()


def test_run_coroutine_threadsafe_result_inside_run_in_executor_returns() -> None:
    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        value = await loop.run_in_executor(None, _add_on_loop, loop)
        return value, loop.time()

    result = simloom.run(main)
    assert result.error is None
    assert result.value == (3, pytest.approx(0.05))


def test_to_thread_can_wait_on_the_loop() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        return await asyncio.to_thread(_add_on_loop, loop, 10.0)

    assert simloom.run(main).value == 3


def test_result_timeout_is_measured_in_virtual_time() -> None:
    async def main() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, _add_on_loop, loop, 0.01)
        except TimeoutError:
            return "timed out", loop.time()
        return "returned", loop.time()

    started = time.monotonic()
    result = simloom.run(main)
    assert result.value == ("timed out", pytest.approx(0.01))
    assert time.monotonic() - started < 2


def test_concurrent_futures_wait_and_as_completed_on_loop_work() -> None:
    def job(loop: asyncio.AbstractEventLoop) -> list[int]:
        futures = [
            asyncio.run_coroutine_threadsafe(asyncio.sleep(delay, delay), loop)
            for delay in (3, 1, 2)
        ]
        done, pending = concurrent.futures.wait(
            futures, return_when=concurrent.futures.FIRST_COMPLETED
        )
        assert [f.result() for f in done] == [1] and len(pending) == 2
        order = [f.result() for f in concurrent.futures.as_completed(futures)]
        done, pending = concurrent.futures.wait(futures)
        assert not pending
        return order

    async def main() -> tuple[list[int], float]:
        loop = asyncio.get_running_loop()
        order = await asyncio.to_thread(job, loop)
        return order, loop.time()

    result = simloom.run(main)
    assert result.error is None
    # The first future (delay 1) was done before as_completed began.
    assert result.value == ([1, 2, 3], 3.0)


def test_call_soon_threadsafe_from_a_lockstep_worker_is_allowed() -> None:
    seen: list[str] = []

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(lambda: loop.call_soon_threadsafe(seen.append, "from worker"))
        await asyncio.sleep(0)
        return seen

    assert simloom.run(main).value == ["from worker"]


def test_call_soon_threadsafe_from_a_foreign_thread_is_still_an_escape() -> None:
    errors: list[BaseException] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def foreign() -> None:
            try:
                loop.call_soon_threadsafe(print)
            except EscapedSimulationError as error:
                errors.append(error)

        thread = threading.Thread(target=foreign)
        thread.start()
        thread.join()

    simloom.run(main, boundary=False)  # about call_soon_threadsafe, not the boundary
    assert len(errors) == 1
    assert "call_soon_threadsafe() from another thread" in str(errors[0])


def _callbacks_into_the_loop() -> Any:
    """Several executor jobs interleaving with tasks, each calling back into the loop."""

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        trace: list[str] = []

        async def note(tag: str) -> str:
            trace.append(tag)
            await asyncio.sleep(0)
            return tag

        def job(number: int) -> str:
            for step in range(3):
                asyncio.run_coroutine_threadsafe(note(f"job{number}.{step}"), loop).result()
            return f"job{number}"

        async def ticker() -> None:
            for step in range(6):
                trace.append(f"tick{step}")
                await asyncio.sleep(0)

        results = await asyncio.gather(
            ticker(), *(loop.run_in_executor(None, job, n) for n in range(4))
        )
        trace.extend(str(r) for r in results[1:])
        return trace

    return main


def test_same_seed_gives_identical_event_log_with_executor_jobs() -> None:
    runs = [simloom.run(_callbacks_into_the_loop(), seed=7, scheduler="random") for _ in range(20)]
    assert all(run.error is None for run in runs)
    assert len({run.digest for run in runs}) == 1
    assert len({tuple(run.value) for run in runs}) == 1
    # Other seeds find other interleavings of the threads with the tasks.
    others = {
        tuple(simloom.run(_callbacks_into_the_loop(), seed=s, scheduler="random").value)
        for s in range(10)
    }
    assert len(others) > 1


def test_each_job_start_and_resume_is_one_step_in_the_event_log() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _add_on_loop, loop)

    log = simloom.run(main).event_log
    steps = [event.label for event in log if event.kind == "step"]
    assert steps.count("_ExecutorJob") == 1
    assert steps.count("_ExecutorResume") == 1


def test_a_job_blocked_on_the_real_world_ends_the_universe_with_its_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_lockstep, "WALL_LIMIT_SECONDS", 0.3)
    read_end, write_end = os.pipe()

    def stuck() -> None:
        os.read(read_end, 1)  # a real pipe nobody writes to: blocks in C

    async def main() -> None:
        await asyncio.to_thread(stuck)

    started = time.monotonic()
    try:
        result = simloom.run(main)
        assert time.monotonic() - started < 3
        assert isinstance(result.error, ExecutorBlockedError)
        assert "in stuck" in str(result.error)
        assert "os.read(read_end, 1)" in str(result.error)
    finally:
        os.write(write_end, b"x")  # let the abandoned thread end (the fixture counts threads)
        os.close(write_end)


def test_a_job_waiting_on_an_event_nobody_sets_is_a_deadlock_naming_it() -> None:
    never_set = threading.Event()

    def stuck() -> None:
        never_set.wait()

    async def main() -> None:
        await asyncio.to_thread(stuck)

    started = time.monotonic()
    result = simloom.run(main)
    assert time.monotonic() - started < 3
    assert isinstance(result.error, SimDeadlockError)
    message = str(result.error)
    assert "Waiting threads (lockstep):" in message
    assert "thread 'simloom-executor-1' waits on a lock" in message
    assert (
        "in test_a_job_waiting_on_an_event_nobody_sets_is_a_deadlock_naming_it.<locals>.stuck"
        in message
    )


def test_a_job_parked_at_universe_end_gets_cancelled_inside_and_is_joined() -> None:
    seen: list[str] = []

    def waits_forever(loop: asyncio.AbstractEventLoop) -> None:
        future = asyncio.run_coroutine_threadsafe(asyncio.sleep(3600), loop)
        try:
            future.result()
        except concurrent.futures.CancelledError:
            seen.append("cancelled inside the job")
            raise

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, waits_forever, loop)
        await asyncio.sleep(1)

    result = simloom.run(main)
    assert result.error is None
    assert seen == ["cancelled inside the job"]


def test_a_parked_job_is_joined_when_the_main_task_fails() -> None:
    def waits(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.run_coroutine_threadsafe(asyncio.sleep(3600), loop).result()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, waits, loop)
        await asyncio.sleep(1)
        raise ValueError("boom")

    assert isinstance(simloom.run(main).error, ValueError)


def test_asyncio_run_on_simloop_joins_parked_jobs() -> None:
    jobs: list[asyncio.Future[Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        jobs.append(
            loop.run_in_executor(
                None, lambda: asyncio.run_coroutine_threadsafe(asyncio.sleep(60), loop).result()
            )
        )
        await asyncio.sleep(0)

    asyncio.run(main(), loop_factory=simloom.SimLoop)
    # Runner.close cancelled the coroutine the job waited on: the job saw that.
    assert isinstance(jobs[0].exception(), asyncio.CancelledError)


def test_concurrent_futures_are_untouched_outside_lockstep_workers() -> None:
    assert concurrent.futures.Future.result is _lockstep._original_result
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(lambda: 5).result(timeout=5) == 5


def test_an_interrupt_while_a_job_runs_propagates_and_the_job_is_joined() -> None:
    import _thread

    steps: list[str] = []

    def interrupts_its_loop(loop: asyncio.AbstractEventLoop) -> None:
        _thread.interrupt_main()  # the loop thread is waiting for this worker
        steps.append("job ran on")
        try:
            time.sleep(0.05)  # a switch point: the loop thread takes the interrupt
        except concurrent.futures.CancelledError:
            steps.append("cancelled at close")
            raise

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, interrupts_its_loop, loop)

    # interrupt_main() raises only where SIGINT has Python's handler: not in a run
    # that inherited an ignored SIGINT (a background job of a non-interactive shell).
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            simloom.run(main)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 2
    assert steps == ["job ran on", "cancelled at close"]


def test_executor_jobs_pass_the_determinism_self_check() -> None:
    result = simloom.run(
        _callbacks_into_the_loop(), seed=3, scheduler="random", check_determinism=True
    )
    assert result.error is None
