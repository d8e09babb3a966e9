"""The order service of ``examples/orders_service.py`` (aiohttp front end, Postgres
and Redis stand-ins, unmodified asyncpg, redis.asyncio and httpx): the planted
bug, a cache write before the database commit, shows only when the database
crashes between the two; ``@simloom.test`` finds it, shrinks it and says what
happened, and the correct order of the two survives."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import simloom
from hypothesis import settings
from hypothesis.database import InMemoryExampleDatabase
from simloom import testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import orders_service


@pytest.fixture(autouse=True)
def artifacts_in_tmp(tmp_path: Path) -> Iterator[None]:
    previous = testing._options
    testing.configure(testing.Options(artifact_dir=tmp_path / "failures"))
    yield
    testing.configure(previous)


def test_the_cache_written_before_the_commit_shows_a_phantom_order_after_a_crash() -> None:
    hunt = settings(database=InMemoryExampleDatabase())(
        simloom.test(runs=20, scheduler="fifo")(orders_service.scenario(cache_first=True))
    )
    with pytest.raises(AssertionError, match="shown but the database never committed it") as caught:
        hunt()
    report = "\n".join(getattr(caught.value, "__notes__", []))
    assert "simloom found" in report
    # No reordering is needed: the crash at the drawn moment is the whole story.
    assert "minimal schedule: FIFO everywhere" in report


def test_committing_before_caching_survives_the_crash() -> None:
    for seed in range(8):
        result = simloom.run(orders_service.scenario(cache_first=False), seed=seed)
        result.raise_error()
