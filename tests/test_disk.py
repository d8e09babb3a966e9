"""The simulated disk (``simloom.disk``): files that behave like the stdlib's, and a
power cut that keeps exactly what was fsynced, plus whatever the tape lets through.

Where a real filesystem answers the same question, the simulated disk is held to
it: the parity tests run once against a real directory and once against a
:class:`Disk`, and a Hypothesis property runs random programs of file operations on
both and compares every result and every exception class.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, cast

import pytest
import simloom
from hypothesis import given, settings
from hypothesis import strategies as st
from simloom import RunResult, SimloomUsageError, Tape, TapeMisalignedError
from simloom.disk import CrashReport, Disk, DiskFile, FileCrash, TornWrite

# ------------------------------------------------------------ a real directory


class Files(Protocol):
    """What the parity tests use: the part of :class:`Disk`'s API a directory has."""

    def open(self, path: str, mode: str = "r") -> BinaryIO: ...
    def read_bytes(self, path: str) -> bytes: ...
    def write_bytes(self, path: str, data: bytes, *, fsync: bool = True) -> int: ...
    def rename(self, src: str, dst: str) -> None: ...
    def delete(self, path: str) -> None: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def exists(self, path: str) -> bool: ...
    def size(self, path: str) -> int: ...


class RealDirectory:
    """A real directory behind :class:`Disk`'s method names, to hold the simulation to.
    Files open in binary mode with the stdlib's default buffering."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self, path: str, mode: str = "r") -> BinaryIO:
        binary = mode if "b" in mode else mode + "b"
        return cast(BinaryIO, open(self.root / path if path else path, binary))

    def read_bytes(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def write_bytes(self, path: str, data: bytes, *, fsync: bool = True) -> int:
        with self.open(path, "wb") as file:
            written = file.write(data)
            file.flush()
            if fsync:
                os.fsync(file.fileno())
        return written

    def rename(self, src: str, dst: str) -> None:
        os.replace(self.root / src, self.root / dst)

    def delete(self, path: str) -> None:
        os.remove(self.root / path)

    def list(self, prefix: str = "") -> list[str]:
        return sorted(name for name in os.listdir(self.root) if name.startswith(prefix))

    def exists(self, path: str) -> bool:
        return (self.root / path).exists()

    def size(self, path: str) -> int:
        return os.path.getsize(self.root / path)


@pytest.fixture(params=["real", "simulated"])
def files(request: pytest.FixtureRequest, tmp_path: Path) -> Files:
    """Each parity test runs on a real directory and on a simulated disk."""
    if request.param == "real":
        return RealDirectory(tmp_path)
    return Disk()


def raised(action: Callable[[], object]) -> tuple[type[BaseException], int | None]:
    """The exception class and errno ``action`` raised (it must raise)."""
    with pytest.raises(BaseException) as info:
        action()
    return type(info.value), getattr(info.value, "errno", None)


# ------------------------------------------------------------ files, as the stdlib's


def test_reads_see_writes_at_once_without_fsync_or_flush(files: Files) -> None:
    with files.open("log", "w+b") as log:
        assert log.write(b"hello") == 5
        log.seek(0)
        assert log.read() == b"hello"
    assert files.read_bytes("log") == b"hello"
    assert files.size("log") == 5


def test_read_takes_up_to_n_bytes_and_nothing_past_the_end(files: Files) -> None:
    files.write_bytes("f", b"abcdef")
    with files.open("f", "rb") as f:
        assert f.read(2) == b"ab"
        assert f.tell() == 2
        assert f.read(100) == b"cdef"
        assert f.read(1) == b""
        f.seek(0)
        assert f.read(None) == b"abcdef"  # type: ignore[arg-type]  # typing.IO says int
        f.seek(2)
        assert f.read(-1) == b"cdef"
        assert raised(lambda: f.read(-2))[0] is ValueError


def test_write_accepts_any_bytes_like_object_and_nothing_else(files: Files) -> None:
    with files.open("f", "wb") as f:
        assert f.write(bytearray(b"ab")) == 2
        assert f.write(memoryview(b"cd")) == 2
        assert raised(lambda: f.write("text"))[0] is TypeError  # type: ignore[call-overload]
        assert raised(lambda: f.write(5))[0] is TypeError  # type: ignore[call-overload]
    assert files.read_bytes("f") == b"abcd"


def test_writes_past_the_end_fill_the_gap_with_zeros(files: Files) -> None:
    with files.open("f", "wb") as f:
        f.seek(3)
        f.write(b"x")
    assert files.read_bytes("f") == b"\0\0\0x"


def test_append_mode_writes_at_the_end_wherever_the_position_is(files: Files) -> None:
    files.write_bytes("f", b"abc")
    with files.open("f", "ab") as f:
        assert f.tell() == 3
        f.seek(0)
        f.write(b"de")
        f.flush()  # a buffered real file reports its position after the flush
        assert f.tell() == 5
    assert files.read_bytes("f") == b"abcde"


def test_truncate_cuts_or_extends_and_leaves_the_position(files: Files) -> None:
    with files.open("f", "w+b") as f:
        f.write(b"abcdef")
        f.seek(2)
        assert f.truncate() == 2, "by default at the position"
        assert f.tell() == 2
        f.seek(4)
        assert f.truncate(6) == 6
        assert f.tell() == 4
        f.seek(0)
        assert f.read() == b"ab\0\0\0\0"
        assert raised(lambda: f.truncate(-1)) == (OSError, errno.EINVAL)


def test_seek_is_relative_to_start_position_or_end_and_not_before_the_start(
    files: Files,
) -> None:
    files.write_bytes("f", b"0123456789")
    with files.open("f", "rb") as f:
        assert f.seek(3) == 3
        assert f.seek(2, os.SEEK_CUR) == 5
        assert f.seek(-4, os.SEEK_END) == 6
        assert f.read(1) == b"6"
        assert f.seek(20) == 20, "past the end is allowed"
        assert f.read() == b""
        assert raised(lambda: f.seek(-1)) == (OSError, errno.EINVAL)
        assert raised(lambda: f.seek(-30, os.SEEK_END)) == (OSError, errno.EINVAL)
        assert f.tell() == 20, "a failed seek does not move"


def test_w_empties_an_existing_file_and_x_refuses_one(files: Files) -> None:
    files.write_bytes("f", b"old")
    files.open("f", "w").close()
    assert files.read_bytes("f") == b""
    assert raised(lambda: files.open("f", "x")) == (FileExistsError, errno.EEXIST)
    with files.open("new", "xb") as new:
        new.write(b"fresh")
    assert files.read_bytes("new") == b"fresh"


def test_missing_files_raise_file_not_found_everywhere(files: Files) -> None:
    for action in [
        lambda: files.open("missing"),
        lambda: files.open("missing", "r+b"),
        lambda: files.read_bytes("missing"),
        lambda: files.rename("missing", "elsewhere"),
        lambda: files.delete("missing"),
        lambda: files.size("missing"),
        lambda: files.open(""),
    ]:
        assert raised(action) == (FileNotFoundError, errno.ENOENT)
    assert not files.exists("missing")


def test_a_nul_byte_in_a_path_is_a_value_error(files: Files) -> None:
    assert raised(lambda: files.open("a\0b", "wb"))[0] is ValueError


def test_reading_or_writing_against_the_open_mode_is_unsupported(files: Files) -> None:
    files.write_bytes("f", b"data")
    with files.open("f", "rb") as reader:
        assert (reader.readable(), reader.writable(), reader.seekable()) == (True, False, True)
        assert raised(lambda: reader.write(b"x"))[0] is io.UnsupportedOperation
        assert raised(lambda: reader.truncate(0))[0] is io.UnsupportedOperation
    with files.open("f", "ab") as appender:
        assert (appender.readable(), appender.writable()) == (False, True)
        assert raised(appender.read)[0] is io.UnsupportedOperation
    assert files.read_bytes("f") == b"data"


def test_a_closed_file_raises_value_error_and_closes_twice_quietly(files: Files) -> None:
    f = files.open("f", "w+b")
    f.close()
    assert f.closed
    f.close()
    for action in [
        lambda: f.read(),
        lambda: f.write(b"x"),
        lambda: f.seek(0),
        f.tell,
        f.flush,
        f.readable,
        lambda: f.truncate(0),
    ]:
        assert raised(action)[0] is ValueError


def test_name_and_mode_are_reported_as_the_stdlib_reports_them(files: Files) -> None:
    expected = {
        "r": "rb",
        "rb": "rb",
        "r+": "rb+",
        "rb+": "rb+",
        "w": "wb",
        "w+b": "rb+",
        "a": "ab",
        "a+": "ab+",
        "x": "xb",
        "xb+": "xb+",
    }
    for mode, reported in expected.items():
        if mode.startswith("x") and files.exists("f"):
            files.delete("f")
        if mode.startswith("r"):
            files.write_bytes("f", b"")
        with files.open("f", mode) as f:
            assert f.mode == reported, mode
            assert str(f.name).endswith("f")


def test_readline_writelines_and_iteration_come_from_the_io_base(files: Files) -> None:
    with files.open("f", "wb") as f:
        f.writelines([b"one\n", b"two\n", b"three"])
    with files.open("f", "rb") as f:
        assert f.readline() == b"one\n"
        assert list(f) == [b"two\n", b"three"]
    with files.open("f", "rb") as f:
        assert f.readlines() == [b"one\n", b"two\n", b"three"]
        f.seek(0)
        assert isinstance(f, io.BufferedIOBase)
        buffer = bytearray(3)
        assert f.readinto(buffer) == 3
        assert buffer == b"one"


def test_rename_replaces_the_target_and_a_deleted_file_stays_open(files: Files) -> None:
    files.write_bytes("a", b"A")
    files.write_bytes("b", b"B")
    files.rename("a", "b")
    assert files.list() == ["b"]
    assert files.read_bytes("b") == b"A"
    with files.open("b", "rb") as f:
        files.delete("b")
        assert not files.exists("b")
        assert f.read() == b"A", "an open file outlives its name"
    assert files.list() == []


def test_list_gives_the_paths_with_a_prefix_sorted(files: Files) -> None:
    for name in ["wal.2", "wal.10", "data", "wal.1"]:
        files.write_bytes(name, b"")
    assert files.list() == ["data", "wal.1", "wal.10", "wal.2"]
    assert files.list("wal.1") == ["wal.1", "wal.10"]
    assert files.list("nothing") == []


# ------------------------------------------------------------ random programs on both


PATHS = ["a", "b"]
MODES = ["rb", "r+b", "wb", "w+b", "ab", "a+b", "xb", "xb+"]

operations = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(PATHS), st.sampled_from(MODES)),
    st.tuples(st.just("write"), st.integers(0, 3), st.binary(max_size=6)),
    st.tuples(st.just("read"), st.integers(0, 3), st.integers(-1, 8)),
    st.tuples(st.just("seek"), st.integers(0, 3), st.integers(-12, 12), st.integers(0, 2)),
    st.tuples(st.just("tell"), st.integers(0, 3)),
    st.tuples(st.just("truncate"), st.integers(0, 3), st.none() | st.integers(0, 12)),
    st.tuples(st.just("close"), st.integers(0, 3)),
    st.tuples(st.just("rename"), st.sampled_from(PATHS), st.sampled_from(PATHS)),
    st.tuples(st.just("delete"), st.sampled_from(PATHS)),
    st.tuples(st.just("size"), st.sampled_from(PATHS)),
)


def run_program(
    program: list[tuple[Any, ...]], open_file: Callable[[str, str], Any], space: Any
) -> list[object]:
    """Run ``program`` and return what each operation gave: its result, or the class
    (and errno) of what it raised. Operations on a file index not opened are skipped."""
    opened: list[Any] = []
    trace: list[object] = []
    for operation in program:
        kind, *args = operation
        try:
            if kind == "open":
                opened.append(open_file(*args))
                result: object = "opened"
            elif kind in ("rename", "delete", "size"):
                result = getattr(space, kind)(*args)
            else:
                index, *rest = args
                if index >= len(opened):
                    continue
                result = getattr(opened[index], kind)(*rest)
        except Exception as error:
            result = (type(error), getattr(error, "errno", None))
        trace.append((kind, result))
    for file in opened:
        file.close()
    return trace


class RealSpace:
    """Path operations on a real directory, named as :class:`Disk` names them."""

    def __init__(self, root: str) -> None:
        self.root = root

    def rename(self, src: str, dst: str) -> None:
        os.replace(os.path.join(self.root, src), os.path.join(self.root, dst))

    def delete(self, path: str) -> None:
        os.remove(os.path.join(self.root, path))

    def size(self, path: str) -> int:
        return os.path.getsize(os.path.join(self.root, path))


@settings(max_examples=300, deadline=None)
@given(st.lists(operations, max_size=25))
def test_random_programs_behave_as_on_a_real_filesystem(program: list[tuple[Any, ...]]) -> None:
    # Unbuffered real files, so that several handles on one file see each other's
    # writes at once, as simulated ones do.
    with tempfile.TemporaryDirectory() as root:
        real = run_program(
            program,
            lambda path, mode: open(os.path.join(root, path), mode, buffering=0),  # noqa: SIM115
            RealSpace(root),
        )
        real_files = {name: Path(root, name).read_bytes() for name in sorted(os.listdir(root))}
    disk = Disk()
    simulated = run_program(program, disk.open, disk)
    assert simulated == real
    assert {name: disk.read_bytes(name) for name in disk.list()} == real_files


# ------------------------------------------------------------ the Disk object


def test_write_bytes_and_read_bytes_round_trip_a_whole_file() -> None:
    disk = Disk()
    assert disk.write_bytes("f", b"first") == 5
    assert disk.write_bytes("f", bytearray(b"2nd"), fsync=False) == 3
    assert disk.read_bytes("f") == b"2nd"
    assert disk.size("f") == 3
    assert disk.exists("f")


def test_paths_may_be_path_like_but_not_bytes() -> None:
    disk = Disk()
    disk.write_bytes(PurePosixPath("dir/f"), b"x")
    assert disk.list("dir/") == ["dir/f"]
    assert disk.read_bytes("dir/f") == b"x"
    with pytest.raises(TypeError, match="a simulated path is a str"):
        disk.open(b"dir/f")  # type: ignore[arg-type]


def test_text_modes_and_unknown_modes_are_value_errors_naming_the_mode() -> None:
    disk = Disk()
    with pytest.raises(ValueError, match=r"invalid mode: 'rt': the simulated disk holds bytes"):
        disk.open("f", "rt")
    for mode in ["q", "rw", "", "r++", "bt"]:
        with pytest.raises(ValueError, match=re.escape(f"invalid mode: {mode!r}")):
            disk.open("f", mode)
    assert disk.list() == [], "a refused open creates nothing"


def test_a_simulated_file_is_a_binary_file_without_an_os_descriptor() -> None:
    disk = Disk()
    with disk.open("f", "wb") as f:
        assert isinstance(f, DiskFile)
        assert isinstance(f, io.BufferedIOBase)
        assert not f.isatty()
        with pytest.raises(io.UnsupportedOperation, match=r"call its fsync\(\) method"):
            f.fileno()
        f.flush()
        assert repr(f) == "<simloom.disk.DiskFile name='f' mode='wb' closed=False>"
    assert repr(f) == "<simloom.disk.DiskFile name='f' mode='wb' closed=True>"


def test_capacity_must_be_a_byte_count() -> None:
    for bad in [-1, 2**64, 1.5, True, "10"]:
        with pytest.raises(SimloomUsageError, match=r"capacity must be None \(unlimited\)"):
            Disk(capacity=bad)  # type: ignore[arg-type]
    assert Disk().capacity is None
    assert Disk(capacity=0).capacity == 0


def test_a_full_disk_raises_enospc_and_changes_nothing() -> None:
    disk = Disk(capacity=10)
    with disk.open("a", "w+b") as a:
        a.write(b"12345678")
        with pytest.raises(
            OSError, match=r"No space left on device: 3 bytes requested, 2 free"
        ) as info:
            a.write(b"abc")
        assert type(info.value) is OSError
        assert info.value.errno == errno.ENOSPC
        assert a.tell() == 8, "no short write, and the position stays"
        assert disk.read_bytes("a") == b"12345678"
        with pytest.raises(OSError) as info:
            a.truncate(11)
        assert info.value.errno == errno.ENOSPC
    assert (disk.used, disk.capacity) == (8, 10)
    with pytest.raises(OSError):
        disk.write_bytes("b", b"xyz")
    assert disk.read_bytes("b") == b"", "the file was created, its write refused"
    disk.delete("a")
    assert disk.used == 0, "a delete frees space at once"
    assert disk.write_bytes("b", b"0123456789") == 10
    assert repr(disk) == "<simloom.disk.Disk files=1 used=10 capacity=10>"


# ------------------------------------------------------------ power cuts


def running_simloop() -> simloom.SimLoop:
    """The universe's loop, which the world hands to ``Disk._crash``."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, simloom.SimLoop)
    return loop


def crash_universe(
    prepare: Callable[[Disk], None],
    *,
    seed: int = 0,
    scheduler: str = "fifo",
    tape: Tape | None = None,
) -> tuple[RunResult, CrashReport, dict[str, bytes]]:
    """Prepare a fresh disk, cut the power inside one universe, and return the run,
    the crash report and every file's bytes afterwards."""

    async def main() -> tuple[CrashReport, dict[str, bytes]]:
        disk = Disk()
        prepare(disk)
        report = disk._crash(running_simloop())
        return report, {path: disk.read_bytes(path) for path in disk.list()}

    if tape is None:
        result = simloom.run(main, seed=seed, scheduler=scheduler)
    else:
        result = simloom.replay(main, tape, strict=True)
    result.raise_error()
    report, survivors = result.value
    return result, report, survivors


def disk_decisions(result: RunResult) -> list[tuple[str | None, int | None, int | None]]:
    """``(label, bound, value)`` of every decision the disk asked in the universe."""
    return [
        (event.label, event.bound, event.value)
        for event in result.event_log
        if event.kind == "decision" and (event.label or "").startswith("disk.")
    ]


def synced_base_then_three_appends(disk: Disk) -> None:
    """``wal`` holds ``base`` durably, then three unsynced appends of 4 bytes."""
    disk.write_bytes("wal", b"base")
    for chunk in [b"AAAA", b"BBBB", b"CCCC"]:
        with disk.open("wal", "ab") as wal:
            wal.write(chunk)


def test_fsynced_data_survives_a_crash_in_every_universe() -> None:
    for seed in range(30):
        _, _, survivors = crash_universe(
            synced_base_then_three_appends, seed=seed, scheduler="random"
        )
        assert survivors["wal"].startswith(b"base"), seed


def test_a_canonical_crash_loses_everything_unsynced() -> None:
    for result, report, survivors in [
        crash_universe(synced_base_then_three_appends, scheduler="fifo"),
        crash_universe(synced_base_then_three_appends, tape=Tape()),
    ]:
        assert survivors == {"wal": b"base"}
        assert report.canonical
        assert report.files == (FileCrash("wal", unsynced_ops=3, kept_ops=0, torn=None),)
        assert report.files[0].lost_ops == 3
        assert disk_decisions(result) == [("disk.crash", 4, 0), ("disk.torn_at", 4, 0)]
        assert result.tape == Tape(), "the canonical crash is no deviation"


def test_a_file_never_fsynced_vanishes_name_and_all() -> None:
    def unsynced_file(disk: Disk) -> None:
        disk.write_bytes("kept", b"k")
        disk.write_bytes("new", b"fresh", fsync=False)

    _, report, survivors = crash_universe(unsynced_file)
    assert survivors == {"kept": b"k"}
    assert (report.unsynced_dir_entries, report.kept_dir_entries) == (1, 0)
    assert report.lost_dir_entries == 1
    assert report.files == ()


def test_fsync_dir_keeps_a_new_name_but_not_its_data() -> None:
    def created_then_fsync_dir(disk: Disk) -> None:
        with disk.open("f", "wb") as f:
            f.write(b"data")
        disk.fsync_dir()

    _, _, survivors = crash_universe(created_then_fsync_dir)
    assert survivors == {"f": b""}


def test_a_rename_or_delete_needs_fsync_dir_or_an_fsync_to_survive() -> None:
    def rename_and_delete(disk: Disk) -> None:
        disk.write_bytes("tmp", b"new")
        disk.write_bytes("gone", b"old")
        disk.rename("tmp", "current")
        disk.delete("gone")

    _, _, survivors = crash_universe(rename_and_delete)
    assert survivors == {"gone": b"old", "tmp": b"new"}, "both undone"

    def then_fsync_dir(disk: Disk) -> None:
        rename_and_delete(disk)
        disk.fsync_dir()

    _, _, survivors = crash_universe(then_fsync_dir)
    assert survivors == {"current": b"new"}

    def then_fsync_the_renamed_file(disk: Disk) -> None:
        rename_and_delete(disk)
        with disk.open("current", "rb") as current:
            current.fsync()

    _, _, survivors = crash_universe(then_fsync_the_renamed_file)
    assert survivors == {"current": b"new", "gone": b"old"}, "the journal commits in order"


def test_sync_makes_everything_durable() -> None:
    def everything_then_sync(disk: Disk) -> None:
        synced_base_then_three_appends(disk)
        disk.write_bytes("other", b"o", fsync=False)
        disk.sync()

    _, report, survivors = crash_universe(everything_then_sync, seed=3, scheduler="random")
    assert survivors == {"other": b"o", "wal": b"baseAAAABBBBCCCC"}
    assert str(report) == "crash: nothing was unsynced"


def test_a_crash_closes_every_file_opened_before_it() -> None:
    disk = Disk()
    survivor: list[DiskFile] = []

    async def main() -> None:
        wal = disk.open("wal", "w+b")
        wal.write(b"x")
        wal.fsync()
        survivor.append(wal)
        disk._crash(running_simloop())
        assert wal.closed
        with pytest.raises(ValueError, match="I/O operation on closed file"):
            wal.read()
        with pytest.raises(ValueError):
            wal.write(b"y")
        wal.close()
        with disk.open("wal", "rb") as reopened:
            assert reopened.read() == b"x"

    simloom.run(main, scheduler="fifo").raise_error()
    assert survivor[0].closed


def test_seeded_universes_lose_tear_and_keep_unsynced_writes() -> None:
    outcomes: set[str] = set()
    labels: set[str] = set()
    for seed in range(60):
        result, report, survivors = crash_universe(
            synced_base_then_three_appends, seed=seed, scheduler="random"
        )
        (wal,) = report.files
        outcomes.add("torn" if wal.torn else "kept" if wal.kept_ops else "lost")
        labels.update(str(label) for label, _, _ in disk_decisions(result))
        # What survives is the fsynced base plus a prefix of the appends, as the
        # report says: whole ops kept, then the torn op's first bytes.
        kept = 4 * wal.kept_ops + (wal.torn.kept_bytes if wal.torn else 0)
        assert survivors["wal"] == b"baseAAAABBBBCCCC"[: 4 + kept], seed
        assert report.canonical == (kept == 0)
    assert outcomes == {"lost", "torn", "kept"}
    assert labels == {"disk.crash", "disk.torn_at"}


def test_the_crash_report_tells_the_story() -> None:
    def renamed_log(disk: Disk) -> None:
        synced_base_then_three_appends(disk)
        disk.rename("wal", "wal.1")

    # Decisions: #0 disk.crash_dir = 1 (the rename survives), #1 disk.crash = 2 (two
    # appends survive), #2 disk.torn_at = 3 (three bytes of the third).
    _, report, survivors = crash_universe(renamed_log, tape=Tape([(0, 1), (1, 2), (2, 3)]))
    assert survivors == {"wal.1": b"baseAAAABBBBCCC"}
    assert report == CrashReport(
        unsynced_dir_entries=1,
        kept_dir_entries=1,
        files=(FileCrash("wal.1", unsynced_ops=3, kept_ops=2, torn=TornWrite(3, 4)),),
        story="",
    )
    assert report.files[0].lost_ops == 0
    assert str(report) == (
        "crash:\n  directory: 1 of 1 unsynced entries survived\n"
        "  wal.1: 2 of 3 unsynced ops survived, op #3 torn after 3 of 4 bytes"
    )


def test_the_same_seed_gives_the_same_digest_and_the_same_surviving_bytes() -> None:
    for seed in range(10):
        first, first_report, first_survivors = crash_universe(
            synced_base_then_three_appends, seed=seed, scheduler="random"
        )
        again, again_report, again_survivors = crash_universe(
            synced_base_then_three_appends, seed=seed, scheduler="random"
        )
        assert again.digest == first.digest
        assert (again_report, again_survivors) == (first_report, first_survivors)
        replayed, replayed_report, replayed_survivors = crash_universe(
            synced_base_then_three_appends, tape=first.tape
        )
        assert replayed.digest == first.digest
        assert (replayed_report, replayed_survivors) == (first_report, first_survivors)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    appends=st.lists(st.binary(min_size=1, max_size=8), max_size=6),
)
def test_an_append_only_log_keeps_its_fsynced_part_and_a_prefix_of_the_rest(
    seed: int, appends: list[bytes]
) -> None:
    def log(disk: Disk) -> None:
        disk.write_bytes("log", b"synced|")
        with disk.open("log", "ab") as f:
            for record in appends:
                f.write(record)

    _, report, survivors = crash_universe(log, seed=seed, scheduler="random")
    unsynced = b"".join(appends)
    assert survivors["log"].startswith(b"synced|")
    kept = survivors["log"][len(b"synced|") :]
    assert unsynced.startswith(kept)
    if appends:
        (file,) = report.files
        whole = sum(len(record) for record in appends[: file.kept_ops])
        assert len(kept) == whole + (file.torn.kept_bytes if file.torn else 0)
    else:
        assert report.files == ()


def test_a_failing_choice_source_ends_the_universe_and_leaves_the_disk_as_it_was() -> None:
    disk = Disk()
    disk.write_bytes("wal", b"base")
    with disk.open("wal", "ab") as wal:
        wal.write(b"unsynced")
    survivor: list[DiskFile] = []

    async def main() -> None:
        survivor.append(disk.open("wal", "rb"))
        disk._crash(running_simloop())

    # Decision #0 (disk.crash) has 2 alternatives; 7 does not fit.
    with pytest.raises(TapeMisalignedError, match=r"decision #0 \(disk.crash\)"):
        simloom.replay(main, Tape([(0, 7)]), strict=True)
    assert disk.read_bytes("wal") == b"baseunsynced"
    assert not survivor[0].closed, "the crash did not happen"
