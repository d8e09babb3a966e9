"""The failure report of ``@simloom.test``: what it says and how it is worded.

The seed and the re-run command, the program's error with only its own
traceback frames, the hash seed, the shrink story, the schedule in words, how to
replay the artifact; and the notes of a replayed tape that no longer fits (a
misalignment, a digest that differs).

Owns: text. Must not: run universes, shrink, or write files (the report is built
from what the others did; ``_artifacts.py`` writes the files it names).
"""

from __future__ import annotations

import os
import shlex
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _hashseed
from ._api import RunResult, decode_events
from ._scheduler import replay_questions
from ._shrink import FINISHED, PARTLY, _Shrink
from .tape import Tape

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


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


def _shell_quoted_test(test_id: str) -> str:
    """The node id as one shell word, always in single quotes (as pytest prints it)."""
    return "'" + test_id.replace("'", "'\"'\"'") + "'"


def _error_line(error: BaseException) -> str:
    """``Type: first line of the message`` (pytest's assertion rewriting adds lines
    with object addresses, which would make artifacts differ from run to run)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _draw_count(tape: Tape) -> int:
    return len(tape.to_draws())


#: The session's budget flags (``--simloom-max-steps=...``), which a re-run needs
#: too: a budget decides where a universe stops. Set by the pytest plugin.
_session_flags = ""


def set_session_flags(flags: dict[str, str], switches: tuple[str, ...] = ()) -> None:
    """Remember the budget flags (and the switches that change what a universe
    does, such as ``--simloom-cancellations``) the pytest session was given, for
    re-run commands."""
    global _session_flags
    _session_flags = "".join(f" {flag}={shlex.quote(text)}" for flag, text in flags.items())
    _session_flags += "".join(f" {switch}" for switch in switches)


#: The target ``simloom explore`` is running (its re-run is that command line).
_cli_target: str | None = None


def set_cli_target(target: str | None) -> None:
    """Tell re-run commands that ``simloom explore TARGET`` is running."""
    global _cli_target
    _cli_target = target


def _injections(result: RunResult) -> int:
    """How many of the result's decisions injected a cancellation or a timeout."""
    return sum(
        1
        for event in result.event_log
        if event.kind == "mark" and (event.label or "").startswith("inject:")
    )


def _rerun_command(
    test_id: str,
    seed: int,
    scheduler: str,
    *,
    boundary: bool,
    check_determinism: bool = False,
    cancellations: bool = False,
    files: bool = True,
) -> str:
    """How to run universe ``seed`` of a test again: the pytest command line, or the
    ``simloom.run`` call outside pytest."""
    if "::" in test_id:
        command = f"pytest {_shell_quoted_test(test_id)} --simloom-seed={seed}{_session_flags}"
        return command + (" --simloom-check-determinism" if check_determinism else "")
    if _cli_target is not None and test_id == _cli_target:
        return (
            f"simloom explore {shlex.quote(test_id)} --seed={seed}"
            + (" --cancellations" if cancellations else "")
            + (" --check-determinism" if check_determinism else "")
        )
    options = (
        ("" if boundary else ", boundary=False")
        + ("" if files else ", files=False")
        + (", cancellations=True" if cancellations else "")
        + (", check_determinism=True" if check_determinism else "")
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
    if shrink.prepass_runs:
        effort += f"; {shrink.prepass_runs} of them plain replays that cut the long tape first"
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
    cancellations: bool = False,
    files: bool = True,
    how: str,
    seed: int | None,
    scheduler: str,
    found: RunResult,
    final: RunResult,
    shrink: _Shrink | None,
    artifacts: Sequence[Path],
    universes: int,
    notes: Sequence[str] = (),
    in_code: Sequence[str] = (),
) -> str:
    assert final.error is not None
    name = test_id.split("::")[-1]
    lines = [f"simloom found a failing universe in {name} ({how})"]
    under_pytest = "::" in test_id
    if seed is not None:
        rerun = _rerun_command(
            test_id, seed, scheduler, boundary=boundary, cancellations=cancellations, files=files
        )
        lines.append(f"  seed: {seed}   (scheduler {scheduler}; re-run: {rerun})")
    lines.append(f"  error: {_error_line(final.error)}")
    lines.append(f"  hash seed: {_hashseed.describe_hashseed()}")
    if universes:
        lines.append(f"  universes explored: {universes}")
    lines.extend(_shrink_lines(found, final, shrink))
    lines.extend(f"  {note}" for note in notes if not note.startswith("  warning: "))
    injected = _injections(final)
    if injected:
        lines.append(
            f"  injected cancellations: {injected} (cancellations=True): the code did not "
            "survive being cancelled at the await named below"
        )
    story = final.explain().replace("\n", "\n  ")
    lines.append(f"  {_schedule_label(shrink)}: {story}")
    if in_code:
        lines.append("  the schedule in code:")
        lines.extend(f"    {line}" for line in in_code)
    tapes = [p for p in artifacts if p.name.endswith(".tape.json")]
    if tapes:
        replay = (
            f"pytest {_shell_quoted_test(test_id)} --simloom-tape={shlex.quote(str(tapes[0]))}"
            + (" --simloom-cancellations" if "--simloom-cancellations" in _session_flags else "")
            if under_pytest
            else f"simloom replay {shlex.quote(str(tapes[0]))}"
            if _cli_target is not None and test_id == _cli_target
            else f"simloom.replay(main, simloom.Tape.load({str(tapes[0])!r})"
            + (f", scheduler={scheduler!r}" if replay_questions(scheduler) else "")
            + (", cancellations=True" if cancellations else "")
            + ("" if files else ", files=False")
            + (")" if boundary else ", boundary=False)")
        )
        lines.append(f"  replay it: {replay}")
    if artifacts:
        lines.append("  artifacts: " + ", ".join(str(p) for p in artifacts))
    lines.extend(note for note in notes if note.startswith("  warning: "))
    return "\n".join(lines)


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
