"""The artifact files of a failure: written when they can be, never at the cost of
the report; named uniquely per test id; written atomically, with what a killed
writer left behind cleaned up; and ``--simloom-tape`` replays of them.

End-to-end cases run pytest in a subprocess on a ``pytester`` directory (as
``tests/test_simloom_test.py`` does); the rest call a decorated function directly,
with the artifact directory pointed where the case needs it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import simloom
from hypothesis import settings
from hypothesis.database import InMemoryExampleDatabase
from simloom import _artifacts, testing
from simloom import tape as tape_module

pytest_plugins = ["pytester"]

#: NAME_MAX on Linux and macOS: the longest file name, in bytes.
NAME_MAX = 255

FAULT = """
import pytest
import simloom


@simloom.test(runs=50)
async def test_fault():
    assert not simloom.sometimes("fault", 50), "injected fault"
"""


# ------------------------------------------------------------------ helpers


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def write(pytester: pytest.Pytester, name: str, source: str) -> Path:
    path = pytester.path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def out(result: pytest.RunResult) -> str:
    return result.stdout.str()


def replay_commands(text: str) -> list[list[str]]:
    """Every printed ``replay it: pytest ...`` command, as shell words."""
    return [shlex.split(line) for line in re.findall(r"replay it: (pytest .*)", text)]


@pytest.fixture
def artifact_dir(tmp_path: Path) -> Iterator[Path]:
    """Point the artifacts of directly called tests at ``tmp_path/failures``."""
    previous = testing.options()
    directory = tmp_path / "failures"
    testing.configure(testing.Options(artifact_dir=directory))
    yield directory
    testing.configure(previous)


async def fault() -> None:
    assert not simloom.sometimes("fault", 50), "injected fault"


def explored(program: object) -> object:
    decorated = simloom.test(runs=50)(program)
    return settings(database=InMemoryExampleDatabase())(decorated)


def failure_report(test: object) -> str:
    with pytest.raises(AssertionError) as caught:
        test()  # type: ignore[operator]
    notes = [note for note in getattr(caught.value, "__notes__", []) if "simloom found" in note]
    assert len(notes) == 1, caught.value
    return notes[0]


def assert_complete(report: str) -> None:
    """Seed, error and schedule are all there."""
    assert re.search(r"seed: \d+ ", report), report
    assert "error: AssertionError: injected fault" in report
    assert "minimal schedule: FIFO everywhere except:" in report
    assert "decision #0: sometimes:fault = 1 (of 2)" in report


# ------------------------------------------------------------------ write failures


def test_when_the_artifact_directory_is_a_file_the_report_is_complete_with_a_warning(
    tmp_path: Path,
) -> None:
    (tmp_path / ".sim").write_text("not a directory\n")
    previous = testing.options()
    testing.configure(testing.Options(artifact_dir=tmp_path / ".sim" / "failures"))
    try:
        report = failure_report(explored(fault))
    finally:
        testing.configure(previous)
    assert_complete(report)
    warnings = re.findall(r"warning: artifact (\S+) not written: (.*)", report)
    assert [Path(path).name.split("-seed")[0] for path, _ in warnings] == [
        testing._artifact_stem(f"{__name__}.fault")
    ] * 2
    assert all("Not a directory (ENOTDIR)" in why for _, why in warnings), warnings
    assert "replay it:" not in report  # nothing to replay from
    assert "artifacts:" not in report


def test_a_name_too_long_for_the_filesystem_is_a_warning_not_a_lost_report(
    tmp_path: Path,
) -> None:
    previous = testing.options()
    testing.configure(testing.Options(artifact_dir=tmp_path / ("d" * 300)))
    try:
        report = failure_report(explored(fault))
    finally:
        testing.configure(previous)
    assert_complete(report)
    assert report.count("not written: File name too long (ENAMETOOLONG)") == 2, report


def test_a_full_disk_loses_only_the_file_that_could_not_be_written(
    artifact_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = tape_module.atomic_write

    def full_for_event_logs(path: str | os.PathLike[str], data: bytes) -> None:
        if str(path).endswith(".events.jsonl"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, data)

    monkeypatch.setattr(_artifacts, "atomic_write", full_for_event_logs)
    report = failure_report(explored(fault))
    assert_complete(report)
    [tape_path] = artifact_dir.glob("*.tape.json")
    assert f"replay it: simloom.replay(main, simloom.Tape.load('{tape_path}'" in report
    timeline = tape_path.with_name(tape_path.name.replace(".tape.json", ".timeline.html"))
    assert f"artifacts: {tape_path}, {timeline}\n" in report
    assert timeline.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    events = tape_path.with_name(tape_path.name.replace(".tape.json", ".events.jsonl"))
    assert f"warning: artifact {events} not written: No space left on device (ENOSPC)" in report
    # the warning is the report's last line: the report itself is whole above it
    assert report.rstrip().splitlines()[-1].strip().startswith("warning:")


# ------------------------------------------------------------------ names


NAMES = """
import pytest
import simloom


@simloom.test(runs=50)
async def test_ä():
    assert not simloom.sometimes("fault", 50), "injected fault ä"


@simloom.test(runs=50)
async def test_ö():
    assert not simloom.sometimes("fault", 50), "injected fault ö"


@pytest.mark.parametrize(
    "case", ["slash", "dot", "space", "underscore", "long"],
    ids=["a/b", "a.b", "a b", "a_b", "x" * 300],
)
@simloom.test(runs=50)
async def test_param(case):
    assert not simloom.sometimes("fault", 50), f"injected fault {case}"
"""


def test_artifact_names_are_unique_per_test_id_and_every_replay_command_is_accepted(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "test_names.py", NAMES)
    first = run(pytester)
    first.assert_outcomes(failed=7)
    text = out(first)
    commands = replay_commands(text)
    assert len(commands) == 7, text

    tapes = [word.removeprefix("--simloom-tape=") for c in commands for word in c[2:]]
    assert len(set(tapes)) == 7, tapes
    written = sorted((pytester.path / ".sim" / "failures").iterdir())
    assert len(written) == 21  # a tape, an event log and a timeline each, nothing shared
    for path in written:
        assert path.name.isascii(), path.name
        assert len(path.name.encode()) <= NAME_MAX - 60, path.name  # room to spare
    owners = {json.loads(Path(pytester.path, t).read_text())["test"] for t in tapes}
    assert len(owners) == 7

    # each test's own command replays its own failure
    for command in commands:
        node = command[1]
        replayed = run(pytester, *command[1:])
        replayed.assert_outcomes(failed=1)
        text = out(replayed)
        assert "(replayed .sim/failures/" in text, text
        case = re.search(r"\[(.*)\]$", node)
        expected = {"a/b": "slash", "a.b": "dot", "a b": "space", "a_b": "underscore"}
        detail = expected.get(case.group(1), "long") if case else node[-1]
        assert f"AssertionError: injected fault {detail}" in text


def test_plain_node_ids_keep_their_readable_names() -> None:
    assert testing._artifact_stem("test_bank.py::test_x") == "test_bank.test_x"
    assert (
        testing._artifact_stem("test_bank.py::TestA::test_x[1-2]") == "test_bank.TestA.test_x[1-2]"
    )
    assert re.fullmatch(
        r"tests\.test_bank\.test_x-[0-9a-f]{12}",
        testing._artifact_stem("tests/test_bank.py::test_x"),
    )


# ------------------------------------------------------------------ atomic writes


WRITER = """
import os, sys, time
from simloom import tape

def stall(fd):
    print("writing", flush=True)
    time.sleep(120)

os.fsync = stall  # the writer hangs with its temporary file half done
tape.atomic_write(sys.argv[1], b"half a tape")
"""


def test_temporary_files_of_a_killed_writer_are_removed_and_a_live_writers_are_kept(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "failures"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen(
        [sys.executable, str(script), str(directory / "a.tape.json")],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == b"writing"
        [temporary] = [p for p in directory.iterdir()]
        old = time.time() - 3600
        os.utime(temporary, (old, old))

        # the writer is alive (it holds its file's lock): nothing is removed
        tape_module.atomic_write(directory / "b.tape.json", b"other")
        assert temporary.exists()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()

    # killed mid-write: the next write to the directory removes what it left
    tape_module.atomic_write(directory / "c.tape.json", b"later")
    assert sorted(p.name for p in directory.iterdir()) == ["b.tape.json", "c.tape.json"]


def test_artifact_temporaries_left_by_earlier_versions_are_removed_once_an_hour_old(
    tmp_path: Path,
) -> None:
    two_hours_ago = time.time() - 7200
    leftovers = [
        ".t.test_x-seed1.tape.json.k3j9_x2a.tmp",
        ".t.test_x-seed1.events.jsonl.a1b2c3d4.tmp",
    ]
    recent = ".t.test_y-seed1.tape.json.zzzzzzzz.tmp"
    foreign = ".notes.txt.abcd1234.tmp"  # not an artifact's: never touched
    for name in [*leftovers, foreign]:
        (tmp_path / name).write_text("partial")
        os.utime(tmp_path / name, (two_hours_ago, two_hours_ago))
    (tmp_path / recent).write_text("partial")

    tape_module.atomic_write(tmp_path / "new.tape.json", b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([foreign, recent, "new.tape.json"])


def test_an_atomic_write_fsyncs_the_file_and_then_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    tape_module.atomic_write(tmp_path / "x.tape.json", b"data")
    assert synced == ["file", "directory"]
    assert (tmp_path / "x.tape.json").read_bytes() == b"data"


# ------------------------------------------------------------------ --simloom-tape


def test_a_replay_that_no_longer_fits_says_where_whether_it_fails_or_passes(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "test_fault.py", FAULT)
    # value 5 cannot be the answer to a yes/no: the replay takes "no", and passes
    simloom.Tape([(0, 5)]).dump(pytester.path / "misfit.json")
    passed = run(pytester, "--simloom-tape=misfit.json")
    passed.assert_outcomes(passed=1)
    assert (
        "--simloom-tape=misfit.json: the tape no longer fits this program: misaligned at "
        "decision #0 (sometimes:fault: the tape's value does not fit its 2 choices"
    ) in out(passed)

    # the first deviation still fails the test; the second is past its last decision
    simloom.Tape([(0, 1), (40, 1)]).dump(pytester.path / "longer.json")
    failed = run(pytester, "--simloom-tape=longer.json")
    failed.assert_outcomes(failed=1)
    assert (
        "the tape no longer fits this program: 1 deviation from decision #40 on never "
        "reached (the program made 1 decision)"
    ) in out(failed)
    assert "AssertionError: injected fault" in out(failed)


OPEN_COUNTER = """
import sys

opened = []


def count_opens(event, args):
    if event == "open" and str(args[0]).endswith("big.tape.json"):
        opened.append(args[0])


sys.addaudithook(count_opens)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"big.tape.json opened {len(opened)} times")
"""


def big_tape(path: Path, deviations: int) -> None:
    """A tape file with ``deviations`` deviations, as an artifact of ``test_fault``."""
    # decision #0 answers the fault's yes/no with "yes"; the rest is never reached
    tape = simloom.Tape.from_draws([1, 0, 1] + [1, 1, 1] * (deviations - 1) + [0])
    text = tape.to_json()
    path.write_text('{"test": "test_fault.py::test_fault", ' + text[1:])


def test_a_million_deviation_tape_is_read_and_decoded_once(pytester: pytest.Pytester) -> None:
    write(pytester, "test_fault.py", FAULT)
    write(pytester, "conftest.py", OPEN_COUNTER)
    big_tape(pytester.path / "big.tape.json", 1_000_000)
    started = time.perf_counter()
    simloom.Tape.load(pytester.path / "big.tape.json")
    one_load = time.perf_counter() - started

    replayed = run(pytester, "--simloom-tape=big.tape.json", "--durations=0")
    replayed.assert_outcomes(failed=1)
    text = out(replayed)
    assert "big.tape.json opened 1 times" in text
    assert "999,999 deviations from decision #2 on never reached" in text
    print(f"one Tape.load: {one_load:.2f} s")
