"""Monitors judged between steps: always, eventually, leads_to — violations fail
and shrink the universe with the monitor's name, time and step; passing monitors
leave the universe's digest as it was; misuse is a named error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import simloom
from hypothesis import given, settings
from hypothesis.database import InMemoryExampleDatabase
from simloom import MonitorViolationError, SimloomUsageError

pytest_plugins = ["pytester"]


def explored(program: Any, runs: int = 300) -> Any:
    return settings(database=InMemoryExampleDatabase())(simloom.test(runs=runs)(program))


class Account:
    def __init__(self) -> None:
        self.balance = 100

    async def withdraw(self, amount: int) -> None:
        if self.balance >= amount:  # check ...
            await asyncio.sleep(0)
            self.balance -= amount  # ... then act


def test_always_catches_the_step_that_breaks_an_invariant() -> None:
    async def overdraw() -> None:
        account = Account()
        simloom.always(lambda: account.balance >= 0, name="never overdrawn")
        await asyncio.gather(account.withdraw(70), account.withdraw(70))

    with pytest.raises(MonitorViolationError) as raised:
        explored(overdraw)()
    error = raised.value
    assert error.monitor == "never overdrawn" and error.kind == "always"
    assert (
        "monitor always 'never overdrawn' violated: false at virtual time 0.000000s, after step"
        in str(error)
    )
    assert error.step > 0
    # Shrunk like any failure: the report has the minimal schedule.
    report = next(n for n in error.__notes__ if "simloom found" in n)
    assert "shrunk:" in report


def test_a_monitor_that_holds_leaves_the_universe_as_it_was() -> None:
    async def program(watched: bool) -> int:
        account = Account()
        if watched:
            simloom.always(lambda: account.balance >= -100)
            simloom.eventually(lambda: account.balance < 100)
            simloom.leads_to(lambda: account.balance < 100, lambda: account.balance < 50)
        await asyncio.gather(account.withdraw(30), account.withdraw(30), account.withdraw(30))
        await asyncio.sleep(1)
        return account.balance

    for scheduler in ("fifo", "random", "pct", "faithful"):
        for seed in range(20):
            plain = simloom.run(lambda: program(False), seed=seed, scheduler=scheduler)
            watched = simloom.run(lambda: program(True), seed=seed, scheduler=scheduler)
            assert watched.error is None, watched.error
            assert (watched.digest, watched.value) == (plain.digest, plain.value)


def test_eventually_fails_at_its_deadline_and_at_the_end() -> None:
    async def never_ready() -> None:
        ready = asyncio.Event()
        simloom.eventually(ready.is_set, within=2.0, name="ready in time")
        await asyncio.sleep(5)

    result = simloom.run(never_ready)
    assert isinstance(result.error, MonitorViolationError)
    assert result.error.time_ns == 2_000_000_000, "the deadline, not the step after it"
    assert "not true within 2s (by virtual time 2.000000s)" in str(result.error)

    async def ends_first() -> None:
        simloom.eventually(lambda: False, name="some day")
        await asyncio.sleep(3)

    result = simloom.run(ends_first)
    assert isinstance(result.error, MonitorViolationError)
    assert "never true: the program ended at virtual time 3.000000s" in str(result.error)

    async def in_time() -> None:
        ready = asyncio.Event()
        simloom.eventually(ready.is_set, within=2.0)
        await asyncio.sleep(1.5)
        ready.set()
        await asyncio.sleep(5)

    assert simloom.run(in_time).error is None


def test_leads_to_needs_q_to_follow_p_in_time() -> None:
    async def service(answer_after: float) -> None:
        state = {"asked": False, "answered": False}
        simloom.leads_to(
            lambda: state["asked"], lambda: state["answered"], within=1.0, name="answered"
        )
        await asyncio.sleep(0.5)
        state["asked"] = True
        await asyncio.sleep(answer_after)
        state["answered"] = True
        await asyncio.sleep(0.1)

    assert simloom.run(lambda: service(0.9)).error is None
    error = simloom.run(lambda: service(1.5)).error
    assert isinstance(error, MonitorViolationError)
    assert "p held at virtual time 0.500000s and q did not follow within 1s" in str(error)
    assert error.time_ns == 1_500_000_000


def test_a_raising_predicate_fails_the_universe_with_its_own_exception() -> None:
    async def main() -> None:
        items: list[int] = []
        simloom.always(lambda: items[0] > 0, name="first positive")

    # It must hold when added: the IndexError is raised right there.
    result = simloom.run(main)
    assert isinstance(result.error, IndexError)

    async def later() -> None:
        items = [1]
        simloom.always(lambda: items[0] > 0, name="first positive")
        items.clear()
        await asyncio.sleep(0)

    result = simloom.run(later)
    assert isinstance(result.error, IndexError)
    assert any(
        "raised by the predicate of monitor always 'first positive'" in n
        for n in result.error.__notes__
    )


def test_predicates_are_not_called_after_a_sleep_timer_step_and_cancel_stops_them() -> None:
    calls = [0]

    def watched() -> bool:
        calls[0] += 1
        return True

    async def main() -> None:
        monitor = simloom.always(watched)
        for _ in range(10):
            await asyncio.sleep(1)  # each: a timer step (quiet) and a task step
        monitor.cancel()
        before = calls[0]
        for _ in range(10):
            await asyncio.sleep(1)
        assert calls[0] == before

    result = simloom.run(main, scheduler="fifo")
    assert result.error is None, result.error
    assert calls[0] <= 12 < result.steps


def test_monitors_belong_to_their_universe() -> None:
    async def main() -> None:
        simloom.always(lambda: True)
        simloom.eventually(lambda: True)
        await asyncio.sleep(0)

    for seed in range(3):
        assert simloom.run(main, seed=seed).error is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: simloom.always(lambda: True), r"call it inside one"),
    ],
)
def test_outside_a_universe_is_a_named_error(call: Any, message: str) -> None:
    with pytest.raises(SimloomUsageError, match=message):
        call()


def test_bad_arguments_are_named() -> None:
    async def main(which: str) -> None:
        if which == "callable":
            simloom.always(42)  # type: ignore[arg-type]
        elif which == "within":
            simloom.eventually(lambda: True, within=-1)
        elif which == "q":
            simloom.leads_to(lambda: True, "q")  # type: ignore[arg-type]
        elif which == "name":
            simloom.always(lambda: True, name="")

    for which, message in (
        ("callable", "predicate must be a callable"),
        ("within", "within must be a number of virtual seconds"),
        ("q", "q must be a callable"),
        ("name", "name must be a non-empty str"),
    ):
        result = simloom.run(lambda w=which: main(w))
        assert isinstance(result.error, SimloomUsageError), which
        assert message in str(result.error)


def test_monitors_in_hypothesis_universes() -> None:
    @settings(max_examples=200, database=None)
    @given(simloom.universes())
    def check(universe: simloom.Universe) -> None:
        async def overdraw() -> None:
            account = Account()
            simloom.always(lambda: account.balance >= 0, name="never overdrawn")
            await asyncio.gather(account.withdraw(70), account.withdraw(70))

        universe.run(overdraw)

    with pytest.raises(MonitorViolationError, match="never overdrawn"):
        check()


def test_a_monitor_in_an_existing_test_under_pytest_simloom(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio, pytest, simloom

        @pytest.mark.asyncio
        async def test_overdraw():
            state = {"balance": 100}
            simloom.always(lambda: state["balance"] >= 0, name="never overdrawn")

            async def withdraw():
                if state["balance"] >= 70:
                    await asyncio.sleep(0)
                    state["balance"] -= 70

            await asyncio.gather(withdraw(), withdraw())
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--simloom=0")
    result.assert_outcomes(failed=1)  # reported once: not again at teardown
    result.stdout.fnmatch_lines(
        ["*MonitorViolationError: monitor always 'never overdrawn' violated*"]
    )
