"""The self-check (``check_determinism=True``): a deterministic universe passes
unchanged; a leaky one -- a set iterated by identity, a clock the boundary cannot
reach, the boundary turned off -- fails with the first diverging event and, on each
side, the line that scheduled it.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest
import simloom
import torture_programs as tp

THIS_FILE = str(Path(__file__).resolve())
pytest_plugins = ["pytester"]


def line_of(marker: str) -> int:
    """The line of this file that contains ``marker`` (in a comment)."""
    for number, line in enumerate(Path(THIS_FILE).read_text().splitlines(), start=1):
        if marker in line and "line_of(" not in line:
            return number
    raise AssertionError(marker)


class Peer:
    """A plain object: hashed by its address."""

    def __init__(self, number: int) -> None:
        self.number = number

    async def serve(self, log: list[int]) -> None:
        await asyncio.sleep(self.number / 1000)
        log.append(self.number)


async def iterates_a_set_of_objects() -> list[int]:
    peers = {Peer(i) for i in range(8)}
    log: list[int] = []
    async with asyncio.TaskGroup() as group:
        for peer in peers:
            group.create_task(peer.serve(log))  # <- identity order
    return log


async def reads_cpu_time() -> None:
    async def worker() -> None:
        await asyncio.sleep(time.process_time_ns() % 997 / 1e6)  # <- cpu clock

    await asyncio.gather(worker(), worker())


async def reads_the_wall_clock() -> None:
    await asyncio.sleep(time.time() % 1)  # <- wall clock


def check(main: Any, **options: Any) -> simloom.SimloomNondeterminismError:
    with pytest.raises(simloom.SimloomNondeterminismError) as caught:
        simloom.run(main, check_determinism=True, **options)
    return caught.value


def test_a_deterministic_universe_passes_and_returns_what_an_unchecked_run_returns() -> None:
    for name, program in list(tp.PROGRAMS.items())[:6]:
        for seed in range(3):
            checked = simloom.run(program, seed=seed, check_determinism=True)
            plain = simloom.run(program, seed=seed)
            assert checked.digest == plain.digest, (name, seed)
            assert checked.event_log_bytes == plain.event_log_bytes
            assert repr(checked.value) == repr(plain.value)


def test_iterating_a_set_hashed_by_identity_is_caught_with_the_line_on_both_sides() -> None:
    error = check(iterates_a_set_of_objects, seed=3, boundary=True)
    where = f"{THIS_FILE}:{line_of('<- identity order')} in iterates_a_set_of_objects"
    message = str(error)
    assert message.startswith("simloom.run(main, seed=3, scheduler='random') is not deterministic")
    assert re.search(r"diverged at event #\d+", message)
    assert where in error.first and where in error.second
    assert f"  first run:  {error.first}" in message
    assert f"  second run: {error.second}" in message
    assert error.event_index > 0
    assert "hashed by identity" in message
    assert isinstance(error, simloom.SimloomError) and isinstance(error, RuntimeError)


def test_a_clock_the_boundary_cannot_reach_is_caught_at_the_line_that_read_it() -> None:
    error = check(reads_cpu_time, boundary=True)
    where = f"{THIS_FILE}:{line_of('<- cpu clock')} in reads_cpu_time.<locals>.worker"
    assert "the clock moved to" in error.first
    assert where in error.first and where in error.second
    assert "a clock or random source simloom does not patch" in str(error)


def test_the_wall_clock_without_the_boundary_is_caught() -> None:
    error = check(reads_the_wall_clock, boundary=False)
    assert f"{THIS_FILE}:{line_of('<- wall clock')}" in error.first
    assert simloom.run(reads_the_wall_clock, check_determinism=True).ok


def test_a_task_step_names_the_task_where_it_was_created_and_where_it_resumes() -> None:
    error = check(iterates_a_set_of_objects, seed=3, boundary=True)
    created = f"{THIS_FILE}:{line_of('<- identity order')} in iterates_a_set_of_objects"
    for side in (error.first, error.second):
        assert re.search(
            rf"task Task-\d+ \(Peer\.serve, created by {re.escape(created)}\) resumes at "
            rf"{re.escape(THIS_FILE)}:\d+ in Peer\.serve",
            side,
        ), side


def test_check_determinism_must_be_a_bool() -> None:
    with pytest.raises(simloom.SimloomUsageError, match="check_determinism"):
        simloom.run(reads_the_wall_clock, check_determinism=1)  # type: ignore[arg-type]
    with pytest.raises(simloom.SimloomUsageError, match="check_determinism"):
        simloom.test(check_determinism="yes")(reads_the_wall_clock)  # type: ignore[arg-type]


def test_simloom_test_checks_every_universe_and_says_how_to_rerun_one() -> None:
    @simloom.test(runs=5, check_determinism=True)
    async def test_peers() -> None:
        await iterates_a_set_of_objects()

    with pytest.raises(simloom.SimloomNondeterminismError) as caught:
        test_peers()
    notes = "\n".join(caught.value.__notes__)
    assert re.search(
        r"universe \d+ of .*test_peers; re-run it: simloom\.run\(main, seed=\d+", notes
    )
    assert "', check_determinism=True)" in notes  # with the boundary, the default


LEAKY_TEST = """
import asyncio

import simloom


class Peer:
    def __init__(self, number):
        self.number = number

    async def serve(self, log):
        await asyncio.sleep(self.number / 1000)
        log.append(self.number)


@simloom.test(runs=20)
async def test_peers():
    peers = {Peer(i) for i in range(8)}
    log = []
    async with asyncio.TaskGroup() as group:
        for peer in peers:
            group.create_task(peer.serve(log))
"""


def test_the_pytest_option_checks_every_simloom_test(pytester: pytest.Pytester) -> None:
    (pytester.path / "test_leaky.py").write_text(LEAKY_TEST)
    passing = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    passing.assert_outcomes(passed=1)
    checked = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--simloom-check-determinism")
    checked.assert_outcomes(failed=1)
    text = checked.stdout.str()
    assert "SimloomNondeterminismError" in text
    create_task_line = LEAKY_TEST.splitlines().index(
        "            group.create_task(peer.serve(log))"
    )
    assert f"test_leaky.py:{create_task_line + 1} in test_peers" in text
    assert "re-run it: pytest 'test_leaky.py::test_peers' --simloom-seed=" in text
    assert "--simloom-check-determinism" in text
