"""The public API: ``simloom.run``, ``simloom.replay``, ``RunResult``, the in-program
choices (``sometimes``, ``draw``, ``reached``) and scheduler names.

A universe is a pure function of (program, seed, scheduler): the same inputs give the
same digest and event log, a recorded tape replays the universe exactly, and virtual
time costs no wall time.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
import simloom
from simloom import RunResult, SchedulerSpec, SimloomUsageError, Tape, parse_scheduler

# ------------------------------------------------------------------ programs


async def racy() -> list[int]:
    """Three workers append their number three times each; the order is the schedule."""
    order: list[int] = []

    async def worker(n: int) -> None:
        for _ in range(3):
            order.append(n)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(n) for n in range(3)))
    return order


async def racy_with_choices() -> list[Any]:
    """A racy program that also draws and flips coins."""
    trace: list[Any] = []

    async def worker(n: int) -> None:
        for step in range(4):
            if simloom.sometimes(f"hiccup-{n}", 30):
                await asyncio.sleep(0.001 * (1 + simloom.draw("delay", 5)))
            trace.append((n, step))
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(n) for n in range(3)))
    simloom.reached("done")
    return trace


async def single_task() -> int:
    total = 0
    for i in range(20):
        total += i
        await asyncio.sleep(0)
    await asyncio.sleep(1)
    return total


# ---------------------------------------------------------------- RunResult


def test_run_returns_a_run_result_describing_the_universe() -> None:
    result = simloom.run(racy, seed=3)
    assert isinstance(result, RunResult)
    assert result.ok
    assert result.error is None
    assert sorted(result.value) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert isinstance(result.tape, Tape)
    assert re.fullmatch(r"[0-9a-f]{64}", result.digest)
    assert result.steps > 0
    assert result.decisions > 0
    assert result.deviations == len(result.tape)
    assert result.virtual_time == 0.0
    assert result.virtual_time_ns == 0
    assert result.coverage == {}
    assert result.seed == 3
    assert result.scheduler == "random"
    assert result.misaligned is False
    events = result.event_log
    assert events and all(isinstance(e, simloom.Event) for e in events)
    assert events[-1].kind == "end"
    assert sum(e.kind == "decision" for e in events) == result.decisions
    assert sum(e.kind == "step" for e in events) == result.steps
    assert simloom.decode_events(result.event_log_bytes) == events


def test_run_captures_the_programs_exception_as_error() -> None:
    async def fails() -> None:
        await asyncio.sleep(1)
        raise LookupError("missing")

    result = simloom.run(fails, seed=0)
    assert not result.ok
    assert isinstance(result.error, LookupError)
    assert result.value is None
    assert result.virtual_time == 1
    with pytest.raises(LookupError, match="missing"):
        result.raise_error()
    assert result.event_log[-1] == simloom.Event("end", 1_000_000_000, "error:LookupError")


def test_same_seed_gives_the_same_digest_and_event_log() -> None:
    first = simloom.run(racy_with_choices, seed=42)
    second = simloom.run(racy_with_choices, seed=42)
    assert first.digest == second.digest
    assert first.event_log_bytes == second.event_log_bytes
    assert first.event_log == second.event_log
    assert first.value == second.value
    assert first.tape == second.tape
    assert first.coverage == second.coverage
    assert first.virtual_time_ns == second.virtual_time_ns


def test_different_seeds_of_a_racy_program_give_different_universes() -> None:
    digests = {simloom.run(racy, seed=seed).digest for seed in range(20)}
    values = {tuple(simloom.run(racy, seed=seed).value) for seed in range(20)}
    assert len(digests) > 1
    assert len(values) > 1


def test_digest_is_the_sha256_of_the_event_log() -> None:
    import hashlib

    result = simloom.run(racy, seed=5)
    assert result.digest == hashlib.sha256(result.event_log_bytes).hexdigest()


@pytest.mark.parametrize("scheduler", ["random", "pct", "pct:d=2,k=20", "pct:auto"])
@pytest.mark.parametrize("seed", [1, 2, 7])
def test_replay_of_the_tape_reproduces_the_universe(scheduler: str, seed: int) -> None:
    result = simloom.run(racy_with_choices, seed=seed, scheduler=scheduler)
    again = simloom.replay(racy_with_choices, result.tape)
    assert again.digest == result.digest
    assert again.value == result.value
    assert again.coverage == result.coverage
    assert again.virtual_time_ns == result.virtual_time_ns
    assert again.tape == result.tape
    assert again.misaligned is False
    strict = simloom.replay(racy_with_choices, result.tape, strict=True)
    assert strict.digest == result.digest


def test_replay_survives_a_file_round_trip(tmp_path: Any) -> None:
    result = simloom.run(racy_with_choices, seed=9, scheduler="pct")
    result.tape.dump(tmp_path / "found.cbor")
    again = simloom.replay(racy_with_choices, Tape.load(tmp_path / "found.cbor"))
    assert again.digest == result.digest


def test_lenient_replay_of_an_out_of_range_value_is_misaligned() -> None:
    tape = Tape([(0, 1000)])  # decision #0 has 3 alternatives, not 1001
    result = simloom.replay(racy, tape)
    assert result.misaligned is True
    assert result.error is None
    assert result.value == [0, 1, 2] * 3  # the canonical choice was taken instead
    assert any(e.kind == "misalign" for e in result.event_log)


def test_lenient_replay_with_deviations_left_over_is_misaligned() -> None:
    result = simloom.replay(racy, Tape([(10**6, 1)]))
    assert result.misaligned is True
    assert result.error is None


def test_strict_replay_of_an_out_of_range_value_raises_misaligned() -> None:
    with pytest.raises(simloom.TapeMisalignedError) as info:
        simloom.replay(racy, Tape([(0, 1000)]), strict=True)
    message = str(info.value)
    assert "decision #0" in message
    assert "1000" in message


def test_strict_replay_with_deviations_left_over_raises_misaligned() -> None:
    with pytest.raises(simloom.TapeMisalignedError, match="1000000"):
        simloom.replay(racy, Tape([(1_000_000, 1)]), strict=True)


def test_strict_misalignment_cannot_be_swallowed_by_the_program() -> None:
    async def catches_everything() -> str:
        try:
            simloom.draw("n", 3)  # the tape says 7: out of range
        except Exception as exc:
            return f"swallowed {type(exc).__name__}"
        return "no error"

    with pytest.raises(simloom.TapeMisalignedError):
        simloom.replay(catches_everything, Tape([(0, 7)]), strict=True)


def test_replay_needs_a_tape() -> None:
    with pytest.raises(SimloomUsageError, match="tape"):
        simloom.replay(racy, [(0, 1)])  # type: ignore[arg-type]


# --------------------------------------------------------------- decisions


def test_a_single_task_program_makes_no_decisions_even_under_random() -> None:
    for scheduler in ("random", "pct"):
        result = simloom.run(single_task, seed=123, scheduler=scheduler)
        assert result.value == sum(range(20))
        assert result.decisions == 0
        assert result.deviations == 0
        assert result.tape == Tape()
        assert result.steps > 20


def test_fifo_run_has_no_deviations_and_the_stock_loops_order() -> None:
    stock = asyncio.run(racy())
    result = simloom.run(racy, seed=99, scheduler="fifo")
    assert result.value == stock == [0, 1, 2, 0, 1, 2, 0, 1, 2]
    assert result.decisions > 0
    assert result.deviations == 0
    assert result.tape == Tape()
    assert result.scheduler == "fifo"
    assert asyncio.run(racy(), loop_factory=simloom.SimLoop) == stock


def test_fifo_does_not_depend_on_the_seed() -> None:
    digests = {simloom.run(racy, seed=seed, scheduler="fifo").digest for seed in range(5)}
    assert len(digests) == 1


def test_random_scheduler_deviates() -> None:
    result = simloom.run(racy, seed=5, scheduler="random")
    assert result.deviations > 0
    assert len(result.tape) == result.deviations


# ------------------------------------------------------------- virtual time


def test_an_hour_of_sleep_is_virtual() -> None:
    async def sleeps_an_hour() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(3600)
        return loop.time() - start

    wall = time.perf_counter()
    result = simloom.run(sleeps_an_hour, seed=0)
    assert time.perf_counter() - wall < 0.5
    assert result.value == 3600
    assert result.virtual_time == 3600
    assert result.virtual_time_ns == 3600 * 10**9


def test_virtual_time_under_asyncio_run() -> None:
    async def sleeps_a_day() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(86_400)
        return loop.time()

    wall = time.perf_counter()
    assert asyncio.run(sleeps_a_day(), loop_factory=simloom.SimLoop) == 86_400
    assert time.perf_counter() - wall < 0.5


def test_timeouts_fire_in_virtual_time() -> None:
    async def times_out() -> str:
        try:
            async with asyncio.timeout(30):
                await asyncio.sleep(3600)
        except TimeoutError:
            return f"timed out at {asyncio.get_running_loop().time()}"
        return "slept"

    result = simloom.run(times_out, seed=0)
    assert result.value == "timed out at 30.0"
    assert result.virtual_time == 30


# ------------------------------------------------------ in-program choices


def test_choices_outside_a_simulation_are_canonical() -> None:
    assert simloom.sometimes("x") is False
    assert simloom.sometimes("x", 100) is False
    assert simloom.draw("n", 10) == 0
    assert simloom.reached("r") is None


def test_choices_under_the_stock_loop_are_canonical() -> None:
    async def main() -> tuple[bool, int]:
        simloom.reached("r")
        return simloom.sometimes("x", 100), simloom.draw("n", 10)

    assert asyncio.run(main()) == (False, 0)


def test_sometimes_100_is_always_true_and_0_always_false() -> None:
    async def main() -> tuple[list[bool], list[bool]]:
        return (
            [simloom.sometimes("always", 100) for _ in range(5)],
            [simloom.sometimes("never", 0) for _ in range(5)],
        )

    for seed in range(3):
        result = simloom.run(main, seed=seed)
        assert result.value == ([True] * 5, [False] * 5)
        assert result.decisions == 0
        assert result.coverage == {"always": 5}


def test_draw_with_bound_one_is_zero_without_a_decision() -> None:
    async def main() -> list[int]:
        return [simloom.draw("only", 1) for _ in range(5)]

    result = simloom.run(main, seed=4)
    assert result.value == [0] * 5
    assert result.decisions == 0


def test_draw_stays_in_range_and_is_a_recorded_decision() -> None:
    async def main() -> list[int]:
        return [simloom.draw("die", 6) for _ in range(50)]

    result = simloom.run(main, seed=8)
    assert all(0 <= v < 6 for v in result.value)
    assert len(set(result.value)) > 1
    assert result.decisions == 50
    labels = {e.label for e in result.event_log if e.kind == "decision"}
    assert labels == {"draw:die"}
    assert simloom.replay(main, result.tape).value == result.value


def test_sometimes_is_a_labelled_decision_and_counts_trues_as_coverage() -> None:
    async def main() -> list[bool]:
        return [simloom.sometimes("flaky", 50) for _ in range(40)]

    result = simloom.run(main, seed=2)
    fired = sum(result.value)
    assert 0 < fired < 40
    assert result.coverage == {"flaky": fired}
    assert result.decisions == 40
    assert {e.label for e in result.event_log if e.kind == "decision"} == {"sometimes:flaky"}


def test_sometimes_is_false_under_fifo() -> None:
    async def main() -> list[bool]:
        return [simloom.sometimes("flaky", 99) for _ in range(10)]

    result = simloom.run(main, scheduler="fifo")
    assert result.value == [False] * 10
    assert result.coverage == {}


def test_reached_is_counted_in_coverage_and_marked_in_the_log() -> None:
    async def main() -> None:
        simloom.reached("r")
        await asyncio.sleep(1)
        simloom.reached("r")
        simloom.reached("other")

    result = simloom.run(main, seed=0)
    assert result.coverage == {"r": 2, "other": 1}
    marks = [(e.time_ns, e.label) for e in result.event_log if e.kind == "mark"]
    assert marks == [(0, "reached:r"), (10**9, "reached:r"), (10**9, "reached:other")]


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: simloom.sometimes(""), "label"),
        (lambda: simloom.sometimes(None), "label"),  # type: ignore[arg-type]
        (lambda: simloom.sometimes("x", 101), "percent"),
        (lambda: simloom.sometimes("x", -1), "percent"),
        (lambda: simloom.sometimes("x", 50.0), "percent"),  # type: ignore[arg-type]
        (lambda: simloom.sometimes("x", True), "percent"),
        (lambda: simloom.draw("", 3), "label"),
        (lambda: simloom.draw("n", 0), "bound"),
        (lambda: simloom.draw("n", -2), "bound"),
        (lambda: simloom.draw("n", 2.0), "bound"),  # type: ignore[arg-type]
        (lambda: simloom.reached(""), "label"),
    ],
    ids=[
        "sometimes-empty-label",
        "sometimes-none-label",
        "percent-101",
        "percent-negative",
        "percent-float",
        "percent-bool",
        "draw-empty-label",
        "bound-0",
        "bound-negative",
        "bound-float",
        "reached-empty-label",
    ],
)
def test_bad_choice_arguments_are_usage_errors_naming_the_argument(
    call: Any, argument: str
) -> None:
    with pytest.raises(SimloomUsageError, match=argument):
        call()

    async def inside() -> None:
        call()

    result = simloom.run(inside, seed=0)
    assert isinstance(result.error, SimloomUsageError)
    assert argument in str(result.error)


async def _fine() -> str:
    return "fine"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"scheduler": "lottery"}, "lottery"),
        ({"scheduler": "pct:d=0"}, "depth"),
        ({"scheduler": "pct:k=0"}, "horizon"),
        ({"scheduler": "pct:zz=1"}, "zz=1"),
        ({"scheduler": 3}, "scheduler"),
        ({"livelock_steps": 0}, "livelock_steps"),
    ],
    ids=[
        "seed-negative",
        "seed-too-big",
        "seed-float",
        "unknown-scheduler",
        "pct-depth-0",
        "pct-horizon-0",
        "pct-unknown-option",
        "scheduler-not-text",
        "livelock-steps-0",
    ],
)
def test_bad_run_arguments_are_usage_errors_naming_the_argument(
    kwargs: dict[str, Any], argument: str
) -> None:
    with pytest.raises(SimloomUsageError, match=re.escape(argument)):
        simloom.run(_fine, **kwargs)


def test_unknown_scheduler_error_lists_the_known_ones() -> None:
    with pytest.raises(SimloomUsageError) as info:
        simloom.run(_fine, scheduler="lottery")
    for name in simloom.SCHEDULERS:
        assert repr(name) in str(info.value)


def test_usage_errors_are_value_errors() -> None:
    assert issubclass(SimloomUsageError, ValueError)
    assert issubclass(SimloomUsageError, simloom.SimloomError)


def test_passing_a_coroutine_instead_of_the_function_is_a_usage_error() -> None:
    coroutine = _fine()
    with pytest.raises(SimloomUsageError, match=r"run\(main\)"):
        simloom.run(coroutine)  # type: ignore[arg-type]
    assert coroutine.cr_frame is None  # closed, so no "never awaited" warning
    coroutine = _fine()
    with pytest.raises(SimloomUsageError, match=r"run\(main\)"):
        simloom.replay(coroutine, Tape())  # type: ignore[arg-type]


def test_passing_a_non_callable_is_a_usage_error() -> None:
    with pytest.raises(SimloomUsageError, match="async callable"):
        simloom.run(42)  # type: ignore[arg-type]


def test_a_main_that_returns_a_non_awaitable_is_a_usage_error() -> None:
    result = simloom.run(lambda: 5)  # type: ignore[arg-type, return-value]
    assert isinstance(result.error, SimloomUsageError)
    assert "async function" in str(result.error)


# ------------------------------------------------------------- schedulers


@pytest.mark.parametrize(
    ("text", "expected", "name"),
    [
        ("fifo", SchedulerSpec("fifo"), "fifo"),
        ("random", SchedulerSpec("random"), "random"),
        ("pct", SchedulerSpec("pct", depth=3, horizon=100), "pct"),
        ("pct:auto", SchedulerSpec("pct", auto_horizon=True), "pct:auto"),
        ("pct:d=4,k=50", SchedulerSpec("pct", depth=4, horizon=50), "pct:d=4,k=50"),
        ("pct:depth=4,horizon=50", SchedulerSpec("pct", depth=4, horizon=50), "pct:d=4,k=50"),
        ("pct:d=3,k=100", SchedulerSpec("pct"), "pct"),
        ("  Random ", SchedulerSpec("random"), "random"),
        ("pct:eager=1", SchedulerSpec("pct", eager=True), "pct:d=3,k=100,eager=1"),
        ("pct:d=2,eager=0", SchedulerSpec("pct", depth=2, eager=False), "pct:d=2,k=100,eager=0"),
        (
            "pct:auto,d=5,eager=1",
            SchedulerSpec("pct", depth=5, auto_horizon=True, eager=True),
            "pct:auto,d=5,eager=1",
        ),
    ],
)
def test_parse_scheduler(text: str, expected: SchedulerSpec, name: str) -> None:
    spec = parse_scheduler(text)
    assert spec == expected
    assert spec.name == name
    assert parse_scheduler(spec) is spec


def test_every_documented_scheduler_parses() -> None:
    assert set(simloom.SCHEDULERS) == {
        "fifo",
        "random",
        "pct",
        "pct:auto",
        "faithful",
        "systematic:d=2",
    }
    for name in simloom.SCHEDULERS:
        assert parse_scheduler(name).name == name


@pytest.mark.parametrize("text", ["lottery", "fifo:x", "random:1", "pct:d=", "pct:d=x", ""])
def test_bad_scheduler_names_are_usage_errors(text: str) -> None:
    with pytest.raises(SimloomUsageError, match="scheduler"):
        parse_scheduler(text)


@pytest.mark.parametrize("value", ["", "2", "yes", "true"])
def test_pct_eager_must_be_0_or_1(value: str) -> None:
    with pytest.raises(SimloomUsageError, match="eager must be 0"):
        parse_scheduler(f"pct:eager={value}")


def test_eager_starts_says_what_a_pct_universe_did() -> None:
    drawn = {simloom.run(racy, seed=s, scheduler="pct").eager_starts for s in range(16)}
    assert drawn == {True, False}, "the seed draws it: both kinds appear"
    for seed in range(8):
        assert simloom.run(racy, seed=seed, scheduler="pct:eager=1").eager_starts is True
        assert simloom.run(racy, seed=seed, scheduler="pct:eager=0").eager_starts is False
    assert simloom.run(racy, seed=1, scheduler="random").eager_starts is None
    eager = simloom.run(racy, seed=3, scheduler="pct:eager=1")
    assert simloom.replay(racy, eager.tape).digest == eager.digest
    assert simloom.replay(racy, eager.tape).eager_starts is None


def test_an_eager_universe_runs_a_new_task_before_the_one_that_created_it() -> None:
    async def main() -> list[str]:
        order: list[str] = []

        async def child() -> None:
            order.append("child")

        task = asyncio.create_task(child())
        order.append("parent")
        await asyncio.sleep(0)
        order.append("parent again")
        await task
        return order

    def first_after_create(scheduler: str) -> set[str]:
        seen = set()
        for seed in range(20):
            result = simloom.run(main, seed=seed, scheduler=scheduler)
            assert result.error is None
            seen.add(result.value[1])
        return seen

    # An eager universe always runs the new child before the parent resumes; with
    # drawn priorities from the start, either may go first.
    assert first_after_create("pct:eager=1") == {"child"}
    assert first_after_create("pct:eager=0") == {"child", "parent again"}


def test_pct_auto_runs_and_replays() -> None:
    result = simloom.run(racy_with_choices, seed=4, scheduler="pct:auto")
    assert result.error is None
    assert result.scheduler == "pct:auto"
    assert result.decisions > 0
    assert simloom.replay(racy_with_choices, result.tape).digest == result.digest


def test_pct_auto_is_deterministic() -> None:
    digests = {simloom.run(racy, seed=6, scheduler="pct:auto").digest for _ in range(3)}
    assert len(digests) == 1


# --------------------------------------------------------------- task names


async def _names() -> list[str]:
    async def child() -> str:
        await asyncio.sleep(0)
        return asyncio.current_task().get_name()  # type: ignore[union-attr]

    first = [asyncio.create_task(child()) for _ in range(3)]
    named = asyncio.create_task(child(), name="custom")
    await asyncio.gather(*first, named)
    later = asyncio.create_task(child())
    return [
        asyncio.current_task().get_name(),  # type: ignore[union-attr]
        *[await t for t in first],
        await named,
        await later,
    ]


def test_task_names_are_deterministic_in_creation_order() -> None:
    expected = ["Task-1", "Task-2", "Task-3", "Task-4", "custom", "Task-6"]
    for seed in (0, 1, 2):
        assert simloom.run(_names, seed=seed).value == expected
    assert asyncio.run(_names(), loop_factory=simloom.SimLoop) == expected


def test_task_names_restart_in_every_universe() -> None:
    asyncio.run(_names())  # the stock loop's task counter is process-global
    first = simloom.run(_names, seed=0).value
    second = simloom.run(_names, seed=0).value
    assert first == second
    assert first[0] == "Task-1"


def test_task_names_appear_in_the_event_log() -> None:
    result = simloom.run(racy, seed=0, scheduler="fifo")
    stepped = [e.label for e in result.event_log if e.kind == "step"]
    assert stepped[:4] == ["Task-1", "Task-2", "Task-3", "Task-4"]


def test_scheduler_for_seed_names_the_default_mix_s_entry() -> None:
    from simloom.testing import DEFAULT_MIX, scheduler_for_seed

    assert len(DEFAULT_MIX) == 12
    assert [scheduler_for_seed(s) for s in range(24)] == [*DEFAULT_MIX, *DEFAULT_MIX]
    for name in DEFAULT_MIX:
        assert parse_scheduler(name).strategy in ("pct", "random")
    assert scheduler_for_seed(7, "random") == "random"
    with pytest.raises(SimloomUsageError, match="seed"):
        scheduler_for_seed(-1)
    with pytest.raises(SimloomUsageError, match="lottery"):
        scheduler_for_seed(0, "lottery")
    # a seed's universe re-runs under its name exactly as exploration ran it
    first = simloom.run(racy, seed=4, scheduler=scheduler_for_seed(4))
    assert first.eager_starts is False
    assert simloom.run(racy, seed=4, scheduler=scheduler_for_seed(4)).digest == first.digest
