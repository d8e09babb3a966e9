"""File I/O inside a host: ``open()``, ``os``, ``pathlib``, ``shutil``, ``tempfile``
and ``aiofiles`` on the running host's simulated disk.

In a universe with a world, the boundary and ``files=True`` (the defaults), the C
builtins behind Python's file API (``io.open``, ``os.open``/``read``/``write``/
``stat``/``scandir``/``mkdir``/``rename``/``fsync``/..., see :data:`REDIRECTED`) are
redirected (``_core.BuiltinRedirects``, like the clocks): a call that is *the
program's* acts on the :class:`~simloom.disk.Disk` of the host whose code is running
(``world.current_host()``: the task's host; an executor job's or a thread's is the
host that started it). Everything above the builtins (``pathlib``, ``shutil``,
``os.walk``, ``os.makedirs``, ``glob``, ``tempfile``, ``logging.FileHandler``,
``json.dump`` to a file, ``aiofiles``) works unchanged on top.

**The namespace.** Every host has its own tree. A path resolves against the host's
working directory (``/`` at every start of the host; ``os.chdir`` changes it for
that host) to a normalised absolute path, which is the file's name on the host's
disk: ``open("/data/wal", "wb")`` on host ``db`` is ``db.disk``'s file
``"/data/wal"``. A directory ``/data`` is the empty disk file ``"/data/"`` (so its
creation, rename and removal are directory entries with the disk's durability:
pending until an fsync of the directory, ``os.fsync(os.open("/data", O_RDONLY))``,
or of a file created after it). ``/``, ``/tmp``, ``tempfile.gettempdir()``'s
directory and, under pytest, the running test's ``tmp_path`` (with their parents)
always exist. Disk names that do not start with ``/``
(the stand-ins' files, ``host.disk.open("wal")``) are not in the tree.

**The durability** is the disk's: ``write`` returns once every reader sees the data;
``os.fsync(fd)`` (``os.fdatasync`` likewise) makes it survive a crash; a crash keeps
a prefix of each file's unsynced writes and may tear the next (tape choices
``disk.crash``, ``disk.torn_at``). Data still in a Python buffer (an unflushed
``BufferedWriter``, a ``TextIOWrapper``) never reached the disk and is lost, as in a
real process. A crash closes the host's files and resets its working directory.

**Which calls are the program's.** A call is simulated when all of these hold:

1. it runs in a thread of a universe with files on (the loop's thread, or a
   lockstep thread: an executor job, a ``threading.Thread`` started in the
   universe), outside simloom's :func:`~simloom._boundary.machinery`;
2. no frame on the calling stack belongs to the import system or to source-line
   lookup: ``importlib`` (and its frozen bootstrap), ``zipimport``, ``linecache``,
   ``traceback``, ``tokenize``, ``inspect``, ``pdb``/``bdb``, ``site``,
   ``sysconfig``, ``zoneinfo`` (:data:`REAL_ANYWHERE`), so imports, tracebacks'
   source lines and time-zone data read the real disk;
3. the innermost frame outside the standard library is not a tool's: pytest
   (``_pytest``, ``pytest``, ``pluggy``), Hypothesis, coverage, or simloom itself
   except the modules that act for the program (``simloom.loop``,
   ``simloom._lockstep``, ``simloom.world``, ``simloom._sim_unix``, whose bind makes
   a socket's name in the host's tree, and ``simloom.standins``)
   (:data:`TOOL_PACKAGES`);
4. the path is not in the Python installation: ``sys.prefix``, ``sys.base_prefix``,
   ``sys.exec_prefix``, the stdlib and site-packages directories, simloom's own
   directory, and the system's time-zone database (``zoneinfo.TZPATH``)
   (:func:`installation_dirs`). Reading there is real (package data,
   certificates); writing, creating or removing there raises
   :class:`~simloom.EscapedSimulationError`.

Descriptors: simulated descriptors are numbered from :data:`FD_BASE`; a smaller one
(stdin, stdout, a file opened outside the universe) is real and its calls are the
real ones. Paths under ``/dev``, ``/proc`` and ``/sys`` raise
:class:`~simloom.EscapedSimulationError`, as do the calls the disk cannot model
(``os.link``, ``os.symlink``, ``os.mkfifo``, ``os.mknod`` but of a socket, ``os.chown``,
extended attributes but ``listxattr``, ``os.statvfs``) and C extensions that would
open a real file themselves (``sqlite3.connect`` on a path). See docs/files.md.

Owns: the per-host tree over a disk (:class:`HostFiles`), the simulated file and
directory objects, and the handlers of the file rows of the boundary table. Must
not: decide durability (the disk model does), keep anything across a crash but
the disk, or touch the real filesystem for a simulated call.
"""

from __future__ import annotations

import _thread
import errno
import functools
import io
import operator
import os
import posixpath
import stat as _st
import sys
import sysconfig
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .errors import ESCAPE_HINT, EscapedSimulationError

if TYPE_CHECKING:
    from .disk import Disk, DiskFile
    from .world import Host, World

__all__ = ["FD_BASE", "REAL_ANYWHERE", "TOOL_PACKAGES", "HostFiles", "installation_dirs"]

#: The first simulated file descriptor: far above any real one (Linux caps a
#: process's descriptors at ``nr_open``, 2**20 by default), so a number says which
#: world it belongs to.
FD_BASE = 1 << 30

#: Modules whose frame anywhere on the stack makes a call real: the import system
#: and source-line lookup (tracebacks, warnings, inspect) read the real disk.
REAL_ANYWHERE = frozenset(
    {
        "importlib",
        "zipimport",
        "linecache",
        "traceback",
        "tokenize",
        "inspect",
        "pdb",
        "bdb",
        "site",
        "sysconfig",
        "zoneinfo",
    }
)

#: Top-level packages of tools that do their own real I/O while a universe runs
#: (when they are the innermost code outside the stdlib that called).
TOOL_PACKAGES = frozenset(
    {"_pytest", "pytest", "pluggy", "hypothesis", "_hypothesis_pytestplugin", "coverage"}
)

#: simloom modules that run the program's callbacks, jobs and factories: a call
#: they pass on is the program's.
_SIMLOOM_PASSES_ON = frozenset(
    {"simloom.loop", "simloom._lockstep", "simloom.world", "simloom._sim_unix"}
)

_STDLIB = frozenset(sys.stdlib_module_names)

_DEVICE_ROOTS = ("/dev", "/proc", "/sys")


def _prefixes(roots: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Directories as ``(themselves, their prefixes)``, for :func:`_in`."""
    return frozenset(roots), tuple(root.rstrip("/") + "/" for root in roots)


def _in(name: str, prefixes: tuple[frozenset[str], tuple[str, ...]]) -> bool:
    """Is ``name`` one of the directories, or under one?"""
    return name in prefixes[0] or name.startswith(prefixes[1])


_DEVICES = _prefixes(_DEVICE_ROOTS)


def installation_dirs() -> tuple[str, ...]:
    """The Python installation: reads there are real (see the module docs)."""
    found: set[str] = set()
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        found.add(prefix)
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            found.add(path)
    try:
        import site

        found.update(site.getsitepackages())
        user = site.getusersitepackages()
        if isinstance(user, str):
            found.add(user)
    except Exception:  # pragma: no cover - a site module without them (embedded)
        pass
    found.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    # The system's time-zone database: zoneinfo's C implementation reads it with
    # no zoneinfo frame on the stack (a library asking for ZoneInfo("UTC")).
    import zoneinfo

    found.update(path for path in zoneinfo.TZPATH if os.path.isabs(path))
    return tuple(sorted(posixpath.normpath(os.path.abspath(path)) for path in found if path))


_INSTALLATION = _prefixes(installation_dirs())


#: The running pytest test's temporary directories (its ``tmp_path``, ``tmpdir``),
#: there in every host's tree (set by simloom's pytest plugin around the test).
test_directories: frozenset[str] = frozenset()


def directories_of(fixtures: dict[str, object]) -> frozenset[str]:
    """The temporary directories among a pytest test's fixture values."""
    found = set()
    for name in ("tmp_path", "tmpdir"):
        value = fixtures.get(name)
        if value is not None:
            found.add(posixpath.normpath(os.fspath(value)))  # type: ignore[call-overload]
    return frozenset(found)


def _always_there() -> frozenset[str]:
    """Directories every host has: ``/``, ``/tmp``, the temporary directory
    tempfile would pick (read without probing the disk) and the running pytest
    test's ``tmp_path``, with their parents."""
    candidates = ["/tmp", *test_directories]
    chosen = tempfile.tempdir
    if isinstance(chosen, str):
        candidates.append(chosen)
    for variable in ("TMPDIR", "TEMP", "TMP"):
        value = os.environ.get(variable)
        if value and value.startswith("/"):
            candidates.append(value)
    found = {"/"}
    for candidate in candidates:
        path = posixpath.normpath(candidate)
        while path not in found:
            found.add(path)
            path = posixpath.dirname(path)
    return frozenset(found)


# ------------------------------------------------------------------ errors


def _error(code: int, filename: object = None, filename2: object = None) -> OSError:
    if filename2 is not None:
        return OSError(code, os.strerror(code), filename, None, filename2)
    if filename is not None:
        return OSError(code, os.strerror(code), filename)
    return OSError(code, os.strerror(code))


def _escape(api: str, what: str) -> EscapedSimulationError:
    return EscapedSimulationError(f"{api}: {what} ({ESCAPE_HINT}).")


# ------------------------------------------------------------- descriptors


class _Descriptor:
    """One open simulated descriptor: a file of the disk, or a directory."""

    __slots__ = (
        "append",
        "directory",
        "file",
        "name",
        "number",
        "raw_files",
        "readable",
        "writable",
    )

    def __init__(
        self,
        number: int,
        name: str,
        file: DiskFile | None,
        readable: bool,
        writable: bool,
        append: bool = False,
    ) -> None:
        self.number = number
        self.name = name
        self.file = file
        self.directory = file is None
        self.readable = readable
        self.writable = writable
        self.append = append
        #: The SimFileIO objects over it, closed with it by a crash.
        self.raw_files: list[SimFileIO] = []

    @property
    def lost(self) -> bool:
        """True once a crash of the host closed the disk file under it."""
        return self.file is not None and self.file.closed


class HostFiles:
    """One incarnation of a host's file system: its working directory, its open
    descriptors and what ``stat`` reports beyond the disk (inode numbers, times,
    modes), over the host's disk. A crash ends it (``Host._files`` is dropped);
    the next start makes a new one over what survived."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.disk: Disk = host.disk
        self.world: World = host.world
        self.cwd = "/"
        self.descriptors: dict[int, _Descriptor] = {}
        self.always = _always_there()
        self._inodes: dict[str, int] = {}
        self._next_inode = 2
        self.mtimes: dict[str, int] = {}
        self.modes: dict[str, int] = {}
        #: Files that are not regular files: a Unix socket's name (``S_IFSOCK``).
        self.kinds: dict[str, int] = {}

    def crashed(self) -> None:
        """The host lost power: its file objects are closed (they were the dead
        process's), without flushing what their buffers held."""
        for descriptor in self.descriptors.values():
            for raw in descriptor.raw_files:
                raw._closed_now = True
        self.descriptors.clear()

    # -- names

    def absolute(self, path: str, directory: str | None = None) -> str:
        """The tree's name of ``path`` (relative to ``directory`` or the cwd)."""
        joined = posixpath.join(directory if directory is not None else self.cwd, path)
        name = posixpath.normpath(joined)
        if name.startswith("//"):
            name = "/" + name.lstrip("/")
        return name

    def is_dir(self, name: str) -> bool:
        return name in self.always or self.disk.exists(name + "/")

    def is_file(self, name: str) -> bool:
        return name != "/" and not name.endswith("/") and self.disk.exists(name)

    def exists(self, name: str) -> bool:
        return self.is_file(name) or self.is_dir(name)

    def check_parent(self, name: str, shown: object) -> None:
        """A new entry's directory must exist (and be a directory)."""
        parent = posixpath.dirname(name)
        if self.is_dir(parent):
            return
        if self.is_file(parent) or not self._parents_are_dirs(parent):
            raise _error(errno.ENOTDIR if self.is_file(parent) else errno.ENOENT, shown)
        raise _error(errno.ENOENT, shown)

    def _parents_are_dirs(self, name: str) -> bool:
        while name != "/":
            name = posixpath.dirname(name)
            if self.is_file(name):
                return False
        return True

    def children(self, name: str) -> list[tuple[str, bool]]:
        """``(child name, is a directory)`` of a directory, sorted by name."""
        prefix = "/" if name == "/" else name + "/"
        found: dict[str, bool] = {}
        for entry in self.disk.list(prefix):
            rest = entry[len(prefix) :]
            if not rest:
                continue
            child, slash, _ = rest.partition("/")
            found[child] = found.get(child, False) or bool(slash)
        for always in self.always:
            if always != "/" and posixpath.dirname(always) == name:
                found[posixpath.basename(always)] = True
        return sorted(found.items())

    # -- metadata

    def inode(self, name: str) -> int:
        number = self._inodes.get(name)
        if number is None:
            number = self._inodes[name] = self._next_inode
            self._next_inode += 1
        return number

    def touched(self, name: str) -> None:
        self.mtimes[name] = time.time_ns()

    def stat(self, name: str, shown: object) -> os.stat_result:
        if self.is_file(name):
            mode = self.kinds.get(name, _st.S_IFREG) | self.modes.get(name, 0o644)
            size = self.disk.size(name)
        elif self.is_dir(name):
            mode = _st.S_IFDIR | self.modes.get(name, 0o755)
            size = 4096
        else:
            raise _error(errno.ENOTDIR if not self._parents_are_dirs(name) else errno.ENOENT, shown)
        return self._stat_result(name, mode, size)

    def _stat_result(self, name: str, mode: int, size: int) -> os.stat_result:
        mtime_ns = self.mtimes.get(name, 0)
        seconds = mtime_ns / 1e9
        whole = mtime_ns // 1_000_000_000
        return os.stat_result(
            (mode, self.inode(name), self.host._net_id + 1, 1, 0, 0, size, whole, whole, whole),
            {
                "st_atime": seconds,
                "st_mtime": seconds,
                "st_ctime": seconds,
                "st_atime_ns": mtime_ns,
                "st_mtime_ns": mtime_ns,
                "st_ctime_ns": mtime_ns,
                "st_blksize": 4096,
                "st_blocks": (size + 511) // 512,
            },
        )

    def forget(self, name: str) -> None:
        self._inodes.pop(name, None)
        self.mtimes.pop(name, None)
        self.modes.pop(name, None)
        self.kinds.pop(name, None)

    def moved(self, source: str, target: str) -> None:
        self.forget(target)
        for table in (self._inodes, self.mtimes, self.modes, self.kinds):
            if source in table:
                table[target] = table.pop(source)

    # -- descriptors

    def _number(self) -> int:
        world = self.world
        number: int = getattr(world, "_next_file_descriptor", FD_BASE)
        world._next_file_descriptor = number + 1  # type: ignore[attr-defined]
        return number

    def descriptor(self, fd: int) -> _Descriptor:
        found = self.descriptors.get(fd)
        if found is None or found.lost:
            raise _error(errno.EBADF)
        return found

    def open(self, name: str, flags: int, shown: object) -> _Descriptor:
        """``os.open`` of a tree name."""
        access = flags & os.O_ACCMODE
        readable = access in (os.O_RDONLY, os.O_RDWR)
        writable = access in (os.O_WRONLY, os.O_RDWR)
        create = bool(flags & os.O_CREAT)
        tmpfile = getattr(os, "O_TMPFILE", 0)
        if tmpfile and flags & tmpfile == tmpfile:
            return self._open_anonymous(name, readable, writable, shown)
        if self.is_dir(name):
            if writable or (create and flags & os.O_EXCL):
                raise _error(errno.EEXIST if create and flags & os.O_EXCL else errno.EISDIR, shown)
            number = self._number()
            descriptor = _Descriptor(number, name, None, readable=True, writable=False)
            self.descriptors[number] = descriptor
            return descriptor
        if flags & getattr(os, "O_DIRECTORY", 0):
            raise _error(errno.ENOTDIR if self.is_file(name) else errno.ENOENT, shown)
        exists = self.is_file(name)
        if exists and create and flags & os.O_EXCL:
            raise _error(errno.EEXIST, shown)
        if not exists:
            if not create:
                raise _error(errno.ENOENT, shown)
            self.check_parent(name, shown)
        append = bool(flags & os.O_APPEND)
        if append:
            mode = "a+b"
        elif not exists:
            mode = "x+b"
        elif flags & os.O_TRUNC and writable:
            mode = "w+b"
        else:
            mode = "r+b" if writable else "rb"
        file = self.disk.open(name, mode)
        if not exists or mode == "w+b":
            self.touched(name)
        number = self._number()
        descriptor = _Descriptor(number, name, file, readable, writable, append)
        self.descriptors[number] = descriptor
        return descriptor

    def _open_anonymous(
        self, directory: str, readable: bool, writable: bool, shown: object
    ) -> _Descriptor:
        """``O_TMPFILE``: a file with no name, in ``directory``; made as a named
        file and unlinked at once (open files outlive their name)."""
        if not self.is_dir(directory):
            raise _error(errno.ENOENT, shown)
        if not writable:
            raise _error(errno.EINVAL, shown)
        number = self._number()
        name = self.absolute(f".simloom-tmpfile-{number - FD_BASE}", directory)
        file = self.disk.open(name, "x+b")
        self.disk.delete(name)
        descriptor = _Descriptor(number, name, file, readable, writable)
        self.descriptors[number] = descriptor
        return descriptor

    def close(self, fd: int) -> None:
        descriptor = self.descriptors.pop(fd, None)
        if descriptor is None:
            raise _error(errno.EBADF)
        if descriptor.file is not None and not descriptor.file.closed:
            descriptor.file.close()

    def read(self, fd: int, size: int) -> bytes:
        descriptor = self.descriptor(fd)
        if descriptor.directory:
            raise _error(errno.EISDIR)
        if not descriptor.readable:
            raise _error(errno.EBADF)
        assert descriptor.file is not None
        return descriptor.file.read(size)

    def write(self, fd: int, data: Any) -> int:
        descriptor = self.descriptor(fd)
        if not descriptor.writable or descriptor.file is None:
            raise _error(errno.EBADF)
        written = descriptor.file.write(data)
        self.touched(descriptor.name)
        return written

    def seek(self, fd: int, position: int, whence: int) -> int:
        descriptor = self.descriptor(fd)
        if descriptor.file is None:
            return 0
        return descriptor.file.seek(position, whence)

    def truncate(self, fd: int, length: int) -> None:
        descriptor = self.descriptor(fd)
        if not descriptor.writable or descriptor.file is None:
            raise _error(errno.EINVAL if descriptor.file is None else errno.EBADF)
        if length < 0:
            raise _error(errno.EINVAL)
        descriptor.file.truncate(length)
        self.touched(descriptor.name)

    def fsync(self, fd: int) -> None:
        descriptor = self.descriptor(fd)
        if descriptor.file is None:
            self.disk.fsync_dir()  # a directory's fsync: its entries are durable
        else:
            descriptor.file.fsync()

    def fstat(self, fd: int) -> os.stat_result:
        descriptor = self.descriptor(fd)
        if descriptor.file is None:
            return self.stat(descriptor.name, None)
        position = descriptor.file.tell()
        size = descriptor.file.seek(0, os.SEEK_END)
        descriptor.file.seek(position)
        mode = _st.S_IFREG | self.modes.get(descriptor.name, 0o644)
        return self._stat_result(descriptor.name, mode, size)

    # -- the tree

    def mkdir(self, name: str, mode: int, shown: object) -> None:
        if self.exists(name):
            raise _error(errno.EEXIST, shown)
        self.check_parent(name, shown)
        self.disk.open(name + "/", "xb").close()
        self.touched(name)
        if mode & 0o777 != 0o777:
            self.modes[name] = mode & 0o777

    def mknod(self, name: str, mode: int, shown: object) -> None:
        """A socket's name (what a Unix socket's bind makes): an empty entry whose
        stat says ``S_IFSOCK``."""
        if self.exists(name):
            raise _error(errno.EEXIST, shown)
        self.check_parent(name, shown)
        self.disk.open(name, "xb").close()
        self.kinds[name] = _st.S_IFSOCK
        self.modes[name] = mode & 0o777
        self.touched(name)

    def rmdir(self, name: str, shown: object) -> None:
        if name in self.always:
            raise _error(errno.EBUSY, shown)
        if not self.is_dir(name):
            raise _error(errno.ENOTDIR if self.is_file(name) else errno.ENOENT, shown)
        if self.children(name):
            raise _error(errno.ENOTEMPTY, shown)
        self.disk.delete(name + "/")
        self.forget(name)

    def unlink(self, name: str, shown: object) -> None:
        if self.is_dir(name):
            raise _error(errno.EISDIR, shown)
        if not self.is_file(name):
            raise _error(errno.ENOENT, shown)
        self.disk.delete(name)
        self.forget(name)

    def rename(self, source: str, target: str, shown: object, shown2: object) -> None:
        if source == target and self.exists(source):
            return
        if self.is_file(source):
            if self.is_dir(target):
                raise _error(errno.EISDIR, shown, shown2)
            self.check_parent(target, shown2)
            self.disk.rename(source, target)
            self.moved(source, target)
            return
        if not self.is_dir(source):
            raise _error(errno.ENOENT, shown, shown2)
        if source in self.always or target in self.always:
            raise _error(errno.EBUSY, shown, shown2)
        if target.startswith(source + "/"):
            raise _error(errno.EINVAL, shown, shown2)
        if self.is_file(target):
            raise _error(errno.ENOTDIR, shown, shown2)
        if self.is_dir(target):
            if self.children(target):
                raise _error(errno.ENOTEMPTY, shown, shown2)
            self.disk.delete(target + "/")
        self.check_parent(target, shown2)
        # The directory's entry first, then each entry beneath it, in name order:
        # one rename each on the disk (not atomic across a crash; see docs/files.md).
        for entry in [
            source + "/",
            *(e for e in self.disk.list(source + "/") if e != source + "/"),
        ]:
            self.disk.rename(entry, target + entry[len(source) :])
        for name in sorted(set(self._inodes) | set(self.mtimes) | set(self.modes)):
            if name == source or name.startswith(source + "/"):
                self.moved(name, target + name[len(source) :])

    def truncate_path(self, name: str, length: int, shown: object) -> None:
        if self.is_dir(name):
            raise _error(errno.EISDIR, shown)
        if not self.is_file(name):
            raise _error(errno.ENOENT, shown)
        if length < 0:
            raise _error(errno.EINVAL, shown)
        with self.disk.open(name, "r+b") as file:
            file.truncate(length)
        self.touched(name)


# ------------------------------------------------------------------ contexts


#: The universe running in each thread: the boundary's registry
#: (``simloom._boundary._active``, which hands it here when it is imported).
universes: dict[int, Any] = {}
_get_ident = _thread.get_ident


def _universe() -> Any:
    """The boundary's universe running in this thread, if files are simulated in it."""
    universe = universes.get(_get_ident())
    if universe is None or not getattr(universe.loop, "_files_enabled", False):
        return None
    return universe


#: What a frame's module says about a call made under it (see program_call).
_LOOKED_THROUGH, _REAL, _TOOL, _PROGRAM = 0, 1, 2, 3
_module_kinds: dict[object, int] = {}


def _module_kind(module: object) -> int:
    kind = _module_kinds.get(module)
    if kind is None:
        name = module if isinstance(module, str) else ""
        top = name.partition(".")[0]
        if top in REAL_ANYWHERE:
            kind = _REAL
        elif top in _STDLIB or name == __name__:
            # The stdlib decides nothing (the code that called it does); this
            # module's own frames are looked through (open()'s opener runs under
            # its handler).
            kind = _LOOKED_THROUGH
        elif top in TOOL_PACKAGES or (
            top == "simloom"
            and name not in _SIMLOOM_PASSES_ON
            and not name.startswith("simloom.standins")
        ):
            kind = _TOOL
        else:
            kind = _PROGRAM
        _module_kinds[module] = kind
    return kind


def program_call(frame: types.FrameType | None) -> bool:
    """Whether the call made from ``frame`` is the program's (rules 2 and 3 of the
    module docs)."""
    decided = False
    while frame is not None:
        kind = _module_kind(frame.f_globals.get("__name__"))
        if kind == _REAL:
            return False
        if not decided and kind != _LOOKED_THROUGH:
            if kind == _TOOL:
                return False
            decided = True
        frame = frame.f_back
    return True


def files_here(universe: Any) -> HostFiles | None:
    """The running host's file system (None when the loop has no world)."""
    world = universe.loop._get_world()
    if world is None:
        return None
    host = world._current_host()
    files: HostFiles | None = host._files
    if files is None:
        files = host._files = HostFiles(host)
    return files


def _fspath(path: object) -> tuple[str, bool] | None:
    """``(text path, given as bytes)``, or None for what the original should see."""
    if isinstance(path, str):
        return path, False
    if isinstance(path, bytes):
        return os.fsdecode(path), True
    if hasattr(type(path), "__fspath__"):
        try:
            name = os.fspath(path)  # type: ignore[call-overload]
        except TypeError:
            return None
        return _fspath(name)
    return None


class _Target:
    """A simulated call's file system and tree name, resolved from its path."""

    __slots__ = ("as_bytes", "files", "name", "shown")

    def __init__(self, files: HostFiles, name: str, shown: object, as_bytes: bool) -> None:
        self.files = files
        self.name = name
        self.shown = shown
        self.as_bytes = as_bytes


def _target(
    api: str,
    path: object,
    *,
    writes: bool,
    caller: types.FrameType,
    dir_fd: object = None,
) -> _Target | None:
    """The tree name ``path`` means for a simulated call, or None for a real one."""
    universe = _universe()
    if universe is None:
        return None
    text = _fspath(path)
    if text is None:
        return None
    if not program_call(caller):
        return None
    files = files_here(universe)
    if files is None:
        return None
    directory = None
    if dir_fd is not None:
        if not isinstance(dir_fd, int) or dir_fd < FD_BASE:
            raise _escape(
                f"{api}({path!r}, dir_fd={dir_fd!r})", "a real directory descriptor in a host"
            )
        found = files.descriptor(dir_fd)
        if not found.directory:
            raise _error(errno.ENOTDIR, path)
        directory = found.name
    name = files.absolute(text[0], directory)
    if _in(name, _INSTALLATION):
        if writes:
            raise _escape(
                f"{api}({path!r})",
                "it would change the Python installation on the real disk (reading it "
                "is allowed; write your files elsewhere in the host's tree)",
            )
        return None
    if _in(name, _DEVICES):
        raise _escape(
            f"{api}({path!r})",
            "device and kernel files (/dev, /proc, /sys) are not simulated in a host",
        )
    return _Target(files, name, path, text[1])


def _fd_files(fd: object) -> HostFiles | None:
    """The file system of a simulated descriptor's call (None: a real descriptor)."""
    if type(fd) is not int or fd < FD_BASE:
        return None
    universe = _universe()
    if universe is None:
        return None
    return files_here(universe)


# ----------------------------------------------------------- file objects


class SimFileIO(io.FileIO):
    """The raw file ``open()`` makes on a simulated disk, as ``io.FileIO`` (so
    ``isinstance`` checks and aiofiles' wrappers accept it): ``fileno()`` is its
    simulated descriptor, for ``os.fsync(f.fileno())``."""

    def __init__(
        self, files: HostFiles, descriptor: _Descriptor, name: object, mode: str, closefd: bool
    ) -> None:
        # Closed until made: one left half-made by an interrupt has nothing for a
        # finaliser to close.
        self._closed_now = True
        self._files = files
        self._descriptor = descriptor
        self.name = name
        self._sim_mode = mode
        self._closefd = closefd
        file = descriptor.file
        assert file is not None
        # In C, without a line of Python: a buffered file's constructor calls tell()
        # and ignores its errors, so an interrupt raised in a Python tell() would
        # vanish there.
        self.tell = functools.partial(file._core_disk.seek, file._fd, 0, os.SEEK_CUR)  # type: ignore[method-assign]
        if descriptor.append:
            file.seek(0, os.SEEK_END)
        descriptor.raw_files.append(self)
        self._closed_now = False

    def __repr__(self) -> str:
        if self.closed:
            return "<simloom SimFileIO [closed]>"
        return f"<simloom SimFileIO name={self.name!r} mode={self.mode!r} closefd={self._closefd}>"

    #: Read by the io stack (a getter in C, for the reason given for tell()).
    closed = property(operator.attrgetter("_closed_now"))

    @property
    def closefd(self) -> bool:
        return self._closefd

    @property
    def mode(self) -> str:  # type: ignore[override]
        return self._sim_mode

    def _check(self) -> _Descriptor:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self._descriptor

    def fileno(self) -> int:
        return self._check().number

    def isatty(self) -> bool:
        self._check()
        return False

    def readable(self) -> bool:
        return self._check().readable

    def writable(self) -> bool:
        return self._check().writable

    def seekable(self) -> bool:
        self._check()
        return True

    def readinto(self, buffer: Any) -> int:
        descriptor = self._check()
        if not descriptor.readable:
            raise io.UnsupportedOperation("File not open for reading")
        view = memoryview(buffer).cast("B")
        data = self._files.read(descriptor.number, len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1, /) -> bytes:
        descriptor = self._check()
        if not descriptor.readable:
            raise io.UnsupportedOperation("File not open for reading")
        if size is None or size < 0:
            return self.readall()
        return self._files.read(descriptor.number, size)

    def readall(self) -> bytes:
        descriptor = self._check()
        if not descriptor.readable:
            raise io.UnsupportedOperation("File not open for reading")
        assert descriptor.file is not None
        return descriptor.file.read()

    def write(self, data: Any, /) -> int:
        descriptor = self._check()
        if not descriptor.writable:
            raise io.UnsupportedOperation("File not open for writing")
        return self._files.write(descriptor.number, data)

    def seek(self, position: int, whence: int = os.SEEK_SET, /) -> int:
        return self._files.seek(self._check().number, position, whence)

    def tell(self) -> int:  # (replaced per instance, see __init__)
        return self._files.seek(self._check().number, 0, os.SEEK_CUR)

    def truncate(self, size: int | None = None, /) -> int:
        descriptor = self._check()
        if not descriptor.writable:
            raise io.UnsupportedOperation("File not open for writing")
        size = self.tell() if size is None else size
        self._files.truncate(descriptor.number, size)
        return size

    def flush(self) -> None:
        self._check()

    def close(self) -> None:
        if self._closed_now:
            return
        self._closed_now = True
        if self._closefd and self._descriptor.number in self._files.descriptors:
            self._files.close(self._descriptor.number)

    def _dealloc_warn(self, source: object) -> None:
        pass


_MODE_LETTERS = frozenset("rwxabt+")


def _flags_of(mode: str) -> tuple[int, bool, bool]:
    """``(os.open flags, binary, creating/appending)`` of an ``open()`` mode, with
    the errors ``open()`` raises for a bad one."""
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    if set(mode) - _MODE_LETTERS or len(set(mode)) != len(mode):
        raise ValueError(f"invalid mode: '{mode}'")
    kinds = [letter for letter in mode if letter in "rwxa"]
    if len(kinds) != 1:
        raise ValueError("must have exactly one of create/read/write/append mode")
    if "b" in mode and "t" in mode:
        raise ValueError("can't have text and binary mode at once")
    kind = kinds[0]
    plus = "+" in mode
    flags = {
        "r": os.O_RDONLY,
        "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
        "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    }[kind]
    if plus:
        flags = (flags & ~os.O_ACCMODE) | os.O_RDWR
    return flags | os.O_CLOEXEC, "b" in mode, kind != "r" or plus


def _wrap(
    files: HostFiles,
    descriptor: _Descriptor,
    name: object,
    closefd: bool,
    mode: str,
    binary: bool,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
) -> Any:
    """What ``io.open`` makes of a descriptor: a raw file, a buffered file over it
    and a text wrapper. Whatever interrupts it (a KeyboardInterrupt included)
    closes what it made, so no half-made file is left for a finaliser to close."""
    raw = SimFileIO(files, descriptor, name, _raw_mode(mode), closefd)
    try:
        return _layers(raw, mode, binary, buffering, encoding, errors, newline)
    except BaseException:
        raw.close()
        raise


def _layers(
    raw: SimFileIO,
    mode: str,
    binary: bool,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
) -> Any:
    if binary and (encoding is not None or errors is not None or newline is not None):
        what = "an encoding" if encoding is not None else "an errors" if errors else "a newline"
        raw.close()
        raise ValueError(f"binary mode doesn't take {what} argument")
    line_buffering = False
    if buffering == 1 and not binary:
        line_buffering = True
        buffering = -1
    if buffering < 0 or buffering == 1:
        buffering = io.DEFAULT_BUFFER_SIZE
    if buffering == 0:
        if binary:
            return raw
        raw.close()
        raise ValueError("can't have unbuffered text I/O")
    buffer: Any
    if "+" in mode:
        buffer = io.BufferedRandom(raw, buffering)
    elif raw.writable():
        buffer = io.BufferedWriter(raw, buffering)
    else:
        buffer = io.BufferedReader(raw, buffering)
    if binary:
        return buffer
    text = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
    text.mode = mode  # type: ignore[misc]
    return text


# -------------------------------------------------------------- handlers
#
# Each handler gets the builtin's receiver and arguments and returns the result,
# or NotImplemented for "the original" (outside a universe with files, a real
# descriptor, a caller that is not the program, or arguments the original should
# refuse itself). Arguments are bound by a signature function first, so a wrong
# call is left to the original, which says what is wrong in its own words.


def _bind(
    signature: Callable[..., tuple[Any, ...]], args: Any, kwargs: Any
) -> tuple[Any, ...] | None:
    try:
        return signature(*args, **kwargs)
    except TypeError:
        return None


def _io_open_signature(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Any = None,
) -> tuple[Any, ...]:
    return file, mode, buffering, encoding, errors, newline, closefd, opener


def _io_open(receiver: object, *args: Any, **kwargs: Any) -> object:
    if _universe() is None:
        return NotImplemented
    bound = _bind(_io_open_signature, args, kwargs)
    if bound is None:
        return NotImplemented
    file, mode, buffering, encoding, errors, newline, closefd, opener = bound
    if type(file) is int:
        files = _fd_files(file)
        if files is None:
            return NotImplemented
        flags, binary, _ = _flags_of(mode)
        descriptor = files.descriptor(file)
        if descriptor.directory:
            raise _error(errno.EISDIR, file)
        return _wrap(
            files,
            descriptor,
            file,
            bool(closefd),
            mode,
            binary,
            buffering,
            encoding,
            errors,
            newline,
        )
    caller = sys._getframe(1)
    flags, binary, writes = _flags_of(mode) if isinstance(mode, str) else (0, False, False)
    if not isinstance(mode, str):
        return NotImplemented
    if opener is not None:
        universe = _universe()
        if universe is None or not program_call(caller):
            return NotImplemented
        fd = opener(file, flags)
        if type(fd) is not int or fd < FD_BASE:
            result: Any = open(fd, mode, buffering, encoding, errors, newline, closefd=True)  # noqa: SIM115
            raw_of = getattr(getattr(result, "buffer", result), "raw", result)
            raw_of.name = file
            return result
        files = files_here(universe)
        assert files is not None
        return _wrap(
            files,
            files.descriptor(fd),
            file,
            True,
            mode,
            binary,
            buffering,
            encoding,
            errors,
            newline,
        )
    if not closefd:
        return NotImplemented  # the original: "Cannot use closefd=False with file name"
    target = _target("open", file, writes=writes, caller=caller)
    if target is None:
        return NotImplemented
    descriptor = target.files.open(target.name, flags, file)
    if descriptor.directory:
        target.files.close(descriptor.number)
        raise _error(errno.EISDIR, file)
    return _wrap(
        target.files, descriptor, file, True, mode, binary, buffering, encoding, errors, newline
    )


def _raw_mode(mode: str) -> str:
    """The raw file's mode, as FileIO reports it (``"w"`` → ``"wb"``)."""
    kind = next(letter for letter in mode if letter in "rwxa")
    plus = "+" in mode
    if kind == "r":
        return "rb+" if plus else "rb"
    if kind == "w":
        return "rb+" if plus else "wb"
    return f"{kind}b+" if plus else f"{kind}b"


def _os_open_signature(
    path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None
) -> tuple[Any, ...]:
    return path, flags, mode, dir_fd


def _os_open(receiver: object, *args: Any, **kwargs: Any) -> object:
    if _universe() is None:
        return NotImplemented
    bound = _bind(_os_open_signature, args, kwargs)
    if bound is None or not isinstance(bound[1], int):
        return NotImplemented
    path, flags, mode, dir_fd = bound
    writes = bool(flags & (os.O_CREAT | os.O_TRUNC)) or flags & os.O_ACCMODE != os.O_RDONLY
    target = _target("os.open", path, writes=writes, caller=sys._getframe(1), dir_fd=dir_fd)
    if target is None:
        return NotImplemented
    descriptor = target.files.open(target.name, flags, path)
    if isinstance(mode, int) and flags & os.O_CREAT and mode & 0o777 not in (0o777, 0o666):
        target.files.modes.setdefault(target.name, mode & 0o777)
    return descriptor.number


def _fd_call(
    signature: Callable[..., tuple[Any, ...]],
    implementation: Callable[..., object],
) -> Callable[..., object]:
    """A handler for a builtin whose first argument is a descriptor."""

    def handler(receiver: object, *args: Any, **kwargs: Any) -> object:
        bound = _bind(signature, args, kwargs)
        if bound is None:
            return NotImplemented
        files = _fd_files(bound[0])
        if files is None:
            return NotImplemented
        return implementation(files, *bound)

    return handler


def _fd_of(value: object) -> object:
    """``os.fsync(file)`` takes a file object too."""
    if type(value) is not int and hasattr(value, "fileno"):
        try:
            return value.fileno()
        except Exception:
            return value
    return value


def _one(fd: Any) -> tuple[Any, ...]:
    return (fd,)


def _fsync(receiver: object, *args: Any, **kwargs: Any) -> object:
    bound = _bind(_one, args, kwargs)
    if bound is None:
        return NotImplemented
    fd = _fd_of(bound[0])
    files = _fd_files(fd)
    if files is None:
        return NotImplemented
    files.fsync(fd)  # type: ignore[arg-type]
    return None


def _read_signature(fd: Any, length: Any) -> tuple[Any, ...]:
    return fd, length


def _write_signature(fd: Any, data: Any) -> tuple[Any, ...]:
    return fd, data


def _lseek_signature(fd: Any, position: Any, whence: Any) -> tuple[Any, ...]:
    return fd, position, whence


def _ftruncate_signature(fd: Any, length: Any) -> tuple[Any, ...]:
    return fd, length


def _read(files: HostFiles, fd: int, length: int) -> bytes:
    if length < 0:
        raise _error(errno.EINVAL)
    return files.read(fd, length)


def _close(files: HostFiles, fd: int) -> None:
    files.close(fd)


def _sendfile_signature(out_fd: Any, in_fd: Any, offset: Any, count: Any) -> tuple[Any, ...]:
    return out_fd, in_fd, offset, count


def _sendfile(receiver: object, *args: Any, **kwargs: Any) -> object:
    """``os.sendfile`` between two simulated files (shutil.copyfile's fast path)."""
    bound = _bind(_sendfile_signature, args, kwargs)
    if bound is None:
        return NotImplemented
    out_fd, in_fd, offset, count = bound
    files = _fd_files(out_fd) or _fd_files(in_fd)
    if files is None:
        return NotImplemented
    if _fd_files(out_fd) is None or _fd_files(in_fd) is None:
        raise _escape("os.sendfile()", "it copies between a simulated file and a real descriptor")
    source = files.descriptor(in_fd)
    if source.file is None or not source.readable:
        raise _error(errno.EBADF)
    if offset is None:
        data = source.file.read(count)
    else:
        position = source.file.tell()
        source.file.seek(offset)
        data = source.file.read(count)
        source.file.seek(position)
    if not data:
        return 0
    return files.write(out_fd, data)


def _path_call(
    api: str,
    signature: Callable[..., tuple[Any, ...]],
    implementation: Callable[..., object],
    *,
    writes: bool,
    descriptor: Callable[..., object] | None = None,
) -> Callable[..., object]:
    """A handler for a builtin whose first argument is a path (or, where
    ``descriptor`` is given, a descriptor: ``os.stat(fd)``)."""

    def handler(receiver: object, *args: Any, **kwargs: Any) -> object:
        if _universe() is None:
            return NotImplemented
        bound = _bind(signature, args, kwargs)
        if bound is None:
            return NotImplemented
        path, *rest, dir_fd = bound
        if type(path) is int and descriptor is not None:
            files = _fd_files(path)
            return NotImplemented if files is None else descriptor(files, path, *rest)
        target = _target(api, path, writes=writes, caller=sys._getframe(1), dir_fd=dir_fd)
        if target is None:
            return NotImplemented
        return implementation(target, *rest)

    handler.__qualname__ = f"files[{api}]"
    return handler


def _stat_signature(
    path: Any, *, dir_fd: Any = None, follow_symlinks: bool = True
) -> tuple[Any, ...]:
    return path, dir_fd


def _lstat_signature(path: Any, *, dir_fd: Any = None) -> tuple[Any, ...]:
    return path, dir_fd


def _stat(target: _Target) -> os.stat_result:
    return target.files.stat(target.name, target.shown)


def _fstat_of(files: HostFiles, fd: int) -> os.stat_result:
    return files.fstat(fd)


def _mkdir_signature(path: Any, mode: int = 0o777, *, dir_fd: Any = None) -> tuple[Any, ...]:
    return path, mode, dir_fd


def _mkdir(target: _Target, mode: int) -> None:
    target.files.mkdir(target.name, mode, target.shown)


def _path_only_signature(path: Any, *, dir_fd: Any = None) -> tuple[Any, ...]:
    return path, dir_fd


def _rmdir(target: _Target) -> None:
    target.files.rmdir(target.name, target.shown)


def _unlink(target: _Target) -> None:
    target.files.unlink(target.name, target.shown)


def _truncate_signature(path: Any, length: Any) -> tuple[Any, ...]:
    return path, length, None


def _truncate(target: _Target, length: int) -> None:
    target.files.truncate_path(target.name, length, target.shown)


def _ftruncate_fd(files: HostFiles, fd: int, length: int) -> None:
    files.truncate(fd, length)


def _access_signature(
    path: Any,
    mode: int,
    *,
    dir_fd: Any = None,
    effective_ids: bool = False,
    follow_symlinks: bool = True,
) -> tuple[Any, ...]:
    return path, mode, dir_fd


def _access(target: _Target, mode: int) -> bool:
    return target.files.exists(target.name)


def _utime_signature(
    path: Any,
    times: Any = None,
    *,
    ns: Any = None,
    dir_fd: Any = None,
    follow_symlinks: bool = True,
) -> tuple[Any, ...]:
    return path, times, ns, dir_fd


def _utime(target: _Target, times: Any, ns: Any) -> None:
    files = target.files
    if not files.exists(target.name):
        raise _error(errno.ENOENT, target.shown)
    if ns is not None:
        files.mtimes[target.name] = int(ns[1])
    elif times is not None:
        files.mtimes[target.name] = int(times[1] * 1e9)
    else:
        files.touched(target.name)


def _chmod_signature(
    path: Any, mode: int, *, dir_fd: Any = None, follow_symlinks: bool = True
) -> tuple[Any, ...]:
    return path, mode, dir_fd


def _chmod(target: _Target, mode: int) -> None:
    if not target.files.exists(target.name):
        raise _error(errno.ENOENT, target.shown)
    target.files.modes[target.name] = mode & 0o7777


def _readlink(target: _Target) -> None:
    if not target.files.exists(target.name):
        raise _error(errno.ENOENT, target.shown)
    raise _error(errno.EINVAL, target.shown)  # there are no symbolic links


def _listxattr_signature(path: Any = None, *, follow_symlinks: bool = True) -> tuple[Any, ...]:
    return path, None


def _listxattr(target: _Target) -> None:
    if not target.files.exists(target.name):
        raise _error(errno.ENOENT, target.shown)
    raise _error(errno.ENOTSUP, target.shown)


def _listxattr_fd(files: HostFiles, fd: int) -> None:
    files.descriptor(fd)
    raise _error(errno.ENOTSUP)


def _directory_signature(path: Any = ".") -> tuple[Any, ...]:
    return (path if path is not None else "."), None


def _listing(target: _Target) -> list[tuple[str, bool]]:
    files = target.files
    if not files.is_dir(target.name):
        raise _error(errno.ENOTDIR if files.is_file(target.name) else errno.ENOENT, target.shown)
    return files.children(target.name)


def _listdir(target: _Target) -> list[Any]:
    names = [name for name, _ in _listing(target)]
    return [os.fsencode(name) for name in names] if target.as_bytes else names


def _listdir_fd(files: HostFiles, fd: int) -> list[str]:
    descriptor = files.descriptor(fd)
    if not descriptor.directory:
        raise _error(errno.ENOTDIR)
    return [name for name, _ in files.children(descriptor.name)]


class SimDirEntry:
    """What ``os.scandir`` yields for a simulated directory (as ``os.DirEntry``)."""

    __slots__ = ("_files", "_full", "_is_dir", "name", "path")

    def __init__(self, files: HostFiles, full: str, name: Any, path: Any, is_dir: bool) -> None:
        self._files = files
        self._full = full
        self._is_dir = is_dir
        self.name = name
        self.path = path

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._is_dir

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return not self._is_dir

    def is_symlink(self) -> bool:
        return False

    def is_junction(self) -> bool:
        return False

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return self._files.stat(self._full, self.path)

    def inode(self) -> int:
        return self._files.inode(self._full)

    def __fspath__(self) -> Any:
        return self.path

    def __repr__(self) -> str:
        return f"<DirEntry {self.name!r}>"


class SimScandirIterator:
    """``os.scandir``'s iterator over a simulated directory (a context manager)."""

    def __init__(self, entries: list[SimDirEntry]) -> None:
        self._entries: Iterator[SimDirEntry] = iter(entries)

    def __iter__(self) -> SimScandirIterator:
        return self

    def __next__(self) -> SimDirEntry:
        return next(self._entries)

    def close(self) -> None:
        self._entries = iter(())

    def __enter__(self) -> SimScandirIterator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _scandir(target: _Target) -> SimScandirIterator:
    files = target.files
    shown = target.shown
    text = os.fsdecode(os.fspath(shown))  # type: ignore[call-overload]
    entries = []
    for name, is_dir in _listing(target):
        full = files.absolute(name, target.name)
        path = posixpath.join(text, name)
        if target.as_bytes:
            entries.append(SimDirEntry(files, full, os.fsencode(name), os.fsencode(path), is_dir))
        else:
            entries.append(SimDirEntry(files, full, name, path, is_dir))
    return SimScandirIterator(entries)


def _scandir_fd(files: HostFiles, fd: int) -> SimScandirIterator:
    descriptor = files.descriptor(fd)
    if not descriptor.directory:
        raise _error(errno.ENOTDIR)
    return SimScandirIterator(
        [
            SimDirEntry(files, files.absolute(name, descriptor.name), name, name, is_dir)
            for name, is_dir in files.children(descriptor.name)
        ]
    )


def _rename_signature(
    src: Any, dst: Any, *, src_dir_fd: Any = None, dst_dir_fd: Any = None
) -> tuple[Any, ...]:
    return src, dst, src_dir_fd, dst_dir_fd


def _renaming(api: str) -> Callable[..., object]:
    def handler(receiver: object, *args: Any, **kwargs: Any) -> object:
        if _universe() is None:
            return NotImplemented
        bound = _bind(_rename_signature, args, kwargs)
        if bound is None:
            return NotImplemented
        src, dst, src_dir_fd, dst_dir_fd = bound
        caller = sys._getframe(1)
        source = _target(api, src, writes=True, caller=caller, dir_fd=src_dir_fd)
        target = _target(api, dst, writes=True, caller=caller, dir_fd=dst_dir_fd)
        if source is None and target is None:
            return NotImplemented
        if source is None or target is None:
            raise _escape(
                f"{api}({src!r}, {dst!r})", "it moves a file between a host and the real disk"
            )
        source.files.rename(source.name, target.name, src, dst)
        return None

    handler.__qualname__ = f"files[{api}]"
    return handler


def _getcwd(as_bytes: bool) -> Callable[..., object]:
    def handler(receiver: object, *args: Any) -> object:
        universe = _universe()
        if universe is None or args or not program_call(sys._getframe(1)):
            return NotImplemented
        files = files_here(universe)
        if files is None:
            return NotImplemented
        return os.fsencode(files.cwd) if as_bytes else files.cwd

    return handler


def _chdir(target: _Target) -> None:
    files = target.files
    if not files.is_dir(target.name):
        raise _error(errno.ENOTDIR if files.is_file(target.name) else errno.ENOENT, target.shown)
    files.cwd = target.name


def _chdir_fd(files: HostFiles, fd: int) -> None:
    descriptor = files.descriptor(fd)
    if not descriptor.directory:
        raise _error(errno.ENOTDIR)
    files.cwd = descriptor.name


def _chdir_signature(path: Any) -> tuple[Any, ...]:
    return path, None


def _refused(
    api: str, what: str, signature: Callable[..., tuple[Any, ...]], *, writes: bool = True
) -> Callable[..., object]:
    """A path call the disk cannot model: an escape for a path of the host."""

    def refuse(target: _Target, *rest: Any) -> None:
        raise _escape(f"{api}({target.shown!r})", what)

    return _path_call(api, signature, refuse, writes=writes)


def _mknod_signature(
    path: Any, mode: int = 0o600, device: int = 0, *, dir_fd: Any = None
) -> tuple[Any, ...]:
    return path, mode, dir_fd


def _mknod(target: _Target, mode: int) -> None:
    if not isinstance(mode, int) or not _st.S_ISSOCK(mode):
        raise _escape(
            f"os.mknod({target.shown!r})", "the simulated disk has no device nodes or pipes"
        )
    target.files.mknod(target.name, mode, target.shown)


def _two_paths_signature(src: Any, dst: Any, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    return dst, None


def _path_rest_signature(
    path: Any, *args: Any, dir_fd: Any = None, **kwargs: Any
) -> tuple[Any, ...]:
    return path, dir_fd


def _sqlite_connect(receiver: object, *args: Any, **kwargs: Any) -> object:
    """``sqlite3.connect`` opens its file in C: an escape for a file in a host."""
    universe = _universe()
    if universe is None or (not args and "database" not in kwargs):
        return NotImplemented
    database = args[0] if args else kwargs["database"]
    text = _fspath(database)
    if text is None or text[0] == ":memory:" or text[0] == "":
        return NotImplemented
    uri = kwargs.get("uri", False)
    if uri and "mode=memory" in text[0]:
        return NotImplemented
    if not program_call(sys._getframe(1)) or files_here(universe) is None:
        return NotImplemented
    raise _escape(
        f"sqlite3.connect({database!r})",
        "SQLite opens and writes the file itself, in C, on the real disk; use "
        "sqlite3.connect(':memory:'), or keep the database on the host's disk through "
        "a stand-in",
    )


def _dual(api: str) -> Callable[..., object]:
    """``os.link``/``os.symlink``: named after the second path (the new entry)."""
    what = "the simulated disk has no links"
    return _refused(api, what, _two_paths_signature)


#: The builtins redirected for file I/O: ``(target path, api, handler)``.
REDIRECTED: tuple[tuple[str, str, Callable[..., object]], ...] = (
    ("_io.open", "open", _io_open),
    ("os.open", "os.open", _os_open),
    ("os.read", "os.read", _fd_call(_read_signature, lambda f, fd, n: _read(f, fd, n))),
    ("os.write", "os.write", _fd_call(_write_signature, lambda f, fd, data: f.write(fd, data))),
    ("os.close", "os.close", _fd_call(_one, lambda f, fd: _close(f, fd))),
    ("os.lseek", "os.lseek", _fd_call(_lseek_signature, lambda f, fd, p, w: f.seek(fd, p, w))),
    ("os.fsync", "os.fsync", _fsync),
    ("os.fdatasync", "os.fdatasync", _fsync),
    ("os.fstat", "os.fstat", _fd_call(_one, lambda f, fd: f.fstat(fd))),
    (
        "os.ftruncate",
        "os.ftruncate",
        _fd_call(_ftruncate_signature, lambda f, fd, n: f.truncate(fd, n)),
    ),
    ("os.sendfile", "os.sendfile", _sendfile),
    (
        "os.stat",
        "os.stat",
        _path_call("os.stat", _stat_signature, _stat, writes=False, descriptor=_fstat_of),
    ),
    ("os.lstat", "os.lstat", _path_call("os.lstat", _lstat_signature, _stat, writes=False)),
    (
        "os.listdir",
        "os.listdir",
        _path_call(
            "os.listdir", _directory_signature, _listdir, writes=False, descriptor=_listdir_fd
        ),
    ),
    (
        "os.scandir",
        "os.scandir",
        _path_call(
            "os.scandir", _directory_signature, _scandir, writes=False, descriptor=_scandir_fd
        ),
    ),
    ("os.mkdir", "os.mkdir", _path_call("os.mkdir", _mkdir_signature, _mkdir, writes=True)),
    ("os.rmdir", "os.rmdir", _path_call("os.rmdir", _path_only_signature, _rmdir, writes=True)),
    ("os.remove", "os.remove", _path_call("os.remove", _path_only_signature, _unlink, writes=True)),
    ("os.unlink", "os.unlink", _path_call("os.unlink", _path_only_signature, _unlink, writes=True)),
    ("os.rename", "os.rename", _renaming("os.rename")),
    ("os.replace", "os.replace", _renaming("os.replace")),
    (
        "os.truncate",
        "os.truncate",
        _path_call(
            "os.truncate", _truncate_signature, _truncate, writes=True, descriptor=_ftruncate_fd
        ),
    ),
    ("os.access", "os.access", _path_call("os.access", _access_signature, _access, writes=False)),
    ("os.getcwd", "os.getcwd", _getcwd(as_bytes=False)),
    ("os.getcwdb", "os.getcwdb", _getcwd(as_bytes=True)),
    (
        "os.chdir",
        "os.chdir",
        _path_call("os.chdir", _chdir_signature, _chdir, writes=False, descriptor=_chdir_fd),
    ),
    ("os.utime", "os.utime", _path_call("os.utime", _utime_signature, _utime, writes=True)),
    ("os.chmod", "os.chmod", _path_call("os.chmod", _chmod_signature, _chmod, writes=True)),
    (
        "os.readlink",
        "os.readlink",
        _path_call("os.readlink", _path_only_signature, _readlink, writes=False),
    ),
    (
        "os.listxattr",
        "os.listxattr",
        _path_call(
            "os.listxattr", _listxattr_signature, _listxattr, writes=False, descriptor=_listxattr_fd
        ),
    ),
    ("os.mknod", "os.mknod", _path_call("os.mknod", _mknod_signature, _mknod, writes=True)),
    ("os.link", "os.link", _dual("os.link")),
    ("os.symlink", "os.symlink", _dual("os.symlink")),
    *(
        (
            f"os.{name}",
            f"os.{name}",
            _refused(f"os.{name}", what, _path_rest_signature, writes=writes),
        )
        for name, what, writes in (
            ("mkfifo", "the simulated disk has no named pipes", True),
            ("chown", "the simulated disk has no owners", True),
            ("lchown", "the simulated disk has no owners", True),
            ("getxattr", "the simulated disk has no extended attributes", False),
            ("setxattr", "the simulated disk has no extended attributes", True),
            ("removexattr", "the simulated disk has no extended attributes", True),
            (
                "statvfs",
                "a host's disk space is its capacity (world.host(name, disk_capacity=))",
                False,
            ),
        )
    ),
    ("_sqlite3.connect", "sqlite3.connect", _sqlite_connect),
)

#: Each redirected builtin's handler, by target path (the boundary's rows name them).
HANDLERS: dict[str, Callable[..., object]] = {target: handler for target, _, handler in REDIRECTED}
