"""The zoo through ``@simloom.test`` with its default configuration.

The acceptance of the exploration decorator: every zoo bug is found within 2,000
universes by the default configuration (scheduler ``mixed``), its minimal universe
is small (a shallow race shrinks to at most 2 deviations, deep ordering to at most
3), and the controls survive the default exploration. The bugs of
``zoo.NEEDS_CANCELLATIONS`` are explored with ``cancellations=True``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import simloom
import zoo
from hypothesis import settings
from hypothesis.database import InMemoryExampleDatabase
from simloom import testing

RUNS = 2000
#: Bugs whose minimal schedule is inherently long: starving a task means running
#: another one many steps in a row, one deviation per step.
#: Priority inversion likewise: the busy task runs BUDGET steps while the holder waits.
LONG_SCHEDULES = {"starvation", "priority_inversion"}
#: Bugs that need three deviations: three independent races (deep ordering); the
#: query running ahead of the generator's closing task at each of its awaits and of
#: the finalizer's create_task callback (async generator cleanup).
DEEP = {"deep_ordering", "asyncgen_cleanup_race"}
EXPECTED_ERRORS: dict[str, type[BaseException]] = {
    "lock_order_deadlock": simloom.SimDeadlockError,
    "iterate_while_mutated": RuntimeError,
}


@pytest.fixture(autouse=True)
def artifacts_in_tmp(tmp_path: Path) -> Iterator[None]:
    previous = testing._options
    testing.configure(testing.Options(artifact_dir=tmp_path / "failures"))
    yield
    testing.configure(previous)


def explored(program: zoo.Program, *, cancellations: bool = False) -> testing.Any:
    async def body() -> None:
        await program()

    decorated = simloom.test(runs=RUNS, cancellations=cancellations)(body)
    return settings(database=InMemoryExampleDatabase())(decorated)


def report_of(error: BaseException) -> str:
    notes = [n for n in getattr(error, "__notes__", []) if "simloom found" in n]
    assert notes, f"no simloom report on {error!r}"
    return notes[-1]


@pytest.mark.parametrize("name", list(zoo.BUGS))
def test_the_default_exploration_finds_and_shrinks_every_zoo_bug(name: str) -> None:
    expected = EXPECTED_ERRORS.get(name, AssertionError)
    with pytest.raises(expected) as caught:
        explored(zoo.BUGS[name], cancellations=name in zoo.NEEDS_CANCELLATIONS)()
    report = report_of(caught.value)
    found_at = int(re.search(rf"universe (\d+) of {RUNS}", report)[1])  # type: ignore[index]
    assert found_at <= RUNS
    before, after = map(int, re.search(r"schedule deviations (\d+) → (\d+)", report).groups())  # type: ignore[union-attr]
    assert after <= before
    if name in LONG_SCHEDULES:
        return
    limit = 3 if name in DEEP else 2
    assert after <= limit, f"{name}: minimal schedule has {after} deviations\n{report}"
    # The minimal universe is replayable from its artifact and fails the same way.
    tape_path = Path(re.search(r"artifacts: (\S+?),", report)[1])  # type: ignore[index]
    replayed = simloom.replay(
        zoo.BUGS[name],
        simloom.Tape.load(tape_path),
        strict=True,
        cancellations=name in zoo.NEEDS_CANCELLATIONS,
    )
    assert isinstance(replayed.error, expected)
    assert replayed.deviations == after


@pytest.mark.parametrize("name", list(zoo.CONTROLS))
def test_the_default_exploration_passes_every_control(name: str) -> None:
    explored(zoo.CONTROLS[name])()
    assert testing.session_stats[-1].universes == RUNS
    assert testing.session_stats[-1].outcome == "passed"
