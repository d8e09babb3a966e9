"""The bug zoo (``tests/zoo``): racy programs simloom must find, controls it must not fail.

* every bug and every control passes on the stock asyncio loop and under FIFO;
* every bug is found within ``ACCEPTANCE_SEEDS`` (2,000) universes by at least one of
  the schedulers, fails for the expected reason, and its failure replays -- from its
  tape (lenient and strict) and from its seed -- with an equal digest;
* every control survives ``N`` seeds of every scheduler. ``N`` is 300 in the default
  suite to keep it fast; the acceptance figure is 2,000::

      SIMLOOM_ZOO_SEEDS=2000 pytest tests/test_zoo.py

* the bugs of ``zoo.NEEDS_CANCELLATIONS`` pass ``N`` seeds of every plain scheduler
  and are found with injected cancellations (``cancellations=True``), whose controls
  survive ``N`` seeds with injection;
* PCT finds the starvation bug far more often than the uniform random walk, and
  (with eager starts) the deep-ordering bug in at least 5% of its universes.

``benchmarks/zoo_rates.py`` prints the full table of find rates per scheduler.
"""

from __future__ import annotations

import asyncio
import inspect
import os

import pytest
import simloom
import zoo

#: Seeds per scheduler for the controls (2,000 is the acceptance figure).
N = int(os.environ.get("SIMLOOM_ZOO_SEEDS", "300"))
#: Every bug must be found within this many universes.
ACCEPTANCE_SEEDS = 2000
SCHEDULERS = ("random", "pct", "pct:auto")
#: Tried in this order until one finds the bug (random finds every zoo bug; see
#: benchmarks/zoo_rates.py for which others do).
FINDERS = ("random", "pct:auto", "pct")
#: The error each bug raises when it manifests (AssertionError unless listed).
EXPECTED_ERRORS: dict[str, type[BaseException]] = {
    "lock_order_deadlock": simloom.SimDeadlockError,
    "iterate_while_mutated": RuntimeError,
}
#: Controls of the cancellation-only bugs: they must survive injected cancellations too.
CANCELLATION_CONTROLS = ("sem_async_with", "queue_requeue_safe", "cancel_safe_lock")
#: Seeds for the starvation comparison, and the factor PCT must beat random by.
STARVATION_SEEDS = 300
STARVATION_FACTOR = 5
#: Seeds for PCT on deep ordering (it must find it in at least 5% of them).
DEEP_SEEDS = 200


def test_registry() -> None:
    assert len(zoo.BUGS) >= 20
    assert len(zoo.CONTROLS) >= 18
    assert not set(zoo.BUGS) & set(zoo.CONTROLS)
    assert set(zoo.BUGS) >= zoo.NEEDS_CANCELLATIONS
    assert {"sem_cancel_leak", "queue_cancel_lost"} <= zoo.NEEDS_CANCELLATIONS
    for name, program in zoo.PROGRAMS.items():
        assert inspect.iscoroutinefunction(program), name
        assert zoo.describe(program), f"{name} has no docstring"


@pytest.mark.parametrize("name", list(zoo.PROGRAMS))
def test_passes_on_stock_loop_and_under_fifo(name: str) -> None:
    program = zoo.PROGRAMS[name]
    asyncio.run(program())  # the stock loop: an ordinary test passes
    result = simloom.run(program, scheduler="fifo")
    assert result.ok, f"{name} fails under FIFO: {result.error!r}"
    assert result.deviations == 0
    assert result.decisions > 0, f"{name} makes no decisions: there is nothing to explore"


@pytest.mark.parametrize("name", list(zoo.BUGS))
def test_bug_is_found_and_replays(name: str) -> None:
    program = zoo.BUGS[name]
    cancellations = name in zoo.NEEDS_CANCELLATIONS
    found = None
    for scheduler in FINDERS:
        found = zoo.first_failure(
            program, scheduler, range(ACCEPTANCE_SEEDS), cancellations=cancellations
        )
        if found is not None:
            break
    assert found is not None, f"no scheduler found {name} in {ACCEPTANCE_SEEDS} universes"
    expected = EXPECTED_ERRORS.get(name, AssertionError)
    assert isinstance(found.error, expected), f"{name} failed with {found.error!r}"
    assert found.deviations > 0

    by_tape = simloom.replay(program, found.tape, cancellations=cancellations)
    strict = simloom.replay(program, found.tape, strict=True, cancellations=cancellations)
    by_seed = simloom.run(
        program, seed=found.seed, scheduler=scheduler, cancellations=cancellations
    )
    for again in (by_tape, strict, by_seed):
        assert again.digest == found.digest
        assert type(again.error) is type(found.error)
        assert str(again.error) == str(found.error)
        assert not again.misaligned


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("name", list(zoo.CONTROLS))
def test_control_survives(name: str, scheduler: str) -> None:
    program = zoo.CONTROLS[name]
    for result in zoo.explore(program, scheduler, range(N)):
        assert result.ok, (
            f"control {name} failed under {scheduler} seed {result.seed}: {result.error!r}\n"
            + result.explain()
        )


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("name", sorted(zoo.NEEDS_CANCELLATIONS))
def test_cancellation_bug_passes_without_injection(name: str, scheduler: str) -> None:
    for result in zoo.explore(zoo.BUGS[name], scheduler, range(N)):
        assert result.ok, f"{name} failed under plain {scheduler} seed {result.seed}"


@pytest.mark.parametrize("name", CANCELLATION_CONTROLS)
def test_control_survives_injected_cancellations(name: str) -> None:
    for result in zoo.explore(zoo.CONTROLS[name], "random|pct:auto", range(N), cancellations=True):
        assert result.ok, (
            f"control {name} failed with injected cancellations, seed {result.seed}: "
            f"{result.error!r}\n" + result.explain()
        )


def test_pct_finds_deep_ordering_with_eager_starts() -> None:
    # Strict priorities never interleave two read-await-write tasks without a change
    # point between the read and the write (0 of 2,000 before eager starts); in the
    # eager half of PCT's universes every new task reads at once.
    seeds = range(DEEP_SEEDS)
    found = sum(not r.ok for r in zoo.explore(zoo.BUGS["deep_ordering"], "pct:auto", seeds))
    assert found >= DEEP_SEEDS // 20, found


def test_pct_finds_starvation_far_more_often_than_random() -> None:
    seeds = range(STARVATION_SEEDS)
    found = {
        scheduler: sum(not r.ok for r in zoo.explore(zoo.BUGS["starvation"], scheduler, seeds))
        for scheduler in ("random", "pct")
    }
    assert found["pct"] >= STARVATION_SEEDS // 10, found
    assert found["pct"] >= STARVATION_FACTOR * max(found["random"], 1), found
