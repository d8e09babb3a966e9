"""The replicated key-value example: its stale read is invisible to every single
reply and found only by the linearizability check of the clients' history, shrunk,
replayed, saved with the history as an artifact; the store that reads from its
primary survives."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import simloom
from hypothesis import settings
from hypothesis.database import InMemoryExampleDatabase
from simloom import NotLinearizableError, testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import replicated_kv


@pytest.fixture(autouse=True)
def artifacts_in_tmp(tmp_path: Path) -> Iterator[Path]:
    previous = testing.options()
    testing.configure(testing.Options(artifact_dir=tmp_path / "failures"))
    yield tmp_path / "failures"
    testing.configure(previous)


def explored(program: object, runs: int) -> object:
    test = simloom.test(runs=runs)(program)
    return settings(database=InMemoryExampleDatabase())(test)


def test_reads_from_backups_are_caught_by_the_history_alone(artifacts_in_tmp: Path) -> None:
    async def test_reads_any(world: simloom.World) -> None:
        await replicated_kv.buggy(world)

    with pytest.raises(NotLinearizableError) as raised:
        explored(test_reads_any, runs=300)()  # type: ignore[operator]
    failure = raised.value
    text = str(failure)
    # The counterexample: a put and two gets on one key, the later get stale.
    assert "cannot be placed" in text
    example = failure.result.counterexample
    assert len(example) == 3 and {op.function for op in example} == {"put", "get"}
    assert len({op.key for op in example}) == 1
    stale = failure.result.unplaceable
    assert stale.function == "get" and stale in example
    # Every operation completed and every reply was plausible: only the history's
    # order gives it away.
    history = failure.result.history
    assert all(op.status == "ok" for op in history.operations)
    # The report's artifacts include the whole history, as JSON.
    report = next(n for n in failure.__notes__ if "simloom found" in n)
    path = Path(re.search(r"(\S+\.history\.json)", report)[1])  # type: ignore[index]
    saved = json.loads(path.read_text())
    assert saved["name"] == history.name
    assert len(saved["operations"]) == len(history) == 12
    # The minimal universe replays to the same failure, byte for byte.
    tape_path = Path(re.search(r"artifacts: (\S+?\.tape\.json)", report)[1])  # type: ignore[index]
    tape = simloom.Tape.load(tape_path)
    first = simloom.replay(replicated_kv.buggy, tape)
    second = simloom.replay(replicated_kv.buggy, tape)
    assert isinstance(first.error, NotLinearizableError)
    assert first.digest == second.digest


def test_reads_from_the_primary_survive() -> None:
    async def test_reads_primary(world: simloom.World) -> None:
        await replicated_kv.correct(world)

    explored(test_reads_primary, runs=300)()  # type: ignore[operator]


def test_any_failing_universe_keeps_the_histories_it_recorded(artifacts_in_tmp: Path) -> None:
    async def test_two_histories_then_a_crash() -> None:
        first, second = simloom.History("first"), simloom.History("second")
        first.ok(first.invoke(1, "write", 1))
        second.ok(second.invoke(2, "read"), None)
        raise RuntimeError("not a check failing: the histories are kept anyway")

    with pytest.raises(RuntimeError):
        explored(test_two_histories_then_a_crash, runs=5)()  # type: ignore[operator]
    (one,) = artifacts_in_tmp.glob("*.history.json")
    (two,) = artifacts_in_tmp.glob("*.history-2.json")
    assert [json.loads(p.read_text())["name"] for p in (one, two)] == ["first", "second"]
