"""``simloom soak``: every seed of the budget runs exactly once (counted from the
ledger, also when a worker dies), checkpoints resume where a run stopped, the PCT
guarantee line, and a failure found by a soak replays first in the next pytest run."""

from __future__ import annotations

import json
import re
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import simloom
from simloom import _soak, cli
from simloom.errors import SimloomUsageError

pytest_plugins = ["pytester"]

PROGRAMS = """
import asyncio
import os

import simloom


async def passing():
    async def worker(n):
        for _ in range(n):
            await asyncio.sleep(0)
    await asyncio.gather(worker(2), worker(3), worker(1))


async def lost_update():
    state = {"n": 0}

    async def increment():
        seen = state["n"]
        await asyncio.sleep(0)
        state["n"] = seen + 1

    await asyncio.gather(increment(), increment())
    assert state["n"] == 2, f"lost update: {state['n']}"


# Its marker is on the real disk, shared by the workers (files=False).
@simloom.test(files=False)
async def kills_its_worker_once():
    # The first universe run after the marker is gone kills its process.
    marker = os.environ["SOAK_KILL_MARKER"]
    if not os.path.exists(marker):
        with open(marker, "w") as handle:
            handle.write("killed")
        os._exit(7)
    await passing()
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "programs.py").write_text(PROGRAMS, encoding="utf-8")
    return tmp_path


#: The programs above decorated with @simloom.test.
DECORATED = {"kills_its_worker_once"}


def plan(tmp_path: Path, name: str, **options: object) -> _soak.SoakPlan:
    # An @simloom.test program is named FILE.py::TEST (it brings its own options).
    separator = "::" if name in DECORATED else ":"
    target = f"{tmp_path / 'programs.py'}{separator}{name}"
    fields: dict[str, object] = {"checkpoint": tmp_path / "soak.checkpoint.json", "chunk": 10}
    fields.update(options)
    return _soak.SoakPlan(target=target, test_id=f"programs.py:{name}", **fields)  # type: ignore[arg-type]


def non_eager_pct_seeds(universes: int) -> list[int]:
    """The seeds below ``universes`` that the default mix runs under PCT without
    eager starts (the only ones PCT's guarantee counts)."""
    return [
        seed
        for seed in range(universes)
        if simloom.parse_scheduler(simloom.testing.scheduler_for_seed(seed)).eager is False
    ]


def seed_counts(result: _soak.SoakResult) -> Counter[int]:
    """How many times each seed ran, from the chunks the workers sent back."""
    counts: Counter[int] = Counter()
    for chunk in result.chunks:
        assert chunk.seeds == chunk.stop - chunk.start
        counts.update(range(chunk.start, chunk.stop))
    return counts


# ------------------------------------------------------------------ the ledger


def test_ledger_merges_adjacent_ranges_and_lists_the_holes() -> None:
    ledger = _soak.Ledger()
    ledger.record(10, 20)
    ledger.record(0, 10)
    ledger.record(30, 40)
    assert ledger.intervals() == [(0, 20), (30, 40)]
    assert ledger.count() == 30
    assert ledger.missing(50) == [(20, 30), (40, 50)]
    assert 19 in ledger and 20 not in ledger


@pytest.mark.parametrize("start, stop", [(5, 15), (15, 25), (0, 100), (19, 21)])
def test_ledger_refuses_a_seed_twice(start: int, stop: int) -> None:
    ledger = _soak.Ledger([(10, 20)])
    with pytest.raises(SimloomUsageError, match="overlap seeds already run"):
        ledger.record(start, stop)


@pytest.mark.parametrize(
    "text, seconds", [("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("1h30m", 5400.0), ("0.5s", 0.5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert _soak.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten minutes", "10x", "0s", "5m3"])
def test_bad_durations_are_named(text: str) -> None:
    with pytest.raises(SimloomUsageError, match="time must be"):
        _soak.parse_duration(text)


def test_pct_guarantee_is_the_papers_bound() -> None:
    line = _soak.pct_guarantee(100, 4, 10, depth=3)
    assert line is not None
    # depth 1: p = 1/4; depth 2: p = 1/(4*10); depth 3: p = 1/(4*100).
    assert f"missed with probability <= {(1 - 1 / 4) ** 100:.3g}" in line
    assert (
        f"p >= {1 / 40:.3g} per universe, missed with probability <= {(1 - 1 / 40) ** 100:.3g}"
        in line
    )
    assert f"p >= {1 / 400:.3g}" in line
    assert _soak.pct_guarantee(0, 4, 10) is None
    assert "depth 2" not in (_soak.pct_guarantee(10, 4, 10, depth=1) or "")


# ------------------------------------------------------------------ running


def test_every_seed_runs_exactly_once_in_this_process(tmp_path: Path) -> None:
    result = _soak.soak(plan(tmp_path, "passing", universes=95))
    counts = seed_counts(result)
    assert sorted(counts) == list(range(95)) and set(counts.values()) == {1}
    assert result.ledger.intervals() == [(0, 95)]
    assert [chunk.stop - chunk.start for chunk in result.chunks][-1] == 5  # the budget's end
    assert result.universes == 95 and not result.failures
    # mixed: the guarantee counts only the PCT universes without eager starts.
    # (and of those, only the ones whose decisions stayed within their horizon).
    assert 1 <= result.pct_universes <= len(non_eager_pct_seeds(95)) == 8
    assert result.max_owners >= 4 and result.max_steps > 0


def test_two_worker_processes_run_every_seed_exactly_once(tmp_path: Path) -> None:
    result = _soak.soak(plan(tmp_path, "passing", universes=200, workers=2))
    counts = seed_counts(result)
    assert sorted(counts) == list(range(200)) and set(counts.values()) == {1}
    assert len({chunk.worker for chunk in result.chunks}) >= 1
    assert all(
        chunk.worker != f"{__import__('os').uname().nodename}:{__import__('os').getpid()}"
        for chunk in result.chunks
    )


def test_a_chunk_whose_worker_died_is_run_again_and_no_seed_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "killed"
    monkeypatch.setenv("SOAK_KILL_MARKER", str(marker))
    result = _soak.soak(plan(tmp_path, "kills_its_worker_once", universes=120, workers=2))
    assert marker.read_text() == "killed"  # a worker did die
    assert result.retried >= 1
    assert any(chunk.attempt > 1 for chunk in result.chunks)
    counts = seed_counts(result)
    assert sorted(counts) == list(range(120)) and set(counts.values()) == {1}


def test_progress_is_told_after_each_chunk(tmp_path: Path) -> None:
    told: list[_soak.SoakProgress] = []
    _soak.soak(plan(tmp_path, "passing", universes=35), progress=told.append)
    assert [p.universes for p in told] == [10, 20, 30, 35]
    assert all(p.total == 35 and p.failures == 0 for p in told)


def test_a_time_budget_stops_handing_out_seeds(tmp_path: Path) -> None:
    result = _soak.soak(plan(tmp_path, "passing", seconds=0.2))
    assert result.universes > 0
    assert result.ledger.intervals() == [(0, result.universes)]


# ------------------------------------------------------------------ checkpoints


def test_a_resumed_soak_runs_only_what_is_missing(tmp_path: Path) -> None:
    first = _soak.soak(plan(tmp_path, "passing", universes=40))
    assert first.ledger.intervals() == [(0, 40)]
    checkpoint = tmp_path / "soak.checkpoint.json"
    document = json.loads(checkpoint.read_text())
    assert document["seeds_run"] == [[0, 40]] and document["universes"] == 40
    # As if the run had stopped with seeds 10..19 out with a worker.
    document["seeds_run"] = [[0, 10], [20, 40]]
    document["universes"] = 30
    checkpoint.write_text(json.dumps(document))

    second = _soak.soak(plan(tmp_path, "passing", universes=70, resume=True))
    ran_now = seed_counts(second)
    assert sorted(ran_now) == [*range(10, 20), *range(40, 70)]
    assert set(ran_now.values()) == {1}
    assert second.ledger.intervals() == [(0, 70)]
    assert second.resumed_from == 30 and second.universes == 70
    assert json.loads(checkpoint.read_text())["seeds_run"] == [[0, 70]]


def test_resuming_with_a_smaller_budget_runs_no_seed_beyond_it(tmp_path: Path) -> None:
    _soak.soak(plan(tmp_path, "passing", universes=40))
    checkpoint = tmp_path / "soak.checkpoint.json"
    document = json.loads(checkpoint.read_text())
    document["seeds_run"], document["universes"] = [[0, 10], [30, 40]], 20
    checkpoint.write_text(json.dumps(document))
    resumed = _soak.soak(plan(tmp_path, "passing", universes=20, resume=True))
    assert sorted(seed_counts(resumed)) == list(range(10, 20))


def test_resuming_another_targets_checkpoint_is_refused(tmp_path: Path) -> None:
    _soak.soak(plan(tmp_path, "passing", universes=10))
    with pytest.raises(SimloomUsageError, match="resume with the same target"):
        _soak.soak(plan(tmp_path, "lost_update", universes=20, resume=True))


@pytest.mark.parametrize(
    "content, message",
    [
        ("{", "cannot be read"),
        ('{"format": "other"}', "not a simloom soak checkpoint"),
        ('{"format": "simloom-soak-checkpoint", "version": 99}', "version 99"),
        ('{"format": "simloom-soak-checkpoint", "version": 1}', "corrupt"),
    ],
)
def test_a_bad_checkpoint_is_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "soak.checkpoint.json").write_text(content)
    with pytest.raises(SimloomUsageError, match=message):
        _soak.soak(plan(tmp_path, "passing", universes=10, resume=True))


def test_no_checkpoint_to_resume_is_named(tmp_path: Path) -> None:
    with pytest.raises(SimloomUsageError, match="no checkpoint to resume from"):
        _soak.soak(plan(tmp_path, "passing", universes=10, resume=True))


# ------------------------------------------------------------------ the command line


def test_soak_command_prints_the_pct_guarantee(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = cli.main(["soak", "programs.py:passing", "--universes", "60", "--chunk", "7"])
    out = capsys.readouterr().out
    assert status == cli.OK, out
    assert "soak of programs.py:passing: 60 universe(s) (seeds 0..59) in this process" in out
    counted = re.search(r"PCT guarantee after (\d+) passing PCT universe\(s\)", out)
    assert counted is not None, out
    assert 1 <= int(counted.group(1)) <= len(non_eager_pct_seeds(60)) == 5
    assert "a bug of depth 1: p >= " in out and "depth 3:" in out
    assert (tmp_path / ".sim" / "soak" / "programs.py_passing.checkpoint.json").is_file()


def test_soak_command_exits_1_on_a_failure_and_names_the_seed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = cli.main(
        ["soak", "programs.py:lost_update", "--universes", "100", "--database", "none"]
    )
    out = capsys.readouterr().out
    assert status == cli.FAILED
    assert "failed: AssertionError: lost update: 1" in out
    assert "simloom explore programs.py:lost_update --seed" in out
    assert "PCT guarantee" not in out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["programs.py:passing"], "give a budget"),
        (["programs.py:passing", "--time", "soon"], "--time: time must be"),
        (["programs.py:nothing", "--universes", "5"], "has no 'nothing'"),
        (["programs.py:passing", "--universes", "0"], "must be >= 1"),
    ],
)
def test_soak_command_bad_input_is_one_line(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["soak", *arguments]) == cli.USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# ------------------------------------------------------------------ the example database

TEST_FILE = """
import asyncio
import simloom


@simloom.test(runs=20, scheduler="fifo")
async def test_first_come_first_served():
    order = []

    async def arrive(name):
        order.append(name)

    await asyncio.gather(arrive("first"), arrive("second"))
    assert order == ["first", "second"], f"served out of order: {order}"
"""


def test_a_soak_failure_replays_first_in_the_next_pytest_run(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    # FIFO never loses the update, so pytest's own exploration passes ...
    pytester.path.joinpath("test_lost.py").write_text(textwrap.dedent(TEST_FILE))
    passing = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "simloom")
    assert passing.ret == 0, passing.stdout.str()
    # ... while a soak with the random scheduler finds it and saves it under the
    # test's key in the database that pytest run uses (.hypothesis/examples there;
    # named, as this process's default database was fixed when it started).
    status = cli.main(
        [
            "soak",
            "test_lost.py::test_first_come_first_served",
            "--universes",
            "50",
            "--scheduler",
            "random",
            "--database",
            str(pytester.path / ".hypothesis" / "examples"),
        ]
    )
    out = capsys.readouterr().out
    assert status == cli.FAILED, out
    assert "saved in the example database" in out
    replayed = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "simloom")
    text = replayed.stdout.str()
    assert replayed.ret == 1, text
    assert "a failure saved in the example database, replayed" in text
    assert "served out of order: ['second', 'first']" in text


def test_a_chunk_that_kills_every_worker_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every universe kills its worker process.
    (tmp_path / "always.py").write_text(
        "import os\n\nasync def main():\n    os._exit(9)\n", encoding="utf-8"
    )
    doomed = _soak.SoakPlan(
        target=f"{tmp_path / 'always.py'}:main",
        test_id="always.py:main",
        universes=4,
        workers=2,
        chunk=2,
        checkpoint=tmp_path / "soak.checkpoint.json",
    )
    with pytest.raises(SimloomUsageError, match=r"killed their worker 4 times; run one alone"):
        _soak.soak(doomed)
    # What ran is still in the checkpoint: nothing.
    assert json.loads((tmp_path / "soak.checkpoint.json").read_text())["seeds_run"] == []
