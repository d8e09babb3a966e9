"""``simloom.universes()``: universes whose every choice is a Hypothesis draw.

Hypothesis generates the schedule, saves failing ones in its example database and
shrinks them together with every other argument of the test; a universe shrinks
toward FIFO with no faults.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import simloom
from hypothesis import given, settings
from hypothesis import strategies as st
from simloom import RunResult, SimloomUsageError

pytest_plugins = ["pytester"]


# ------------------------------------------------------------------ programs


class Account:
    def __init__(self, balance: int) -> None:
        self.balance = balance

    async def withdraw(self, amount: int) -> None:
        if self.balance < amount:  # check ...
            return
        await asyncio.sleep(0)  # ... a scheduling point ...
        self.balance -= amount  # ... act


async def bank_race() -> int:
    """examples/bank_race.py: passes under FIFO, fails if Bob checks the balance
    before Alice has debited it."""
    account = Account(100)

    async def bob() -> None:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await account.withdraw(70)

    await asyncio.gather(account.withdraw(70), bob())
    assert account.balance >= 0, f"overdrawn: balance is {account.balance}"
    return account.balance


async def add_concurrently(items: list[int]) -> int:
    """Adds every item to a shared total, one task per item, with a read-await-write
    race: item ``i`` arrives ``i`` scheduling points after the first. Under FIFO each
    task reads after the previous one wrote; one early read loses an update."""
    total = {"value": 0}

    async def add(position: int, item: int) -> None:
        for _ in range(position):
            await asyncio.sleep(0)
        current = total["value"]  # read ...
        await asyncio.sleep(0)  # ... await ...
        total["value"] = current + item  # ... write

    await asyncio.gather(*(add(i, x) for i, x in enumerate(items)))
    return total["value"]


async def fetch_all() -> list[int]:
    """Three fetches, each of which can fail with an injected fault."""
    fetched: list[int] = []

    async def fetch(n: int) -> None:
        await asyncio.sleep(0.01 * n)
        if simloom.sometimes("fault", 10):
            raise ConnectionError(f"fetch {n}: injected fault")
        fetched.append(n)

    await asyncio.gather(fetch(1), fetch(2), fetch(3))
    return fetched


async def busy() -> None:
    """Three rounds of three concurrent sleeps: 24 scheduling decisions."""
    for _ in range(3):
        await asyncio.gather(*(asyncio.sleep(0) for _ in range(3)))


def deviations(result: RunResult) -> list[tuple[str, int]]:
    """The decisions that left FIFO: (label, value)."""
    return [
        (e.label or "", e.value or 0) for e in result.event_log if e.kind == "decision" and e.value
    ]


class Failures:
    """What each failing call of a @given test saw, so that the minimal failure can
    be found from the exception Hypothesis finally raises."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, RunResult | None, BaseException]] = []

    def record(self, args: Any, universe: Any, error: BaseException) -> None:
        self.seen.append((args, universe.result, error))

    def minimal(self, error: BaseException) -> tuple[Any, RunResult]:
        for args, result, seen in self.seen:
            if seen is error:
                assert result is not None
                return args, result
        raise AssertionError(f"{error!r} was not raised by a recorded call")


# ------------------------------------------------------------------ sync tests


def test_the_program_passes_under_fifo() -> None:
    assert simloom.run(bank_race, scheduler="fifo").ok
    assert simloom.run(lambda: add_concurrently([1, 0, 5, -2]), scheduler="fifo").value == 4
    assert simloom.run(fetch_all, scheduler="fifo").value == [1, 2, 3]


def test_a_sync_given_test_finds_a_race_and_shrinks_it() -> None:
    failures = Failures()

    @settings(database=None, max_examples=500, derandomize=True)
    @given(simloom.universes())
    def test_never_overdrawn(universe: Any) -> None:
        try:
            universe.run(bank_race)
        except AssertionError as error:
            failures.record(None, universe, error)
            raise

    with pytest.raises(AssertionError, match="overdrawn: balance is -40") as info:
        test_never_overdrawn()
    _, minimal = failures.minimal(info.value)
    assert minimal.error is info.value
    assert 1 <= minimal.deviations <= 2
    assert {label for label, _ in deviations(minimal)} == {"sched.pick"}


def test_default_backend_universes_leave_fifo() -> None:
    """While generating, a universe draws about four deviations (``more?`` is True
    with p = 0.8), so for a program with 24 decisions a good share of the universes
    Hypothesis generates (here: at least a quarter) are not the FIFO universe."""
    results: list[RunResult] = []

    @settings(database=None, max_examples=200, derandomize=True)
    @given(simloom.universes())
    def explore(universe: Any) -> None:
        results.append(universe.run_result(busy))

    explore()
    assert results[0].decisions == 24
    deviating = sum(1 for r in results if r.deviations)
    assert deviating >= len(results) // 4, f"{deviating} of {len(results)} universes left FIFO"


def test_with_the_simloom_backend_a_race_is_found_and_shrunk() -> None:
    failures = Failures()

    @settings(database=None, max_examples=200, derandomize=True, backend="simloom")
    @given(simloom.universes())
    def test_never_overdrawn(universe: Any) -> None:
        try:
            universe.run(bank_race)
        except AssertionError as error:
            failures.record(None, universe, error)
            raise

    with pytest.raises(AssertionError, match="overdrawn: balance is -40") as info:
        test_never_overdrawn()
    _, minimal = failures.minimal(info.value)
    assert minimal.deviations == 2
    assert minimal.explain().startswith(
        "FIFO everywhere except:\n"
        "  decision #0: sched.pick = 1 (of 2)\n"
        "  decision #1: sched.pick = 1 (of 2)\n"
        "  reorders ready callbacks: 2 decision(s)"
    )


def test_a_universe_keeps_its_result_and_runs_once() -> None:
    checked: list[bool] = []

    @settings(database=None, max_examples=10)
    @given(simloom.universes())
    def check(universe: Any) -> None:
        assert universe.result is None
        assert universe.run(lambda: add_concurrently([1, 2])) in (1, 2, 3)
        result = universe.result
        assert isinstance(result, RunResult)
        assert result.scheduler == "hypothesis"
        assert simloom.replay(lambda: add_concurrently([1, 2]), result.tape).digest == (
            result.digest
        )
        with pytest.raises(SimloomUsageError, match="once"):
            universe.run(lambda: add_concurrently([1, 2]))
        with pytest.raises(SimloomUsageError, match="once"):
            universe.run_result(lambda: add_concurrently([1, 2]))
        assert universe.result is result
        checked.append(True)

    check()
    assert len(checked) == 10


def test_run_result_returns_the_error_instead_of_raising_it() -> None:
    @settings(database=None, max_examples=5)
    @given(simloom.universes())
    def check(universe: Any) -> None:
        async def boom() -> None:
            await asyncio.sleep(0)
            raise KeyError("boom")

        result = universe.run_result(boom)
        assert isinstance(result.error, KeyError)
        assert not result.ok

    check()


def test_universes_refuses_bad_arguments() -> None:
    with pytest.raises(SimloomUsageError, match="lottery"):
        simloom.universes(scheduler="lottery")
    with pytest.raises(SimloomUsageError, match="livelock_steps"):
        simloom.universes(livelock_steps=0)


# ------------------------------------------------------------------ shrinking


def test_inputs_and_schedule_shrink_together() -> None:
    """The bug needs a list of two or more items with a non-zero one AND an
    interleaving that loses an update; both shrink to their minimum."""
    failures = Failures()

    @settings(database=None, max_examples=500, derandomize=True)
    @given(st.lists(st.integers()), simloom.universes())
    def test_total(items: list[int], universe: Any) -> None:
        try:
            assert universe.run(lambda: add_concurrently(items)) == sum(items)
        except AssertionError as error:
            failures.record(items, universe, error)
            raise

    with pytest.raises(AssertionError) as info:
        test_total()
    items, minimal = failures.minimal(info.value)
    assert items == [1, 0]
    assert minimal.deviations == 1
    assert list(minimal.tape.deviations) == [(0, 1)]
    assert deviations(minimal) == [("sched.pick", 1)]


def test_universes_shrink_toward_fifo() -> None:
    failures = Failures()

    async def always_fails() -> None:
        await asyncio.gather(asyncio.sleep(0), asyncio.sleep(0), asyncio.sleep(0))
        await asyncio.sleep(0)
        raise AssertionError("fails in every universe")

    @settings(database=None, derandomize=True)
    @given(simloom.universes())
    def test_it(universe: Any) -> None:
        try:
            universe.run(always_fails)
        except AssertionError as error:
            failures.record(None, universe, error)
            raise

    with pytest.raises(AssertionError, match="fails in every universe") as info:
        test_it()
    _, minimal = failures.minimal(info.value)
    assert minimal.deviations == 0
    assert list(minimal.tape.deviations) == []
    assert minimal.explain() == "FIFO everywhere (no deviations)"


@pytest.mark.parametrize("backend", ["hypothesis", "simloom"])
def test_sometimes_is_a_hypothesis_draw_that_shrinks_to_the_one_fault(backend: str) -> None:
    failures = Failures()

    @settings(database=None, max_examples=300, derandomize=True, backend=backend)
    @given(simloom.universes())
    def test_fetch_all(universe: Any) -> None:
        try:
            universe.run(fetch_all)
        except ConnectionError as error:
            failures.record(None, universe, error)
            raise

    with pytest.raises(ConnectionError, match="injected fault") as info:
        test_fetch_all()
    _, minimal = failures.minimal(info.value)
    assert deviations(minimal) == [("sometimes:fault", 1)]
    assert minimal.coverage == {"fault": 1}


# ------------------------------------------------------------------ under pytest


ASYNC_TESTS = """
import asyncio

import simloom
from hypothesis import given, settings


async def later(step, steps):
    for _ in range(steps):
        await asyncio.sleep(0)
    await step()


@settings(max_examples=500, derandomize=True)
@given(simloom.universes())
async def test_racy_counter(universe):
    assert isinstance(asyncio.get_running_loop(), simloom.SimLoop)
    store = {"hits": 0}

    async def increment():
        current = store["hits"]
        await asyncio.sleep(0)
        store["hits"] = current + 1

    await asyncio.gather(increment(), later(increment, 1))
    assert store["hits"] == 2, f"lost update: hits == {store['hits']}"


@settings(max_examples=200, derandomize=True)
@given(simloom.universes())
async def test_locked_counter(universe):
    assert isinstance(asyncio.get_running_loop(), simloom.SimLoop)
    store = {"hits": 0}
    lock = asyncio.Lock()

    async def increment():
        async with lock:
            current = store["hits"]
            await asyncio.sleep(0)
            store["hits"] = current + 1

    await asyncio.gather(increment(), later(increment, 1), increment())
    assert store["hits"] == 3
"""


def test_async_given_tests_run_inside_their_universe(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_async=ASYNC_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    text = result.stdout.str()
    assert "FAILED test_async.py::test_racy_counter" in text
    assert "AssertionError: lost update: hits == 1" in text


SAVED = """
import asyncio
from pathlib import Path

import simloom
from hypothesis import given, settings

CALLS = 0
FIRST_FAILURE = None


async def later(step, steps):
    for _ in range(steps):
        await asyncio.sleep(0)
    await step()


async def racy_counter():
    store = {"hits": 0}

    async def increment():
        current = store["hits"]
        await asyncio.sleep(0)
        store["hits"] = current + 1

    await asyncio.gather(increment(), later(increment, 1))
    assert store["hits"] == 2, f"lost update: hits == {store['hits']}"


@settings(max_examples=1000)
@given(simloom.universes())
def test_counter(universe):
    global CALLS, FIRST_FAILURE
    CALLS += 1
    try:
        universe.run(racy_counter)
    except AssertionError:
        if FIRST_FAILURE is None:
            FIRST_FAILURE = CALLS
            with Path("first_failures.txt").open("a") as log:
                log.write(f"{CALLS}\\n")
        raise
"""


def test_a_saved_universe_replays_first_in_the_next_session(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_saved=SAVED)
    first = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    first.assert_outcomes(failed=1)
    assert (pytester.path / ".hypothesis" / "examples").is_dir()
    second = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    second.assert_outcomes(failed=1)
    assert "AssertionError: lost update: hits == 1" in second.stdout.str()

    found_at, replayed_at = (
        int(n) for n in (pytester.path / "first_failures.txt").read_text().split()
    )
    assert found_at > 1  # the first session had to search ...
    assert replayed_at == 1  # ... the next one fails on its first call: the saved universe


def test_loops_of_failing_hypothesis_universes_are_garbage_collected() -> None:
    # A universe's loop holds its Hypothesis draws, which hold the failure, whose
    # traceback holds the loop: the collector must see and break that cycle, or
    # every failing test case leaks a loop and its tasks.
    import gc
    import weakref

    loops: list[weakref.ref[simloom.SimLoop]] = []

    async def fails() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        raise AssertionError("always")

    @settings(database=None, max_examples=20, derandomize=True)
    @given(simloom.universes())
    def test(universe: simloom.Universe) -> None:
        universe.run(fails)

    with pytest.raises(AssertionError):
        test()
    gc.collect()
    assert len(loops) > 1
    assert [ref for ref in loops if ref() is not None] == []


def test_a_loop_that_references_its_draws_object_is_collected() -> None:
    import gc
    import weakref

    class Draws:
        loop: object = None

        def more(self) -> bool:
            return False

        def gap(self) -> int:
            return 0

        def value(self, label: str, bound: int) -> int:
            return 1

    draws = Draws()
    loop = simloom.SimLoop(draws=draws)
    draws.loop = loop
    loop.close()
    ref = weakref.ref(loop)
    del loop, draws
    gc.collect()
    assert ref() is None
