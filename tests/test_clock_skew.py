"""Per-host wall-clock skew: ``world.set_clock_skew(max_offset=, max_drift_ppm=)``.

Each host draws an offset and a drift from the tape (``clock.offset:<host>``,
``clock.drift:<host>``, canonical 0: no skew) and reads every wall-clock API as
``epoch + offset + now * (1 + drift)``; monotonic clocks stay the shared virtual
clock. Without bounds nothing is drawn.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

import pytest
import simloom
from hypothesis import given, settings
from simloom import RunResult, SimloomUsageError, Tape

EPOCH_NS = 1_735_689_600 * 1_000_000_000  # the default wall_clock_epoch, 2025-01-01


def clock_labels(result: RunResult) -> list[tuple[str, int]]:
    """The clock-skew decisions of a universe: (label, value)."""
    return [
        (e.label or "", e.value or 0)
        for e in result.event_log
        if e.kind == "decision" and (e.label or "").startswith("clock.")
    ]


def readings(skew: dict[str, float] | None) -> Any:
    """A program: hosts a and b each read the wall clock (three APIs) and both
    monotonic clocks at virtual t=0 and after 100 virtual seconds."""

    async def main(world: Any) -> dict[str, Any]:
        if skew is not None:
            world.set_clock_skew(**skew)
        seen: dict[str, Any] = {}

        async def read(name: str) -> None:
            loop = asyncio.get_running_loop()
            start = (time.time_ns(), time.monotonic_ns(), loop.time())
            await asyncio.sleep(100)
            seen[name] = {
                "start_ns": start[0],
                "wall_elapsed_ns": time.time_ns() - start[0],
                "monotonic_elapsed_ns": time.monotonic_ns() - start[1],
                "loop_elapsed": loop.time() - start[2],
                "apis_agree": abs(time.time() - datetime.datetime.now().timestamp()) < 1e-3,
            }

        for name in ("a", "b"):
            world.host(name).run(read(name))
        await asyncio.sleep(101)
        return seen

    return main


def test_without_bounds_every_host_reads_the_same_wall_clock_and_nothing_is_drawn() -> None:
    plain = simloom.run(readings(None), seed=3, scheduler="random")
    zero = simloom.run(readings({}), seed=3, scheduler="random")
    for result in (plain, zero):
        assert result.ok, result.error
        assert result.value["a"]["start_ns"] == result.value["b"]["start_ns"] == EPOCH_NS
        assert result.value["a"]["wall_elapsed_ns"] == 100 * 10**9
        assert clock_labels(result) == []
    assert zero.digest == plain.digest, "bounds of zero draw nothing"


def test_under_bounds_two_hosts_read_different_wall_clocks() -> None:
    result = simloom.run(
        readings({"max_offset": 5.0, "max_drift_ppm": 200}), seed=3, scheduler="random"
    )
    assert result.ok, result.error
    a, b = result.value["a"], result.value["b"]
    assert a["start_ns"] != b["start_ns"]
    assert abs(a["start_ns"] - EPOCH_NS) <= 5 * 10**9
    assert abs(b["start_ns"] - EPOCH_NS) <= 5 * 10**9
    assert a["apis_agree"] and b["apis_agree"], "time.time and datetime.now see the same skew"
    # Monotonic clocks and loop.time() are the shared virtual clock.
    for host in (a, b):
        assert host["monotonic_elapsed_ns"] == 100 * 10**9
        assert host["loop_elapsed"] == 100.0
    assert [label for label, _ in clock_labels(result)] == [
        "clock.offset:main",
        "clock.drift:main",
        "clock.offset:a",
        "clock.drift:a",
        "clock.offset:b",
        "clock.drift:b",
    ]


def test_drift_makes_elapsed_wall_time_differ_from_virtual_time() -> None:
    # Decisions: main's offset (#0) and drift (#1), then a's (#2, #3), b's (#4, #5).
    # Choice 250_000 of a bound of 2 * 1_000_000 ppb + 1 is +250 ppm for a; choice
    # 1_000_000 + 100_000 is -100 ppm for b.
    main = readings({"max_offset": 1.0, "max_drift_ppm": 1000})
    result = simloom.replay(main, Tape([(3, 250_000), (5, 1_100_000)]), strict=True)
    assert result.ok, result.error
    assert result.value["a"]["wall_elapsed_ns"] == 100 * 10**9 + 25_000_000
    assert result.value["b"]["wall_elapsed_ns"] == 100 * 10**9 - 10_000_000
    assert result.value["a"]["monotonic_elapsed_ns"] == 100 * 10**9


def test_an_offset_is_signed_and_a_restart_keeps_it() -> None:
    async def main(world: Any) -> list[int]:
        world.set_clock_skew(max_offset=1.0)
        seen: list[int] = []

        async def read() -> None:
            seen.append(time.time_ns() - EPOCH_NS - time.monotonic_ns())
            await asyncio.Event().wait()

        host = world.host("a")
        host.spawn(read)
        await asyncio.sleep(1)
        host.crash()
        await asyncio.sleep(1)
        host.restart()
        await asyncio.sleep(1)
        return seen

    # a's offset is decision #1 (main's is #0; no drift bound, no drift decision).
    ahead = simloom.replay(main, Tape([(1, 7)]), strict=True)
    behind = simloom.replay(main, Tape([(1, 1_000_000_000 + 7)]), strict=True)
    assert ahead.value == [7, 7], "the same clock after the restart"
    assert behind.value == [-7, -7]


def test_same_seed_gives_the_same_readings_and_digest() -> None:
    main = readings({"max_offset": 3.0, "max_drift_ppm": 50})
    first = simloom.run(main, seed=11, scheduler="random")
    second = simloom.run(main, seed=11, scheduler="random")
    assert first.value == second.value
    assert first.digest == second.digest
    other = simloom.run(main, seed=12, scheduler="random")
    assert other.value != first.value


def test_a_failure_that_needs_skew_shrinks_to_the_smallest_offset_that_fails() -> None:
    """b's clock must be more than half a second ahead of a's for the check to fail:
    the shrunk universe has exactly one deviation, putting b 0.5 s + 1 ns ahead of a,
    or a 0.5 s + 1 ns behind b. Both are minimal; which one the shrinker reaches
    depends on the first failure Hypothesis generates, and Hypothesis seeds its
    generation with literals from every module loaded so far, so it varies with
    the tests run before this one."""

    async def lease(world: Any) -> None:
        world.set_clock_skew(max_offset=2.0)
        stamps: dict[str, int] = {}

        async def stamp(name: str) -> None:
            stamps[name] = time.time_ns()

        for name in ("a", "b"):
            world.host(name).run(stamp(name))
        await asyncio.sleep(1)
        assert stamps["b"] - stamps["a"] <= 500_000_000, "b's lease looks expired to a"

    failures: list[tuple[RunResult, BaseException]] = []

    @settings(database=None, max_examples=300, derandomize=True)
    @given(simloom.universes())
    def test_lease(universe: Any) -> None:
        try:
            universe.run(lease)
        except AssertionError as error:
            failures.append((universe.result, error))
            raise

    with pytest.raises(AssertionError, match="lease looks expired") as info:
        test_lease()
    minimal = next(result for result, error in failures if error is info.value)
    offsets = dict(clock_labels(minimal))
    b_ahead = {"clock.offset:main": 0, "clock.offset:a": 0, "clock.offset:b": 500_000_001}
    # Offset choice v above the limit (2 s) means -(v - limit): a behind by 0.5 s + 1 ns.
    a_behind = {"clock.offset:main": 0, "clock.offset:a": 2_500_000_001, "clock.offset:b": 0}
    assert offsets in (b_ahead, a_behind), offsets
    assert len(minimal.tape.deviations) == 1, minimal.tape.deviations
    ((_, value),) = minimal.tape.deviations
    assert value in (500_000_001, 2_500_000_001)


def test_skew_needs_the_boundary() -> None:
    async def main(world: Any) -> None:
        world.set_clock_skew(max_offset=1.0)

    result = simloom.run(main, boundary=False)
    assert isinstance(result.error, SimloomUsageError)
    assert "boundary" in str(result.error)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"max_offset": -1.0}, "max_offset"),
        ({"max_offset": float("nan")}, "max_offset"),
        ({"max_offset": True}, "max_offset"),
        ({"max_offset": "1"}, "max_offset"),
        ({"max_offset": 86_401}, "max_offset"),
        ({"max_drift_ppm": -5}, "max_drift_ppm"),
        ({"max_drift_ppm": 1_000_000}, "max_drift_ppm"),
        ({"max_drift_ppm": float("inf")}, "max_drift_ppm"),
    ],
)
def test_bad_bounds_are_usage_errors_naming_the_value(
    arguments: dict[str, object], named: str
) -> None:
    async def main(world: Any) -> None:
        world.set_clock_skew(**arguments)

    result = simloom.run(main)
    assert isinstance(result.error, SimloomUsageError)
    assert named in str(result.error)
    assert repr(arguments[named]) in str(result.error)


def test_skew_is_set_once_per_universe() -> None:
    async def main(world: Any) -> None:
        world.set_clock_skew(max_offset=1.0)
        world.set_clock_skew(max_offset=2.0)

    result = simloom.run(main)
    assert isinstance(result.error, SimloomUsageError)
    assert "already" in str(result.error)
