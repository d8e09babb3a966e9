"""The simulated disk: one per host, in memory, with the durability a real disk promises.

    disk = Disk()
    with disk.open("wal", "ab") as wal:
        wal.write(record)
        wal.fsync()                  # now the record survives a power cut

**Only fsynced state survives a crash.** Until then a write is *pending*: reads see it
at once, but a power cut decides, by a choice on the universe's tape, how much of it
reached the platter. Per file, the pending operations (writes and truncates) survive
as a prefix in issue order: the first *k* were flushed and are kept whole, the next
write may be *torn* (only its first bytes survive), every later one is lost. (A real
page cache may also write back out of order; this model does not.) The canonical
(shrunk) choice is "lost": a crash with every choice at 0 leaves exactly what was
fsynced, so a missing fsync fails in the simplest universe, and the shrinker moves
toward less surviving luck. Seeded universes pick *k* uniformly and tear half the
interrupted writes, at a uniform byte.

The rules, as the Rust model (``rust/src/disk.rs``) keeps them:

- :meth:`DiskFile.fsync` makes that file's data durable, and the directory entries
  (create, rename, delete) up to its latest one: the journal commits in order, as
  ext4 and XFS do.
- :meth:`Disk.fsync_dir` makes every pending create, rename and delete durable, but
  no file data; :meth:`Disk.sync` makes everything durable.
- ``close`` and ``flush`` promise nothing. There is no page cache to flush: a write
  is visible to every reader as soon as it returns.
- A crash closes every file opened before it (their operations raise
  ``ValueError: I/O operation on closed file``, like any closed file object), and
  the choices are labelled ``disk.crash_dir``, ``disk.crash`` and ``disk.torn_at`` in
  the event log.

The namespace is flat: a path is any non-empty string, there are no directories to
create, and :meth:`Disk.list` lists paths by prefix. Files hold bytes; text mode is
not offered. Operations are synchronous and take no virtual time, so they never
yield to the scheduler. Errors are the ones the OS raises (``FileNotFoundError``,
``FileExistsError``, ``OSError`` with ``errno.ENOSPC`` when a disk made with a
``capacity`` is full, ``io.UnsupportedOperation`` for a write to a file opened for
reading), so code under test needs no simloom imports to handle them.

Owns: the user-facing disk and file objects, and turning a crash's outcome into a
:class:`CrashReport`. Must not: decide what survives (the Rust model does, with the
universe's choices) or touch the real filesystem.
"""

from __future__ import annotations

import builtins
import io
import operator
import os
from collections.abc import Buffer
from dataclasses import dataclass, field
from typing import BinaryIO

from . import _core
from .errors import SimloomUsageError

__all__ = ["CrashReport", "Disk", "DiskFile", "FileCrash", "TornWrite"]

#: Largest capacity a disk can have (the model counts bytes in 64 bits).
_MAX_CAPACITY = 2**64 - 1


@dataclass(frozen=True)
class TornWrite:
    """A write cut by a crash: its first ``kept_bytes`` of ``length`` survived."""

    kept_bytes: int
    length: int


@dataclass(frozen=True)
class FileCrash:
    """What a crash left of one file's unsynced operations (writes and truncates).

    The first ``kept_ops`` survived whole; the next one is ``torn`` if some of its
    bytes survived; the remaining ``lost_ops`` are gone.
    """

    path: str
    unsynced_ops: int
    kept_ops: int
    torn: TornWrite | None

    @property
    def lost_ops(self) -> int:
        """Unsynced operations of which nothing survived."""
        return self.unsynced_ops - self.kept_ops - (self.torn is not None)


@dataclass(frozen=True)
class CrashReport:
    """What one power cut let through.

    ``kept_dir_entries`` of the ``unsynced_dir_entries`` pending creates, renames and
    deletes survived, oldest first. ``files`` lists every file that still has a name
    after the crash and had unsynced data, oldest file first. ``str(report)`` tells
    it in words::

        crash:
          directory: 1 of 1 unsynced entries survived
          wal: 2 of 3 unsynced ops survived, op #3 torn after 3 of 4 bytes
    """

    unsynced_dir_entries: int
    kept_dir_entries: int
    files: tuple[FileCrash, ...]
    story: str = field(repr=False, compare=False)

    @property
    def lost_dir_entries(self) -> int:
        """Unsynced directory entries that did not survive."""
        return self.unsynced_dir_entries - self.kept_dir_entries

    @property
    def canonical(self) -> bool:
        """True if exactly the fsynced state survived (every crash choice was 0)."""
        return self.kept_dir_entries == 0 and all(
            file.kept_ops == 0 and file.torn is None for file in self.files
        )

    def __str__(self) -> str:
        return self.story


def _path(path: str | os.PathLike[str]) -> str:
    """Paths are text; ``os.PathLike`` objects (a ``PurePosixPath``) are welcome."""
    name = os.fspath(path)
    if not isinstance(name, str):
        raise TypeError(f"a simulated path is a str, got {type(name).__name__}: {name!r}")
    return name


class Disk:
    """One host's disk. Every method is synchronous and deterministic; what a power
    cut leaves is decided by the universe's tape (see the module docs).

    ``capacity`` bounds the bytes of file content (``None``: unlimited). A write or
    truncate that would need more raises ``OSError(errno.ENOSPC, ...)`` and changes
    nothing: there are no short writes.
    """

    def __init__(self, *, capacity: int | None = None) -> None:
        if capacity is not None and (
            isinstance(capacity, bool)
            or not isinstance(capacity, int)
            or not 0 <= capacity <= _MAX_CAPACITY
        ):
            raise SimloomUsageError(
                f"capacity must be None (unlimited) or an int of bytes in "
                f"[0, 2**64 - 1], got {capacity!r}"
            )
        self._core = _core.DiskCore(capacity)

    def __repr__(self) -> str:
        return (
            f"<simloom.disk.Disk files={len(self._core.list())} used={self.used} "
            f"capacity={self.capacity}>"
        )

    @property
    def capacity(self) -> int | None:
        """The most bytes of file content this disk holds (``None``: unlimited)."""
        return self._core.capacity()

    @property
    def used(self) -> int:
        """Bytes held by files that have a name or are still open, as reads see them."""
        return self._core.used()

    def open(self, path: str | os.PathLike[str], mode: str = "r") -> DiskFile:
        """Open a file as ``open(path, mode)`` would, but always in binary mode.

        ``mode`` is one of ``r w a x``, optionally with ``+`` and ``b`` (``"r"`` and
        ``"rb"`` are the same): ``r`` needs the file, ``w`` creates or empties it,
        ``a`` appends, ``x`` creates a new file (``FileExistsError`` if it exists). A
        new file's name is pending like its data until fsynced.
        """
        name = _path(path)
        if not isinstance(mode, str):
            raise TypeError(f"mode must be a str, not {type(mode).__name__}")
        if "t" in mode:
            raise ValueError(
                f"invalid mode: {mode!r}: the simulated disk holds bytes; open the file "
                f"in binary mode and decode what you read"
            )
        fd = self._core.open(name, mode)
        return DiskFile(self, fd, name, mode)

    def read_bytes(self, path: str | os.PathLike[str]) -> bytes:
        """The whole file, as reads see it now."""
        return self._core.contents(_path(path))

    def write_bytes(self, path: str | os.PathLike[str], data: Buffer, *, fsync: bool = True) -> int:
        """Create or replace the file with ``data``; returns its length.

        With ``fsync=True`` (the default) the data and the file's name are durable on
        return; with ``fsync=False`` both are pending and a crash may lose them. The
        replacement is not atomic: a crash between the truncate and the write can
        leave the file empty unless it is fsynced.
        """
        with self.open(path, "wb") as file:
            written = file.write(data)
            if fsync:
                file.fsync()
        return written

    def rename(self, src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        """Rename ``src`` to ``dst``, replacing any file at ``dst`` (``os.replace``).
        Pending until :meth:`fsync_dir` or an fsync of the renamed file."""
        self._core.rename(_path(src), _path(dst))

    def delete(self, path: str | os.PathLike[str]) -> None:
        """Remove the name (``os.remove``). Files open on it stay readable. Pending
        until :meth:`fsync_dir`: a crash before it can bring the file back."""
        self._core.delete(_path(path))

    def list(self, prefix: str = "") -> builtins.list[str]:
        """Every path that starts with ``prefix``, sorted."""
        return self._core.list(prefix)

    def exists(self, path: str | os.PathLike[str]) -> bool:
        """Does a file have this name now (pending creates and deletes included)?"""
        return self._core.exists(_path(path))

    def size(self, path: str | os.PathLike[str]) -> int:
        """The file's length in bytes, as reads see it now."""
        return self._core.size(_path(path))

    def fsync_dir(self) -> None:
        """Make every pending create, rename and delete durable (not file data)."""
        self._core.fsync_dir()

    def sync(self) -> None:
        """Make everything durable, as ``os.sync()`` before a clean shutdown."""
        self._core.sync()

    def _crash(self, loop: _core.LoopCore) -> CrashReport:
        """A power cut, for the world to call when this disk's host loses power.

        ``loop`` is the universe's loop (a :class:`~simloom.SimLoop`): its tape
        decides what survives, and the decisions appear in its event log. Every file
        opened before the crash is closed. If the choice source fails, the error is
        raised, ends the universe, and the disk is left as it was.
        """
        story, unsynced_dir_entries, kept_dir_entries, files = self._core.crash(loop)
        return CrashReport(
            unsynced_dir_entries=unsynced_dir_entries,
            kept_dir_entries=kept_dir_entries,
            files=tuple(
                FileCrash(
                    path=path,
                    unsynced_ops=unsynced_ops,
                    kept_ops=kept_ops,
                    torn=None if torn is None else TornWrite(*torn),
                )
                for path, unsynced_ops, kept_ops, torn in files
            ),
            story=story,
        )


def _normalized_mode(mode: str) -> tuple[str, bool, bool]:
    """``(mode as FileIO reports it, readable, writable)`` for a mode the model
    accepted: ``"r+"`` is ``"rb+"``, ``"w"`` is ``"wb"``, ``"a+"`` is ``"ab+"``."""
    plus = "+" in mode
    kind = next(letter for letter in mode if letter in "rwax")
    readable = kind == "r" or plus
    writable = kind != "r" or plus
    if kind in "ax":
        return f"{kind}b{'+' if plus else ''}", readable, writable
    if readable and writable:
        return "rb+", True, True
    return ("rb", True, False) if readable else ("wb", False, True)


class DiskFile(io.BufferedIOBase, BinaryIO):
    """A file on a simulated :class:`Disk`, as ``open(path, "rb")`` and friends return.

    It behaves like the stdlib's binary files (``read``, ``write``, ``seek``,
    ``tell``, ``truncate``, ``readline``, iteration, ``with``), raising the same
    exceptions, plus :meth:`fsync`. It has no OS file descriptor: ``fileno()``
    raises ``io.UnsupportedOperation``, so call :meth:`fsync` rather than
    ``os.fsync(file.fileno())``. Writes are never buffered, so :meth:`flush` has
    nothing to do.
    """

    def __init__(self, disk: Disk, fd: int, name: str, mode: str) -> None:
        """Use :meth:`Disk.open`; this wraps a handle it opened."""
        super().__init__()
        self._core_disk = disk._core
        self._fd = fd
        self._name = name
        self._mode, self._readable, self._writable = _normalized_mode(mode)

    def __repr__(self) -> str:
        return (
            f"<simloom.disk.DiskFile name={self._name!r} mode={self._mode!r} closed={self.closed}>"
        )

    @property
    def name(self) -> str:
        """The path the file was opened with."""
        return self._name

    @property
    def mode(self) -> str:
        """The binary mode as the stdlib reports it (``"r+"`` → ``"rb+"``)."""
        return self._mode

    @property
    def closed(self) -> bool:
        """True once closed, by :meth:`close` or by a crash of the disk."""
        return not self._core_disk.is_open(self._fd)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def close(self) -> None:
        """Release the file. Promises nothing about durability; closing twice is fine."""
        if not self.closed:
            self._core_disk.close(self._fd)

    def readable(self) -> bool:
        self._check_open()
        return self._readable

    def writable(self) -> bool:
        self._check_open()
        return self._writable

    def seekable(self) -> bool:
        self._check_open()
        return True

    def fileno(self) -> int:
        self._check_open()
        raise io.UnsupportedOperation(
            "fileno: a simulated file has no OS file descriptor; "
            "call its fsync() method to make its data durable"
        )

    def read(self, size: int | None = -1, /) -> bytes:
        """Up to ``size`` bytes from the position (all of the rest for ``-1`` or
        ``None``); fewer at the end of the file, ``b""`` past it."""
        self._check_open()
        if not self._readable:
            raise io.UnsupportedOperation("read")
        if size is not None:
            size = operator.index(size)
            if size < -1:
                raise ValueError("read length must be non-negative or -1")
        return self._core_disk.read(self._fd, None if size is None or size == -1 else size)

    def read1(self, size: int | None = -1, /) -> bytes:
        """The same as :meth:`read`: there is no buffer to read from first."""
        return self.read(size)

    def write(self, data: Buffer, /) -> int:
        """Write all of ``data`` at the position (at the end in append mode); returns
        its length. Pending until :meth:`fsync`; every reader sees it at once."""
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("write")
        if type(data) is not bytes:
            try:
                data = memoryview(data).tobytes()
            except TypeError:
                raise TypeError(
                    f"a bytes-like object is required, not {type(data).__name__!r}"
                ) from None
        return self._core_disk.write(self._fd, data)

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        """Move the position (past the end is allowed, before the start is EINVAL);
        returns it."""
        self._check_open()
        return self._core_disk.seek(self._fd, operator.index(offset), operator.index(whence))

    def tell(self) -> int:
        self._check_open()
        return self._core_disk.seek(self._fd, 0, os.SEEK_CUR)

    def truncate(self, size: int | None = None, /) -> int:
        """Cut or zero-extend the file to ``size`` bytes (default: the position); the
        position stays. Pending until :meth:`fsync`. Returns ``size``."""
        self._check_open()
        if not self._writable:
            raise io.UnsupportedOperation("truncate")
        size = self.tell() if size is None else operator.index(size)
        self._core_disk.truncate(self._fd, size)
        return size

    def flush(self) -> None:
        """Nothing to do: writes are not buffered. (It does not make data durable;
        :meth:`fsync` does.)"""
        self._check_open()

    def fsync(self) -> None:
        """Make this file's data durable, and the directory entries up to its latest
        create or rename (see the module docs): after it returns, a crash keeps them."""
        self._check_open()
        self._core_disk.fsync(self._fd)
