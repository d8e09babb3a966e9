"""bpo-42130 (examples/bpo42130.py): simloom finds the pre-3.12 ``wait_for`` swallowing a
cancellation, replays it, and the running Python's ``asyncio.wait_for`` survives the
same universes."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import simloom

SEEDS = 2000
SCHEDULERS = ("random", "pct")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "bpo42130.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bpo42130", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bpo42130"] = module  # dataclasses/pickling look modules up by name
    spec.loader.exec_module(module)
    return module


bpo42130 = _load()


def test_both_pass_on_the_stock_loop_and_under_fifo() -> None:
    assert asyncio.run(bpo42130.main_legacy()) == "cancelled"
    assert asyncio.run(bpo42130.main_stdlib()) == "cancelled"
    for main in (bpo42130.main_legacy, bpo42130.main_stdlib):
        result = simloom.run(main, scheduler="fifo")
        assert result.ok, result.error
        assert result.value == "cancelled"


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_exploration_finds_the_legacy_bug_and_replays_it(scheduler: str) -> None:
    found = bpo42130.explore(bpo42130.main_legacy, scheduler, SEEDS)
    assert found is not None, f"{scheduler}: no failure in {SEEDS} universes"
    assert isinstance(found.error, AssertionError)
    assert "cancellation swallowed" in str(found.error)
    assert found.deviations > 0

    by_seed = simloom.run(bpo42130.main_legacy, seed=found.seed, scheduler=scheduler)
    by_tape = simloom.replay(bpo42130.main_legacy, found.tape)
    strict = simloom.replay(bpo42130.main_legacy, found.tape, strict=True)
    for again in (by_seed, by_tape, strict):
        assert again.digest == found.digest
        assert str(again.error) == str(found.error)
        assert not again.misaligned


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_stdlib_wait_for_survives_the_same_seeds(scheduler: str) -> None:
    outcomes = set()
    for seed in range(SEEDS):
        result = simloom.run(bpo42130.main_stdlib, seed=seed, scheduler=scheduler)
        assert result.ok, f"seed {seed}: {result.error!r}\n{result.explain()}"
        outcomes.add(result.value)
        if seed % 100 == 99:
            gc.collect()
    assert "cancelled" in outcomes


def test_the_legacy_schedule_is_exactly_the_bpo42130_race() -> None:
    """In the failing universe the response is decoded after the cancellation was
    delivered and before the request resumed: replaying the same tape against the
    fixed wait_for does not fail."""
    found = bpo42130.explore(bpo42130.main_legacy, "random", SEEDS)
    assert found is not None
    fixed = simloom.replay(bpo42130.main_stdlib, found.tape)
    assert fixed.ok, fixed.error
