"""The faithful scheduler: only what varies on a real asyncio loop is explored.

asyncio documents that callbacks scheduled with ``call_soon`` run in the order they
were registered, and that a future's done-callbacks run in registration order; it
leaves the order of callbacks scheduled for exactly the same time undefined. A real
loop's clock also runs while callbacks run, so an iteration can take long enough
for a timer to fall due before work that was queued earlier has finished. The
faithful scheduler explores exactly those (plus faults and user choices); the
random walk and PCT also reorder ready callbacks, which no real loop does, and a
result says so (``RunResult.reorderings``, ``explain()``).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import simloom
from simloom import SimloomUsageError
from simloom._scheduler import parse_scheduler

SEEDS = range(60)


async def call_soon_order() -> list[int]:
    loop = asyncio.get_running_loop()
    order: list[int] = []
    for i in range(6):
        loop.call_soon(order.append, i)
    await asyncio.sleep(0)
    assert order == list(range(6)), order
    return order


async def future_callback_order() -> list[str]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    order: list[str] = []
    for name in "abcde":
        future.add_done_callback(lambda _, name=name: order.append(name))
    loop.call_later(0.1, future.set_result, None)
    await future
    await asyncio.sleep(0)
    assert order == list("abcde"), order
    return order


async def timeout_race() -> str:
    """Passes whenever no iteration stalls: 30 quick steps beat a 0.25 s timeout."""

    async def work() -> str:
        for _ in range(30):
            await asyncio.sleep(0)
        return "done"

    return await asyncio.wait_for(work(), 0.25)


async def equal_deadlines() -> list[str]:
    loop = asyncio.get_running_loop()
    order: list[str] = []
    for name in ("a", "b", "c"):
        loop.call_later(1.0, order.append, name)
    loop.call_later(2.0, order.append, "later")
    await asyncio.sleep(3)
    return order


def test_faithful_keeps_call_soon_order_where_the_random_walk_breaks_it() -> None:
    for seed in SEEDS:
        result = simloom.run(call_soon_order, seed=seed, scheduler="faithful")
        assert result.error is None, (seed, result.error)
        assert result.reorderings() == []
    broken = [
        seed
        for seed in SEEDS
        if simloom.run(call_soon_order, seed=seed, scheduler="random").error is not None
    ]
    assert broken, "the random walk reorders call_soon callbacks (else this test proves nothing)"


def test_faithful_keeps_a_futures_callbacks_in_registration_order() -> None:
    for seed in SEEDS:
        result = simloom.run(future_callback_order, seed=seed, scheduler="faithful")
        assert result.error is None, (seed, result.error)


def test_a_stalled_iteration_lets_a_timeout_fire_first_and_fifo_never_does() -> None:
    assert simloom.run(timeout_race, scheduler="fifo").value == "done"
    outcomes = {seed: simloom.run(timeout_race, seed=seed, scheduler="faithful") for seed in SEEDS}
    timed_out = [seed for seed, r in outcomes.items() if isinstance(r.error, TimeoutError)]
    finished = [seed for seed, r in outcomes.items() if r.value == "done"]
    assert timed_out and finished, (timed_out, finished)
    result = outcomes[timed_out[0]]
    labels = {event.label for event in result.event_log if event.kind == "decision"}
    assert "loop.stall" in labels
    assert "sched.pick" not in labels
    assert result.reorderings() == []
    assert "reorders ready callbacks" not in result.explain()


def test_timers_due_at_one_instant_run_in_any_order_and_later_ones_stay_later() -> None:
    orders = set()
    for seed in SEEDS:
        result = simloom.run(equal_deadlines, seed=seed, scheduler="faithful")
        assert result.error is None
        assert result.value[-1] == "later"
        orders.add(tuple(result.value[:3]))
    assert len(orders) == 6  # every permutation of the three ties
    assert simloom.run(equal_deadlines, scheduler="faithful", seed=0).value is not None
    assert simloom.run(equal_deadlines, scheduler="fifo").value == ["a", "b", "c", "later"]


def test_a_faithful_tape_replays_under_the_faithful_question_model() -> None:
    result = next(
        r
        for seed in SEEDS
        if (r := simloom.run(timeout_race, seed=seed, scheduler="faithful")).error is not None
    )
    again = simloom.replay(timeout_race, result.tape, scheduler="faithful", strict=True)
    assert again.digest == result.digest
    assert isinstance(again.error, TimeoutError)
    # Under the aggressive model the same tape means other decisions.
    other = simloom.replay(timeout_race, result.tape)
    assert other.digest != result.digest


def test_explain_names_the_reordering_a_random_failure_needs() -> None:
    failing = next(
        r
        for seed in SEEDS
        if (r := simloom.run(call_soon_order, seed=seed, scheduler="random")).error is not None
    )
    reorderings = failing.reorderings()
    assert reorderings and reorderings[0].skipped >= 1
    assert reorderings[0].callback == "list.append"
    text = failing.explain()
    assert "reorders ready callbacks" in text and "infeasible on a real loop" in text
    assert "scheduler='faithful'" in text


def test_explain_says_a_random_schedule_is_feasible_when_it_reorders_nothing() -> None:
    async def one_task() -> None:
        for _ in range(3):
            await asyncio.sleep(0.1)
        simloom.draw("x", 3)

    result = next(
        r
        for seed in SEEDS
        if (r := simloom.run(one_task, seed=seed, scheduler="random")).deviations
    )
    assert result.reorderings() == []
    assert "feasible on a real loop" in result.explain()


def test_scheduler_names() -> None:
    assert parse_scheduler("faithful").max_stall_ns == 1_000_000_000
    spec = parse_scheduler("faithful:stall=0.1")
    assert spec.max_stall_ns == 100_000_000 and spec.name == "faithful:stall=0.1"
    assert parse_scheduler("faithful").reorders is False
    assert parse_scheduler("random").reorders is True
    for bad in ("faithful:stall=-1", "faithful:stall=abc", "faithful:speed=2"):
        with pytest.raises(SimloomUsageError, match=r"faithful|stall"):
            parse_scheduler(bad)


def test_a_zero_stall_bound_never_stalls() -> None:
    for seed in range(20):
        result = simloom.run(timeout_race, seed=seed, scheduler="faithful:stall=0")
        assert result.value == "done", seed


def test_simloom_test_with_the_faithful_scheduler_finds_and_shrinks_a_stall(
    tmp_path: Path,
) -> None:
    module = tmp_path / "test_stall.py"
    module.write_text(
        textwrap.dedent(
            """
            import asyncio
            import simloom

            @simloom.test(scheduler="faithful", runs=200)
            async def test_timeout_race():
                async def work():
                    for _ in range(30):
                        await asyncio.sleep(0)
                    return "done"
                assert await asyncio.wait_for(work(), 0.25) == "done"
            """
        )
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    output = first.stdout + first.stderr
    assert first.returncode == 1, output
    assert "TimeoutError" in output
    assert "loop.stall = 1" in output
    assert "sched.pick" not in output
    assert "reorders ready callbacks" not in output
    # The database replays the shrunk failure the next time.
    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert second.returncode == 1
    assert "loop.stall = 1" in second.stdout + second.stderr
