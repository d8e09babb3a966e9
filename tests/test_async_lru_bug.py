"""The bug simloom found in async-lru 2.4.0 (docs/found-bugs.md).

``alru_cache`` runs one execution per key at a time. A stale execution (its entry
invalidated while it ran) that fails pops the key's *current* entry in its
done-callback, so the next caller starts a second execution while the current one
still runs. The property below says only "a call never starts an execution while
the key has a live, non-invalidated one"; simloom finds the counterexample by
injecting a backend failure, and the stock loop reproduces it in the order of
``examples/async_lru_stale_entry.py``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import simloom
from async_lru import alru_cache

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import contextlib

import async_lru_stale_entry

DUPLICATE = "a second execution of the key started while its current one was running"


async def readers_and_a_refresher() -> None:
    """Three readers of one cached key, a refresher that invalidates it, and a
    backend that sometimes fails a request."""
    live: list[dict[str, bool]] = []  # executions not yet finished

    @alru_cache
    async def load(key: str) -> str:
        assert not [e for e in live if not e["stale"]], DUPLICATE
        mine = {"stale": False}
        live.append(mine)
        try:
            await asyncio.sleep(0.010)  # the backend's latency
            if simloom.sometimes("backend fails", 30):
                raise ConnectionError("the backend dropped the request")
            return key.upper()
        finally:
            live.remove(mine)

    def refresh(key: str) -> None:
        for execution in live:  # the cache drops them: they run on, stale
            execution["stale"] = True
        load.cache_invalidate(key)

    async def reader(arrives: float) -> None:
        await asyncio.sleep(arrives)
        for _ in range(3):
            with contextlib.suppress(ConnectionError):
                await load("k")
            await asyncio.sleep(0.004)

    async def refresher() -> None:
        await asyncio.sleep(0.005)
        refresh("k")

    await asyncio.gather(reader(0.0), reader(0.003), reader(0.008), refresher())


def test_the_polite_schedule_without_faults_passes() -> None:
    assert simloom.run(readers_and_a_refresher, scheduler="fifo").ok


def test_simloom_finds_the_duplicate_execution_and_it_replays() -> None:
    found = None
    for seed in range(50):
        result = simloom.run(readers_and_a_refresher, seed=seed, scheduler="faithful")
        if result.error is not None:
            found = result
            break
    assert found is not None, "no universe of 50 found the bug"
    assert isinstance(found.error, AssertionError) and DUPLICATE in str(found.error)
    # The universe replays from its tape, byte for byte.
    replayed = simloom.replay(readers_and_a_refresher, found.tape, scheduler="faithful")
    assert replayed.digest == found.digest
    assert isinstance(replayed.error, AssertionError)
    # Only an injected backend failure is needed: a faithful schedule, no reordering.
    assert "sometimes:backend fails" in found.explain()


def test_the_stock_loop_reproduces_it() -> None:
    assert asyncio.run(async_lru_stale_entry.main()) == 3  # 2 if the bug were fixed


def test_the_example_shows_it_on_simloom_too() -> None:
    result = simloom.run(async_lru_stale_entry.main, scheduler="fifo")
    assert result.value == 3
