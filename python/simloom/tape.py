"""``Tape``: a universe's recorded choices, and its files.

A tape lists only the decisions that deviated from the canonical choice 0, so a FIFO
universe of any length has an empty tape. Files come in two versioned forms: JSON
(``.json``, human-readable) and CBOR (``.cbor``, compact). Reading checks the format
marker and version: a foreign, newer, corrupt or truncated file raises a named
:class:`~simloom.errors.TapeError`. Writing is atomic (a temporary file fsynced and
renamed into place, the directory fsynced), so a crash never leaves half a tape
behind, and the temporary files of a writer killed mid-write are removed by the next
write to that directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Self

from . import _core
from .errors import CorruptTapeError, SimloomUsageError, TapeError, TruncatedTapeError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["MAX_GAP", "Tape", "atomic_write", "remove_abandoned_temporaries"]

#: Largest gap the draw encoding expresses between two deviations (the engine's).
MAX_GAP = _core.MAX_GAP

TapeFormat = Literal["json", "cbor"]


#: Temporary files of :func:`atomic_write` are ``.<target name>.<random>`` plus this.
TEMPORARY_SUFFIX = ".simloom-tmp"
#: A temporary file this old (by modification time) whose writer holds no lock on it
#: was abandoned (its writer was killed mid-write): the next write to its directory
#: removes it. A live writer holds the lock from a moment after creating the file
#: until after renaming it, so the age only covers that moment.
STALE_AFTER_SECONDS = 10.0
#: Where locks cannot be taken (no ``fcntl``, a filesystem without them), only age
#: tells: an hour.
STALE_WITHOUT_LOCKS_SECONDS = 3600.0
#: Artifact temporaries of simloom before 0.1.0 (``mkstemp``'s 8 random characters,
#: no lock): removed once an hour old.
_LEGACY_TEMPORARY = re.compile(r"\..+\.(?:tape\.json|events\.jsonl)\.[a-z0-9_]{8}\.tmp")


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one,
    never a partial one, and so that the new one survives a power cut once this
    returns: a temporary file beside it is written, fsynced, renamed over it, and
    the directory fsynced. Temporary files abandoned by a killed writer are removed
    by the next write to the same directory."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temporaries(target.parent)
    fd, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX, dir=target.parent
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            # Held until the file is renamed: the mark of a live writer.
            _lock(handle.fileno(), blocking=True)
            # mkstemp creates 0600; give the file the mode an ordinary open() would.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(temporary, 0o666 & ~umask)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            if fcntl is not None:
                os.replace(temporary, target)
        if fcntl is None:  # Windows cannot rename an open file
            os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(target.parent)


def remove_abandoned_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of writers that died in :func:`atomic_write`
    (``kill -9``, a power cut) in ``directory``; return what was deleted. A file
    whose writer is alive (it holds the file's lock) is never touched."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        legacy = _LEGACY_TEMPORARY.fullmatch(entry.name) is not None
        if not legacy and not (
            entry.name.startswith(".") and entry.name.endswith(TEMPORARY_SUFFIX)
        ):
            continue
        with contextlib.suppress(OSError):
            if _abandoned(entry.path, now, STALE_WITHOUT_LOCKS_SECONDS if legacy else None):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _abandoned(path: str, now: float, older_than: float | None = None) -> bool:
    age = now - os.stat(path, follow_symlinks=False).st_mtime
    if age <= (older_than or STALE_AFTER_SECONDS):
        return False
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        # The lock is free only if no process holds the file locked: its writer is
        # gone (locks die with their process, even under kill -9).
        locked = _lock(fd, blocking=False)
    finally:
        os.close(fd)
    if locked is None:  # no locks here: only age tells
        return age > STALE_WITHOUT_LOCKS_SECONDS
    return locked


def _lock(fd: int, *, blocking: bool) -> bool | None:
    """Take an exclusive lock on ``fd``: ``True`` if taken, ``False`` if another
    process holds it, ``None`` where locks are not available."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:
        return None  # a filesystem without locks
    return True


def _int_pairs(pairs: list[Any]) -> list[tuple[int, int]]:
    """The pairs as tuples of ints, or :class:`~simloom.errors.CorruptTapeError`
    naming the first that is not two unsigned 64-bit integers."""
    converted = []
    for pair in pairs:
        try:
            index, value = (int(x) for x in pair)
        except (TypeError, ValueError) as exc:
            raise CorruptTapeError(
                f"each deviation must be an (index, value) pair of integers, got {pair!r}"
            ) from exc
        if not (0 <= index < 2**64 and 0 <= value < 2**64):
            raise CorruptTapeError(
                f"deviation {pair!r} is out of range: indexes and values are unsigned "
                "64-bit integers"
            )
        converted.append((index, value))
    return converted


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# The view is a read-only sequence: let ``isinstance(tape.deviations, Sequence)`` say so.
Sequence.register(_core.Deviations)


class Tape(_core.Tape):
    """The choices of one universe, as ``(decision index, value)`` deviations.

    ``Tape()`` is the FIFO tape (no deviations). Replay one with
    :func:`simloom.replay`. The deviations live in the engine's compact storage
    (about two bytes each for a random walk); :attr:`deviations` is a lazy
    read-only sequence over them, equal to the tuple of the same pairs.
    """

    def __new__(cls, deviations: Iterable[tuple[int, int]] = ()) -> Self:
        if isinstance(deviations, _core.Tape | _core.Deviations):
            return super().__new__(cls, deviations)
        pairs = deviations if isinstance(deviations, list) else list(deviations)
        try:
            return super().__new__(cls, pairs)
        except TapeError:
            raise
        except (TypeError, ValueError, OverflowError):
            # Not a list of int tuples: convert each pair (lists, int-likes), or
            # say which one is wrong (the engine only says that one is).
            return super().__new__(cls, _int_pairs(pairs))

    @classmethod
    def _wrap(cls, core: _core.Tape) -> Tape:
        # Shares the engine's storage: no copy, no re-check (it is valid already).
        return _core.Tape.__new__(cls, core)

    @classmethod
    def loads(cls, data: bytes | str) -> Tape:
        """Decode a tape from its JSON text or CBOR bytes."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SimloomUsageError(f"Tape.loads() needs bytes or str, got {type(data).__name__}")
        return cls._wrap(_core.Tape._decode(bytes(data)))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tape:
        """Read a tape file (either form)."""
        return cls._load_document(path)[0]

    @classmethod
    def _load_document(cls, path: str | os.PathLike[str]) -> tuple[Tape, dict[str, Any]]:
        """Read a tape file once: the tape, and the other scalar fields of a JSON
        document (an artifact's ``test``, ``seed``, ``digest``...; none for CBOR)."""
        try:
            data = Path(path).read_bytes()
        except IsADirectoryError as exc:
            raise SimloomUsageError(f"{path} is a directory, not a tape file") from exc
        if not data:
            raise TruncatedTapeError(f"tape file {path} is empty")
        core, fields = _core.Tape._decode_document(data)
        document = json.loads(fields)
        return cls._wrap(core), document if isinstance(document, dict) else {}

    @classmethod
    def from_draws(cls, draws: Iterable[int]) -> Tape:
        """Rebuild a tape from its sparse draw sequence (see :meth:`to_draws`)."""
        return cls._wrap(_core.Tape._from_draws([int(d) for d in draws]))

    def dumps(self, format: TapeFormat = "json") -> bytes:
        """Encode as JSON (UTF-8 bytes) or CBOR."""
        if format == "json":
            return self.to_json().encode("utf-8")
        if format == "cbor":
            return bytes(self.to_cbor())
        raise SimloomUsageError(f"unknown tape format {format!r}; expected 'json' or 'cbor'")

    def dump(self, path: str | os.PathLike[str], format: TapeFormat | None = None) -> None:
        """Write the tape atomically; the format defaults from the suffix
        (``.cbor`` → CBOR, anything else → JSON)."""
        if format is None:
            format = "cbor" if Path(path).suffix.lower() == ".cbor" else "json"
        atomic_write(path, self.dumps(format))
