"""The ``simloom`` command line: each subcommand, and each kind of bad input as a
one-line error with exit status 2 (never a traceback)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from simloom import cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BANK = f"{EXAMPLES / 'bank_race.py'}:main"

PASSING = """
import asyncio

async def main():
    await asyncio.gather(asyncio.sleep(0), asyncio.sleep(0.1))

def not_async():
    pass
"""


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Artifacts and Hypothesis's database land in the test's own directory.
    monkeypatch.chdir(tmp_path)
    return tmp_path


def simloom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simloom", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def tape_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.tape.json"))


def explore_bank(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> tuple[str, Path]:
    status, out, _ = run(
        capsys, "explore", BANK, "--runs", "200", "--artifacts", "failures", "--no-database"
    )
    assert status == cli.FAILED
    (tape,) = tape_files(Path("failures"))  # (relative: as the report spells it)
    return out, tape


# ------------------------------------------------------------------- explore


def test_explore_finds_the_race_shrinks_it_and_says_how_to_replay(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out, tape = explore_bank(capsys, tmp_path)
    # The program's own traceback, from its own line, without simloom's frames.
    assert 'bank_race.py", line 47, in main' in out
    assert "/simloom/" not in out.split("simloom found a failing universe")[0]
    assert "AssertionError: overdrawn: balance is -40" in out
    assert "shrunk:" in out and "minimal schedule: FIFO everywhere except:" in out
    assert f"re-run: simloom explore {BANK} --seed=" in out
    assert f"replay it: simloom replay {tape}" in out


def test_explore_a_passing_function(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "calm.py").write_text(PASSING)
    status, out, _ = run(capsys, "explore", "calm:main", "--runs", "25")
    assert status == cli.OK
    assert "calm:main: passed in 25 universe(s)" in out


def test_explore_one_seed(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "explore", BANK, "--seed", "0")
    assert status == cli.OK  # universe 0 of the bank race passes
    assert "passed in 1 universe(s)" in out


# ------------------------------------------------------------------- replay


def test_replay_reproduces_an_explored_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, tape = explore_bank(capsys, tmp_path)
    status, out, _ = run(capsys, "replay", str(tape))
    assert status == cli.FAILED
    assert "AssertionError: overdrawn: balance is -40" in out
    digest = json.loads(tape.read_text())["digest"]
    (replayed,) = [p for p in tape_files(Path(".sim") / "failures") if "-replay" in p.name]
    assert json.loads(replayed.read_text())["digest"] == digest


def test_replay_of_a_pytest_failure_runs_pytest(tmp_path: Path) -> None:
    (tmp_path / "test_race.py").write_text(
        textwrap.dedent(
            """
            import asyncio, simloom

            @simloom.test(runs=100)
            async def test_lost_update():
                counter = [0]
                async def bump():
                    seen = counter[0]
                    await asyncio.sleep(0)
                    counter[0] = seen + 1
                await asyncio.gather(bump(), bump())
                assert counter[0] == 2
            """
        )
    )
    found = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_race.py"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert found.returncode == 1, found.stdout
    (tape,) = tape_files(Path(".sim") / "failures")
    replay = simloom("replay", str(tape))
    assert replay.returncode == cli.FAILED
    assert (
        f"simloom: -m pytest test_race.py::test_lost_update --simloom-tape={tape}" in replay.stdout
    )
    assert "assert 1 == 2" in replay.stdout


# ------------------------------------------------------------------- trace, diff


def test_trace_prints_and_filters_the_event_log(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, tape = explore_bank(capsys, tmp_path)
    status, out, _ = run(capsys, "trace", str(tape))
    assert status == cli.OK
    assert "error: AssertionError: overdrawn: balance is -40" in out
    events = [
        json.loads(line)
        for line in tape.with_name(tape.name.replace(".tape.json", ".events.jsonl"))
        .read_text()
        .splitlines()
    ]
    assert f"{len(events)} of {len(events)} events shown" in out
    status, out, _ = run(capsys, "trace", str(tape), "--kind", "decision")
    decisions = [e for e in events if e["kind"] == "decision"]
    assert out.count(" decision  ") == len(decisions) > 0
    status, out, _ = run(capsys, "trace", str(tape), "--limit", "2")
    assert "2 of" in out and "--limit 2 reached" in out


def test_trace_causal_replays_the_failure_and_names_who_woke_each_step(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, tape = explore_bank(capsys, tmp_path)
    status, out, _ = run(capsys, "trace", str(tape), "--causal")
    assert status == cli.OK
    assert "error: AssertionError: overdrawn: balance is -40" in out
    assert "warning" not in out  # the replay has the artifact's digest
    steps = [line for line in out.splitlines() if line.startswith("#")]
    assert steps[0].startswith("#1 ") and "(main) started" in steps[0]
    # Every later task step names the step that woke it.
    assert all(" <- #" in line for line in steps[1:] if "(bob)" in line or "(alice)" in line)
    status, out, _ = run(capsys, "trace", str(tape), "--causal", "--task", "bob")
    shown = [line for line in out.splitlines() if line.startswith("#")]
    assert shown and all("`Task-3` (bob)" in line.split(" <- ")[0] for line in shown)
    assert "resumed from `await asyncio.sleep(0)` at bank_race.py:" in out


def test_explain_tells_the_schedule_in_code_and_the_nearest_passing_universe(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, tape = explore_bank(capsys, tmp_path)
    status, out, _ = run(capsys, "explain", str(tape))
    assert status == cli.FAILED  # it still fails
    assert f"simloom: why {BANK} fails (replayed from {tape})" in out
    assert "`Task-3` (bob)" in out and "ahead of `Task-2` (alice)" in out
    assert "nearest passing universe: decision #" in out


def test_diff_shows_where_two_runs_part(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _, tape = explore_bank(capsys, tmp_path)
    status, out, _ = run(capsys, "diff", str(tape), str(tape))
    assert status == cli.OK and "identical" in out
    events = tape.with_name(tape.name.replace(".tape.json", ".events.jsonl"))
    lines = events.read_text().splitlines()
    changed = json.loads(lines[3])
    changed["t_ns"] += 1
    other = tmp_path / "other.events.jsonl"
    other.write_text("\n".join([*lines[:3], json.dumps(changed), *lines[4:]]) + "\n")
    status, out, _ = run(capsys, "diff", str(events), str(other), "--context", "1")
    assert status == cli.FAILED
    assert "agree on their first 3 events, then differ" in out
    marked = [line for line in out.splitlines() if line.startswith(">")]
    assert marked[0].startswith("> #3 ")


# ------------------------------------------------------------------- timeline


def test_timeline_writes_one_html_page_of_the_failure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, tape = explore_bank(capsys, tmp_path)
    status, out, err = run(capsys, "timeline", str(tape), "-o", "bank.html")
    assert status == cli.OK and err == ""
    assert f"simloom: timeline of {BANK} written to bank.html (" in out
    text = Path("bank.html").read_text("utf-8")
    data = json.loads(text.split('id="simloom-data">', 1)[1].split("</script>", 1)[0])
    # No world: one lane, the program's own; both deviations marked, told in code.
    assert [host["name"] for host in data["hosts"]] == ["main"]
    assert [(d["decision"], d["value"]) for d in data["deviations"]] == [
        tuple(d) for d in json.loads(tape.read_text())["deviations"]
    ]
    assert all("`Task-3` (bob)" in d["text"] for d in data["deviations"])
    assert data["nearest"] is not None and data["nearest"]["passing"]
    assert data["header"]["error"] == "AssertionError: overdrawn: balance is -40"
    # Without -o it goes beside the artifact.
    status, out, _ = run(capsys, "timeline", str(tape), "--no-nearest")
    beside = tape.with_name(tape.name.replace(".tape.json", ".timeline.html"))
    assert status == cli.OK and beside.is_file() and str(beside) in out
    assert '"nearest":null' in beside.read_text("utf-8")
    # Its event log names the same failure.
    events = tape.with_name(tape.name.replace(".tape.json", ".events.jsonl"))
    status, _, _ = run(capsys, "timeline", str(events), "-o", "from-events.html")
    assert status == cli.OK
    assert Path("from-events.html").read_bytes() == Path("bank.html").read_bytes()


# ------------------------------------------------------------------- colour, progress

ANSI = "\x1b["


def test_piped_output_is_plain_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out, tape = explore_bank(capsys, tmp_path)
    assert ANSI not in out
    status, out, err = run(capsys, "trace", str(tape), "--causal")
    assert status == cli.OK and ANSI not in out + err
    status, _, err = run(capsys, "replay", "gone.tape.json")
    assert status == cli.USAGE and ANSI not in err
    # Through the console script too, where a terminal would get a progress bar.
    piped = simloom("explore", BANK, "--runs", "30", "--no-database")
    assert ANSI not in piped.stdout + piped.stderr
    assert "exploring" not in piped.stderr


def test_a_terminal_gets_colour_unless_no_color_is_set(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, tape = explore_bank(capsys, tmp_path)
    status, out, _ = run(capsys, "--color", "always", "trace", str(tape), "--causal")
    assert status == cli.OK and ANSI in out
    # The words are the same, only coloured.
    plain = run(capsys, "trace", str(tape), "--causal")[1]
    assert re.sub(r"\x1b\[[0-9;]*m", "", out) == plain
    status, _, err = run(capsys, "replay", "gone.tape.json", "--color", "always")
    assert err.startswith(ANSI) and "no such file: gone.tape.json" in err
    monkeypatch.setenv("FORCE_COLOR", "1")  # as a terminal would
    assert ANSI in run(capsys, "trace", str(tape))[1]
    monkeypatch.setenv("NO_COLOR", "1")
    assert ANSI not in run(capsys, "trace", str(tape))[1]
    assert ANSI not in run(capsys, "--color", "never", "trace", str(tape))[1]


def test_explore_on_a_terminal_shows_a_progress_bar_of_the_universes(tmp_path: Path) -> None:
    (tmp_path / "calm.py").write_text(PASSING)
    shown = subprocess.run(
        [sys.executable, "-m", "simloom", "explore", "calm:main", "--runs", "40"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "FORCE_COLOR": "1", "NO_COLOR": ""},
    )
    assert shown.returncode == cli.OK
    assert "exploring calm:main" in shown.stderr and "40/40" in shown.stderr
    assert "universes" in shown.stderr and ANSI in shown.stderr


# ------------------------------------------------------------------- bad input


def corrupt_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    (tmp_path / "calm.py").write_text(PASSING)
    (tmp_path / "foreign.tape.json").write_text(json.dumps({"format": "other"}))
    (tmp_path / "truncated.tape.json").write_text('{"format": "simloom.tape", "vers')
    (tmp_path / "notjson.events.jsonl").write_text("hello\n")
    (tmp_path / "gap.events.jsonl").write_text(
        '{"i": 0, "kind": "step", "t_ns": 0}\n{"i": 2, "kind": "step", "t_ns": 0}\n'
    )
    (tmp_path / "binary.events.jsonl").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "pytest.tape.json").write_text(
        json.dumps({"format": "simloom.tape", "version": 1, "test": "t.py::t", "deviations": []})
    )
    for name, test in (("calm", "calm:main"), ("unknown", "nosuchmodule:main")):
        (tmp_path / f"{name}.tape.json").write_text(
            json.dumps({"format": "simloom.tape", "version": 1, "test": test, "deviations": []})
        )
    return {
        "no command": ([], "the following arguments are required"),
        "unknown command": (["frobnicate"], "invalid choice"),
        "unknown option": (["explore", "calm:main", "--fast"], "unrecognized arguments: --fast"),
        "bad runs": (["explore", "calm:main", "--runs", "0"], "--runs: must be >= 1"),
        "bad seed": (["explore", "calm:main", "--seed", "x"], "--seed: not an integer"),
        "seed and tape": (["explore", "calm:main", "--seed", "1", "--tape", "t"], "not allowed"),
        "bad target": (["explore", "calm"], "is not MODULE:FUNCTION"),
        "unknown module": (["explore", "nosuchmodule:main"], "no module named 'nosuchmodule'"),
        "unknown function": (["explore", "calm:nothing"], "has no 'nothing'"),
        "not async": (["explore", "calm:not_async"], "is not an async function"),
        "missing file target": (["explore", "gone.py:main"], "no such file: gone.py"),
        "bad scheduler": (["explore", "calm:main", "--scheduler", "chaos"], "chaos"),
        "missing artifact": (["replay", "gone.tape.json"], "no such file: gone.tape.json"),
        "directory": (["replay", "."], "is a directory"),
        "foreign tape": (["replay", "foreign.tape.json"], "ForeignTapeError"),
        "truncated tape": (["replay", "truncated.tape.json"], "Tape"),
        "not an artifact": (["trace", "notes.txt"], "not a simloom artifact"),
        "event log not JSON": (["trace", "notjson.events.jsonl"], "line is not JSON"),
        "event log with a gap": (["trace", "gap.events.jsonl"], "truncated or edited"),
        "event log not text": (["diff", "binary.events.jsonl", "gap.events.jsonl"], "not UTF-8"),
        "tape without its log": (["trace", "foreign.tape.json"], "ForeignTapeError"),
        "task without causal": (["trace", "gap.events.jsonl", "--task", "x"], "need --causal"),
        "causal of a pytest test": (["trace", "pytest.tape.json", "--causal"], "needs an artifact"),
        "explain a foreign tape": (["explain", "foreign.tape.json"], "ForeignTapeError"),
        "host without causal": (["trace", "gap.events.jsonl", "--host", "n1"], "need --causal"),
        "bad color": (["--color", "pink", "trace", "notes.txt"], "invalid choice: 'pink'"),
        "timeline without artifact": (["timeline"], "the following arguments are required"),
        "timeline of a missing file": (["timeline", "gone.tape.json"], "no such file"),
        "timeline of a directory": (["timeline", "."], "is a directory"),
        "timeline of a foreign tape": (["timeline", "foreign.tape.json"], "ForeignTapeError"),
        "timeline of a truncated tape": (["timeline", "truncated.tape.json"], "Tape"),
        "timeline of a lone event log": (
            ["timeline", "gap.events.jsonl"],
            "its tape file is not beside it",
        ),
        "timeline of a pytest test": (
            ["timeline", "pytest.tape.json"],
            "timeline replays the failure, which needs an artifact of `simloom explore`",
        ),
        "timeline of an unknown target": (
            ["timeline", "unknown.tape.json"],
            "no module named 'nosuchmodule'",
        ),
        "replay of an unknown target": (["replay", "unknown.tape.json"], "no module named"),
        "explain of an unknown target": (["explain", "unknown.tape.json"], "no module named"),
        "causal trace of an unknown target": (
            ["trace", "unknown.tape.json", "--causal"],
            "no module named 'nosuchmodule'",
        ),
        "timeline into a missing directory": (
            ["timeline", "calm.tape.json", "-o", "nowhere/t.html"],
            "no such directory: nowhere",
        ),
        "timeline onto a directory": (["timeline", "calm.tape.json", "-o", "."], "is a directory"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no command",
        "unknown command",
        "unknown option",
        "bad runs",
        "bad seed",
        "seed and tape",
        "bad target",
        "unknown module",
        "unknown function",
        "not async",
        "missing file target",
        "bad scheduler",
        "missing artifact",
        "directory",
        "foreign tape",
        "truncated tape",
        "not an artifact",
        "event log not JSON",
        "event log with a gap",
        "event log not text",
        "tape without its log",
        "task without causal",
        "causal of a pytest test",
        "explain a foreign tape",
        "host without causal",
        "bad color",
        "timeline without artifact",
        "timeline of a missing file",
        "timeline of a directory",
        "timeline of a foreign tape",
        "timeline of a truncated tape",
        "timeline of a lone event log",
        "timeline of a pytest test",
        "timeline of an unknown target",
        "timeline into a missing directory",
        "timeline onto a directory",
        "replay of an unknown target",
        "explain of an unknown target",
        "causal trace of an unknown target",
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args, expected = corrupt_inputs(tmp_path)[case]
    status, out, err = run(capsys, *args)
    assert status == cli.USAGE
    assert err.startswith("simloom: error: ") and err.count("\n") == 1, err
    assert expected in err
    assert "Traceback" not in out + err


def test_the_console_entry_point_and_help() -> None:
    result = simloom("--help")
    assert result.returncode == 0
    for command in ("explore", "replay", "trace", "explain", "diff", "timeline"):
        assert command in result.stdout
        sub = simloom(command, "--help")
        assert sub.returncode == 0 and "usage: simloom " + command in sub.stdout
    bad = simloom("replay", "gone.tape.json")
    assert bad.returncode == 2 and bad.stderr == "simloom: error: no such file: gone.tape.json\n"
