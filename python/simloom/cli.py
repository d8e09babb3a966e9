"""The ``simloom`` command line (console script ``simloom``, or ``python -m simloom``).

    simloom explore TARGET [--runs N] [--scheduler S] [--seed S | --tape FILE]
    simloom soak TARGET [--universes N] [--time 10m] [--workers N | --cluster ADDRESS]
                 [--checkpoint FILE] [--resume] [--database URL|DIR]
    simloom replay ARTIFACT
    simloom trace ARTIFACT [--kind KIND] [--label TEXT] [--limit N]
    simloom explain ARTIFACT
    simloom diff A B [--context N]
    simloom timeline ARTIFACT [-o FILE.html]

``TARGET`` is an async function outside pytest: ``package.module:function`` or
``path/to/file.py:function``. ``explore`` runs it as ``@simloom.test`` runs a test
(seeded universes, the first failure shrunk by Hypothesis, the report, the
artifacts under ``.sim/failures/``); ``replay`` runs a failure's tape file again
(a pytest test's through pytest, an explored function's here); ``trace`` prints a
failure's event log; ``diff`` prints two event logs from their first difference;
``timeline`` draws a failure's universe as one self-contained HTML page.
``soak`` explores the seeds of TARGET (or of an ``@simloom.test``,
``FILE.py::TEST``) for a time or universe budget on worker processes or a Dask
cluster, checkpointed and resumable, and saves what fails in the example database
so that the test's next pytest run replays it first (``_soak`` does the work).

On a terminal the output is in colour and ``explore`` shows a progress bar (both
with rich); piped, or with ``NO_COLOR`` set, it is plain text (``--color
always|never`` decides instead).

Exit status: 0 when the command did what it was asked and found nothing wrong, 1
when a universe failed (or two logs differ), 2 for bad input (a missing, foreign or
corrupt file, an unknown target, a bad option): a one-line ``simloom: error: ...``
on stderr, never a traceback.

Owns: argument parsing, loading a target, reading artifact files for display, the
colour and progress bar of a terminal, exit statuses. Must not: explore, shrink or
report by itself (``testing`` does, through the same code as ``@simloom.test``),
nor draw the timeline (``_timeline`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main"]

#: Exit statuses.
OK, FAILED, USAGE = 0, 1, 2


class CommandError(Exception):
    """Bad input: printed as one line, exit status 2."""


def _error(message: str) -> NoReturn:
    raise CommandError(message)


# ------------------------------------------------------------------- targets


def _load_target(target: str) -> Callable[..., Awaitable[Any]]:
    """The async function ``module:function`` or ``file.py:function`` names."""
    from . import _targets
    from .errors import SimloomUsageError

    try:
        return _targets.load_async_function(target)
    except SimloomUsageError as exc:
        _error(str(exc))


def _is_cli_target(test_id: str) -> bool:
    """A test id that is an explore target (``a:b``), not a pytest id (``a::b``)
    nor the ``module.qualname`` of a test run outside pytest."""
    return ":" in test_id and "::" not in test_id


# ------------------------------------------------------------------- explore


def _explore(
    target: str,
    *,
    runs: int | None,
    scheduler: str | None,
    seed: int | None,
    tape: Path | None,
    shrink: bool,
    artifact_dir: Path | None,
    stream: Any,
    check_determinism: bool = False,
    database: bool = True,
    cancellations: bool = False,
) -> int:
    from . import _report, testing
    from .errors import SimloomUsageError, TapeError

    function = _load_target(target)
    artifact = None
    if tape is not None:
        artifact = _load_artifact(tape)
    options = testing.Options(
        seed=seed,
        tape=tape,
        tape_artifact=artifact,
        runs=runs,
        scheduler=scheduler,
        shrink=shrink,
        check_determinism=check_determinism,
        cancellations=cancellations,
    )
    if artifact_dir is not None:
        options = dataclasses.replace(options, artifact_dir=artifact_dir)
    try:
        decorated = testing.test(function)
    except SimloomUsageError as exc:
        _error(f"target {target!r}: {exc}")
    if not database:
        from hypothesis import settings

        decorated = settings(database=None)(decorated)
    saved_options = testing.options()
    testing._set_current_test(target)
    _report.set_cli_target(target)
    try:
        with _progress_bar(target) as progress:
            testing.configure(dataclasses.replace(options, progress=progress))
            decorated()
    except (SimloomUsageError, TapeError) as exc:
        _error(f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        _print_failure(exc, stream)
        return FAILED
    finally:
        _report.set_cli_target(None)
        testing._set_current_test(None)
        testing.configure(saved_options)
    stats = testing.session_stats[-1] if testing.session_stats else None
    universes = stats.universes if stats is not None else 0
    print(f"simloom: {target}: passed in {universes} universe(s)", file=stream)
    if stats is not None and stats.note and (scheduler or "").startswith("systematic"):
        print(f"simloom: {target}: {stats.note}", file=stream)  # what was proven
    return OK


def _print_failure(error: BaseException, stream: Any) -> None:
    """The program's error (its traceback without simloom's frames) and the report."""
    notes = list(getattr(error, "__notes__", ()))
    plain = error.with_traceback(_user_frames(error.__traceback__))
    try:
        error.__notes__ = []
        lines = traceback.format_exception(plain)
    finally:
        error.__notes__ = notes
    stream.write("".join(lines))
    for note in notes:
        print(note, file=stream)


def _user_frames(tb: Any) -> Any:
    """The traceback from its first frame outside simloom's and Hypothesis's code."""
    import hypothesis

    packages = tuple(
        os.path.dirname(os.path.abspath(path)) + os.sep for path in (__file__, hypothesis.__file__)
    )
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(packages):
        tb = tb.tb_next
    return tb


# ------------------------------------------------------------------- soak


#: Failing seeds a soak lists (the checkpoint holds them all).
_SOAK_FAILURES_LISTED = 5


def _soak(arguments: argparse.Namespace, stream: Any) -> int:
    from . import _soak
    from .errors import SimloomUsageError

    target = _absolute_target(arguments.target)
    test_id = arguments.test_id or arguments.target
    seconds = None
    if arguments.time is not None:
        try:
            seconds = _soak.parse_duration(arguments.time)
        except SimloomUsageError as exc:
            _error(f"--time: {exc}")
    if arguments.universes is None and seconds is None:
        _error("soak: give a budget: --universes N, --time DURATION, or both")
    plan = _soak.SoakPlan(
        target=target,
        test_id=test_id,
        universes=arguments.universes,
        seconds=seconds,
        workers=arguments.workers,
        cluster=arguments.cluster,
        chunk=arguments.chunk,
        scheduler=arguments.scheduler,
        cancellations=arguments.cancellations,
        checkpoint=arguments.checkpoint,
        resume=arguments.resume,
        database=arguments.database,
        max_failures=arguments.max_failures,
        share=arguments.share,
        share_name=arguments.share_name,
    )
    try:
        with _soak_progress_bar(test_id) as progress:
            result = _soak.soak(plan, progress=progress)
    except SimloomUsageError as exc:
        _error(str(exc))
    where = (
        f"on the cluster at {arguments.cluster}"
        if arguments.cluster
        else f"on {arguments.workers} worker process(es)"
        if arguments.workers > 1
        else "in this process"
    )
    resumed = f", resumed after {result.resumed_from}" if result.resumed_from else ""
    retried = (
        f", {result.retried} chunk(s) handed out again after their worker died"
        if result.retried
        else ""
    )
    print(
        f"simloom: soak of {test_id}: {result.universes} universe(s) (seeds "
        + _ranges(result.ledger.intervals())
        + f"{resumed}) {where}, {result.rate:.0f} universes/s{retried}",
        file=stream,
    )
    if result.shared_intervals is not None:
        print(
            f"simloom: shared soak at {arguments.share}: "
            f"{sum(b - a for a, b in result.shared_intervals)} universe(s) in all (seeds "
            + _ranges(result.shared_intervals)
            + f") by {result.shared_workers} worker process(es), each seed once",
            file=stream,
        )
    if result.failures:
        for failure in result.failures[:_SOAK_FAILURES_LISTED]:
            print(
                f"  seed {failure.seed} ({failure.scheduler}) failed: {failure.error}",
                file=stream,
            )
        if len(result.failures) > _SOAK_FAILURES_LISTED:
            print(
                f"  ... and {len(result.failures) - _SOAK_FAILURES_LISTED} more "
                f"(all in the checkpoint {result.checkpoint})",
                file=stream,
            )
        saved = (
            f"{result.saved} saved in the example database: the next pytest run of "
            f"{test_id} replays it first and shrinks it"
            if result.saved
            else "none saved in an example database"
        )
        print(
            f"simloom: soak of {test_id}: {len(result.failures)} failing universe(s); {saved}; "
            f"explore one: simloom explore {arguments.target} --seed {result.failures[0].seed}",
            file=stream,
        )
        return FAILED
    guarantee = result.guarantee()
    if guarantee is not None:
        print(f"simloom: {guarantee}", file=stream)
    print(f"simloom: soak of {test_id}: passed in {result.universes} universe(s)", file=stream)
    return OK


def _ranges(intervals: Sequence[tuple[int, int]], shown: int = 3) -> str:
    """``0..99, 200..299`` (at most ``shown`` ranges, then how many more)."""
    text = ", ".join(f"{a}..{b - 1}" for a, b in intervals[:shown])
    if len(intervals) > shown:
        text += f" and {len(intervals) - shown} more range(s)"
    return text or "none"


def _absolute_target(target: str) -> str:
    """``target`` with its file made absolute (worker processes start elsewhere)."""
    separator = "::" if "::" in target else ":"
    where, _, name = target.partition(separator) if separator == "::" else target.rpartition(":")
    if where.endswith(".py") or "/" in where or os.sep in where:
        return f"{Path(where).resolve()}{separator}{name}"
    return target


# ------------------------------------------------------------------- artifacts


@dataclass(frozen=True)
class _Artifact:
    """A failure's files: the tape document and the event log beside it."""

    tape_path: Path | None
    events_path: Path
    fields: dict[str, Any]


def _load_artifact(path: Path) -> Any:
    from . import testing
    from .errors import TapeError

    if not path.exists():
        _error(f"no such file: {path}")
    if path.is_dir():
        _error(f"{path} is a directory, not a tape file")
    try:
        return testing.load_tape_artifact(path)
    except TapeError as exc:
        _error(f"{path}: {type(exc).__name__}: {exc}")
    except OSError as exc:
        _error(f"{path}: {exc.strerror or exc}")


def _artifact_files(path: Path) -> _Artifact:
    """The tape file and event log of the failure ``path`` names (either file)."""
    if not path.exists():
        _error(f"no such file: {path}")
    name = path.name
    if name.endswith(".events.jsonl"):
        events = path
        tape = path.with_name(name.removesuffix(".events.jsonl") + ".tape.json")
        fields = _load_artifact(tape).fields if tape.is_file() else {}
        return _Artifact(tape if tape.is_file() else None, events, fields)
    if name.endswith(".tape.json"):
        artifact = _load_artifact(path)
        events = path.with_name(name.removesuffix(".tape.json") + ".events.jsonl")
        if not events.is_file():
            _error(f"{path}: its event log {events.name} is not beside it")
        return _Artifact(path, events, artifact.fields)
    _error(f"{path}: not a simloom artifact (*.tape.json or *.events.jsonl)")


def _events(path: Path) -> list[dict[str, Any]]:
    """The records of an ``*.events.jsonl`` file, each checked."""
    records: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        _error(f"{path}: not a simloom event log (not UTF-8 text)")
    except OSError as exc:
        _error(f"{path}: {exc.strerror or exc}")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            _error(f"{path}:{number}: not a simloom event log (line is not JSON)")
        if not (
            isinstance(record, dict)
            and isinstance(record.get("i"), int)
            and isinstance(record.get("kind"), str)
            and isinstance(record.get("t_ns"), int)
        ):
            _error(f"{path}:{number}: not a simloom event record (needs i, kind, t_ns)")
        if record["i"] != len(records):
            _error(
                f"{path}:{number}: event {record['i']} where event {len(records)} was "
                "expected (a truncated or edited log)"
            )
        records.append(record)
    if not records:
        _error(f"{path}: an empty event log")
    return records


def _describe(record: dict[str, Any]) -> str:
    seconds = record["t_ns"] / 1e9
    text = f"#{record['i']:<6} {seconds:>12.6f} s  {record['kind']}"
    if "label" in record:
        text += f"  {record['label']}"
    if record["kind"] == "decision":
        text += f"  decision #{record.get('decision')}: {record.get('value')} (of {record.get('bound')})"
    elif "value" in record:
        text += f"  = {record['value']}"
    return text


def _trace(
    path: Path, *, kind: str | None, label: str | None, limit: int | None, stream: Any
) -> int:
    artifact = _artifact_files(path)
    records = _events(artifact.events_path)
    if artifact.fields:
        test = artifact.fields.get("test")
        error = artifact.fields.get("error")
        print(f"simloom: trace of {test} (seed {artifact.fields.get('seed')})", file=stream)
        if error:
            print(f"  error: {error}", file=stream)
    shown = 0
    for record in records:
        if kind is not None and record["kind"] != kind:
            continue
        if label is not None and label not in str(record.get("label", "")):
            continue
        if limit is not None and shown >= limit:
            print(f"... (--limit {limit} reached)", file=stream)
            break
        print(_describe(record), file=stream)
        shown += 1
    print(f"simloom: {shown} of {len(records)} events shown", file=stream)
    return OK


def _explored_failure(artifact: Any, refusal: str) -> tuple[str, Any, str]:
    """Of a ``simloom explore`` failure's artifact: its target, the target's
    function and the scheduler a replay of it names (only the faithful one asks
    other questions); ``refusal`` is the error for another artifact (``{test}``
    is its test id)."""
    path = artifact.path
    test = artifact.test
    if test is None or not _is_cli_target(test):
        _error(f"{path}: " + refusal.format(test=test))
    scheduler = str(artifact.fields.get("scheduler") or "fifo")
    from ._scheduler import replay_questions

    question = replay_questions(scheduler) or "fifo"
    return test, _load_target(test), question


def _causal_trace(
    path: Path, *, task: str | None, host: str | None, limit: int | None, stream: Any
) -> int:
    """Replay an explored function's failure with the causal trace recorded and
    print it: each step's time, task, resume line and the step that woke it."""
    from . import _api, _causal

    artifact = _load_artifact(path)
    test, function, question = _explored_failure(
        artifact,
        "--causal replays the failure, which needs an artifact of `simloom explore` "
        "(this one is of {test!r}); without --causal, trace prints its event log",
    )
    config = _artifact_config(artifact)
    result, trace = _causal.traced(
        lambda: _api.replay(function, artifact.tape, scheduler=question, config=config)
    )
    recorded = artifact.fields.get("digest")
    print(f"simloom: causal trace of {test} (replayed from {path})", file=stream)
    if result.error is not None:
        print(f"  error: {type(result.error).__name__}: {result.error}", file=stream)
    if recorded is not None and recorded != result.digest:
        print("  warning: the replay's digest differs from the artifact's", file=stream)
    shown = 0
    for step in trace.steps:
        if task is not None and not _is_task(step, task):
            continue
        if host is not None and step.host != host:
            continue
        if limit is not None and shown >= limit:
            print(f"... (--limit {limit} reached)", file=stream)
            break
        woken = trace.woken_by(step)
        cause = f"  <- #{woken.step} {_causal.who(woken)}" if woken is not None else ""
        chosen = (
            f"  [decision #{step.decisions[1] - 1}: {_causal.alternatives_words(step)}]"
            if step.decisions[1] > step.decisions[0] and step.ready_others
            else f"  [decision #{step.decisions[1] - 1}]"
            if step.decisions[1] > step.decisions[0]
            else ""
        )
        print(
            f"#{step.step:<6} {step.time_ns / 1e9:>12.6f} s  {_causal.step_words(step)}{cause}{chosen}",
            file=stream,
        )
        shown += 1
    for fault in trace.faults:
        print(
            f"fault at {fault.time_ns / 1e9:.6f} s (step #{fault.step}): {fault.text}", file=stream
        )
    print(f"simloom: {shown} of {len(trace.steps)} steps shown", file=stream)
    return OK


def _artifact_config(artifact: Any) -> Any:
    """The universe configuration an artifact's tape replays under: with injected
    cancellations if the artifact says its universe had them."""
    from ._config import UniverseConfig

    return UniverseConfig(cancellations=artifact.fields.get("cancellations") is True)


def _explain(path: Path, *, stream: Any) -> int:
    """Why an explored function's failure fails: its deviations told in code and
    the nearest passing universe (a pytest test's: its replay report says it)."""
    from . import _api, _causal

    artifact = _load_artifact(path)
    if artifact.test is not None and "::" in artifact.test:
        return _replay(path, stream=stream)
    test, function, question = _explored_failure(
        artifact, "explain needs an artifact of `simloom explore` or of a pytest test"
    )
    config = _artifact_config(artifact)
    final = _api.replay(function, artifact.tape, scheduler=question, config=config)
    if final.error is None:
        print(f"simloom: {test}: the tape of {path} no longer fails", file=stream)
        return OK
    print(f"simloom: why {test} fails (replayed from {path})", file=stream)
    print(f"  error: {type(final.error).__name__}: {final.error}", file=stream)
    print("  " + final.explain().replace("\n", "\n  "), file=stream)
    replays = _api.traced_replays(function, scheduler=question, config=config)
    for line in _causal.explain(replays, final):
        print(f"  {line}", file=stream)
    return FAILED


def _is_task(step: Any, name: str) -> bool:
    """Whether ``step`` is of the task named ``name`` (its name, or its coroutine's
    qualname or last part)."""
    coroutine = step.coroutine or ""
    return name in (step.task, coroutine, coroutine.rsplit(".", 1)[-1])


def _diff(first: Path, second: Path, *, context: int, stream: Any) -> int:
    a = _events(_artifact_files(first).events_path)
    b = _events(_artifact_files(second).events_path)

    def key(record: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(sorted((k, str(v)) for k, v in record.items()))

    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if key(x) != key(y)), None)
    if at is None and len(a) == len(b):
        print(f"simloom: the two event logs are identical ({len(a)} events)", file=stream)
        return OK
    if at is None:
        at = min(len(a), len(b))
    print(
        f"simloom: the event logs agree on their first {at} events, then differ "
        f"(A: {len(a)} events, B: {len(b)})",
        file=stream,
    )
    start = max(0, at - context)
    end = min(max(len(a), len(b)), at + context + 1)
    rows = [
        (
            ">" if index >= at else " ",
            _describe(a[index]) if index < len(a) else "(ended)",
            _describe(b[index]) if index < len(b) else "(ended)",
        )
        for index in range(start, end)
    ]
    width = max(len(f"A: {first}"), *(len(left) for _, left, _ in rows))
    print(f"  {'A: ' + str(first):<{width}}  B: {second}", file=stream)
    for mark, left, right in rows:
        print(f"{mark} {left:<{width}}  {right}", file=stream)
    return FAILED


def _timeline(path: Path, *, output: Path | None, nearest: bool, stream: Any) -> int:
    """Replay an explored function's failure with its causal trace recorded and
    write its timeline: one self-contained HTML page."""
    from . import _api, _timeline
    from .errors import SimloomUsageError, TapeError

    if path.name.endswith(".events.jsonl"):
        tape_path = _artifact_files(path).tape_path
        if tape_path is None:
            _error(f"{path}: its tape file is not beside it (the timeline replays the tape)")
        path = tape_path
    artifact = _load_artifact(path)
    test, function, question = _explored_failure(
        artifact,
        "timeline replays the failure, which needs an artifact of `simloom explore` "
        "(this one is of {test!r}; `simloom trace` prints its event log)",
    )
    if output is None:
        output = path.with_name(path.name.removesuffix(".tape.json") + ".timeline.html")
    if output.is_dir():
        _error(f"-o {output}: is a directory, not a file")
    if not output.parent.is_dir():
        _error(f"-o {output}: no such directory: {output.parent}")
    header = {
        "test": test,
        "seed": artifact.fields.get("seed"),
        "scheduler": artifact.fields.get("scheduler"),
        "artifact": path.name,
    }
    try:
        timeline, final = _api.draw_timeline(
            function, artifact.tape, scheduler=question, header=header, nearest=nearest
        )
    except (SimloomUsageError, TapeError) as exc:
        _error(f"{path}: {type(exc).__name__}: {exc}")
    recorded = artifact.fields.get("digest")
    if recorded is not None and recorded != final.digest:
        print(
            f"simloom: warning: the replay of {path} took another course than the failure "
            "(its digest differs); the timeline shows the replay",
            file=stream,
        )
    if final.error is None:
        print(f"simloom: warning: the tape of {path} no longer fails", file=stream)
    try:
        output.write_text(_timeline.render(timeline), encoding="utf-8")
    except OSError as exc:
        _error(f"-o {output}: {exc.strerror or exc}")
    print(
        f"simloom: timeline of {test} written to {output} ({timeline.steps} steps, "
        f"{timeline.hosts} host(s), {timeline.messages} message(s), {timeline.faults} "
        f"fault(s), {timeline.deviations} deviation(s))",
        file=stream,
    )
    return OK


# ------------------------------------------------------------------- replay


def _replay(path: Path, *, stream: Any) -> int:
    artifact = _load_artifact(path)
    test = artifact.test
    if test is None:
        _error(f"{path}: the tape file names no test; replay it with simloom.replay(main, tape)")
    if "::" in test:
        command = [sys.executable, "-m", "pytest", test, f"--simloom-tape={path}", "-p", "simloom"]
        print("simloom: " + " ".join(command[1:]), file=stream)
        stream.flush()
        completed = subprocess.run(command, check=False)
        return OK if completed.returncode == 0 else FAILED
    if _is_cli_target(test):
        return _explore(
            test,
            runs=None,
            scheduler=None,
            seed=None,
            tape=path,
            shrink=False,
            artifact_dir=None,
            stream=stream,
        )
    _error(
        f"{path}: the failure of {test!r} was found outside pytest and the command line; "
        "replay it with simloom.replay(main, simloom.Tape.load(path))"
    )


# ------------------------------------------------------------------- parsing


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="simloom",
        description="Deterministic simulation testing for asyncio: explore an async "
        "function, replay a failure, read its event log.",
    )
    _add_color_option(parser, default="auto")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    explore = commands.add_parser(
        "explore",
        help="explore an async function in seeded universes, shrink and report a failure",
        description="Run TARGET (MODULE:FUNCTION or FILE.py:FUNCTION, an async def; a "
        "parameter named world gets the universe's World) as @simloom.test does.",
    )
    explore.add_argument("target", metavar="TARGET")
    explore.add_argument("--runs", type=_positive, help="universes to explore (default 2000)")
    explore.add_argument(
        "--scheduler",
        help="mixed (default), random, pct, pct:auto, fifo, faithful or systematic:d=N "
        "(every schedule with at most N deviations; says what was proven)",
    )
    which = explore.add_mutually_exclusive_group()
    which.add_argument("--seed", type=_non_negative, help="run only universe SEED")
    which.add_argument("--tape", type=Path, metavar="FILE", help="run only this tape file")
    explore.add_argument("--no-shrink", action="store_true", help="report the failure unshrunk")
    explore.add_argument(
        "--check-determinism",
        action="store_true",
        help="run every universe twice and fail if the two runs differ",
    )
    explore.add_argument(
        "--cancellations",
        action="store_true",
        help="let universes cancel a task, or expire its asyncio.timeout, at any await",
    )
    explore.add_argument(
        "--no-database",
        action="store_true",
        help="neither replay nor save failures in Hypothesis's example database",
    )
    explore.add_argument(
        "--artifacts", type=Path, metavar="DIR", help="where failures go (default .sim/failures)"
    )

    soak = commands.add_parser(
        "soak",
        help="explore for a time or universe budget on worker processes or a cluster, "
        "checkpointed and resumable",
        description="Explore the seeds 0, 1, 2, ... of TARGET (MODULE:FUNCTION or "
        "FILE.py:FUNCTION, an async def; or FILE.py::TEST, an @simloom.test taking no "
        "fixtures) in chunks handed to workers; every seed runs exactly once, a chunk "
        "whose worker died is handed out again. Failures are saved, unshrunk, in the "
        "example database under the test's key: its next pytest run replays them first.",
    )
    soak.add_argument("target", metavar="TARGET")
    soak.add_argument("--universes", type=_positive, metavar="N", help="seeds 0..N-1 in all")
    soak.add_argument(
        "--time", metavar="DURATION", help="stop handing out seeds after 90s, 10m, 1h..."
    )
    soak.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="local worker processes (default 1: this one)",
    )
    soak.add_argument(
        "--cluster", metavar="ADDRESS", help="a Dask distributed scheduler (tcp://host:8786)"
    )
    soak.add_argument(
        "--chunk",
        type=_positive,
        default=50,
        metavar="N",
        help="seeds handed out at once (default 50)",
    )
    soak.add_argument("--scheduler", help="as for explore (default: the test's, else mixed)")
    soak.add_argument("--cancellations", action="store_true", help="inject cancellations too")
    soak.add_argument(
        "--checkpoint", type=Path, metavar="FILE", help="default .sim/soak/<test>.checkpoint.json"
    )
    soak.add_argument("--resume", action="store_true", help="go on from the checkpoint")
    soak.add_argument(
        "--database",
        metavar="URL|DIR",
        help="where failures are saved: redis://host:port/db, a directory, or none "
        "(default: Hypothesis's default, .hypothesis/examples)",
    )
    soak.add_argument(
        "--max-failures",
        type=_positive,
        default=1,
        metavar="N",
        help="stop handing out seeds after N failing universes (default 1)",
    )
    soak.add_argument(
        "--share",
        metavar="URL",
        help="redis://host:port/db: share the seeds with the other soaks of this test "
        "there (other processes or machines); each seed runs once among them all",
    )
    soak.add_argument(
        "--share-name",
        metavar="NAME",
        help="the shared soak's name (default: test id and scheduler)",
    )
    soak.add_argument(
        "--test-id",
        metavar="ID",
        help="the test id failures are saved under "
        "(default TARGET: the pytest node id when run from the rootdir)",
    )

    replay = commands.add_parser(
        "replay",
        help="run a failure's tape file again and print its report",
        description="A pytest test's failure replays through pytest (--simloom-tape), an "
        "explored function's here.",
    )
    replay.add_argument("artifact", type=Path, metavar="ARTIFACT", help="a *.tape.json file")

    trace = commands.add_parser(
        "trace",
        help="print a failure's event log",
        description="ARTIFACT: the failure's *.tape.json or *.events.jsonl.",
    )
    trace.add_argument("artifact", type=Path, metavar="ARTIFACT")
    trace.add_argument("--kind", help="only events of this kind (step, decision, ...)")
    trace.add_argument("--label", help="only events whose label contains TEXT", metavar="TEXT")
    trace.add_argument("--limit", type=_positive, help="print at most N events", metavar="N")
    trace.add_argument(
        "--causal",
        action="store_true",
        help="replay the failure (an artifact of simloom explore) and print its causal "
        "trace: each step's task, resume line and the step that woke it",
    )
    trace.add_argument(
        "--task", help="with --causal: only the steps of this task (name or coroutine)"
    )
    trace.add_argument("--host", help="with --causal: only the steps run for this world host")

    explain = commands.add_parser(
        "explain",
        help="why a failure fails: its schedule in code and the nearest passing universe",
        description="Replays the failure (an artifact of simloom explore; a pytest test's "
        "replays through pytest, whose report says it too). Exit status 1 while it fails.",
    )
    explain.add_argument("artifact", type=Path, metavar="ARTIFACT", help="a *.tape.json file")

    diff = commands.add_parser(
        "diff",
        help="two event logs side by side from their first difference",
        description="A, B: failures' *.tape.json or *.events.jsonl files. Exit status 1 "
        "when they differ.",
    )
    diff.add_argument("first", type=Path, metavar="A")
    diff.add_argument("second", type=Path, metavar="B")
    diff.add_argument(
        "--context", type=_non_negative, default=3, help="events shown before the difference"
    )

    timeline = commands.add_parser(
        "timeline",
        help="draw a failure's universe as one HTML page (a lane per host, messages, "
        "faults, deviations)",
        description="Replays the failure (an artifact of simloom explore) with its causal "
        "trace recorded and writes one self-contained HTML file: a lane per host with its "
        "tasks, an arrow per message, faults as bands and marks, each deviation from FIFO "
        "told in code, and where the nearest passing universe parts from the failure. "
        "Click a step for its file:line and what woke it; filter by task or host.",
    )
    timeline.add_argument(
        "artifact", type=Path, metavar="ARTIFACT", help="a *.tape.json file (or its *.events.jsonl)"
    )
    timeline.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE.html",
        help="where to write it (default: beside the artifact, *.timeline.html)",
    )
    timeline.add_argument(
        "--no-nearest",
        action="store_true",
        help="do not look for the nearest passing universe (one replay per deviation)",
    )
    for command in (explore, soak, replay, trace, explain, diff, timeline):
        _add_color_option(command, default=argparse.SUPPRESS)
    return parser


def _add_color_option(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument(
        "--color",
        choices=COLOR_MODES,
        default=default,
        help="colour: auto (default: on a terminal, unless NO_COLOR is set), always or never",
    )


def _run(arguments: argparse.Namespace, stream: Any) -> int:
    if arguments.command == "explore":
        return _explore(
            arguments.target,
            runs=arguments.runs,
            scheduler=arguments.scheduler,
            seed=arguments.seed,
            tape=arguments.tape,
            shrink=not arguments.no_shrink,
            artifact_dir=arguments.artifacts,
            stream=stream,
            check_determinism=arguments.check_determinism,
            database=not arguments.no_database,
            cancellations=arguments.cancellations,
        )
    if arguments.command == "soak":
        return _soak(arguments, stream)
    if arguments.command == "replay":
        return _replay(arguments.artifact, stream=stream)
    if arguments.command == "explain":
        return _explain(arguments.artifact, stream=stream)
    if arguments.command == "trace" and arguments.causal:
        return _causal_trace(
            arguments.artifact,
            task=arguments.task,
            host=arguments.host,
            limit=arguments.limit,
            stream=stream,
        )
    if arguments.command == "trace":
        if arguments.task is not None or arguments.host is not None:
            _error("trace: --task and --host need --causal (the event log names callbacks only)")
        return _trace(
            arguments.artifact,
            kind=arguments.kind,
            label=arguments.label,
            limit=arguments.limit,
            stream=stream,
        )
    if arguments.command == "timeline":
        return _timeline(
            arguments.artifact,
            output=arguments.output,
            nearest=not arguments.no_nearest,
            stream=stream,
        )
    return _diff(arguments.first, arguments.second, context=arguments.context, stream=stream)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return its exit status."""
    global _color_mode
    _color_mode = "auto"
    stdout: Any = sys.stdout
    try:
        arguments = _parser().parse_args(argv)
        _color_mode = arguments.color
        stdout = _output(sys.stdout)
        return _run(arguments, stdout)
    except CommandError as exc:
        print(f"simloom: error: {exc}", file=_output(sys.stderr))
        return USAGE
    except BrokenPipeError:  # `simloom trace ... | head`
        sys.stderr.close()
        return OK
    finally:
        with contextlib.suppress(BrokenPipeError):
            stdout.flush()


# ------------------------------------------------------------------- terminal

#: ``--color``: auto (on a terminal, unless ``NO_COLOR`` is set; ``FORCE_COLOR``
#: forces it), always, never.
COLOR_MODES = ("auto", "always", "never")
_color_mode = "auto"


def _wants_color(file: Any) -> bool:
    """Whether what goes to ``file`` gets colour (and a progress bar)."""
    if _color_mode != "auto":
        return _color_mode == "always"
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(file, "isatty", None)
    return bool(isatty is not None and isatty())


def _console(file: Any) -> Any:
    from rich.console import Console

    return Console(
        file=file,
        force_terminal=True,
        color_system="standard",
        no_color=False,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
    )


def _output(file: Any) -> Any:
    """``file`` itself when it gets plain text, else a stream that colours each
    line it is given."""
    return _Styled(_console(file)) if _wants_color(file) else file


#: What is coloured in the output, line by line: (pattern, rich style).
_STYLES: tuple[tuple[str, str], ...] = (
    (r"^simloom: error:", "bold red"),
    (r"^simloom: warning:", "bold yellow"),
    (r"^simloom found a failing universe.*", "bold red"),
    (r"^(Traceback \(most recent call last\):|[A-Za-z_.]*(Error|Exception)\b:?)", "red"),
    (r"^simloom: .* passed in .*", "bold green"),
    (r"^simloom: (timeline of|the two event logs are identical).*", "green"),
    (
        r"^ {2}(seed|error|hash seed|universes explored|shrunk|minimal schedule|the schedule "
        r"in code|replay it|artifacts)\b",
        "cyan",
    ),
    (r"decision #\d+", "yellow"),
    (r"fault at [\d.]+ s", "magenta"),
    (r"nearest passing universe", "bold green"),
    (r"^#\d+", "bold blue"),
    (r"<- #\d+", "blue"),
    (r"^> ", "bold yellow"),
)


class _Styled:
    """A text stream that prints each whole line through rich, coloured."""

    def __init__(self, console: Any) -> None:
        self._console = console
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._console.print(_styled(line))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._console.print(_styled(self._pending), end="")
            self._pending = ""
        self._console.file.flush()

    def isatty(self) -> bool:
        return True


def _styled(line: str) -> Any:
    from rich.text import Text

    text = Text(line)
    for pattern, style in _STYLES:
        text.highlight_regex(pattern, style)
    return text


@contextlib.contextmanager
def _progress_bar(target: str) -> Iterator[Callable[[int, int, bool], None] | None]:
    """A progress bar of the universes explored, on stderr when it is a terminal;
    yields what exploration tells after each universe (None: no bar)."""
    if not _wants_color(sys.stderr):
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("universes"),
        TimeElapsedColumn(),
        console=_console(sys.stderr),
        transient=True,
    )
    task = bar.add_task(f"exploring {target}", total=None)

    def told(done: int, runs: int, failed: bool) -> None:
        description = f"shrinking the failure of {target}" if failed else f"exploring {target}"
        bar.update(task, completed=done, total=runs, description=description)

    with bar:
        yield told


@contextlib.contextmanager
def _soak_progress_bar(test_id: str) -> Iterator[Callable[[Any], None] | None]:
    """A soak's progress bar on stderr when it is a terminal (None: no bar)."""
    if not _wants_color(sys.stderr):
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=_console(sys.stderr),
        transient=True,
    )
    task = bar.add_task(f"soaking {test_id}", total=None, status="")

    def told(progress: Any) -> None:
        if progress.total is not None:
            total, completed = float(progress.total), float(progress.universes)
        elif progress.seconds is not None:
            total, completed = progress.seconds, min(progress.elapsed, progress.seconds)
        else:  # pragma: no cover - a soak always has a budget
            total, completed = 1.0, 0.0
        rate = progress.universes / progress.elapsed if progress.elapsed > 0 else 0.0
        status = f"{progress.universes} universes, {rate:.0f}/s, {progress.failures} failing"
        bar.update(task, completed=completed, total=total, status=status)

    with bar:
        yield told
