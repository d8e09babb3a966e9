"""``@simloom.test``: explore seeded universes, shrink the first failure with
Hypothesis, save it, report it, replay it.

    @simloom.test(runs=2000)
    async def test_counter_is_atomic():
        ...

pytest collects the decorated function like any test (every parameter other than
``world`` is an ordinary fixture). Calling it:

1. replays failures saved in Hypothesis's example database for this test, if any,
   and goes on shrinking one whose shrink an earlier run did not finish;
2. explores ``runs`` seeded universes on the Rust fast path (seed ``i`` is universe
   ``i``, so ``--simloom-seed=i`` replays it);
3. hands the first failing universe's tape to Hypothesis, which re-checks it,
   shrinks it with its own shrinker and saves it under the test's database key;
4. raises the program's own error, with the report (seed, re-run command, how far
   it was shrunk, the schedule in words, artifact paths) attached as a note, and
   writes the artifacts to ``.sim/failures/`` (one that cannot be written is a
   warning line in the report, never in its place).

Owns: the exploration policy, the report and the artifacts. Must not: import
pytest (the plugin, ``pytest_plugin.py``, feeds options in through
:func:`configure`).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import inspect
import json
import os
import re
import shlex
import sys
import time
import types
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import _api, _boundary, _budgets, _hashseed
from ._api import RunResult, decode_events
from ._scheduler import SchedulerSpec, parse_scheduler
from ._validation import check_flag, check_int, check_labels
from .errors import (
    CoverageNotReachedError,
    SimloomNondeterminismError,
    SimloomUsageError,
)
from .loop import DEFAULT_LIVELOCK_STEPS
from .tape import Tape, atomic_write

__all__ = [
    "DEFAULT_RUNS",
    "DEFAULT_SCHEDULER",
    "CoverageNotReachedError",
    "Options",
    "TapeArtifact",
    "TestStats",
    "configure",
    "load_tape_artifact",
    "test",
]

#: Universes explored per test when neither ``runs`` nor Hypothesis's
#: ``max_examples`` (from an explicit ``@settings``) says otherwise.
DEFAULT_RUNS = 2000
#: Seeds alternate between a uniform random walk (even seeds) and PCT with a
#: measured horizon (odd seeds): each finds bug classes the other rarely does.
DEFAULT_SCHEDULER = "mixed"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
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


@dataclass
class Options:
    """Command-line options, set by the pytest plugin (``--simloom-*``)."""

    seed: int | None = None
    tape: Path | None = None
    #: ``tape``, read once (the plugin reads it while validating the option).
    tape_artifact: TapeArtifact | None = None
    runs: int | None = None
    scheduler: str | None = None
    shrink: bool = True
    artifact_dir: Path = ARTIFACT_DIR
    check_determinism: bool = False
    #: ``--simloom-max-steps`` and friends given on the command line (argument name
    #: → value, ``None`` for "none"); they override the test's own.
    budgets: dict[str, int | float | None] = field(default_factory=dict)


@dataclass
class TestStats:
    """What one ``@simloom.test`` run did, for the end-of-session summary."""

    test_id: str
    universes: int = 0
    #: Label → hits over the exploration, and in how many universes it fired.
    coverage: dict[str, int] = field(default_factory=dict)
    universes_reaching: dict[str, int] = field(default_factory=dict)
    outcome: str = "passed"
    note: str = ""


_options = Options()
#: The pytest node id of the test being run (set by the plugin), else None.
_current_test_id: str | None = None
#: Every test run this session, in order (the plugin prints them).
session_stats: list[TestStats] = []


def configure(options: Options) -> None:
    """Install command-line options (the pytest plugin calls this)."""
    global _options
    _options = options


def options() -> Options:
    """The options installed by :func:`configure`."""
    return _options


def _set_current_test(test_id: str | None) -> None:
    global _current_test_id
    _current_test_id = test_id


# ------------------------------------------------------------------ schedulers


def _scheduler_for_seed(name: str, seed: int) -> str:
    if name == "mixed":
        return "random" if seed % 2 == 0 else "pct:auto"
    return name


def _check_scheduler(name: object) -> str:
    if not isinstance(name, str):
        raise SimloomUsageError(
            f"scheduler must be a string such as 'mixed', 'random' or 'pct', got {name!r}"
        )
    if name == "mixed":
        return name
    try:
        parse_scheduler(name)
    except SimloomUsageError as exc:
        raise SimloomUsageError(
            f"{exc} (or 'mixed', the exploration default: random and pct:auto on alternate seeds)"
        ) from None
    return name


# ------------------------------------------------------------------ reporting


def _strip_simloom_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback without simloom's own frames, so a report shows the user's
    code and nothing of the machinery."""
    frames: list[types.TracebackType] = []
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            frames.append(tb)
        tb = tb.tb_next
    rebuilt: types.TracebackType | None = None
    for frame in reversed(frames):
        rebuilt = types.TracebackType(rebuilt, frame.tb_frame, frame.tb_lasti, frame.tb_lineno)
    return rebuilt


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


def _shell_quoted_test(test_id: str) -> str:
    """The node id as one shell word, always in single quotes (as pytest prints it)."""
    return "'" + test_id.replace("'", "'\"'\"'") + "'"


def _error_line(error: BaseException) -> str:
    """``Type: first line of the message`` (pytest's assertion rewriting adds lines
    with object addresses, which would make artifacts differ from run to run)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


#: How far a reported failure was shrunk: Hypothesis's shrinker ran to its end
#: (now or in an earlier run), stopped early (interrupted, a limit), or never ran.
FINISHED, PARTLY, NOT_SHRUNK = "finished", "partly", "not"


@dataclass
class _Shrink:
    """What shrinking did to a reported failure (see the report's shrink line)."""

    state: str
    #: Why a shrink did not finish (``state`` is not FINISHED).
    why: str = ""
    candidates: int = 0
    seconds: float = 0.0
    #: The shrink continued one that an earlier run did not finish.
    resumed: bool = False
    #: Finished in an earlier run: the saved minimal failure, replayed as saved.
    earlier: bool = False
    #: The failure is in the example database, so the next run replays it first
    #: (and, while unfinished, goes on shrinking it).
    saved: bool = False


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
    options: Options,
    test_id: str,
    seed: int | None,
    scheduler: str,
    result: RunResult,
    original: Tape | None,
    shrink: _Shrink | None,
) -> tuple[list[Path], list[str]]:
    """Write the tape and the event log; return the paths written and a warning
    line for each that could not be (the report never gives way to an OSError)."""
    stem = _artifact_stem(test_id) + _artifact_suffix(seed, shrink)
    tape_path = options.artifact_dir / f"{stem}.tape.json"
    events_path = options.artifact_dir / f"{stem}.events.jsonl"
    from . import __version__

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
    return written, warnings


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


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _draw_count(tape: Tape) -> int:
    return len(tape.to_draws())


def _rerun_command(
    test_id: str, seed: int, scheduler: str, *, boundary: bool, check_determinism: bool = False
) -> str:
    """How to run universe ``seed`` of a test again: the pytest command line, or the
    ``simloom.run`` call outside pytest."""
    if "::" in test_id:
        command = f"pytest {_shell_quoted_test(test_id)} --simloom-seed={seed}"
        return command + (" --simloom-check-determinism" if check_determinism else "")
    options = ("" if boundary else ", boundary=False") + (
        ", check_determinism=True" if check_determinism else ""
    )
    return f"simloom.run(main, seed={seed}, scheduler={scheduler!r}{options})"


def _shrink_lines(found: RunResult, final: RunResult, shrink: _Shrink | None) -> list[str]:
    if shrink is None:
        return []
    story = (
        f"{_draw_count(found.tape)} draws → {_draw_count(final.tape)}, "
        f"schedule deviations {found.deviations} → {final.deviations}"
    )
    effort = f"{shrink.candidates} candidate runs, {shrink.seconds:.2f} s"
    if shrink.state == FINISHED and shrink.earlier:
        return [
            f"  shrunk: in an earlier run, to {_draw_count(final.tape)} draws and "
            f"{_plural(final.deviations, 'schedule deviation')} (the saved minimal "
            "failure, replayed)"
        ]
    if shrink.state == FINISHED:
        resumed = "; resumed where an earlier run stopped" if shrink.resumed else ""
        return [f"  shrunk: {story} ({effort}{resumed})"]
    if shrink.state == PARTLY:
        then = "the next run replays it and resumes shrinking" if shrink.saved else "not minimal"
        return [f"  partly shrunk ({shrink.why}): {story} ({effort}); {then}"]
    then = "; the next run replays it first and shrinks it" if shrink.saved else ""
    return [f"  not shrunk ({shrink.why}){then}"]


def _schedule_label(shrink: _Shrink | None) -> str:
    if shrink is None:
        return "schedule"
    return {FINISHED: "minimal schedule", PARTLY: "schedule (partly shrunk)"}.get(
        shrink.state, "schedule (not shrunk)"
    )


def _report(
    test_id: str,
    *,
    boundary: bool,
    how: str,
    seed: int | None,
    scheduler: str,
    found: RunResult,
    final: RunResult,
    shrink: _Shrink | None,
    artifacts: Sequence[Path],
    universes: int,
    notes: Sequence[str] = (),
) -> str:
    assert final.error is not None
    name = test_id.split("::")[-1]
    lines = [f"simloom found a failing universe in {name} ({how})"]
    under_pytest = "::" in test_id
    if seed is not None:
        rerun = _rerun_command(test_id, seed, scheduler, boundary=boundary)
        lines.append(f"  seed: {seed}   (scheduler {scheduler}; re-run: {rerun})")
    lines.append(f"  error: {_error_line(final.error)}")
    lines.append(f"  hash seed: {_hashseed.describe_hashseed()}")
    if universes:
        lines.append(f"  universes explored: {universes}")
    lines.extend(_shrink_lines(found, final, shrink))
    lines.extend(f"  {note}" for note in notes if not note.startswith("  warning: "))
    story = final.explain().replace("\n", "\n  ")
    lines.append(f"  {_schedule_label(shrink)}: {story}")
    tapes = [p for p in artifacts if p.name.endswith(".tape.json")]
    if tapes:
        replay = (
            f"pytest {_shell_quoted_test(test_id)} --simloom-tape={shlex.quote(str(tapes[0]))}"
            if under_pytest
            else f"simloom.replay(main, simloom.Tape.load({str(tapes[0])!r})"
            + (")" if boundary else ", boundary=False)")
        )
        lines.append(f"  replay it: {replay}")
    if artifacts:
        lines.append("  artifacts: " + ", ".join(str(p) for p in artifacts))
    lines.extend(note for note in notes if note.startswith("  warning: "))
    return "\n".join(lines)


# ------------------------------------------------------------------ shrinking


def _explicit_settings(fn: Any, wrapper: Any) -> Any:
    """Hypothesis settings applied to the test with ``@settings`` (above or below
    ``@simloom.test``), or ``None``."""
    return getattr(wrapper, "_hypothesis_internal_use_settings", None) or getattr(
        fn, "_hypothesis_internal_use_settings", None
    )


class _HypothesisRun:
    """One Hypothesis test over ``universes()`` for a simloom test: it replays the
    failures saved under the simloom test's database key and, with ``shrink``,
    shrinks the one it reproduces.

    Hypothesis saves each improvement under the primary key while it shrinks, and
    replays a primary entry as already minimal, without shrinking it. An entry
    left there by a shrink that was stopped (Ctrl-C, a limit, a crash) would then
    never be shrunk again, yet look minimal. So simloom records the entries whose
    shrink *finished* under ``<key>.simloom-shrunk``; any other primary entry is
    moved back to the secondary key, whose entries Hypothesis replays and shrinks,
    and the shrink resumes where it stopped."""

    def __init__(
        self,
        test_id: str,
        main: Callable[..., Awaitable[Any]],
        base: Any,
        boundary: bool,
        wall_clock_epoch: datetime | float,
        world: bool = True,
        budgets: _budgets.Budgets | None = None,
        *,
        shrink: bool = True,
    ) -> None:
        from hypothesis import HealthCheck, Phase, given, settings

        from .hypothesis import _compat, universes

        self.candidates = 0
        #: The program's own notes on each error, before Hypothesis adds its own.
        self.notes: dict[int, list[str]] = {}
        self.last: RunResult | None = None
        self.first: RunResult | None = None
        #: The engine's statistics of the last :meth:`run` (empty if interrupted).
        self.statistics: dict[str, Any] = {}
        outer = self

        def replay_universe(universe: Any) -> None:
            outer.candidates += 1
            result = universe.run_result(main)
            if outer.first is None:
                outer.first = result
            outer.last = result
            if result.error is not None:
                outer.notes[id(result.error)] = list(getattr(result.error, "__notes__", ()))
                raise result.error

        self.extra = b"simloom.test:" + test_id.encode()
        self.key = _compat.database_key(replay_universe, self.extra)
        self.secondary_key = _compat.secondary_key(self.key)
        self.shrunk_key = b".".join((self.key, b"simloom-shrunk"))
        # Without a database (``settings(database=None)``) the failure still reaches
        # the shrinker through a throwaway in-memory one.
        self.persistent = base.database is not None
        self.database = base.database
        if self.database is None:
            from hypothesis.database import InMemoryExampleDatabase

            self.database = InMemoryExampleDatabase()
        # Phase.reuse is how a tape reaches Hypothesis, so it is always on here
        # (without it in the test's settings, _replay_database never runs).
        phases = [Phase.reuse, Phase.shrink] if shrink else [Phase.reuse]
        strategy = universes(
            boundary=boundary,
            wall_clock_epoch=wall_clock_epoch,
            world=world,
            **(budgets or _budgets.Budgets()).arguments(),
        )

        def build(max_examples: int) -> Callable[[], None]:
            test: Callable[[], None] = settings(
                base,
                database=self.database,
                phases=phases,
                deadline=None,
                max_examples=max_examples,
                report_multiple_bugs=False,
                suppress_health_check=list(HealthCheck),
            )(given(strategy)(replay_universe))
            return test

        self._build = build

    # -- the database

    def primary(self) -> list[bytes]:
        from .hypothesis import _compat

        return list(_compat.saved_choices(self.database, self.key))

    def secondary(self) -> list[bytes]:
        from .hypothesis import _compat

        return list(_compat.saved_choices(self.database, self.secondary_key))

    def saved(self) -> list[bytes]:
        return [*self.primary(), *self.secondary()]

    def discard_corrupt(self) -> int:
        """Delete the entries that do not decode as a universe's choices (Hypothesis
        skips them in its primary key but keeps them forever in its secondary one,
        where they can crowd a fresh failure out of its replay sample)."""
        from .hypothesis import _compat, is_universe_choices

        discarded = 0
        for key in (self.key, self.secondary_key):
            for entry in _compat.saved_choices(self.database, key):
                choices = _compat.decode_choices(entry)
                if choices is None or not is_universe_choices(choices):
                    self.database.delete(key, entry)
                    self.database.delete(self.shrunk_key, entry)
                    discarded += 1
        return discarded

    def unfinished(self) -> list[bytes]:
        """Primary entries whose shrink is not recorded as finished."""
        from .hypothesis import _compat

        finished = set(_compat.saved_choices(self.database, self.shrunk_key))
        return [entry for entry in self.primary() if entry not in finished]

    def reopen(self, entries: Iterable[bytes]) -> None:
        """Move entries back to the secondary key, so Hypothesis shrinks them."""
        for entry in entries:
            self.database.move(self.key, self.secondary_key, entry)

    def save(self, tape: Tape) -> None:
        from .hypothesis import _compat, choices_for_tape

        self.database.save(self.secondary_key, _compat.encode_choices(choices_for_tape(tape)))

    def record_shrunk(self) -> None:
        """After a shrink that finished: what the primary key holds is minimal (and
        nothing else is recorded as such)."""
        from .hypothesis import _compat

        primary = set(self.primary())
        for entry in _compat.saved_choices(self.database, self.shrunk_key):
            if entry not in primary:
                self.database.delete(self.shrunk_key, entry)
        for entry in primary:
            self.database.save(self.shrunk_key, entry)

    def forget_gone(self) -> None:
        """Drop records of entries Hypothesis deleted (failures that no longer fail)."""
        from .hypothesis import _compat

        primary = set(self.primary())
        for entry in _compat.saved_choices(self.database, self.shrunk_key):
            if entry not in primary:
                self.database.delete(self.shrunk_key, entry)

    # -- running

    def restore_notes(self, error: BaseException) -> None:
        """Drop the notes Hypothesis attached ("Failing test case: ..."): the
        simloom report replaces them."""
        if id(error) in self.notes:
            error.__notes__ = list(self.notes[id(error)])

    def run(self) -> BaseException | None:
        """Run it; return the failure it ended with (``None`` if it passed)."""
        from .hypothesis import _compat

        # Large enough that Hypothesis replays every saved entry, not a sample that
        # might leave out the failure just saved.
        test = self._build(max(1, len(self.saved())))
        try:
            with _compat.engine_statistics() as self.statistics:
                test()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            return exc
        return None

    def shrink_result(self) -> tuple[bool, str | None]:
        """Whether the shrinker ran in the last :meth:`run`, and why it stopped
        early (``None``: it finished)."""
        from .hypothesis import _compat

        return _compat.shrink_ran(self.statistics), _compat.shrink_stopped_early(self.statistics)


def _discarded_note(count: int) -> str:
    entries = "entry" if count == 1 else "entries"
    return (
        f"note: discarded {count} example-database {entries} of this test that did not "
        "decode as a universe (corrupt, or from an incompatible version); a failure "
        "they held is found and shrunk again by exploring"
    )


# ------------------------------------------------------------------ the decorator


def test(
    fn: Callable[..., Awaitable[Any]] | None = None,
    *,
    runs: int | None = None,
    scheduler: str | None = None,
    require_coverage: Iterable[str] = (),
    livelock_steps: int = DEFAULT_LIVELOCK_STEPS,
    boundary: bool = True,
    wall_clock_epoch: datetime | float = _boundary.DEFAULT_WALL_CLOCK_EPOCH,
    check_determinism: bool = False,
    world: bool = True,
    max_steps: int | None = _budgets.DEFAULT_MAX_STEPS,
    max_virtual_time: float | None = _budgets.DEFAULT_MAX_VIRTUAL_TIME,
    watchdog: float | None = _budgets.DEFAULT_WATCHDOG,
) -> Any:
    """Turn an ``async def`` test into a simloom exploration collected by pytest.

    ``runs``: universes to explore (default 2000, or ``max_examples`` from an
    explicit Hypothesis ``@settings``; ``--simloom-runs`` overrides both).
    ``scheduler``: ``"mixed"`` (default: random walk and PCT on alternate seeds),
    ``"random"``, ``"pct"``, ``"pct:auto"``, ``"fifo"``.
    ``require_coverage``: ``sometimes``/``reached`` labels that some universe must
    reach, or the test fails.
    ``boundary`` (on by default): the stdlib clocks, ``random``, ``uuid`` and
    ``os.urandom`` are virtual or tape-driven, blocking sockets, DNS and
    ``time.sleep`` escapes (see :func:`simloom.boundary`); the wall clock starts at
    ``wall_clock_epoch``.
    ``check_determinism``: run every universe twice and fail with
    :class:`~simloom.SimloomNondeterminismError` if the runs differ
    (``--simloom-check-determinism`` turns it on for every test).
    A parameter named ``world`` receives each universe's :class:`~simloom.World`
    (hosts, network, disks, faults); every other parameter is a pytest fixture.
    ``world=False``: no simulated world, and network use is an escape.
    ``max_steps``, ``max_virtual_time``, ``watchdog``: each universe's budgets (see
    :func:`simloom.run`; ``--simloom-max-steps``, ``--simloom-max-virtual-time`` and
    ``--simloom-watchdog`` override them).
    """
    # Validated here, where the decorator is written, even in the
    # ``@simloom.test(...)`` form that receives the function later.
    if runs is not None:
        check_int("runs", runs)
    if scheduler is not None:
        _check_scheduler(scheduler)
    required = check_labels("require_coverage", require_coverage)
    check_int("livelock_steps", livelock_steps)
    _boundary.settings(boundary, wall_clock_epoch)
    check_flag("check_determinism", check_determinism)
    check_flag("world", world)
    budgets = _budgets.budgets(max_steps, max_virtual_time, watchdog)
    if fn is None:
        return functools.partial(
            test,
            runs=runs,
            scheduler=scheduler,
            require_coverage=required,
            livelock_steps=livelock_steps,
            boundary=boundary,
            wall_clock_epoch=wall_clock_epoch,
            check_determinism=check_determinism,
            world=world,
            max_steps=max_steps,
            max_virtual_time=max_virtual_time,
            watchdog=watchdog,
        )
    if not inspect.iscoroutinefunction(fn):
        raise SimloomUsageError(
            f"@simloom.test decorates an async def test; {getattr(fn, '__qualname__', fn)!r} "
            "is not a coroutine function"
        )

    signature = inspect.signature(fn)
    wants_world = "world" in signature.parameters
    visible = signature.replace(
        parameters=[p for name, p in signature.parameters.items() if name != "world"]
    )

    if wants_world and not world:
        raise SimloomUsageError(
            f"{fn.__qualname__} takes a `world` parameter but is decorated with world=False"
        )

    @functools.wraps(fn)
    def run_simloom_test(*args: Any, **kwargs: Any) -> None:
        __tracebackhide__ = True
        _Exploration(
            fn,
            run_simloom_test,
            args,
            kwargs,
            runs=runs,
            scheduler=scheduler,
            required=required,
            livelock_steps=livelock_steps,
            boundary=boundary,
            wall_clock_epoch=wall_clock_epoch,
            check_determinism=check_determinism,
            world=world,
            wants_world=wants_world,
            budgets=budgets,
        ).run()

    del run_simloom_test.__wrapped__  # pytest must see the visible signature below
    run_simloom_test.__signature__ = visible  # type: ignore[attr-defined]
    run_simloom_test._simloom_test = True  # type: ignore[attr-defined]
    return run_simloom_test


class _Exploration:
    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        wrapper: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        runs: int | None,
        scheduler: str | None,
        required: list[str],
        livelock_steps: int,
        boundary: bool,
        wall_clock_epoch: datetime | float,
        check_determinism: bool,
        world: bool = True,
        wants_world: bool = False,
        budgets: _budgets.Budgets | None = None,
    ) -> None:
        self.fn = fn
        self.world = world
        self.options = _options
        self.test_id = _current_test_id or f"{fn.__module__}.{fn.__qualname__}"
        from hypothesis import settings

        explicit = _explicit_settings(fn, wrapper)
        # An explicit @settings applies (max_examples as runs); else the profile.
        self.settings: Any = explicit if explicit is not None else settings.default
        default_runs = explicit.max_examples if explicit is not None else DEFAULT_RUNS
        self.runs = self.options.runs or runs or default_runs
        self.scheduler = _check_scheduler(self.options.scheduler or scheduler or DEFAULT_SCHEDULER)
        self.required = required
        self.livelock_steps = livelock_steps
        self.budgets = (budgets or _budgets.Budgets()).overridden(self.options.budgets)
        self.boundary = boundary
        self.wall_clock_epoch = wall_clock_epoch
        self.patches = _boundary.settings(boundary, wall_clock_epoch)
        self.check_determinism = check_determinism or self.options.check_determinism
        self.resolved: dict[str, SchedulerSpec] = {}
        self.stats = TestStats(self.test_id)
        session_stats.append(self.stats)
        #: One-line notes for the report (or the summary, if the test passes).
        self.notes: list[str] = []

        main: Callable[..., Awaitable[Any]]
        if wants_world:

            def main(world: Any) -> Awaitable[Any]:
                return fn(*args, world=world, **kwargs)

        else:

            def main() -> Awaitable[Any]:
                return fn(*args, **kwargs)

        self.main = main

    # -- helpers

    def _run_seed(self, seed: int) -> RunResult:
        name = _scheduler_for_seed(self.scheduler, seed)
        spec = self.resolved.get(name)
        if spec is None:
            # pct:auto's horizon comes from a FIFO probe run, which is the same for
            # every seed: measure it once per exploration, not once per universe.
            spec = _api._resolve_horizon(
                self.main,
                parse_scheduler(name),
                self.livelock_steps,
                self.patches,
                self.world,
                self.budgets,
            )
            self.resolved[name] = spec
        try:
            return _api.run(
                self.main,
                seed=seed,
                scheduler=spec,
                livelock_steps=self.livelock_steps,
                boundary=self.boundary,
                wall_clock_epoch=self.wall_clock_epoch,
                check_determinism=self.check_determinism,
                world=self.world,
                **self.budgets.arguments(),
            )
        except SimloomNondeterminismError as exc:
            exc.add_note(
                f"universe {seed} of {self.test_id}; re-run it: "
                + _rerun_command(
                    self.test_id,
                    seed,
                    _scheduler_for_seed(self.scheduler, seed),
                    boundary=self.boundary,
                    check_determinism=True,
                )
            )
            raise exc.with_traceback(_strip_simloom_frames(exc.__traceback__)) from None

    def _count(self, result: RunResult) -> None:
        self.stats.universes += 1
        for label, hits in result.coverage.items():
            self.stats.coverage[label] = self.stats.coverage.get(label, 0) + hits
            reaching = self.stats.universes_reaching
            reaching[label] = reaching.get(label, 0) + 1

    def _fail(
        self,
        *,
        how: str,
        seed: int | None,
        found: RunResult,
        final: RunResult | None = None,
        shrink: _Shrink | None,
        hypothesis_run: _HypothesisRun | None = None,
        notes: Sequence[str] = (),
    ) -> None:
        """Raise the program's error with the report attached. The report comes
        first: an artifact that cannot be written is a warning line in it."""
        __tracebackhide__ = True
        final = final if final is not None and final.error is not None else found
        assert final.error is not None
        scheduler = _scheduler_for_seed(self.scheduler, seed) if seed is not None else "replay"
        artifacts, warnings = _write_artifacts(
            self.options,
            self.test_id,
            seed,
            scheduler,
            final,
            found.tape if final is not found else None,
            shrink,
        )
        report = _report(
            self.test_id,
            boundary=self.boundary,
            how=how,
            seed=seed,
            scheduler=scheduler,
            found=found,
            final=final,
            shrink=shrink,
            artifacts=artifacts,
            universes=self.stats.universes,
            notes=[*self.notes, *notes, *warnings],
        )
        self.stats.outcome = "failed"
        self.stats.note = report
        error = final.error
        if hypothesis_run is not None:
            hypothesis_run.restore_notes(error)
        error.add_note(report)
        raise error.with_traceback(_strip_simloom_frames(error.__traceback__))

    def _hypothesis_run(self, *, shrink: bool) -> _HypothesisRun:
        hypothesis_run = _HypothesisRun(
            self.test_id,
            self.main,
            self.settings,
            self.boundary,
            self.wall_clock_epoch,
            self.world,
            self.budgets,
            shrink=shrink,
        )
        discarded = hypothesis_run.discard_corrupt()
        if discarded:
            self.notes.append(_discarded_note(discarded))
        return hypothesis_run

    def _shrinking(self) -> str | None:
        """Why failures are not shrunk in this run, or ``None`` if they are."""
        from hypothesis import Phase

        if not self.options.shrink:
            return "--simloom-no-shrink"
        if Phase.shrink not in self.settings.phases:
            return "the Hypothesis settings leave out Phase.shrink"
        return None

    def _run_hypothesis(
        self, hypothesis_run: _HypothesisRun, found: str = ""
    ) -> tuple[BaseException | None, float]:
        """Run it; an interrupt says what becomes of the failure being shrunk."""
        started = time.perf_counter()
        try:
            failure = hypothesis_run.run()
        except KeyboardInterrupt as interrupt:
            first = hypothesis_run.first
            if first is not None and first.error is not None:
                where = f" ({found})" if found else ""
                kept = (
                    "the example database keeps it, partly shrunk: the next run replays "
                    "it first and resumes shrinking"
                    if hypothesis_run.persistent
                    else "no example database keeps it (database=None)"
                )
                interrupt.add_note(
                    f"simloom: interrupted while shrinking a failure of {self.test_id}"
                    f"{where}: {_error_line(first.error)}; {kept}"
                )
            raise
        return failure, time.perf_counter() - started

    def _shrink_outcome(
        self,
        hypothesis_run: _HypothesisRun,
        seconds: float,
        *,
        known_minimal: bool = False,
        resumed: bool = False,
        was_partly: bool = False,
    ) -> _Shrink:
        """How far the failure Hypothesis reproduced was shrunk, said honestly:
        "finished" only if the shrinker ran to its end, now or in an earlier run."""
        not_shrinking = self._shrinking()
        ran, stopped = hypothesis_run.shrink_result()
        shrink = _Shrink(
            NOT_SHRUNK,
            candidates=hypothesis_run.candidates,
            seconds=seconds,
            saved=hypothesis_run.persistent,
        )
        if not_shrinking is None and ran:
            if stopped is None:
                shrink.state = FINISHED
                shrink.resumed = resumed
                hypothesis_run.record_shrunk()
            else:
                shrink.state, shrink.why = PARTLY, f"Hypothesis stopped: {stopped}"
        elif known_minimal:
            shrink.state, shrink.earlier = FINISHED, True
        else:
            shrink.state = PARTLY if was_partly else NOT_SHRUNK
            shrink.why = not_shrinking or "the example database did not let the shrink resume"
        return shrink

    def _shrink(self, tape: Tape, found: str) -> tuple[_HypothesisRun, _Shrink]:
        hypothesis_run = self._hypothesis_run(shrink=True)
        # A fresh failure is shrunk from the secondary key; primary entries (left by
        # a run with Phase.reuse off) would be replayed instead, as minimal.
        hypothesis_run.reopen(hypothesis_run.primary())
        hypothesis_run.save(tape)
        _, seconds = self._run_hypothesis(hypothesis_run, found)
        if hypothesis_run.last is None or hypothesis_run.last.error is None:
            shrink = _Shrink(
                NOT_SHRUNK,
                why="Hypothesis did not reproduce the failure from its tape",
                candidates=hypothesis_run.candidates,
                seconds=seconds,
            )
            return hypothesis_run, shrink
        return hypothesis_run, self._shrink_outcome(hypothesis_run, seconds)

    # -- the modes

    def run(self) -> None:
        __tracebackhide__ = True
        try:
            _api.frozen_heap().run(self._run)
        except BaseException:
            if self.stats.outcome == "passed":
                self.stats.outcome = "error"
            raise
        if self.notes and not self.stats.note:
            self.stats.note = "; ".join(self.notes)

    def _run(self) -> None:
        __tracebackhide__ = True
        if self.options.tape is not None:
            artifact = self.options.tape_artifact
            if artifact is None or artifact.path != self.options.tape:
                artifact = load_tape_artifact(self.options.tape)
            return self._replay_tape(artifact)
        if self.options.seed is not None:
            return self._replay_seed(self.options.seed)
        from hypothesis import Phase

        if Phase.reuse in self.settings.phases:
            self._replay_database()
        if Phase.generate in self.settings.phases:
            self._explore()
        self._check_coverage()
        return None

    def _replay_tape(self, artifact: TapeArtifact) -> None:
        __tracebackhide__ = True
        path = artifact.path
        owner = artifact.test
        if owner is not None and owner != self.test_id:
            raise SimloomUsageError(
                f"--simloom-tape={path} belongs to test {owner!r}, not {self.test_id!r}; "
                "select that test (or drop --simloom-tape)"
            )
        result = _api.replay(
            self.main,
            artifact.tape,
            livelock_steps=self.livelock_steps,
            boundary=self.boundary,
            wall_clock_epoch=self.wall_clock_epoch,
            world=self.world,
            **self.budgets.arguments(),
        )
        self._count(result)
        misfit = _misalignment(artifact.tape, result)
        divergence = None if misfit else _replay_divergence(artifact.fields, result)
        notes = [note for note in (misfit, divergence) if note]
        if result.error is not None:
            self._fail(how=f"replayed {path}", seed=None, found=result, shrink=None, notes=notes)
        self.stats.note = f"--simloom-tape={path}: {misfit}" if misfit else divergence or ""

    def _replay_seed(self, seed: int) -> None:
        __tracebackhide__ = True
        result = self._run_seed(seed)
        self._count(result)
        if result.error is not None:
            self._fail_and_shrink(how=f"seed {seed} replayed", seed=seed, found=result)

    def _replay_database(self) -> None:
        """Replay the failures saved for this test; one whose shrink did not finish
        in an earlier run is shrunk on from where it stopped."""
        __tracebackhide__ = True
        resume = self._shrinking() is None
        hypothesis_run = self._hypothesis_run(shrink=resume)
        if not hypothesis_run.saved():
            return
        unfinished = hypothesis_run.unfinished()
        known_minimal = bool(hypothesis_run.primary()) and not unfinished
        pending = bool(unfinished or hypothesis_run.secondary())
        if resume:
            hypothesis_run.reopen(unfinished)
        failure, seconds = self._run_hypothesis(hypothesis_run)
        if failure is None or hypothesis_run.first is None or hypothesis_run.last is None:
            hypothesis_run.forget_gone()  # fixed: Hypothesis deleted what no longer fails
            return
        self.stats.universes += hypothesis_run.candidates
        self._fail(
            how="a failure saved in the example database, replayed",
            seed=None,
            found=hypothesis_run.first if hypothesis_run.first.error else hypothesis_run.last,
            final=hypothesis_run.last,
            shrink=self._shrink_outcome(
                hypothesis_run,
                seconds,
                known_minimal=known_minimal,
                resumed=pending and not known_minimal,
                was_partly=bool(unfinished),
            ),
            hypothesis_run=hypothesis_run,
        )

    def _explore(self) -> None:
        __tracebackhide__ = True
        for seed in range(self.runs):
            result = self._run_seed(seed)
            self._count(result)
            if result.error is not None:
                self._fail_and_shrink(
                    how=f"universe {seed + 1} of {self.runs}", seed=seed, found=result
                )

    def _fail_and_shrink(self, *, how: str, seed: int, found: RunResult) -> None:
        __tracebackhide__ = True
        not_shrinking = self._shrinking()
        if not_shrinking is not None:
            # Saved unshrunk, so that the next run replays it first and shrinks it.
            hypothesis_run = self._hypothesis_run(shrink=False)
            hypothesis_run.save(found.tape)
            shrink = _Shrink(NOT_SHRUNK, why=not_shrinking, saved=hypothesis_run.persistent)
            self._fail(how=how, seed=seed, found=found, shrink=shrink)
        rerun = _rerun_command(
            self.test_id, seed, _scheduler_for_seed(self.scheduler, seed), boundary=self.boundary
        )
        hypothesis_run, shrink = self._shrink(found.tape, f"{how}, seed {seed}; re-run: {rerun}")
        self._fail(
            how=how,
            seed=seed,
            found=found,
            final=hypothesis_run.last,
            shrink=shrink,
            hypothesis_run=hypothesis_run,
        )

    def _check_coverage(self) -> None:
        missing = [label for label in self.required if not self.stats.coverage.get(label)]
        if missing:
            self.stats.outcome = "failed"
            raise CoverageNotReachedError(
                f"no universe of {self.stats.universes} reached "
                + ", ".join(repr(m) for m in missing)
                + " (require_coverage); reached: "
                + (
                    ", ".join(f"{k}={v}" for k, v in sorted(self.stats.coverage.items()))
                    or "nothing"
                )
            )


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


def _misalignment(tape: Tape, result: RunResult) -> str | None:
    """How a replayed tape no longer fits the program, from the replay's misalign
    events, or ``None`` if every deviation landed on a decision it fits."""
    if not result.misaligned:
        return None
    decision = 0
    ended = False
    misfits: list[tuple[int, str | None, int | None]] = []
    pending: int | None = None
    unreached_from: int | None = None
    for event in decode_events(result.event_log_bytes):
        if event.kind == "end":
            ended = True
        elif event.kind == "misalign":
            if ended:
                unreached_from = event.value
            else:
                pending = event.value
        elif event.kind == "decision":
            if pending == decision:
                misfits.append((decision, event.label, event.bound))
                pending = None
            decision += 1
    parts = []
    if misfits:
        index, label, bound = misfits[0]
        first = (
            f"misaligned at decision #{index} ({label}: the tape's value does not fit "
            f"its {bound} choices, so the first was taken)"
        )
        if len(misfits) > 1:
            first += f" and at {len(misfits) - 1} more decisions"
        parts.append(first)
    if unreached_from is not None:
        # Every deviation the run used is a recorded deviation or a misfit.
        unreached = len(tape) - len(result.tape) - len(misfits)
        parts.append(
            f"{_plural(unreached, 'deviation')} from decision #{unreached_from} on never "
            f"reached (the program made {_plural(decision, 'decision')})"
        )
    return "the tape no longer fits this program: " + "; ".join(parts or ["misaligned"])


def _replay_divergence(document: dict[str, Any], result: RunResult) -> str | None:
    """Why a replayed artifact did not give the universe it recorded, if it did not:
    a different digest, and whether the hash seed may be the reason."""
    recorded = document.get("digest")
    if not isinstance(recorded, str) or recorded == result.digest:
        return None
    note = (
        f"the replay is not the recorded universe (digest {recorded[:12]}… recorded, "
        f"{result.digest[:12]}… now)"
    )
    recorded_seed = document.get("hashseed")
    current_seed = _hashseed.current_hashseed()
    if current_seed is None or recorded_seed != current_seed:
        recorded_with = "random" if recorded_seed is None else f"PYTHONHASHSEED={recorded_seed}"
        note += (
            f"; recorded with hash seed {recorded_with}, replayed with "
            f"{_hashseed.describe_hashseed()}"
        )
    return note
