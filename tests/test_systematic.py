"""Bounded systematic search (``scheduler="systematic:d=N"``, ``explore_systematic``).

The cross-checks of the issue: the count of schedules of a tiny program equals the
hand-computed count for every bound; a bug that needs d+1 deviations is reported as
not found, with the space exhausted, within d and found within d+1; a bug needing
one deviation is found by d=1. The rest pins what the result says (never more than
was proven), the cap, the parsing, and the ``@simloom.test`` hook.
"""

from __future__ import annotations

import asyncio
import contextlib
from math import comb
from typing import Any

import pytest
import simloom
from hypothesis import settings
from simloom import SimloomUsageError, SystematicResult, explore_systematic
from simloom import testing as simloom_testing

from tests.zoo import BUGS, CONTROLS, NEEDS_CANCELLATIONS
from tests.zoo.check_then_act import check_then_act, single_flight_cache
from tests.zoo.deep_ordering import deep_ordering

pytest_plugins = ["pytester"]


async def three_draws() -> None:
    """Exactly three decisions, of 3, 2 and 2 alternatives, whatever they answer."""
    simloom.draw("a", 3)
    simloom.draw("b", 2)
    simloom.draw("c", 2)


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        (0, 1),  # FIFO alone
        (1, 1 + 2 + 1 + 1),  # one deviation at a (2 ways), at b, at c
        (2, 5 + 2 * 1 + 2 * 1 + 1 * 1),  # + pairs ab, ac, bc
        (3, 10 + 2 * 1 * 1),  # + all three: 12 = 3 * 2 * 2, the whole space
        (4, 12),  # no more schedules exist
    ],
)
def test_the_count_of_schedules_is_the_hand_computed_one(bound: int, expected: int) -> None:
    result = explore_systematic(three_draws, deviations=bound)
    assert result.exhausted and result.ok
    assert result.schedules == expected
    assert result.canonical_decisions == result.min_decisions == result.max_decisions == 3
    assert "differs" not in result.proof


async def dependent_bound() -> None:
    """The second decision's bound depends on the first's answer: 0 -> 2, else 4."""
    first = simloom.draw("first", 3)
    simloom.draw("second", 2 if first == 0 else 4)


def test_children_extend_from_their_own_decisions() -> None:
    # d=1: FIFO, first=1, first=2, second=1 (under first=0): 4.
    assert explore_systematic(dependent_bound, deviations=1).schedules == 4
    # d=2: + first in {1, 2} with second in {1, 2, 3} (bound 4 there): 4 + 6.
    assert explore_systematic(dependent_bound, deviations=2).schedules == 10


def needs(k: int) -> Any:
    """A program of 8 two-way decisions that fails only when the first k all deviate."""

    async def program() -> None:
        answers = [simloom.draw(f"x{i}", 2) for i in range(8)]
        assert not all(answers[:k]), f"the {k} first decisions all deviated"

    return program


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_bug_needing_k_deviations_is_not_found_within_k_minus_1(k: int) -> None:
    within = explore_systematic(needs(k), deviations=k - 1)
    assert within.ok and within.exhausted
    # Every subset of at most k-1 of the 8 decisions: the whole bounded space.
    assert within.schedules == sum(comb(8, i) for i in range(k))
    assert within.proof.startswith(f"no failure in any schedule with at most {k - 1} deviation"), (
        within.proof
    )
    found = explore_systematic(needs(k), deviations=k)
    assert not found.ok and not found.exhausted
    assert found.failure is not None
    assert [index for index, _ in found.failure.tape.deviations] == list(range(k))
    assert isinstance(found.failure.error, AssertionError)
    # The failure's tape replays it.
    assert simloom.replay(needs(k), found.failure.tape).error is not None


def test_a_one_deviation_ordering_bug_is_found_by_d1() -> None:
    assert explore_systematic(check_then_act, deviations=0).ok
    result = explore_systematic(check_then_act, deviations=1)
    assert isinstance(result.failure and result.failure.error, AssertionError)
    assert "failure found" in result.proof


def test_the_zoo_deep_ordering_bug_needs_two_rank_deviations() -> None:
    # Its three orderings take two deviations in the rank model (one deviation can
    # delay a whole increment): exhausted and clean at d=1, found at d=2.
    within = explore_systematic(deep_ordering, deviations=1)
    assert within.ok and within.exhausted and within.schedules > 1
    assert not explore_systematic(deep_ordering, deviations=2).ok


def test_the_control_passes_and_varying_decision_counts_are_said() -> None:
    result = explore_systematic(single_flight_cache, deviations=2)
    assert result.ok and result.exhausted
    assert result.min_decisions < result.max_decisions
    assert "the number of decisions differs between schedules" in result.proof
    assert f"over the {result.canonical_decisions} decisions" in result.proof


def test_the_cap_says_the_bound_was_not_exhausted() -> None:
    # FIFO, the 8 single deviations, then 5 of the 28 pairs: capped inside size 2.
    result = explore_systematic(needs(8), deviations=3, max_schedules=14)
    assert result.ok and not result.exhausted
    assert result.schedules == 14
    assert result.by_deviations == [1, 8, 5, 0]
    assert result.clean_up_to == 1
    assert result.proof.startswith("bound not exhausted after 14 schedules"), result.proof
    assert "no failure in any schedule with at most 1 deviation from FIFO (all run)" in (
        result.proof
    )
    assert "nothing proven about the schedules with 2 to 3 deviations" in result.proof


def test_a_failure_found_has_the_fewest_deviations_within_the_bound() -> None:
    # condition_if_not_while fails with two deviations and with one; the search
    # finishes every single deviation before it tries a pair, so it reports one.
    result = explore_systematic(BUGS["condition_if_not_while"], deviations=3)
    assert result.failure is not None
    assert len(result.failure.tape.deviations) == 1
    assert "no failure in any schedule with at most 0 deviations" in result.proof
    found = explore_systematic(needs(2), deviations=3)
    assert found.failure is not None and len(found.failure.tape.deviations) == 2
    assert found.by_deviations[:2] == [1, 8] and found.clean_up_to == 1
    assert "no failure in any schedule with at most 1 deviation (9 schedules" in found.proof


def test_by_deviations_counts_each_level() -> None:
    result = explore_systematic(three_draws, deviations=3)
    assert result.by_deviations == [1, 4, 5, 2]
    assert isinstance(result, SystematicResult)
    assert str(result) == result.proof


def test_parsing_and_names() -> None:
    spec = simloom.parse_scheduler("systematic:d=3,max=50")
    assert (spec.strategy, spec.deviations, spec.max_schedules) == ("systematic", 3, 50)
    assert spec.name == "systematic:d=3,max=50"
    assert simloom.parse_scheduler("systematic").name == "systematic:d=2"
    assert "systematic:d=2" in simloom.SCHEDULERS
    for bad in ("systematic:d=-1", "systematic:d=x", "systematic:max=0", "systematic:q=1"):
        with pytest.raises(SimloomUsageError):
            simloom.parse_scheduler(bad)


def test_bad_arguments_are_named_errors() -> None:
    with pytest.raises(SimloomUsageError, match="explore_systematic"):
        simloom.run(three_draws, scheduler="systematic:d=1")
    with pytest.raises(SimloomUsageError):
        explore_systematic(three_draws, deviations=-1)
    with pytest.raises(SimloomUsageError):
        explore_systematic(three_draws, max_schedules=0)
    with pytest.raises(SimloomUsageError):
        explore_systematic(three_draws, config=simloom.UniverseConfig(), boundary=False)


def test_universe_options_apply() -> None:
    async def sleeper() -> None:
        await asyncio.sleep(10)

    result = explore_systematic(sleeper, deviations=1, max_virtual_time=1.0)
    assert isinstance(result.failure and result.failure.error, simloom.SimTimeBudgetError)


def test_the_simloom_test_decorator_states_what_was_proven() -> None:
    @settings(database=None)
    @simloom.test(scheduler="systematic:d=2")
    async def test_control() -> None:
        await single_flight_cache()

    test_control()
    stats = simloom_testing.session_stats[-1]
    assert stats.outcome == "passed"
    assert "systematic:d=2: no failure in any schedule with at most 2 deviations" in stats.note
    assert stats.universes == explore_systematic(single_flight_cache, deviations=2).schedules


def test_the_simloom_test_decorator_reports_a_found_failure(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # its artifacts

    @settings(database=None)
    @simloom.test(scheduler="systematic:d=1")
    async def test_race() -> None:
        await check_then_act()

    with pytest.raises(AssertionError) as caught:
        test_race()
    report = "\n".join(getattr(caught.value, "__notes__", []))
    assert "systematic schedule 2 (systematic:d=1)" in report, report


async def draws_around_a_race() -> None:
    """A draw of 3, a race of two tasks (ordering decisions), a draw of 2."""
    simloom.draw("before", 3)
    await check_then_act_quietly()
    simloom.draw("after", 2)


async def check_then_act_quietly() -> None:
    with contextlib.suppress(AssertionError):
        await check_then_act()


def test_p_bounds_the_deviations_that_reorder_ready_callbacks() -> None:
    # p=0: only the draws deviate: FIFO, before in {1, 2}, after, both (2 ways).
    none = explore_systematic(draws_around_a_race, deviations=2, preemptions=0)
    assert none.ok and none.exhausted
    assert none.schedules == 1 + 2 + 1 + 2
    assert "none of them reordering ready callbacks" in none.proof, none.proof
    every = explore_systematic(draws_around_a_race, deviations=2)
    assert every.schedules > none.schedules
    # The race needs one reordering: not found with p=0, found with p=1.
    assert explore_systematic(check_then_act, deviations=2, preemptions=0).ok
    assert not explore_systematic(check_then_act, deviations=2, preemptions=1).ok
    spec = simloom.parse_scheduler("systematic:d=2,p=1")
    assert (spec.preemptions, spec.name) == (1, "systematic:d=2,p=1")
    with pytest.raises(SimloomUsageError):
        simloom.parse_scheduler("systematic:p=-2")


def test_the_command_line_says_what_was_proven(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prog.py").write_text(
        "import asyncio\n"
        "async def locked():\n"
        "    lock, n = asyncio.Lock(), [0]\n"
        "    async def inc():\n"
        "        async with lock:\n"
        "            v = n[0]\n"
        "            await asyncio.sleep(0)\n"
        "            n[0] = v + 1\n"
        "    await asyncio.gather(inc(), inc())\n"
        "    assert n[0] == 2\n"
    )
    from simloom import cli

    status = cli.main(
        ["explore", "prog.py:locked", "--scheduler", "systematic:d=2", "--no-database"]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert "no failure in any schedule with at most 2 deviations from FIFO" in out, out


async def two_sleepers() -> None:
    async def sleeper() -> None:
        await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)

    tasks = [asyncio.create_task(sleeper()) for _ in range(2)]
    await asyncio.gather(*tasks, return_exceptions=True)


def _execution(result: simloom.RunResult) -> list[tuple[Any, ...]]:
    """The event log with the injection rate's answer left out."""
    return [
        (e.kind, e.label, e.bound, e.time_ns, None if e.label == "inject.rate" else e.value)
        for e in result.event_log
    ]


def test_the_injection_rate_is_never_deviated_it_changes_nothing_under_a_tape() -> None:
    canonical = simloom.replay(two_sleepers, simloom.Tape(), cancellations=True)
    decisions = [(e.label, e.bound or 0) for e in canonical.event_log if e.kind == "decision"]
    rate = [label for label, _ in decisions].index("inject.rate")
    assert decisions[rate][1] == 4
    # Why the reduction is sound: every answer of the rate runs the same schedule.
    for answer in range(1, 4):
        deviated = simloom.replay(two_sleepers, simloom.Tape([(rate, answer)]), cancellations=True)
        assert not deviated.misaligned
        assert _execution(deviated) == _execution(canonical)
    # d=1 runs FIFO plus every alternative of every other decision, none of the rate's.
    result = explore_systematic(two_sleepers, deviations=1, cancellations=True)
    assert result.ok and result.exhausted
    others = sum(bound - 1 for label, bound in decisions if label != "inject.rate")
    assert result.schedules == 1 + others


def test_check_determinism_runs_each_schedule_twice() -> None:
    result = explore_systematic(three_draws, deviations=1, check_determinism=True)
    assert result.ok and result.schedules == 5
    seen: list[int] = []

    async def nondeterministic() -> None:
        seen.append(1)
        # Asks one more decision on every other run of the same schedule.
        for _ in range(len(seen) % 2 + 1):
            simloom.draw("x", 2)

    with pytest.raises(simloom.SimloomNondeterminismError):
        explore_systematic(nondeterministic, deviations=1, check_determinism=True)


#: Bugs that need many deviations (a task kept from running for a long stretch):
#: no small bound finds them.
DEEP = {"starvation", "priority_inversion"}


@pytest.mark.parametrize("name", sorted(set(BUGS) - DEEP))
def test_every_zoo_bug_but_starvation_is_found_within_two_deviations(name: str) -> None:
    # The cancellation bugs are searched with injected cancellations (an injection
    # is one deviation like any other).
    options = {"cancellations": True} if name in NEEDS_CANCELLATIONS else {}
    found = explore_systematic(BUGS[name], deviations=2, **options)
    assert not found.ok, found.proof
    # ... and not within fewer: the bound below it is exhausted cleanly (FIFO passes).
    below = explore_systematic(
        BUGS[name], deviations=len(found.failure.tape.deviations) - 1, **options
    )
    assert below.ok and below.exhausted, below.proof


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_no_zoo_control_fails_within_two_deviations(name: str) -> None:
    result = explore_systematic(CONTROLS[name], deviations=2)
    assert result.ok and result.exhausted, result.proof


def test_universes_refuses_the_systematic_scheduler_by_name() -> None:
    with pytest.raises(SimloomUsageError, match="explore_systematic"):
        simloom.universes(scheduler="systematic:d=2")


def test_pytest_simloom_refuses_the_systematic_scheduler_by_name(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--simloom=2", "--simloom-scheduler=systematic:d=1"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "the systematic search runs @simloom.test" in result.stderr.str()
