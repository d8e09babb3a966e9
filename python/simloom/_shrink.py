"""Shrinking a failure found by ``@simloom.test``: the Hypothesis run that replays
and shrinks it under the test's example-database key, and the record of how far
the shrink got.

Owns: the database keys of a simloom test (primary, secondary, and the
``.simloom-shrunk`` record of the entries whose shrink finished), running
Hypothesis over ``universes()`` for them, and :class:`_Shrink`. Must not: explore
seeds, write the report or the artifacts (``_explore.py``, ``_report.py``,
``_artifacts.py``), or import Hypothesis at module level (``import simloom`` must
not need it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ._api import RunResult
from ._config import UniverseConfig
from .tape import Tape

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
    #: Fast replays :func:`prepass` made before Hypothesis started, and their time
    #: (included in ``candidates`` and ``seconds``).
    prepass_runs: int = 0


#: A failing tape with more deviations than this is cut down by :func:`prepass`
#: before Hypothesis shrinks it. Hypothesis pays tens of microseconds per draw per
#: candidate run in its own bookkeeping, so a tape of a thousand draws costs it
#: ~0.25 s a candidate where a plain replay costs milliseconds.
PREPASS_MIN_DEVIATIONS = 64
#: The prepass stops after this many replays or this much wall time, whichever
#: comes first (what it has cut by then stands: every step it keeps was replayed
#: and failed the same way).
PREPASS_MAX_RUNS = 2000
PREPASS_MAX_SECONDS = 2.0


def failure_origin(error: BaseException) -> tuple[type[BaseException], str, int]:
    """Where ``error`` was raised: its type and the innermost frame's file and line.
    Two failures with one origin are the same failure for shrinking (Hypothesis
    compares its "interesting origin" the same way)."""
    tb = error.__traceback__
    filename, line = "", 0
    while tb is not None:
        filename, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    return type(error), filename, line


@dataclass(frozen=True)
class Prepass:
    """What :func:`prepass` made of a failing tape."""

    tape: Tape
    runs: int
    seconds: float


def prepass(
    tape: Tape,
    error: BaseException,
    replay: Callable[[Tape], RunResult],
    *,
    max_runs: int = PREPASS_MAX_RUNS,
    max_seconds: float = PREPASS_MAX_SECONDS,
) -> Prepass:
    """Cut a long failing ``tape`` down with plain replays before Hypothesis shrinks
    it: first the shortest prefix of its deviations that still fails (a binary
    search), then chunks of deviations removed, halving the chunk size down to one
    (delta debugging). A candidate is kept only if its replay fails with the same
    :func:`failure_origin` as ``error``, so the result always fails the same way;
    it is a starting point, not a minimum (Hypothesis shrinks on from it). Tapes of
    at most :data:`PREPASS_MIN_DEVIATIONS` deviations are returned as they are."""
    import time

    deviations = list(tape.deviations)
    if len(deviations) <= PREPASS_MIN_DEVIATIONS:
        return Prepass(tape, 0, 0.0)
    origin = failure_origin(error)
    started = time.perf_counter()
    deadline = started + max_seconds
    runs = 0

    def budget() -> bool:
        return runs < max_runs and time.perf_counter() < deadline

    def fails(candidate: list[tuple[int, int]]) -> bool:
        nonlocal runs
        runs += 1
        result = replay(Tape(candidate))
        return result.error is not None and failure_origin(result.error) == origin

    low, high = 0, len(deviations)  # deviations[:high] fails (the whole tape does)
    while low < high and budget():
        middle = (low + high) // 2
        if fails(deviations[:middle]):
            high = middle
        else:
            low = middle + 1
    deviations = deviations[:high]
    chunk = len(deviations) // 2
    while chunk >= 1 and budget():
        at = 0
        while at < len(deviations) and budget():
            candidate = deviations[:at] + deviations[at + chunk :]
            if candidate and fails(candidate):
                deviations = candidate
            else:
                at += chunk
        chunk //= 2
    return Prepass(Tape(deviations), runs, time.perf_counter() - started)


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
        config: UniverseConfig,
        *,
        shrink: bool = True,
        scheduler: str | None = None,
        loops: Callable[[Callable[[], Any]], RunResult] | None = None,
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
            # ``loops``: a program that makes its own loops (pytest --simloom).
            result = universe.run_result(main) if loops is None else universe._run_loops(loops)
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
        # The draws answer every decision; ``scheduler`` (the faithful one, or None)
        # says which decisions a universe has.
        strategy = universes(config=config, scheduler=scheduler)

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
