"""``Tape``: a universe's recorded choices, and its files.

A tape lists only the decisions that deviated from the canonical choice 0, so a FIFO
universe of any length has an empty tape. Files come in two versioned forms: JSON
(``.json``, human-readable) and CBOR (``.cbor``, compact). Reading checks the format
marker and version: a foreign, newer, corrupt or truncated file raises a named
:class:`~simloom.errors.TapeError`. Writing is atomic (a temporary file renamed into
place), so a crash never leaves half a tape behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, Self

from . import _core
from .errors import CorruptTapeError, SimloomUsageError, TruncatedTapeError

__all__ = ["MAX_GAP", "Tape", "atomic_write"]

#: Largest gap the draw encoding expresses between two deviations (as in Rust).
MAX_GAP = 2**32 - 1

TapeFormat = Literal["json", "cbor"]


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one,
    never a partial one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates 0600; give the file the mode an ordinary open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class Tape(_core.Tape):
    """The choices of one universe, as ``(decision index, value)`` deviations.

    ``Tape()`` is the FIFO tape (no deviations). Replay one with
    :func:`simloom.replay`.
    """

    def __new__(cls, deviations: Iterable[tuple[int, int]] = ()) -> Self:
        pairs = []
        for pair in deviations:
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
            pairs.append((index, value))
        return super().__new__(cls, pairs)

    @classmethod
    def _wrap(cls, core: _core.Tape) -> Tape:
        return cls(core.deviations)

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
        try:
            data = Path(path).read_bytes()
        except IsADirectoryError as exc:
            raise SimloomUsageError(f"{path} is a directory, not a tape file") from exc
        if not data:
            raise TruncatedTapeError(f"tape file {path} is empty")
        return cls.loads(data)

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
