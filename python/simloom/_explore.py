"""The exploration behind ``@simloom.test``: which universes one test runs, in
which order, and what happens when one fails.

One call of a decorated test replays the failures saved in the example database
(resuming an unfinished shrink), then explores ``runs`` seeded universes (seed
``i`` is universe ``i``; ``"mixed"`` gives seed ``i`` the scheduler
:data:`DEFAULT_MIX` names at ``i % 12``), or replays
the one universe ``--simloom-seed`` / ``--simloom-tape`` names. The first failure
is shrunk (``_shrink.py``), its artifacts written (``_artifacts.py``) and the
program's own error raised with the report attached (``_report.py``).

Owns: the exploration policy, the command-line :class:`Options` it reads and the
:class:`TestStats` it keeps. Must not: import pytest, or hold the session's state
(``testing.py`` does, and hands it in).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import _api, _causal
from ._api import RunResult
from ._artifacts import ARTIFACT_DIR, TapeArtifact, _write_artifacts, load_tape_artifact
from ._config import UniverseConfig
from ._guarantee import pct_guarantee, task_count
from ._report import (
    _error_line,
    _misalignment,
    _replay_divergence,
    _report,
    _rerun_command,
    _strip_simloom_frames,
)
from ._scheduler import SchedulerSpec, parse_scheduler, replay_questions
from ._shrink import FINISHED, NOT_SHRUNK, PARTLY, _discarded_note, _HypothesisRun, _Shrink
from ._shrink import Prepass as _Prepass
from ._shrink import prepass as _prepass
from .errors import CoverageNotReachedError, SimloomNondeterminismError, SimloomUsageError
from .tape import Tape, atomic_write

#: Universes explored per test when neither ``runs`` nor Hypothesis's
#: ``max_examples`` (from an explicit ``@settings``) says otherwise.
DEFAULT_RUNS = 2000
#: ``"mixed"``: each seed's scheduler is drawn from :data:`DEFAULT_MIX`.
DEFAULT_SCHEDULER = "mixed"
#: The default exploration's swarm: seed ``i`` runs under ``DEFAULT_MIX[i % 12]``.
#: Mostly shallow PCT with eager task starts (starvation, deep orderings, two
#: timers due at once, a lease that expires at the instant it is checked), deeper
#: PCT with a measured horizon (``d=5``: bugs needing several orderings), PCT
#: with late starts and a measured horizon (a task that must run after others got
#: going), and a uniform random walk (bugs that need many small deviations, such as
#: an async generator finalized mid-iteration). The rates behind this choice are in
#: docs/benchmarks.md ("The bug zoo"); every entry is an ordinary
#: scheduler name, so a seed's universe re-runs with ``simloom.run(main, seed=i,
#: scheduler=DEFAULT_MIX[i % 12])``.
DEFAULT_MIX: tuple[str, ...] = (
    "pct:d=2,eager=1",
    "random",
    "pct:auto,d=5,eager=1",
    "pct:d=2,eager=1",
    "pct:auto,eager=0",
    "pct:d=2,eager=1",
    "pct:auto,d=5,eager=1",
    "pct:d=2,eager=1",
    "pct:d=2,eager=1",
    "pct:auto,d=5,eager=1",
    "pct:d=2,eager=1",
    "pct:d=2,eager=1",
)


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
    #: ``--simloom-cancellations``: every test's universes may inject cancellations.
    cancellations: bool = False
    #: ``--simloom-max-steps`` and friends given on the command line (argument name
    #: → value, ``None`` for "none"); they override the test's own.
    budgets: dict[str, int | float | None] = field(default_factory=dict)
    #: Told after each seeded universe: (universes explored, runs, whether it
    #: failed); the command line's progress bar.
    progress: Callable[[int, int, bool], None] | None = None


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
    #: Passing PCT universes the guarantee counts (no eager starts, a horizon of
    #: at least their decisions), the shallowest depth among them, and the most
    #: tasks and steps any of them saw.
    pct_universes: int = 0
    pct_depth: int = 0
    pct_owners: int = 0
    pct_steps: int = 0

    def guarantee(self) -> str | None:
        """What PCT's probabilistic guarantee says about this exploration (``None``
        when no universe it counts ran): see :func:`simloom._guarantee.pct_guarantee`."""
        return pct_guarantee(
            self.pct_universes, self.pct_owners, self.pct_steps, depth=self.pct_depth
        )


def _scheduler_for_seed(name: str, seed: int) -> str:
    if name == "mixed":
        return DEFAULT_MIX[seed % len(DEFAULT_MIX)]
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
            f"{exc} (or 'mixed', the exploration default: a swarm of PCT and random-walk "
            "universes, see DEFAULT_MIX)"
        ) from None
    return name


def _explicit_settings(fn: Any, wrapper: Any) -> Any:
    """Hypothesis settings applied to the test with ``@settings`` (above or below
    ``@simloom.test``), or ``None``."""
    return getattr(wrapper, "_hypothesis_internal_use_settings", None) or getattr(
        fn, "_hypothesis_internal_use_settings", None
    )


class _Exploration:
    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        wrapper: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        options: Options,
        test_id: str,
        runs: int | None,
        scheduler: str | None,
        required: list[str],
        config: UniverseConfig,
        check_determinism: bool,
        wants_world: bool = False,
    ) -> None:
        self.fn = fn
        self.options = options
        self.test_id = test_id
        from hypothesis import settings

        explicit = _explicit_settings(fn, wrapper)
        # An explicit @settings applies (max_examples as runs); else the profile.
        self.settings: Any = explicit if explicit is not None else settings.default
        default_runs = explicit.max_examples if explicit is not None else DEFAULT_RUNS
        self.runs = self.options.runs or runs or default_runs
        self.scheduler = _check_scheduler(self.options.scheduler or scheduler or DEFAULT_SCHEDULER)
        self.required = required
        # Command-line budgets over the test's own.
        self.config = (
            config.with_budgets(config.budgets.overridden(self.options.budgets))
            if self.options.budgets
            else config
        )
        if self.options.cancellations and not self.config.cancellations:
            self.config = replace(self.config, cancellations=True)
        self.check_determinism = check_determinism or self.options.check_determinism
        self.resolved: dict[str, SchedulerSpec] = {}
        self.stats = TestStats(self.test_id)
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
            spec = _api._resolve_horizon(self.main, parse_scheduler(name), self.config)
            self.resolved[name] = spec
        try:
            return _api.run(
                self.main,
                seed=seed,
                scheduler=spec,
                check_determinism=self.check_determinism,
                config=self.config,
            )
        except SimloomNondeterminismError as exc:
            exc.add_note(
                f"universe {seed} of {self.test_id}; re-run it: "
                + _rerun_command(
                    self.test_id,
                    seed,
                    _scheduler_for_seed(self.scheduler, seed),
                    boundary=self.config.boundary,
                    check_determinism=True,
                    cancellations=self.config.cancellations,
                    files=self.config.files,
                )
            )
            raise exc.with_traceback(_strip_simloom_frames(exc.__traceback__)) from None

    def _count(self, result: RunResult) -> None:
        stats = self.stats
        stats.universes += 1
        if result.eager_starts is False and result.error is None:
            spec = parse_scheduler(result.scheduler)
            if spec.horizon >= result.decisions:
                stats.pct_universes += 1
                stats.pct_depth = min(stats.pct_depth, spec.depth) or spec.depth
                stats.pct_owners = max(stats.pct_owners, task_count(result))
                stats.pct_steps = max(stats.pct_steps, result.steps)
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
            self.options.artifact_dir,
            self.test_id,
            seed,
            scheduler,
            final,
            found.tape if final is not found else None,
            shrink,
            cancellations=self.config.cancellations,
        )
        # The report and the timeline replay the same variants of the tape.
        replays = _causal.remembering(
            _api.traced_replays(
                self.main, scheduler=self._question_model() or "fifo", config=self.config
            )
        )
        timeline = self._write_timeline(final, seed, scheduler, artifacts, warnings, replays)
        if timeline is not None:
            artifacts.append(timeline)
        report = _report(
            self.test_id,
            boundary=self.config.boundary,
            cancellations=self.config.cancellations,
            files=self.config.files,
            how=how,
            seed=seed,
            scheduler=scheduler,
            found=found,
            final=final,
            shrink=shrink,
            artifacts=artifacts,
            universes=self.stats.universes,
            notes=[*self.notes, *notes, *warnings],
            in_code=_causal.explain(replays, final),
        )
        self.stats.outcome = "failed"
        self.stats.note = report
        error = final.error
        if hypothesis_run is not None:
            hypothesis_run.restore_notes(error)
        error.add_note(report)
        raise error.with_traceback(_strip_simloom_frames(error.__traceback__))

    def _write_timeline(
        self,
        final: RunResult,
        seed: int | None,
        scheduler: str,
        artifacts: list[Path],
        warnings: list[str],
        replays: _causal.TracedReplay,
    ) -> Path | None:
        """Draw the failure's timeline beside its tape (``<stem>.timeline.html``,
        written atomically); a timeline that cannot be drawn or written is a
        warning line, never a lost report."""
        tape_path = next((p for p in artifacts if p.name.endswith(".tape.json")), None)
        if tape_path is None:
            return None
        path = tape_path.with_name(tape_path.name.removesuffix(".tape.json") + ".timeline.html")
        from . import _timeline

        header = {
            "test": self.test_id,
            "seed": seed,
            "scheduler": scheduler,
            "artifact": tape_path.name,
        }
        try:
            timeline, _ = _api.draw_timeline(
                self.main,
                final.tape,
                scheduler=self._question_model() or "fifo",
                config=self.config,
                header=header,
                replays=replays,
            )
            atomic_write(path, _timeline.render(timeline).encode())
        except Exception as exc:  # the report must not give way to the drawing
            warnings.append(f"  warning: timeline {path} not written: {type(exc).__name__}: {exc}")
            return None
        return path

    def _question_model(self) -> str | None:
        """The scheduler a replay or shrink must name: the faithful one asks
        different questions (stalls, timer ties) from the others, which all replay
        alike."""
        return replay_questions(self.scheduler)

    def _hypothesis_run(self, *, shrink: bool) -> _HypothesisRun:
        hypothesis_run = _HypothesisRun(
            self.test_id,
            self.main,
            self.settings,
            self.config,
            shrink=shrink,
            scheduler=self._question_model(),
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

    def _shrink(
        self, tape: Tape, found: str, *, error: BaseException | None = None, scheduler: str = ""
    ) -> tuple[_HypothesisRun, _Shrink]:
        hypothesis_run = self._hypothesis_run(shrink=True)
        # A fresh failure is shrunk from the secondary key; primary entries (left by
        # a run with Phase.reuse off) would be replayed instead, as minimal.
        hypothesis_run.reopen(hypothesis_run.primary())
        cut = _Prepass(tape, 0, 0.0)
        if error is not None:
            # A long tape is first cut down by plain replays (much cheaper per run
            # than Hypothesis's candidates); Hypothesis shrinks on from there.
            replay_as = scheduler if scheduler.startswith("faithful") else "fifo"
            cut = _prepass(
                tape,
                error,
                lambda candidate: _api.replay(
                    self.main, candidate, scheduler=replay_as, config=self.config
                ),
            )
        hypothesis_run.save(cut.tape)
        _, seconds = self._run_hypothesis(hypothesis_run, found)
        seconds += cut.seconds
        if hypothesis_run.last is None or hypothesis_run.last.error is None:
            shrink = _Shrink(
                NOT_SHRUNK,
                why="Hypothesis did not reproduce the failure from its tape",
                candidates=hypothesis_run.candidates + cut.runs,
                seconds=seconds,
                prepass_runs=cut.runs,
            )
            return hypothesis_run, shrink
        shrink = self._shrink_outcome(hypothesis_run, seconds)
        shrink.candidates += cut.runs
        shrink.prepass_runs = cut.runs
        return hypothesis_run, shrink

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
        if artifact.fields.get("cancellations") is True and not self.config.cancellations:
            # A universe that injected cancellations replays with them.
            self.config = replace(self.config, cancellations=True)
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
            scheduler=self._question_model() or "fifo",
            config=self.config,
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
        if self.scheduler != "mixed":
            spec = parse_scheduler(self.scheduler)
            if spec.strategy == "systematic":
                return self._explore_systematic(spec)
        for seed in range(self.runs):
            result = self._run_seed(seed)
            self._count(result)
            if self.options.progress is not None:
                self.options.progress(seed + 1, self.runs, result.error is not None)
            if result.error is not None:
                self._fail_and_shrink(
                    how=f"universe {seed + 1} of {self.runs}", seed=seed, found=result
                )

    def _explore_systematic(self, spec: SchedulerSpec) -> None:
        """``scheduler="systematic:d=N"``: every schedule with at most N deviations
        (``runs`` does not apply; ``max=`` caps the schedules). What was proven is a
        note of the test (the summary's, or the report's if a schedule fails)."""
        __tracebackhide__ = True
        from . import _systematic

        replay = _systematic.replayer(
            self.main, self.config, check_determinism=self.check_determinism
        )
        outcome = _systematic.search(
            replay,
            spec.deviations,
            spec.max_schedules,
            on_result=self._count,
            preemptions=spec.preemptions,
        )
        self.notes.append(f"{spec.name}: {outcome.proof}")
        found = outcome.failure
        if found is None:
            return
        how = f"systematic schedule {outcome.schedules} ({spec.name})"
        self._fail_and_shrink(how=how, seed=None, found=found)

    def _fail_and_shrink(self, *, how: str, seed: int | None, found: RunResult) -> None:
        """Shrink the failure ``found`` (of universe ``seed``; ``None``: a universe
        with no seed, such as a systematic schedule) and fail with its report."""
        __tracebackhide__ = True
        not_shrinking = self._shrinking()
        if not_shrinking is not None:
            # Saved unshrunk, so that the next run replays it first and shrinks it.
            hypothesis_run = self._hypothesis_run(shrink=False)
            hypothesis_run.save(found.tape)
            shrink = _Shrink(NOT_SHRUNK, why=not_shrinking, saved=hypothesis_run.persistent)
            self._fail(how=how, seed=seed, found=found, shrink=shrink)
        label = how
        if seed is not None:
            rerun = _rerun_command(
                self.test_id,
                seed,
                _scheduler_for_seed(self.scheduler, seed),
                boundary=self.config.boundary,
                cancellations=self.config.cancellations,
                files=self.config.files,
            )
            label = f"{how}, seed {seed}; re-run: {rerun}"
        hypothesis_run, shrink = self._shrink(
            found.tape,
            label,
            error=found.error,
            scheduler=_scheduler_for_seed(self.scheduler, seed) if seed is not None else "",
        )
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
