"""A replaced ``loop.time`` (``mock.patch.object(loop, "time", fake)``) drives the
timers scheduled while it is in place, as on the stock loop.

Each scenario runs on the stock loop too, and both must tell the same story: that is
what "as on the stock loop" means here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from unittest import mock

import pytest
import simloom
from simloom import SimTimeBudgetError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def spin(rounds: int = 3) -> None:
    """Let the loop iterate, each round through a zero-timeout wait (which schedules
    a timer, as the suites that fake the clock do)."""
    for _ in range(rounds):
        never = asyncio.ensure_future(asyncio.Event().wait())
        await asyncio.wait([never], timeout=0)
        never.cancel()


async def timers_follow_the_fake_clock() -> list[object]:
    loop = asyncio.get_running_loop()
    clock = FakeClock()
    story: list[object] = []
    with mock.patch.object(loop, "time", clock):
        first = loop.call_at(1.0, story.append, "at 1")
        second = loop.call_later(2.0, story.append, "later 2")
        story.append(("when", first.when(), second.when()))
        await spin()
        story.append(("before", list(story)))
        clock.now = 1.0
        await spin()
        clock.now = 5.0
        await spin()
        doomed = loop.call_later(1.0, story.append, "cancelled")
        clock.now = 7.0
        doomed.cancel()
        await spin()
    return story


async def due_then_cancelled_does_not_run() -> list[str]:
    loop = asyncio.get_running_loop()
    clock = FakeClock()
    ran: list[str] = []
    with mock.patch.object(loop, "time", clock):
        handle = loop.call_at(1.0, ran.append, "ran")
        clock.now = 2.0
        loop.call_soon(handle.cancel)  # runs before the due timer's callback
        await spin()
    return ran


async def waiting_timers_keep_their_deadlines_when_the_clock_is_restored() -> list[object]:
    loop = asyncio.get_running_loop()
    clock = FakeClock()
    clock.now = loop.time()
    fired: list[object] = []
    with mock.patch.object(loop, "time", clock):
        loop.call_later(3.0, lambda: fired.append("restored timer"))
    start = loop.time()
    await asyncio.sleep(5)
    fired.append(round(loop.time() - start) >= 3)
    return fired


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        (
            timers_follow_the_fake_clock,
            [
                ("when", 1.0, 2.0),
                ("before", [("when", 1.0, 2.0)]),
                "at 1",
                "later 2",
            ],
        ),
        (due_then_cancelled_does_not_run, []),
        (
            waiting_timers_keep_their_deadlines_when_the_clock_is_restored,
            ["restored timer", True],
        ),
    ],
)
def test_a_replaced_clock_drives_its_timers_as_on_the_stock_loop(
    program: Callable[[], Awaitable[object]], expected: object
) -> None:
    assert asyncio.run(program()) == expected  # the stock loop: the reference
    assert asyncio.run(program(), loop_factory=simloom.SimLoop) == expected
    result = simloom.run(program, scheduler="faithful", seed=3)
    assert result.error is None and result.value == expected


def test_the_replacement_goes_away_with_the_patch() -> None:
    async def main() -> tuple[bool, bool, float]:
        loop = asyncio.get_running_loop()
        with mock.patch.object(loop, "time", FakeClock()):
            patched = "call_later" in vars(loop)
        loop.x = 1  # other attributes are plain attributes
        del loop.x
        await asyncio.sleep(2)
        return patched, "call_later" in vars(loop), loop.time()

    assert asyncio.run(main(), loop_factory=simloom.SimLoop) == (True, False, 2.0)


def test_putting_the_loops_own_time_back_restores_it() -> None:
    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        own = loop.time
        loop.time = FakeClock()  # type: ignore[method-assign]
        loop.time = own  # type: ignore[method-assign]
        await asyncio.sleep(1)
        return "call_later" in vars(loop), loop.time()

    assert asyncio.run(main(), loop_factory=simloom.SimLoop) == (False, 1.0)


def test_a_fake_clock_that_never_moves_ends_in_the_time_budget_not_a_hang() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with mock.patch.object(loop, "time", FakeClock()):
            await asyncio.sleep(1)  # on the stock loop: waits forever

    started = time.perf_counter()
    result = simloom.run(main, scheduler="fifo", max_virtual_time=60)
    assert isinstance(result.error, SimTimeBudgetError)
    assert time.perf_counter() - started < 10


def test_a_replaced_clock_replays_byte_identically() -> None:
    first = simloom.run(timers_follow_the_fake_clock, scheduler="faithful", seed=11)
    second = simloom.run(timers_follow_the_fake_clock, scheduler="faithful", seed=11)
    assert first.error is None
    assert first.digest == second.digest
    assert first.event_log == second.event_log
    replayed = simloom.replay(timers_follow_the_fake_clock, first.tape, scheduler="faithful")
    assert replayed.digest == first.digest
