"""File I/O inside a host: ``open()``, ``os``, ``pathlib``, ``shutil``, ``tempfile``,
``logging`` and ``aiofiles`` act on the running host's simulated disk, with the
disk's fsync, crash and torn-write semantics; imports, tracebacks, the Python
installation and everything outside a universe stay on the real disk; what cannot
be redirected is an EscapedSimulationError naming the call (simloom._hostfs,
docs/files.md)."""

from __future__ import annotations

import asyncio
import gc
import glob
import json
import logging
import os
import pathlib
import shutil
import socket
import sqlite3
import stat
import sys
import sysconfig
import tempfile
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiofiles
import aiofiles.os
import interrupt_points as points
import pytest
import simloom
from simloom import EscapedSimulationError, RunResult, World
from simloom._hostfs import FD_BASE


def run(main: Callable[..., Awaitable[Any]], **options: Any) -> RunResult:
    """One universe with the boundary (simloom.run's is opt-in), raising its error."""
    options.setdefault("scheduler", "fifo")
    result = simloom.run(main, boundary=True, **options)
    result.raise_error()
    return result


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes() if path.is_file() else b"<dir>"
        for path in sorted(directory.rglob("*"))
    }


# ----------------------------------------------------------------- the tree


def test_open_writes_the_running_hosts_disk_and_never_the_real_one(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("real")
    before = snapshot(tmp_path)
    target = tmp_path / "data" / "state.json"

    async def main(world: World) -> tuple[str, list[str]]:
        os.makedirs(target.parent)
        with open(target, "w") as file:
            json.dump({"answer": 42}, file)
        with open(target) as file:
            loaded = json.load(file)
        assert not os.path.exists(tmp_path / "kept.txt"), "the real file is not in the host"
        return f"{loaded['answer']}", world.main.disk.list(str(tmp_path))

    result = run(main)
    # (The test's tmp_path exists, empty, on every host: only data/ was made.)
    assert result.value == ("42", [f"{tmp_path}/data/", f"{target}"])
    assert snapshot(tmp_path) == before, "the real directory is untouched"


def test_each_host_has_its_own_files_and_working_directory() -> None:
    async def main(world: World) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def service(name: str) -> None:
            pathlib.Path("/etc").mkdir()
            pathlib.Path("/etc/hostname").write_text(name)
            os.chdir("/etc")
            await asyncio.sleep(1)
            seen[name] = (open("hostname").read(), os.getcwd(), sorted(os.listdir("/")))  # noqa: SIM115

        world.host("a").spawn(lambda: service("a"))
        world.host("b").spawn(lambda: service("b"))
        await asyncio.sleep(2)
        seen["main"] = (os.path.exists("/etc/hostname"), os.getcwd())
        seen["disks"] = (world.host("a").disk.read_bytes("/etc/hostname"),)
        return seen

    assert run(main).value == {
        "a": ("a", "/etc", ["etc", "tmp"]),
        "b": ("b", "/etc", ["etc", "tmp"]),
        "main": (False, "/"),
        "disks": (b"a",),
    }


def test_os_descriptors_are_simulated_and_real_ones_stay_real() -> None:
    async def main() -> tuple[Any, ...]:
        fd = os.open("/log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(fd, b"one\n")
        os.write(fd, b"two\n")
        os.fsync(fd)
        size = os.fstat(fd).st_size
        os.close(fd)
        reader = os.open("/log", os.O_RDONLY)
        os.lseek(reader, 4, os.SEEK_SET)
        tail = os.read(reader, 100)
        os.close(reader)
        with pytest.raises(OSError) as closed_twice:
            os.close(reader)
        with pytest.raises(FileExistsError):
            os.open("/log", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with pytest.raises(FileNotFoundError):
            os.open("/missing/file", os.O_WRONLY | os.O_CREAT)
        real = os.dup(1)  # a real descriptor (stdout) stays real
        os.close(real)
        mode = os.stat("/log").st_mode & 0o777
        return fd >= FD_BASE, size, tail, closed_twice.value.errno, real < FD_BASE, mode

    assert run(main).value == (True, 8, b"two\n", 9, True, 0o600)


def test_pathlib_shutil_glob_and_walk_work_on_the_host_unchanged() -> None:
    async def main() -> dict[str, Any]:
        root = pathlib.Path("/srv/app")
        (root / "conf").mkdir(parents=True)
        (root / "conf" / "a.toml").write_text("a = 1\n")
        (root / "conf" / "b.toml").write_bytes(b"b = 2\n")
        (root / "README").touch()
        shutil.copyfile(root / "conf" / "a.toml", root / "copy.toml")
        shutil.copy2(root / "conf" / "b.toml", root)
        shutil.copytree(root / "conf", "/backup/conf")
        shutil.move(str(root / "README"), "/backup")
        out = {
            "iterdir": sorted(p.name for p in root.iterdir()),
            "glob": sorted(str(p) for p in root.glob("**/*.toml")),
            "stdlib glob": sorted(glob.glob("/backup/**", recursive=True)),
            "walk": [(d, sorted(ds), sorted(fs)) for d, ds, fs in os.walk("/srv")],
            "copy": (root / "copy.toml").read_text(),
            "stat": ((root / "b.toml").stat().st_size, (root / "conf").is_dir()),
        }
        shutil.rmtree("/srv")
        (pathlib.Path("/backup") / "README").rename("/backup/README.md")
        out["after"] = (os.path.exists("/srv"), sorted(os.listdir("/backup")))
        return out

    assert run(main).value == {
        "iterdir": ["b.toml", "conf", "copy.toml"],
        "glob": [
            "/srv/app/b.toml",
            "/srv/app/conf/a.toml",
            "/srv/app/conf/b.toml",
            "/srv/app/copy.toml",
        ],
        "stdlib glob": [
            "/backup/",
            "/backup/README",
            "/backup/conf",
            "/backup/conf/a.toml",
            "/backup/conf/b.toml",
        ],
        "walk": [
            ("/srv", ["app"], []),
            ("/srv/app", ["conf"], ["b.toml", "copy.toml"]),
            ("/srv/app/conf", [], ["a.toml", "b.toml"]),
        ],
        "copy": "a = 1\n",
        "stat": (6, True),
        "after": (False, ["README.md", "conf"]),
    }


def test_errors_are_the_ones_the_os_raises() -> None:
    async def main() -> list[str]:
        pathlib.Path("/d").mkdir()
        pathlib.Path("/d/f").write_text("x")
        attempts: list[Callable[[], object]] = [
            lambda: open("/nope"),  # noqa: SIM115
            lambda: open("/d"),  # noqa: SIM115
            lambda: os.rmdir("/d"),
            lambda: os.mkdir("/d"),
            lambda: os.unlink("/d"),
            lambda: os.listdir("/d/f"),
            lambda: open("/d/f/g", "w"),  # noqa: SIM115
            lambda: os.rmdir("/tmp"),
        ]
        names = []
        for attempt in attempts:
            try:
                attempt()
            except OSError as error:
                names.append(type(error).__name__)
        return names

    assert run(main).value == [
        "FileNotFoundError",
        "IsADirectoryError",
        "OSError",  # ENOTEMPTY
        "FileExistsError",
        "IsADirectoryError",
        "NotADirectoryError",
        "NotADirectoryError",
        "OSError",  # EBUSY: /tmp is always there
    ]


# -------------------------------------------------------- crashes and restarts


def append_synced_then_unsynced(write: Callable[[str, bytes, bool], object]) -> Callable[..., Any]:
    """A universe: host ``db`` records what its file holds at each start, appends
    ``synced`` durably and ``lost?`` without fsync; it crashes and restarts."""

    async def main(world: World) -> list[bytes]:
        starts: list[bytes] = []

        async def service() -> None:
            starts.append(open("/data/wal", "rb").read() if os.path.exists("/data/wal") else b"")  # noqa: SIM115
            if not os.path.isdir("/data"):
                os.mkdir("/data")
            result = write("/data/wal", b"synced;", True)
            if asyncio.iscoroutine(result):
                await result
            result = write("/data/wal", b"lost?;", False)
            if asyncio.iscoroutine(result):
                await result
            await asyncio.sleep(10)

        db = world.host("db")
        db.spawn(service)
        await asyncio.sleep(1)
        db.crash()
        db.restart()
        await asyncio.sleep(1)
        return starts

    return main


def write_with_open(path: str, data: bytes, fsync: bool) -> None:
    with open(path, "ab") as file:
        file.write(data)
        if fsync:
            file.flush()
            os.fsync(file.fileno())


def write_with_os(path: str, data: bytes, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, data)
    if fsync:
        os.fdatasync(fd)
    os.close(fd)


def write_with_pathlib(path: str, data: bytes, fsync: bool) -> None:
    with pathlib.Path(path).open("a", encoding="ascii") as file:
        file.write(data.decode())
        if fsync:
            file.flush()
            os.fsync(file)


def write_with_shutil(path: str, data: bytes, fsync: bool) -> None:
    """Copy the file with what appended, and replace it (the copy fsynced or not)."""
    with open(path + ".new", "wb") as file:
        file.write(data)
    if os.path.exists(path):
        with open(path, "rb") as old, open(path + ".new", "wb") as new:
            shutil.copyfileobj(old, new)
            new.write(data)
    shutil.copyfile(path + ".new", path + ".copy")
    if fsync:
        fd = os.open(path + ".copy", os.O_RDWR)
        os.fsync(fd)
        os.close(fd)
    os.replace(path + ".copy", path)
    if fsync:
        directory = os.open(os.path.dirname(path), os.O_RDONLY)
        os.fsync(directory)
        os.close(directory)
    os.remove(path + ".new")


async def write_with_aiofiles(path: str, data: bytes, fsync: bool) -> None:
    async with aiofiles.open(path, "ab") as file:
        await file.write(data)
        if fsync:
            await file.flush()
            await asyncio.get_running_loop().run_in_executor(None, os.fsync, file.fileno())


WRITERS = {
    "open": write_with_open,
    "os": write_with_os,
    "pathlib": write_with_pathlib,
    "shutil": write_with_shutil,
    "aiofiles": write_with_aiofiles,
}


@pytest.mark.parametrize("api", sorted(WRITERS))
def test_a_canonical_crash_keeps_the_fsynced_writes_and_loses_the_rest(api: str) -> None:
    main = append_synced_then_unsynced(WRITERS[api])
    result = run(main, scheduler="fifo")
    # (FIFO makes every crash choice 0: the canonical crash keeps only what was fsynced.)
    assert result.value == [b"", b"synced;"], api


@pytest.mark.parametrize("api", ["open", "os", "pathlib", "aiofiles"])
def test_seeded_crashes_keep_tear_or_lose_unsynced_appends(api: str) -> None:
    main = append_synced_then_unsynced(WRITERS[api])
    outcomes = set()
    for seed in range(40):
        starts = run(main, seed=seed, scheduler="random").value
        after = starts[1]
        assert after.startswith(b"synced;"), (seed, after)
        rest = after[len(b"synced;") :]
        assert b"lost?;".startswith(rest), (seed, after)
        outcomes.add("lost" if not rest else "kept" if rest == b"lost?;" else "torn")
    assert outcomes == {"lost", "kept", "torn"}


def test_a_new_file_needs_its_directory_fsynced_or_a_later_fsync_to_keep_its_name() -> None:
    async def main(world: World) -> list[list[str]]:
        seen: list[list[str]] = []

        async def service() -> None:
            seen.append(sorted(os.listdir("/")))
            if not seen[1:]:
                os.mkdir("/kept")
                root = os.open("/", os.O_RDONLY)
                os.fsync(root)  # the directory entry is durable
                os.close(root)
                os.mkdir("/lost")
            await asyncio.sleep(10)

        db = world.host("db")
        db.spawn(service)
        await asyncio.sleep(1)
        db.crash()
        db.restart()
        await asyncio.sleep(1)
        return seen

    assert run(main).value == [["tmp"], ["kept", "tmp"]]


def test_a_crash_closes_the_hosts_files_and_resets_its_working_directory() -> None:
    async def main(world: World) -> tuple[Any, ...]:
        opened: list[Any] = []
        cwd: list[str] = []

        async def service() -> None:
            cwd.append(os.getcwd())
            if not opened:
                os.mkdir("/work")
                os.chdir("/work")
                opened.append(open("/work/f", "w"))  # noqa: SIM115
            await asyncio.sleep(10)

        db = world.host("db")
        db.spawn(service)
        await asyncio.sleep(1)
        db.crash()
        db.restart()
        await asyncio.sleep(1)
        return opened[0].closed, cwd

    assert run(main).value == (True, ["/", "/"])


def test_a_unix_socket_bound_to_a_path_makes_its_name_in_the_hosts_tree() -> None:
    async def main(world: World) -> tuple[Any, ...]:
        os.mkdir("/run")
        server = socket.socket(socket.AF_UNIX)
        server.bind("/run/app.sock")
        server.listen()
        client = socket.socket(socket.AF_UNIX)
        client.connect("/run/app.sock")
        accepted, _ = server.accept()
        client.sendall(b"ping")
        received = accepted.recv(4)
        for each in (client, accepted, server):
            each.close()
        is_socket = stat.S_ISSOCK(os.stat("/run/app.sock").st_mode)
        os.unlink("/run/app.sock")
        return received, is_socket, os.listdir("/run"), world.main.disk.list("/run")

    assert run(main).value == (b"ping", True, [], ["/run/"])
    assert not os.path.exists("/run/app.sock")


# ------------------------------------------------------- libraries unchanged


def test_logging_file_handler_json_and_tempfile_work_on_the_host(tmp_path: Path) -> None:
    before = snapshot(tmp_path)

    async def main(world: World) -> tuple[Any, ...]:
        log_path = tmp_path / "service.log"
        assert os.listdir(tmp_path) == [], "tmp_path is on every host, empty"
        handler = logging.FileHandler(log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        logger = logging.getLogger("simloom.tests.hostfs")
        logger.addHandler(handler)
        try:
            logger.warning("disk %s", "full")
        finally:
            logger.removeHandler(handler)
            handler.close()
        fd, name = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as file:
            json.dump([1, 2], file)
        with tempfile.TemporaryDirectory() as scratch:
            pathlib.Path(scratch, "x").write_text("x")
            inside = sorted(os.listdir(scratch))
        with tempfile.TemporaryFile() as anonymous:
            anonymous.write(b"nameless")
            anonymous.seek(0)
            nameless = anonymous.read()
        return (
            log_path.read_text(),
            json.loads(pathlib.Path(name).read_text()),
            inside,
            nameless,
            os.path.dirname(name) == tempfile.gettempdir(),
            world.main.disk.exists(name),
            name,
        )

    first = run(main).value
    assert first[:6] == ("WARNING disk full\n", [1, 2], ["x"], b"nameless", True, True)
    assert not os.path.exists(first[6]), "the temporary file is in the host only"
    assert run(main).value[6] == first[6], "temporary names come from the tape"
    assert snapshot(tmp_path) == before


def test_aiofiles_runs_on_the_host_that_started_it() -> None:
    async def main(world: World) -> tuple[Any, ...]:
        async def writer() -> None:
            await aiofiles.os.makedirs("/var/spool", exist_ok=True)
            async with aiofiles.open("/var/spool/job", "w") as file:
                await file.write("print")
            async with aiofiles.open("/var/spool/job") as file:
                assert await file.read() == "print"

        await world.host("printer").run(writer())
        return (
            world.host("printer").disk.list("/var"),
            world.main.disk.list(),
            await aiofiles.os.path.exists("/var/spool/job"),
        )

    assert run(main).value == (["/var/", "/var/spool/", "/var/spool/job"], [], False)


# ------------------------------------------------------ what stays real


def test_outside_a_universe_and_with_files_false_the_disk_is_real(tmp_path: Path) -> None:
    target = tmp_path / "real.txt"

    async def main() -> str:
        target.write_text("written for real")
        return os.listdir(tmp_path)[0]

    assert run(main, files=False).value == "real.txt"
    assert target.read_text() == "written for real"
    assert run(main, world=False).value == "real.txt"

    async def simulated() -> bool:
        return target.exists()

    assert run(simulated).value is False


def test_imports_tracebacks_and_the_installation_read_the_real_disk(tmp_path: Path) -> None:
    (tmp_path / "hostfs_imported_module.py").write_text(
        "VALUE = 'imported from the real disk'\n"
        "def fail():\n"
        "    raise ValueError('the source line is shown')\n"
    )
    sys.path.insert(0, str(tmp_path))

    async def main() -> tuple[str, str, int, str]:
        import hostfs_imported_module

        try:
            hostfs_imported_module.fail()
        except ValueError:
            shown = traceback.format_exc()
        stdlib_source = open(os.__file__, encoding="utf-8").read(100)  # noqa: SIM115
        return (
            hostfs_imported_module.VALUE,
            shown,
            len(stdlib_source),
            str(os.path.exists(tmp_path / "hostfs_imported_module.py")),
        )

    try:
        value, shown, read, exists = run(main).value
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("hostfs_imported_module", None)
    assert value == "imported from the real disk"
    assert "raise ValueError('the source line is shown')" in shown
    assert read == 100
    assert exists == "False", "the program's own call is the host's"


def test_the_time_zone_database_is_read_from_the_real_disk() -> None:
    # zoneinfo's C implementation opens the files itself, with no zoneinfo frame on
    # the stack: the database's directories are read-only system data.
    import zoneinfo

    async def main() -> str:
        zoneinfo.ZoneInfo.clear_cache()
        return str(zoneinfo.ZoneInfo("Europe/Paris").utcoffset(None))

    with_disk = run(main, scheduler="fifo").value
    assert with_disk == str(zoneinfo.ZoneInfo("Europe/Paris").utcoffset(None))


def escape_of(action: Callable[[], object]) -> str:
    async def main() -> str:
        with pytest.raises(EscapedSimulationError) as raised:
            action()
        return str(raised.value)

    return str(run(main).value)


def test_sqlite3_on_a_file_is_an_escape_naming_the_call(tmp_path: Path) -> None:
    message = escape_of(lambda: sqlite3.connect(tmp_path / "app.db"))
    assert message.startswith(f"sqlite3.connect({tmp_path / 'app.db'!r}): SQLite opens")
    assert not (tmp_path / "app.db").exists()

    async def in_memory() -> int:
        with sqlite3.connect(":memory:") as db:
            return int(db.execute("select 41 + 1").fetchone()[0])

    assert run(in_memory).value == 42


def test_calls_the_disk_cannot_model_are_escapes_naming_the_call() -> None:
    assert escape_of(lambda: open("/dev/urandom", "rb")).startswith("open('/dev/urandom'): device")  # noqa: SIM115
    assert escape_of(lambda: os.open("/proc/self/status", os.O_RDONLY)).startswith(
        "os.open('/proc/self/status')"
    )
    assert escape_of(lambda: os.symlink("/a", "/b")).startswith("os.symlink('/b'): ")
    assert escape_of(lambda: os.chown("/tmp", 0, 0)).startswith("os.chown('/tmp'): ")
    assert escape_of(lambda: shutil.disk_usage("/")).startswith("os.statvfs('/'): ")
    stdlib = sysconfig.get_paths()["stdlib"]
    message = escape_of(lambda: open(os.path.join(stdlib, "simloom-was-here.txt"), "w"))  # noqa: SIM115
    assert "change the Python installation" in message
    assert not os.path.exists(os.path.join(stdlib, "simloom-was-here.txt"))


# ------------------------------------------------------------ determinism


def file_heavy_universe() -> Callable[..., Any]:
    async def main(world: World) -> list[str]:
        async def writer(index: int) -> None:
            for round_ in range(3):
                path = f"/data/{index}-{round_}"
                with open(path, "w") as file:
                    file.write("x" * (index + round_))
                    if round_ % 2:
                        file.flush()
                        os.fsync(file.fileno())
                await asyncio.sleep(0.01)

        async def service() -> None:
            os.makedirs("/data", exist_ok=True)
            await asyncio.gather(*(writer(index) for index in range(3)))
            await asyncio.sleep(10)

        db = world.host("db")
        db.spawn(service)
        await asyncio.sleep(0.02)
        db.crash()
        db.restart()
        await asyncio.sleep(0.1)
        return sorted(world.host("db").disk.list())

    return main


def test_the_same_seed_gives_the_same_event_log_digest_with_file_io() -> None:
    main = file_heavy_universe()
    first = run(main, seed=5, scheduler="random")
    again = run(main, seed=5, scheduler="random")
    assert (first.digest, first.value) == (again.digest, again.value)
    assert any((event.label or "").startswith("disk.") for event in first.event_log), (
        "the crash decided what survived"
    )
    digests = {run(main, seed=seed, scheduler="random").digest for seed in range(6)}
    assert len(digests) > 1


# ------------------------------------------------------------ interrupts


async def file_universe() -> None:
    with open("/f", "w") as file:
        file.write("x")
    fd, name = tempfile.mkstemp()
    os.close(fd)
    os.listdir("/")
    os.remove(name)
    await asyncio.sleep(1)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # interrupted universes abandon coroutines
def test_keyboard_interrupt_anywhere_in_a_file_universe_propagates_and_restores(
    tmp_path: Path,
) -> None:
    def action() -> object:
        return simloom.run(file_universe, boundary=True)

    baseline = points.Baseline()
    names_before = tempfile._name_sequence  # type: ignore[attr-defined]
    traced = points.trace_points(action)
    # Every point with SIMLOOM_EXHAUSTIVE_INTERRUPTS=1 (as test_restoration.py),
    # else a sample spread over the universe's life.
    exhaustive = os.environ.get("SIMLOOM_EXHAUSTIVE_INTERRUPTS") == "1"
    selected = range(0, len(traced), 1 if exhaustive else max(1, len(traced) // 80))
    broken: list[str] = []
    for point in selected:
        # What an interrupted universe left (a file its interrupt cut off before
        # close) is collected here, not by a finaliser inside the next traced run.
        gc.collect()
        reached, where = points.interrupt_at(point, action)
        if where is None:
            continue
        problems = points.broken_state(baseline)
        real = tmp_path / "real"
        real.write_text("real")  # file I/O is real again
        if not real.exists() or os.listdir(tmp_path) != ["real"]:
            problems.append("file I/O is not real")
        if tempfile._name_sequence is not names_before:  # type: ignore[attr-defined]
            problems.append("tempfile's name generator is not restored")
        if reached != 1 or problems:
            broken.append(f"{where}: reached={reached} {problems}")
            points.repair(baseline)
    assert not broken, "\n".join(broken[:20])
