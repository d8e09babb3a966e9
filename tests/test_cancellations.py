"""Injected cancellations and timeouts (``cancellations=True``).

The two programs of the issue's goal (a semaphore leaked and a queue item lost
when a task is cancelled at the wrong await) must be found within 50 universes
with injection and pass 2,000 without it; their corrected versions pass with it.
The rest pins the rules: the main task is never cancelled, FIFO never injects, an
injection is a tape choice that replays and shrinks, a timeout can be made to
expire, and the report names the await where the cancellation landed.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import simloom
from hypothesis import HealthCheck, given, settings
from simloom import SimloomUsageError
from simloom._explore import _scheduler_for_seed

pytest_plugins = ["pytester"]


async def semaphore_leak(*, careful: bool = False) -> None:
    sem = asyncio.Semaphore(2)

    async def worker() -> None:
        await sem.acquire()
        if careful:
            try:
                await asyncio.sleep(0.01)
            finally:
                sem.release()
        else:
            await asyncio.sleep(0.01)  # a cancellation here leaks the permit
            sem.release()

    tasks = [asyncio.create_task(worker()) for _ in range(4)]
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sem._value == 2, f"a permit leaked: value {sem._value}"


async def queue_loss(*, careful: bool = False) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    done: list[int] = []
    for item in range(6):
        queue.put_nowait(item)

    async def consumer() -> None:
        while True:
            item = await queue.get()
            try:
                await asyncio.sleep(0.001)  # handling it: a cancellation here loses it
            except asyncio.CancelledError:
                if careful:
                    queue.put_nowait(item)
                raise
            done.append(item)

    # Rounds of two consumers, stopped and restarted until the queue is empty.
    while not queue.empty():
        workers = [asyncio.create_task(consumer()) for _ in range(2)]
        await asyncio.sleep(0.01)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    assert sorted(done) == list(range(6)), f"items lost: {sorted(set(range(6)) - set(done))}"


def first_failure(main: Any, universes: int, **options: Any) -> int | None:
    """The first seed (0..universes-1) whose universe fails, under the default mix."""
    for seed in range(universes):
        scheduler = _scheduler_for_seed("mixed", seed)
        if simloom.run(main, seed=seed, scheduler=scheduler, **options).error is not None:
            return seed
    return None


@pytest.mark.parametrize("program", [semaphore_leak, queue_loss])
def test_found_within_50_universes_with_injection(program: Any) -> None:
    assert first_failure(program, 50, cancellations=True) is not None


@pytest.mark.parametrize("program", [semaphore_leak, queue_loss])
def test_passes_2000_universes_without_injection(program: Any) -> None:
    assert first_failure(program, 2000) is None


@pytest.mark.parametrize("program", [semaphore_leak, queue_loss])
def test_the_corrected_program_survives_injection(program: Any) -> None:
    async def careful() -> None:
        await program(careful=True)

    assert first_failure(careful, 300, cancellations=True) is None


def test_the_simloom_test_decorator_finds_it_and_names_the_await(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # its artifacts

    @settings(database=None)
    @simloom.test(cancellations=True, runs=50)
    async def test_leak() -> None:
        await semaphore_leak()

    with pytest.raises(AssertionError) as caught:
        test_leak()
    report = "\n".join(getattr(caught.value, "__notes__", [])) or str(caught.value)
    assert "injected cancellations: 1" in report, report
    # Shrunk to one injection, told in code: the task and the await it landed at.
    assert "inject.cancel = 1: cancelled" in report, report
    assert "await asyncio.sleep(0.01)" in report, report
    assert "cancellations=True" in report, report  # in the replay line


def test_the_main_task_is_never_cancelled() -> None:
    steps = []

    async def main() -> None:
        async def child() -> None:
            await asyncio.sleep(0.5)

        for _ in range(20):
            task = asyncio.create_task(child())
            await asyncio.sleep(0.1)
            await asyncio.gather(task, return_exceptions=True)
        steps.append(True)

    injected = 0
    for seed in range(100):
        result = simloom.run(main, seed=seed, scheduler="random", cancellations=True)
        assert result.error is None, (seed, result.error)
        injected += sum(1 for e in result.event_log if e.kind == "mark")
    assert len(steps) == 100
    assert injected > 0  # the children were cancelled, the main task never


def test_fifo_never_injects() -> None:
    for seed in range(20):
        result = simloom.run(semaphore_leak, seed=seed, scheduler="fifo", cancellations=True)
        assert result.error is None
        assert not [e for e in result.event_log if e.kind == "mark"]


def test_without_the_option_no_injection_decision_is_asked() -> None:
    result = simloom.run(semaphore_leak, seed=3, scheduler="random")
    assert not [e for e in result.event_log if (e.label or "").startswith("inject")]


def test_an_injection_replays_from_its_tape() -> None:
    seed = first_failure(semaphore_leak, 50, cancellations=True)
    assert seed is not None
    scheduler = _scheduler_for_seed("mixed", seed)
    found = simloom.run(semaphore_leak, seed=seed, scheduler=scheduler, cancellations=True)
    again = simloom.run(semaphore_leak, seed=seed, scheduler=scheduler, cancellations=True)
    assert found.digest == again.digest
    replayed = simloom.replay(semaphore_leak, found.tape, cancellations=True)
    # The message may name an object by its address, which differs between runs.
    assert re.sub("0x[0-9a-f]+", "0x", repr(replayed.error)) == re.sub(
        "0x[0-9a-f]+", "0x", repr(found.error)
    )
    assert replayed.digest == found.digest


def test_a_timeout_can_be_made_to_expire_early() -> None:
    seen: list[float] = []

    async def main() -> None:
        async def guarded() -> None:
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(60):
                    await asyncio.sleep(1)
                    await asyncio.sleep(1)
            except TimeoutError:
                seen.append(loop.time())

        async def waited() -> None:
            try:
                await asyncio.wait_for(asyncio.sleep(5), timeout=60)
            except TimeoutError:
                seen.append(-1.0)

        await asyncio.gather(guarded(), waited(), return_exceptions=True)

    labels = set()
    for seed in range(200):
        result = simloom.run(main, seed=seed, scheduler="random", cancellations=True)
        assert result.error is None
        labels.update(e.label for e in result.event_log if e.kind == "mark")
    # Expired long before their 60 s deadline, as TimeoutError, in both forms.
    assert any(0 < t < 60 for t in seen)
    assert -1.0 in seen
    assert any(label.startswith("inject:timeout:") for label in labels)


def test_an_injection_shrinks_away_when_the_failure_does_not_need_it(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    # A failure unrelated to cancellation (a plain assertion on a drawn value).
    @settings(database=None)
    @simloom.test(cancellations=True, runs=100)
    async def test_unrelated() -> None:
        async def child() -> None:
            await asyncio.sleep(0.1)

        await asyncio.gather(
            *(asyncio.create_task(child()) for _ in range(3)), return_exceptions=True
        )
        assert simloom.draw("pick", 4) != 3

    with pytest.raises(AssertionError) as caught:
        test_unrelated()
    report = "\n".join(getattr(caught.value, "__notes__", [])) or str(caught.value)
    assert "inject.cancel = 1" not in report, report
    assert "injected cancellations" not in report, report


def test_universes_strategy_takes_the_option() -> None:
    failures = []

    @settings(
        max_examples=150,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(simloom.universes(cancellations=True))
    def check(universe: Any) -> None:
        try:
            universe.run(semaphore_leak)
        except AssertionError as error:
            failures.append(error)

    check()
    assert failures


def test_a_bad_value_is_a_named_error() -> None:
    with pytest.raises(SimloomUsageError, match="cancellations"):
        simloom.run(semaphore_leak, cancellations="yes")  # type: ignore[arg-type]


def test_pytest_option_turns_it_on_for_every_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_leak="""
import asyncio
import simloom

@simloom.test(runs=50)
async def test_leak():
    sem = asyncio.Semaphore(2)
    async def worker():
        await sem.acquire()
        await asyncio.sleep(0.01)
        sem.release()
    tasks = [asyncio.create_task(worker()) for _ in range(4)]
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sem._value == 2
"""
    )
    args = ("-p", "no:cacheprovider", "-p", "no:randomly")
    plain = pytester.runpytest_subprocess(*args)
    plain.assert_outcomes(passed=1)
    injected = pytester.runpytest_subprocess(*args, "--simloom-cancellations")
    injected.assert_outcomes(failed=1)
    out = injected.stdout.str()
    assert "inject.cancel = 1" in out
    assert "--simloom-cancellations" in out  # the re-run and replay commands keep it


def test_a_cancellation_the_program_lets_through_ends_the_universe_passing() -> None:
    async def main() -> None:
        async def child() -> int:
            await asyncio.sleep(0.1)
            return 1

        async def slow() -> None:
            async with asyncio.timeout(60):
                await asyncio.sleep(1)

        # No return_exceptions: an injected CancelledError (or TimeoutError)
        # reaches main, which lets it through, as cancelled code should.
        await asyncio.gather(child(), child(), slow())

    propagated = 0
    for seed in range(200):
        result = simloom.run(main, seed=seed, scheduler="random", cancellations=True)
        assert result.error is None, (seed, result.error)
        propagated += any(e.label == "inject:propagated" for e in result.event_log)
    assert propagated > 0


def test_a_program_error_after_an_injection_is_still_a_failure() -> None:
    async def main() -> None:
        async def child() -> None:
            await asyncio.sleep(0.1)

        try:
            await asyncio.gather(child(), child())
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    errors = [
        simloom.run(main, seed=seed, scheduler="random", cancellations=True).error
        for seed in range(100)
    ]
    assert any(isinstance(error, RuntimeError) for error in errors)


def test_pytest_simloom_passes_a_test_that_lets_the_cancellation_through(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_gather="""
import asyncio
import pytest

@pytest.mark.asyncio
async def test_gather():
    async def child(i):
        await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        return i
    assert await asyncio.gather(*(child(i) for i in range(4))) == [0, 1, 2, 3]

@pytest.mark.asyncio
async def test_lost_permit():
    sem = asyncio.Semaphore(1)
    async def worker():
        await sem.acquire()
        await asyncio.sleep(0.01)
        sem.release()
    await asyncio.gather(*(worker() for _ in range(3)), return_exceptions=True)
    assert sem._value == 1
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "--simloom=30", "--simloom-cancellations"
    )
    result.assert_outcomes(passed=1, failed=1)
    assert "test_lost_permit is schedule-dependent" in result.stdout.str()


def test_a_cancellation_of_the_programs_own_is_still_its_error() -> None:
    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)

    result = simloom.run(main, seed=1, scheduler="random", cancellations=True)
    assert isinstance(result.error, asyncio.CancelledError)


LEAK_MODULE = """
import asyncio

async def main():
    sem = asyncio.Semaphore(2)
    async def worker():
        await sem.acquire()
        await asyncio.sleep(0.01)
        sem.release()
    tasks = [asyncio.create_task(worker()) for _ in range(4)]
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sem._value == 2, "a permit leaked"
"""


def test_the_command_line_explores_with_cancellations_and_replays_the_artifact(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from simloom import cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "leak.py").write_text(LEAK_MODULE)
    target = f"{tmp_path / 'leak.py'}:main"
    assert cli.main(["explore", target, "--runs", "50", "--no-database"]) == 0
    capsys.readouterr()
    status = cli.main(
        ["explore", target, "--runs", "50", "--no-database", "--cancellations", "--artifacts", "f"]
    )
    out = capsys.readouterr().out
    assert status == 1, out
    assert "a permit leaked" in out
    assert "--cancellations" in out  # the re-run command keeps the option
    assert "inject.cancel = 1" in out
    tapes = sorted((tmp_path / "f").glob("*.tape.json"))
    assert tapes
    # The artifact says the universe injected cancellations: it replays with them.
    assert '"cancellations": true' in tapes[0].read_text()
    assert cli.main(["replay", str(tapes[0])]) == 1
    assert "a permit leaked" in capsys.readouterr().out
    # explain and timeline replay it the same way.
    assert cli.main(["explain", str(tapes[0])]) == 1
    assert "inject.cancel = 1" in capsys.readouterr().out


def test_pytest_simloom_lets_it_through_in_a_unittest_testcase(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_case="""
import asyncio
import unittest

class Case(unittest.IsolatedAsyncioTestCase):
    async def test_gather(self):
        async def child(i):
            await asyncio.sleep(0.01)
            await asyncio.sleep(0.01)
            return i
        self.assertEqual(await asyncio.gather(*(child(i) for i in range(4))), [0, 1, 2, 3])
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "no:randomly", "--simloom=30", "--simloom-cancellations"
    )
    result.assert_outcomes(passed=1)
