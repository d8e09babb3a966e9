"""The artifact files a reported failure leaves under ``.sim/failures/``: their
names, the tape document and the event lines; and reading a tape file back for
``--simloom-tape``.

Owns: file names (unique per test id, bounded, never a shrunk failure overwritten
by a less shrunk one) and file contents. Must not: let a file that cannot be
written cost the report (each failure is a warning line for it instead).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _hashseed
from ._api import HISTORIES_ATTRIBUTE, RunResult, decode_events
from ._report import _error_line
from ._shrink import NOT_SHRUNK, PARTLY, _Shrink
from ._version import __version__
from .errors import NotLinearizableError, NotSerializableError
from .tape import Tape, atomic_write

ARTIFACT_DIR = Path(".sim") / "failures"
#: Longest readable part of an artifact file name. With the digest, the longest
#: suffix (``-seed<20 digits>-partly-shrunk.events.jsonl``) and the temporary-file
#: decoration of an atomic write, a name stays far below NAME_MAX (255 bytes).
MAX_ARTIFACT_STEM = 96
#: Hex digits of the test id's SHA-256 in an artifact name (48 bits).
ARTIFACT_DIGEST_CHARS = 12
#: Node ids whose readable file name is the id itself, spelt with dots: a top-level
#: module, plain names, an optional plain parameter id. The spelling is reversible
#: for these, so they need no digest (``test_bank.py::test_x`` → ``test_bank.test_x``).
_PLAIN_TEST_ID = re.compile(r"[A-Za-z0-9_]+\.py(?:::[A-Za-z0-9_]+)+(?:\[[A-Za-z0-9_-]*\])?")


def _artifact_stem(test_id: str) -> str:
    """The file-name stem of a test's artifacts: unique per test id, ASCII, short.

    A plain node id is spelt with dots (module included, so same-named tests in
    different modules never share artifacts). Any other id (a path with
    directories, a parameter id with spaces, slashes or non-ASCII letters, a very
    long id, a test run outside pytest) gets a readable, bounded spelling plus a
    digest of the exact id: ``test_ä`` and ``test_ö``, ``a/b`` and ``a.b`` never
    share a file. (A plain stem has no ``-`` outside its parameter brackets, and a
    digested one ends in ``-<hex>``, so the two kinds never meet either.)"""
    if len(test_id) <= MAX_ARTIFACT_STEM and _PLAIN_TEST_ID.fullmatch(test_id):
        return test_id.replace(".py::", ".", 1).replace("::", ".")
    readable = test_id.removeprefix("__main__.")
    readable = readable.replace(".py::", ".").replace("::", ".").replace("/", ".")
    readable = re.sub(r"[^A-Za-z0-9_.\[\]-]+", "_", readable).strip("_.-")
    readable = readable[:MAX_ARTIFACT_STEM].rstrip("_.-") or "test"
    digest = hashlib.sha256(test_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{readable}-{digest[:ARTIFACT_DIGEST_CHARS]}"


def _artifact_suffix(seed: int | None, shrink: _Shrink | None) -> str:
    """Never overwrite a shrunk failure with a less shrunk one or a replay."""
    suffix = f"-seed{seed}" if seed is not None else ""
    if shrink is None:
        return suffix + "-replay"
    if shrink.state == PARTLY:
        return suffix + "-partly-shrunk"
    if shrink.state == NOT_SHRUNK:
        return suffix + "-unshrunk"
    return suffix


def _describe_write_error(path: Path, error: BaseException) -> str:
    if not isinstance(error, OSError) or error.strerror is None:
        return f"  warning: artifact {path} not written: {type(error).__name__}: {error}"
    name = errno.errorcode.get(error.errno or 0, "")
    reason = f"{error.strerror} ({name})" if name else error.strerror
    # Name what failed when it is not the file (or its temporary file beside it):
    # a directory that could not be made, say, because `.sim` is a file.
    if error.filename is not None:
        where = os.fspath(error.filename)
        if os.path.dirname(os.path.abspath(where)) != os.path.abspath(path.parent):
            reason += f": {where}"
    return f"  warning: artifact {path} not written: {reason}"


def _artifact_json(fields: dict[str, Any], tape: Tape, unshrunk: Tape | None) -> str:
    """The artifact tape file: the fields a reader wants first, one per line, then
    the tape itself (as ``Tape.to_json`` writes it, so a million-deviation tape is
    never parsed again on the way out)."""
    head = json.dumps(fields, indent=2)[:-2]  # without the closing "\n}"
    if unshrunk is not None:
        head += ',\n  "unshrunk_deviations": ' + json.dumps(
            [list(d) for d in unshrunk.deviations], separators=(",", ":")
        )
    return head + ",\n  " + tape.to_json()[1:-1] + "\n}\n"


def _write_artifacts(
    artifact_dir: Path,
    test_id: str,
    seed: int | None,
    scheduler: str,
    result: RunResult,
    original: Tape | None,
    shrink: _Shrink | None,
    *,
    cancellations: bool = False,
) -> tuple[list[Path], list[str]]:
    """Write the tape and the event log; return the paths written and a warning
    line for each that could not be (the report never gives way to an OSError)."""
    stem = _artifact_stem(test_id) + _artifact_suffix(seed, shrink)
    tape_path = artifact_dir / f"{stem}.tape.json"
    events_path = artifact_dir / f"{stem}.events.jsonl"
    fields: dict[str, Any] = {
        "test": test_id,
        "seed": seed,
        "scheduler": scheduler,
        "error": _error_line(result.error) if result.error else None,
        "shrink": shrink.state if shrink is not None else None,
        "digest": result.digest,
        "hashseed": _hashseed.current_hashseed(),
        "python": sys.version.split()[0],
        "simloom": __version__,
    }
    if cancellations:
        # The universe injected cancellations: its tape replays only with them on.
        fields["cancellations"] = True
    written: list[Path] = []
    warnings: list[str] = []

    def write(path: Path, text: Callable[[], str]) -> None:
        try:
            atomic_write(path, text().encode())
        except Exception as exc:
            warnings.append(_describe_write_error(path, exc))
        else:
            written.append(path)

    write(tape_path, lambda: _artifact_json(fields, result.tape, original))
    write(events_path, lambda: _event_lines(result))
    for number, history in enumerate(_histories(result.error), start=1):
        suffix = "" if number == 1 else f"-{number}"
        write(artifact_dir / f"{stem}.history{suffix}.json", history.to_json)
    return written, warnings


def _histories(error: BaseException | None) -> list[Any]:
    """The histories of a failing universe, for artifact files: the one a failed
    consistency check was about first, then every other one the universe recorded
    (``simloom.History`` registers itself with the running universe)."""
    found: list[Any] = []
    failed_check = isinstance(error, NotLinearizableError | NotSerializableError)
    checked = getattr(getattr(error, "result", None), "history", None) if failed_check else None
    for history in (checked, *getattr(error, HISTORIES_ATTRIBUTE, ())):
        if history is not None and not any(h is history for h in found):
            found.append(history)
    return found


def _event_lines(result: RunResult) -> str:
    lines = []
    decision = 0
    for index, event in enumerate(decode_events(result.event_log_bytes)):
        record: dict[str, Any] = {"i": index, "kind": event.kind, "t_ns": event.time_ns}
        if event.label is not None:
            record["label"] = event.label
        if event.kind == "decision":
            record.update(decision=decision, bound=event.bound, value=event.value)
            decision += 1
        elif event.value is not None:
            record["value"] = event.value
        lines.append(json.dumps(record))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class TapeArtifact:
    """A tape file given to ``--simloom-tape``, read and decoded once: the tape and
    the artifact's scalar fields (``test``, ``seed``, ``digest``, ``hashseed``...)."""

    path: Path
    tape: Tape
    fields: dict[str, Any]

    @property
    def test(self) -> str | None:
        """The test id the artifact belongs to, if it records one."""
        test_id = self.fields.get("test")
        return test_id if isinstance(test_id, str) else None


def load_tape_artifact(path: str | os.PathLike[str]) -> TapeArtifact:
    """Read a tape file (an artifact, or any tape file) once; a bad file raises its
    named :class:`~simloom.errors.TapeError`."""
    tape, fields = Tape._load_document(path)
    return TapeArtifact(Path(path), tape, fields)
