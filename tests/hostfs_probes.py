"""One behaviour probe per file row of the boundary table (simloom._hostfs): in a
universe the call acts on the running host's disk, and the real disk never sees
the probe's paths (``/simloom-probe``, which does not exist for real). Shared by
test_boundary.py (every patched or escaping row has a probe)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from typing import Any

import aiofiles
import aiofiles.os
import simloom

ROOT = "/simloom-probe"


def on_a_host(action: Callable[[], Any], expected: Any) -> Callable[[], None]:
    """A probe: ``action()`` on host ``probe`` returns ``expected``, and what it
    wrote is in that host's disk and nowhere real."""

    async def main(world: simloom.World) -> tuple[Any, list[str]]:
        async def on_the_host() -> Any:
            os.mkdir(ROOT)
            outcome = action()
            if asyncio.iscoroutine(outcome):
                outcome = await outcome
            return outcome

        value = await world.host("probe").run(on_the_host())
        return value, world.host("probe").disk.list(ROOT)

    def probe() -> None:
        assert not os.path.exists(ROOT)
        result = simloom.run(main, boundary=True)
        result.raise_error()
        value, listed = result.value
        assert value == expected, value
        assert listed and listed[0] == ROOT + "/", listed
        assert not os.path.exists(ROOT), "the probe reached the real disk"

    return probe


def escapes(api: str, action: Callable[[], object]) -> Callable[[], None]:
    """A probe: ``action()`` in a universe raises EscapedSimulationError naming
    the call (``api(path)``)."""

    async def main() -> str:
        try:
            action()
        except simloom.EscapedSimulationError as escape:
            return str(escape)
        return "no escape"

    def probe() -> None:
        result = simloom.run(main, boundary=True)
        result.raise_error()
        assert result.value.startswith(f"{api}("), result.value
        assert "simulated world" in result.value

    return probe


def _open() -> str:
    with open(f"{ROOT}/f", "w", encoding="utf-8") as file:
        file.write("text")
    with open(f"{ROOT}/f", encoding="utf-8") as file:
        return file.read()


def _os_open() -> tuple[bool, int]:
    fd = os.open(f"{ROOT}/f", os.O_RDWR | os.O_CREAT)
    written = os.write(fd, b"abc")
    os.close(fd)
    return fd >= 2**30, written


def _os_read() -> tuple[bytes, int, int]:
    fd = os.open(f"{ROOT}/f", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"abcdef")
    os.lseek(fd, 2, os.SEEK_SET)
    read = os.read(fd, 2)
    os.ftruncate(fd, 5)
    size = os.fstat(fd).st_size
    out = os.open(f"{ROOT}/g", os.O_WRONLY | os.O_CREAT)
    sent = os.sendfile(out, fd, 0, 100)
    os.close(out)
    os.close(fd)
    return read, size, sent


def _fsync() -> str:
    fd = os.open(f"{ROOT}/f", os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"x")
    os.fsync(fd)
    os.fdatasync(fd)
    os.close(fd)
    return "synced"


def _stat() -> tuple[int, bool, bool, bool]:
    pathlib.Path(f"{ROOT}/f").write_bytes(b"1234")
    return (
        os.stat(f"{ROOT}/f").st_size,
        os.path.isfile(f"{ROOT}/f"),
        os.path.isdir(ROOT),
        os.access(f"{ROOT}/f", os.R_OK),
    )


def _listdir() -> tuple[list[str], list[str]]:
    for name in ("b", "a"):
        pathlib.Path(ROOT, name).touch()
    with os.scandir(ROOT) as entries:
        scanned = [entry.name for entry in entries]
    return os.listdir(ROOT), scanned


def _mkdir() -> tuple[bool, bool]:
    os.mkdir(f"{ROOT}/d")
    made = os.path.isdir(f"{ROOT}/d")
    os.rmdir(f"{ROOT}/d")
    return made, os.path.exists(f"{ROOT}/d")


def _remove() -> bool:
    pathlib.Path(f"{ROOT}/f").touch()
    os.remove(f"{ROOT}/f")
    pathlib.Path(f"{ROOT}/g").touch()
    os.unlink(f"{ROOT}/g")
    return os.path.exists(f"{ROOT}/f") or os.path.exists(f"{ROOT}/g")


def _rename() -> list[str]:
    pathlib.Path(f"{ROOT}/f").write_text("1")
    os.rename(f"{ROOT}/f", f"{ROOT}/g")
    pathlib.Path(f"{ROOT}/h").write_text("2")
    os.replace(f"{ROOT}/h", f"{ROOT}/g")
    return os.listdir(ROOT)


def _truncate() -> int:
    pathlib.Path(f"{ROOT}/f").write_text("123456")
    os.truncate(f"{ROOT}/f", 2)
    return os.path.getsize(f"{ROOT}/f")


def _getcwd() -> tuple[str, str, bytes]:
    before = os.getcwd()
    os.chdir(ROOT)
    return before, os.getcwd(), os.getcwdb()


def _utime() -> tuple[int, int]:
    pathlib.Path(f"{ROOT}/f").touch()
    os.utime(f"{ROOT}/f", ns=(5_000_000_000, 7_000_000_000))
    os.chmod(f"{ROOT}/f", 0o600)
    status = os.stat(f"{ROOT}/f")
    return status.st_mtime_ns, status.st_mode & 0o777


def _pathlib() -> tuple[str, list[str], bool]:
    path = pathlib.Path(ROOT) / "sub"
    path.mkdir()
    (path / "x.txt").write_text("x")
    return (
        (path / "x.txt").read_text(),
        [p.name for p in pathlib.Path(ROOT).glob("*/*.txt")],
        (path / "x.txt").exists(),
    )


def _shutil() -> tuple[str, list[str]]:
    pathlib.Path(f"{ROOT}/a").mkdir()
    pathlib.Path(f"{ROOT}/a/f").write_text("copied")
    shutil.copytree(f"{ROOT}/a", f"{ROOT}/b")
    shutil.rmtree(f"{ROOT}/a")
    shutil.move(f"{ROOT}/b/f", f"{ROOT}/g")
    return pathlib.Path(f"{ROOT}/g").read_text(), sorted(os.listdir(ROOT))


def _tempfile() -> tuple[bool, bool]:
    fd, name = tempfile.mkstemp(dir=ROOT)
    os.close(fd)
    with tempfile.TemporaryDirectory(dir=ROOT) as scratch:
        made = os.path.isdir(scratch)
    return os.path.exists(name) and made, os.path.exists(scratch)


async def _aiofiles() -> tuple[str, bool]:
    async with aiofiles.open(f"{ROOT}/f", "w") as file:
        await file.write("async")
    async with aiofiles.open(f"{ROOT}/f") as file:
        text = await file.read()
    return text, await aiofiles.os.path.exists(f"{ROOT}/f")


PROBES: dict[str, Callable[[], None]] = {
    "open": on_a_host(_open, "text"),
    "os.open": on_a_host(_os_open, (True, 3)),
    "os.read": on_a_host(_os_read, (b"cd", 5, 5)),
    "os.fsync": on_a_host(_fsync, "synced"),
    "os.stat": on_a_host(_stat, (4, True, True, True)),
    "os.listdir": on_a_host(_listdir, (["a", "b"], ["a", "b"])),
    "os.mkdir": on_a_host(_mkdir, (True, False)),
    "os.remove": on_a_host(_remove, False),
    "os.rename": on_a_host(_rename, ["g"]),
    "os.truncate": on_a_host(_truncate, 2),
    "os.getcwd": on_a_host(_getcwd, ("/", ROOT, ROOT.encode())),
    "os.utime": on_a_host(_utime, (7_000_000_000, 0o600)),
    "os.link": escapes("os.link", lambda: os.link(f"{ROOT}/a", f"{ROOT}/b")),
    "os.mkfifo": escapes("os.mkfifo", lambda: os.mkfifo(f"{ROOT}/fifo")),
    "os.chown": escapes("os.chown", lambda: os.chown(f"{ROOT}/f", 0, 0)),
    "os.getxattr": escapes("os.getxattr", lambda: os.getxattr(f"{ROOT}/f", "user.x")),
    "os.statvfs": escapes("os.statvfs", lambda: os.statvfs("/")),
    "sqlite3.connect": escapes("sqlite3.connect", lambda: sqlite3.connect(f"{ROOT}/db")),
    "pathlib.Path": on_a_host(_pathlib, ("x", ["x.txt"], True)),
    "shutil": on_a_host(_shutil, ("copied", ["b", "g"])),
    "tempfile": on_a_host(_tempfile, (True, False)),
    "aiofiles": on_a_host(_aiofiles, ("async", True)),
}
