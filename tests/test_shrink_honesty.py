"""What a failure report says about shrinking is true: "shrunk" and "minimal
schedule" only when Hypothesis's shrinker ran to its end (now or in an earlier
run); "partly shrunk" or "not shrunk" otherwise, and then the next run replays the
saved failure and goes on shrinking it. Corrupt example-database entries are
discarded with a note, never left to silently stop the shrinking.

Each case runs pytest in a subprocess on a ``pytester`` directory, several times
over the same example database, as a user re-running their tests would.
"""

from __future__ import annotations

import re

import pytest
import simloom
from hypothesis import settings
from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    choices_from_bytes,
    choices_to_bytes,
)
from simloom import testing
from simloom.hypothesis import _compat, is_universe_choices

pytest_plugins = ["pytester"]

#: Fails when fault 7 fires; exploration finds it with a few other faults firing
#: too, and only a finished shrink gets it down to that one deviation. With
#: ``INTERRUPT_AFTER=n`` set, the n-th run after the first failing one raises
#: KeyboardInterrupt: a Ctrl-C in the middle of the shrink, at the same point
#: every time.
FAULTS = """
import os

import simloom

calls = {"runs": 0, "first_failure": None}


@simloom.test(runs=200)
async def test_faults():
    calls["runs"] += 1
    fired = [simloom.sometimes(f"fault{i}", 30) for i in range(8)]
    if fired[7]:
        if calls["first_failure"] is None:
            calls["first_failure"] = calls["runs"]
        interrupt_after = os.environ.get("INTERRUPT_AFTER")
        if interrupt_after and calls["runs"] - calls["first_failure"] >= int(interrupt_after):
            raise KeyboardInterrupt
        raise AssertionError(f"fault 7 fired: {fired}")
"""

#: With ``SHRINK_LIMIT=n``, Hypothesis stops shrinking after n improvements (its
#: own limit, 500, made small).
SHRINK_LIMIT = """
import os

from hypothesis.internal.conjecture import engine

if os.environ.get("SHRINK_LIMIT"):
    engine.MAX_SHRINKS = int(os.environ["SHRINK_LIMIT"])
"""

NODE = "test_faults.py::test_faults"
MINIMAL = "decision #7: sometimes:fault7 = 1 (of 2)"


def run(pytester: pytest.Pytester, *args: str) -> str:
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    return str(result.stdout.str())


def faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_faults=FAULTS)
    pytester.makeconftest(SHRINK_LIMIT)


def schedule(text: str) -> list[str]:
    return re.findall(r"decision #\d+: \S+ = \d+ \(of \d+\)", text)


def assert_minimal_and_resumed(text: str) -> None:
    assert "a failure saved in the example database, replayed" in text
    assert re.search(r"shrunk: \d+ draws → 4, .*; resumed where an earlier run stopped\)", text)
    assert "minimal schedule: FIFO everywhere except:" in text
    assert schedule(text) == [MINIMAL]


def test_a_shrink_interrupted_by_ctrl_c_resumes_next_run_and_only_then_is_called_minimal(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults(pytester)
    monkeypatch.setenv("INTERRUPT_AFTER", "3")
    interrupted = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert interrupted.ret == pytest.ExitCode.INTERRUPTED
    assert "KeyboardInterrupt" in interrupted.stdout.str()
    assert "the next run replays it first and resumes shrinking" in interrupted.stdout.str()

    monkeypatch.delenv("INTERRUPT_AFTER")
    resumed = run(pytester)
    assert_minimal_and_resumed(resumed)

    # finished now: the next run replays the minimal failure as saved
    again = run(pytester)
    assert "shrunk: in an earlier run, to 4 draws and 1 schedule deviation" in again
    assert schedule(again) == [MINIMAL]


def test_a_shrink_stopped_by_a_hypothesis_limit_is_partly_shrunk_and_resumed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults(pytester)
    monkeypatch.setenv("SHRINK_LIMIT", "1")
    limited = run(pytester)
    assert "partly shrunk (Hypothesis stopped: shrunk test case" in limited
    assert "; the next run replays it and resumes shrinking" in limited
    assert "schedule (partly shrunk): FIFO everywhere except:" in limited
    assert "minimal schedule" not in limited
    assert len(schedule(limited)) > 1
    [artifact] = (pytester.path / ".sim" / "failures").glob("*-partly-shrunk.tape.json")
    assert '"shrink": "partly"' in artifact.read_text()

    monkeypatch.delenv("SHRINK_LIMIT")
    assert_minimal_and_resumed(run(pytester))


def test_no_shrink_reports_not_shrunk_and_the_next_run_shrinks_it(
    pytester: pytest.Pytester,
) -> None:
    faults(pytester)
    unshrunk = run(pytester, "--simloom-no-shrink")
    assert (
        "not shrunk (--simloom-no-shrink); the next run replays it first and shrinks it" in unshrunk
    )
    assert "schedule (not shrunk): FIFO everywhere except:" in unshrunk
    assert "minimal schedule" not in unshrunk
    assert len(schedule(unshrunk)) > 1

    shrunk = run(pytester)
    assert "a failure saved in the example database, replayed" in shrunk
    assert "minimal schedule: FIFO everywhere except:" in shrunk
    assert schedule(shrunk) == [MINIMAL]


async def _main() -> None:
    return None


def test_corrupt_database_entries_are_discarded_with_a_note_and_the_failure_is_shrunk(
    pytester: pytest.Pytester,
) -> None:
    faults(pytester)
    database = DirectoryBasedExampleDatabase(str(pytester.path / ".hypothesis" / "examples"))
    key = testing._HypothesisRun(
        NODE, _main, settings(database=database), simloom.UniverseConfig()
    ).key
    secondary = _compat.secondary_key(key)
    for garbage in (b"\xff\xfe not choices", b"\x00\x01\x02", b"\x80 torn write"):
        database.save(secondary, garbage)
    database.save(secondary, choices_to_bytes([1.5, b"not a universe"]))
    database.save(key, choices_to_bytes(["a string"]))

    text = run(pytester)
    assert (
        "note: discarded 5 example-database entries of this test that did not decode as a universe"
    ) in text
    assert re.search(r"shrunk: \d+ draws → 4, ", text), text
    assert "minimal schedule: FIFO everywhere except:" in text
    assert schedule(text) == [MINIMAL]
    assert list(database.fetch(key)) == [choices_to_bytes([True, False, 7, 1, False])]
    for entry in database.fetch(secondary):  # what Hypothesis moved aside while shrinking
        choices = choices_from_bytes(entry)
        assert choices is not None and is_universe_choices(choices)
