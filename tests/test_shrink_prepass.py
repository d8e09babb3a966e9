"""The prepass: a long failing tape is cut down by plain replays before Hypothesis
shrinks it, and every cut it keeps fails the same way."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import simloom
from hypothesis import settings
from hypothesis.database import InMemoryExampleDatabase
from simloom import testing
from simloom._shrink import PREPASS_MIN_DEVIATIONS, failure_origin, prepass

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zoo.starvation import starvation


def long_failure() -> simloom.RunResult:
    """A starvation failure with hundreds of deviations (seed 0 of an eager PCT)."""
    result = simloom.run(starvation, seed=0, scheduler="pct:d=2,eager=1")
    assert result.error is not None
    assert result.deviations > 4 * PREPASS_MIN_DEVIATIONS, result.deviations
    return result


def replay(tape: simloom.Tape) -> simloom.RunResult:
    return simloom.replay(starvation, tape)


def test_a_long_tape_is_cut_to_one_that_fails_the_same_way() -> None:
    found = long_failure()
    assert found.error is not None
    cut = prepass(found.tape, found.error, replay)
    assert 0 < cut.runs <= 2000
    assert len(cut.tape) < found.deviations // 10
    again = replay(cut.tape)
    assert again.error is not None
    assert failure_origin(again.error) == failure_origin(found.error)


def test_a_short_tape_is_left_to_hypothesis() -> None:
    tape = simloom.Tape([(i, 1) for i in range(PREPASS_MIN_DEVIATIONS)])
    cut = prepass(tape, AssertionError("x"), lambda t: pytest.fail("replayed"))
    assert cut.tape is tape and cut.runs == 0


def test_the_budget_bounds_the_replays() -> None:
    found = long_failure()
    assert found.error is not None
    cut = prepass(found.tape, found.error, replay, max_runs=5)
    assert cut.runs == 5
    assert replay(cut.tape).error is not None


async def two_sites() -> None:
    """Fails at one line when the first task is starved for long, at another when
    only the second task is."""
    state = {"a": 0, "b": 0, "worst_a": 0, "worst_b": 0}

    async def runner(me: str, other: str) -> None:
        for _ in range(60):
            state[me] += 1
            state[other] = 0
            await asyncio.sleep(0)
            state["worst_" + me] = max(state["worst_" + me], state[me])

    await asyncio.gather(runner("a", "b"), runner("b", "a"))
    if state["worst_a"] >= 30:
        raise AssertionError("a ran 30 in a row")  # the origin to keep
    if state["worst_b"] >= 3:
        raise AssertionError("b ran 3 in a row")


def test_a_cut_that_fails_elsewhere_is_not_kept() -> None:
    found = None
    for seed in range(400):
        result = simloom.run(two_sites, seed=seed, scheduler="pct:d=2,eager=1")
        failed_at_a = result.error is not None and "a ran" in str(result.error)
        if failed_at_a and result.deviations > PREPASS_MIN_DEVIATIONS:
            found = result
            break
    assert found is not None and found.error is not None
    cut = prepass(found.tape, found.error, lambda t: simloom.replay(two_sites, t))
    again = simloom.replay(two_sites, cut.tape)
    assert again.error is not None
    assert "a ran 30" in str(again.error), "the prepass kept a different failure"


def test_simloom_test_reports_the_prepass_and_shrinks_to_the_minimum(tmp_path: Path) -> None:
    decorated: Any = settings(database=InMemoryExampleDatabase())(
        testing.test(runs=20, scheduler="pct:d=2,eager=1")(starvation)
    )
    previous = testing.options()
    testing.configure(testing.Options(artifact_dir=tmp_path))
    try:
        with pytest.raises(AssertionError) as caught:
            decorated()
    finally:
        testing.configure(previous)
    report = "\n".join(getattr(caught.value, "__notes__", []))
    assert "plain replays that cut the long tape first" in report, report
    # 14 worker steps in a row: the first free, then 13 deviations from FIFO.
    assert "schedule deviations 431 → 13 " in report, report
