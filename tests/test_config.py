"""One universe configuration (``simloom.UniverseConfig``): validated once when made,
taken by every entry point (``run``, ``replay``, ``SimLoop``, ``@simloom.test``,
``universes()``) in place of their individual options."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import simloom
from hypothesis import given, settings
from simloom.hypothesis import Universe, universes

TIGHT = simloom.UniverseConfig(max_steps=50, boundary=False)


async def spin() -> None:
    for _ in range(1000):
        await asyncio.sleep(0)


def test_a_config_is_validated_when_made_naming_the_argument() -> None:
    with pytest.raises(simloom.SimloomUsageError, match="max_steps"):
        simloom.UniverseConfig(max_steps=0)
    with pytest.raises(simloom.SimloomUsageError, match="livelock_steps"):
        simloom.UniverseConfig(livelock_steps=True)
    with pytest.raises(simloom.SimloomUsageError, match="boundary"):
        simloom.UniverseConfig(boundary="yes")  # type: ignore[arg-type]
    with pytest.raises(simloom.SimloomUsageError, match="world"):
        simloom.UniverseConfig(world=1)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        TIGHT.max_steps = 10  # type: ignore[misc]


def test_run_replay_and_simloop_take_a_config() -> None:
    result = simloom.run(spin, config=TIGHT)
    assert isinstance(result.error, simloom.SimStepBudgetError)
    replayed = simloom.replay(spin, result.tape, config=TIGHT)
    assert isinstance(replayed.error, simloom.SimStepBudgetError)
    assert replayed.digest == result.digest
    with pytest.raises(simloom.SimStepBudgetError):
        asyncio.run(spin(), loop_factory=lambda: simloom.SimLoop(config=TIGHT))


def test_a_config_and_an_option_it_covers_are_refused_together() -> None:
    with pytest.raises(simloom.SimloomUsageError, match="either config= or max_steps="):
        simloom.run(spin, config=TIGHT, max_steps=10)
    with pytest.raises(simloom.SimloomUsageError, match="either config= or world="):
        simloom.SimLoop(config=TIGHT, world=False)
    with pytest.raises(simloom.SimloomUsageError, match="UniverseConfig"):
        simloom.run(spin, config={"max_steps": 10})  # type: ignore[arg-type]


@settings(max_examples=3, database=None)
@given(universes(config=TIGHT))
def test_universes_take_a_config(universe: Universe) -> None:
    result = universe.run_result(spin)
    assert isinstance(result.error, simloom.SimStepBudgetError)


def test_simloom_test_takes_a_config() -> None:
    @simloom.test(runs=2, scheduler="fifo", config=TIGHT)
    async def budgeted() -> None:
        await spin()

    with pytest.raises(simloom.SimStepBudgetError):
        budgeted()
