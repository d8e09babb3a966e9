"""The causal trace of a universe: for every step, the step that woke it, the task
it belongs to and the line it resumes at; and the schedule told in code.

Recording is off by default and costs nothing then. A report records it by
replaying the failing tape once more with a tracer installed on the loop
(``LoopCore._set_tracer``): the engine calls the tracer before each step with the
callback's handle, the step's number, the decisions the step's choice took and
the callback's rank among the ready ones. Every handle carries the number of the
step that scheduled it (``Handle._parent_step``, kept by the engine always), which
is the "woken by" edge: a task resumed by a future's result names the step that
set it, a timer's callback names the step that armed it.

Owns: the trace's records, reading a suspended task's location, and the words of
the schedule told in code. Must not: change what the universe does (it only reads:
no user code runs, no file is read while the universe runs; source lines are read
after it ends).
"""

from __future__ import annotations

import asyncio
import inspect
import linecache
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _core

if TYPE_CHECKING:
    from ._api import RunResult
    from .tape import Tape

__all__ = [
    "CausalStep",
    "CausalTrace",
    "Location",
    "NearestPassing",
    "Waiting",
    "explain",
    "nearest_passing",
    "remembering",
    "step_words",
    "told_in_code",
    "who",
]

#: Told of every SimLoop that starts a run (``run_forever``): ``pytest --simloom``
#: notices a test running on a loop it did not make, :func:`traced` installs its
#: tracer on the loop it traces.
run_observer: Callable[[Any], None] | None = None

#: The context variable naming the host incarnation a callback runs for (the world
#: module sets it when imported): the trace names each step's host through it.
host_var: Any = None

#: The trace being recorded now, if any (``sometimes`` and ``draw`` tell it
#: where they were called).
recording: CausalTrace | None = None

_ASYNCIO_DIR = os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep
_SIMLOOM_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_INTERNAL_DIRS = (_ASYNCIO_DIR, _SIMLOOM_DIR)


@dataclass(frozen=True)
class Location:
    """A place in the source: where a task is suspended (and resumes), or where a
    plain callback's function is defined."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{os.path.basename(self.file)}:{self.line}"

    def source(self) -> str:
        """The line's text, stripped ('' when the file cannot be read)."""
        return linecache.getline(self.file, self.line).strip()


@dataclass(frozen=True)
class Waiting:
    """A ready callback a step ran ahead of: its label and where it waited."""

    label: str
    location: Location | None
    #: The coroutine a task runs (its qualname), None for a plain callback.
    coroutine: str | None = None
    #: A task that has not started yet.
    starts: bool = False
    #: For a plain callback that resolves a future a task awaits (a sleep's
    #: timer): that task's name and coroutine (``location`` is where it waits).
    for_task: tuple[str, str | None] | None = None


#: How many of the other ready callbacks a decision's step keeps (the count is
#: kept whole).
MAX_ALTERNATIVES = 8


@dataclass(frozen=True)
class CausalStep:
    """One step of the universe, with what caused it."""

    #: The step's number, from 1 (the event log's n-th ``step`` event).
    step: int
    time_ns: int
    #: The callback's event-log label: a task's name, or a function's qualname.
    label: str
    #: The task the step belongs to (its name), if it is a task's step or wakeup.
    task: str | None
    #: The step that scheduled this one (0: scheduled outside any step).
    parent: int
    #: Where the task resumes (the line of the await it returns from; its ``def``
    #: line when it starts), or a plain callback's definition.
    location: Location | None
    #: What the resumed await was waiting on (``sleep``, ``Event.wait``, ``Future``).
    awaited: str | None
    #: The task's first step.
    starts: bool
    #: The decisions taken to choose this step: indexes ``[first, end)``.
    decisions: tuple[int, int]
    #: The older ready callbacks it ran ahead of (empty in FIFO order).
    passed_over: tuple[Waiting, ...] = ()
    #: When a scheduling decision chose it: every other callback that was ready
    #: then, in FIFO order (at most :data:`MAX_ALTERNATIVES`), and how many there
    #: were. Empty when it was the only one.
    alternatives: tuple[Waiting, ...] = ()
    ready_others: int = 0
    #: The coroutine the task runs (its qualname), None for a plain callback.
    coroutine: str | None = None
    #: For a plain callback that resolves a future a task awaits (a sleep's
    #: timer): that task's name and coroutine, and where it waits.
    for_task: tuple[str, str | None] | None = None
    for_location: Location | None = None
    #: The world host it runs for (None without a world, or for the world's own
    #: callbacks: deliveries, timers of the network).
    host: str | None = None


@dataclass(frozen=True)
class Fault:
    """A fault the program injected through the world (a partition, a crash)."""

    time_ns: int
    #: The step it was injected in (0: outside any step).
    step: int
    text: str
    #: Where the program injected it (its innermost own frame).
    location: Location | None


@dataclass
class CausalTrace:
    """The tracer a loop calls before each step, and the steps it recorded."""

    steps: list[CausalStep] = field(default_factory=list)
    #: Decision index → where the program asked for it (``sometimes``, ``draw``).
    choices: dict[int, Location] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    #: The loop being traced (None once the trace is uninstalled).
    _core_loop: Any = None

    def install(self, loop: _core.LoopCore) -> None:
        self._core_loop = loop
        loop._set_tracer(self._record)

    def note_choice(self, loop: Any, frame: Any) -> None:
        """``sometimes``/``draw`` is about to ask ``loop`` for a choice, from
        ``frame``: remember where (the next decision's index)."""
        if loop is self._core_loop:
            code = frame.f_code
            self.choices[loop._decisions()] = Location(
                code.co_filename, frame.f_lineno, code.co_qualname
            )

    def note_fault(self, loop: Any, text: str) -> None:
        """The program injected a fault through the world (the world calls this)."""
        if loop is not self._core_loop:
            return
        frame: Any = sys._getframe(1)
        while frame is not None and _is_internal(frame.f_code.co_filename):
            frame = frame.f_back
        location = (
            Location(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_qualname)
            if frame is not None
            else None
        )
        self.faults.append(Fault(loop._now_ns(), loop._steps(), text, location))

    def uninstall(self) -> None:
        if self._core_loop is not None:
            self._core_loop._set_tracer(None)
            self._core_loop = None

    def _record(self, handle: _core.Handle, step: int, first: int, end: int, rank: int) -> None:
        task = _task_of(handle._callback)
        coroutine = None
        if task is not None:
            location, awaited, starts = _task_location(task)
            name = task.get_name()
            coroutine = _coroutine_name(task)
        else:
            location, awaited, starts, name = (
                _callback_location(handle._callback),
                None,
                False,
                None,
            )
        for_task, for_location = _awaiting_task(handle, self._core_loop)
        passed: tuple[Waiting, ...] = ()
        alternatives: tuple[Waiting, ...] = ()
        ready_others = 0
        if end > first and self._core_loop is not None:
            # A decision chose this step: what else could have run (the ready set
            # without it, in FIFO order), the first of them being what it passed.
            ready = self._core_loop._ready_handles()
            ready_others = len(ready)
            known = [
                _waiting(other, self._core_loop) for other in ready[: max(rank, MAX_ALTERNATIVES)]
            ]
            passed = tuple(known[:rank])
            alternatives = tuple(known[:MAX_ALTERNATIVES])
        elif rank and self._core_loop is not None:
            ready = self._core_loop._ready_handles()[:rank]
            passed = tuple(_waiting(other, self._core_loop) for other in ready)
        self.steps.append(
            CausalStep(
                step=step,
                time_ns=self._core_loop._now_ns() if self._core_loop is not None else 0,
                label=handle._label,
                task=name,
                parent=handle._parent_step,
                location=location,
                awaited=awaited,
                starts=starts,
                decisions=(first, end),
                passed_over=passed,
                alternatives=alternatives,
                ready_others=ready_others,
                coroutine=coroutine,
                for_task=for_task,
                for_location=for_location,
                host=_host_of(handle, self._core_loop, is_task=task is not None),
            )
        )

    def step(self, number: int) -> CausalStep | None:
        """Step ``number`` (from 1), if it was recorded."""
        if 1 <= number <= len(self.steps) and self.steps[number - 1].step == number:
            return self.steps[number - 1]
        return next((s for s in self.steps if s.step == number), None)

    def chosen_by(self, decision: int) -> CausalStep | None:
        """The step whose choice took decision ``decision``, if a scheduling
        decision took it."""
        return next((s for s in self.steps if s.decisions[0] <= decision < s.decisions[1]), None)

    def during(self, decision: int) -> CausalStep | None:
        """The step during which the in-program decision ``decision`` (a
        ``sometimes``, ``draw`` or fault) was taken."""
        previous = None
        for recorded in self.steps:
            if recorded.decisions[0] > decision:
                break
            previous = recorded
        return previous

    def woken_by(self, recorded: CausalStep) -> CausalStep | None:
        return self.step(recorded.parent) if recorded.parent else None

    def chain(self, recorded: CausalStep, limit: int = 20) -> list[CausalStep]:
        """``recorded`` and the steps that woke it, back to the first."""
        chain = [recorded]
        while len(chain) < limit and (parent := self.woken_by(chain[-1])) is not None:
            chain.append(parent)
        return chain


def _host_of(handle: _core.Handle, loop: Any, *, is_task: bool) -> str | None:
    """The name of the world host ``handle`` runs for (read from its context):
    a task with no host of its own runs on ``main``; a plain callback with none is
    the world's own (a delivery, a retransmission)."""
    world = getattr(loop, "_world", None)
    context = handle.get_context()
    if world is None or host_var is None or context is None:
        return None
    incarnation = context.get(host_var, None)
    if incarnation is None:
        return "main" if is_task else None
    try:
        return str(world._net.running_host(incarnation).name)
    except Exception:  # an incarnation that has crashed since
        return None


def _coroutine_name(task: asyncio.Task[Any]) -> str | None:
    coro: Any = task.get_coro()
    name = getattr(coro, "__qualname__", None)
    code = getattr(coro, "cr_code", None)
    if name == "_call_main" and code is not None and _is_internal(code.co_filename):
        return "main"  # simloom's wrapper around the program's main
    return name if isinstance(name, str) else None


def _task_of(callback: Any) -> asyncio.Task[Any] | None:
    owner = getattr(callback, "__self__", None)
    return owner if isinstance(owner, asyncio.Task) else None


def _frame_of(awaitable: Any) -> Any:
    for attribute in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(awaitable, attribute, None)
        if frame is not None:
            return frame
    return None


def _next_awaited(awaitable: Any) -> Any:
    for attribute in ("cr_await", "gi_yieldfrom", "ag_await"):
        inner = getattr(awaitable, attribute, None)
        if inner is not None:
            return inner
    return None


def await_chain(coro: Any) -> list[tuple[Any, Any]]:
    """A suspended coroutine's await chain, outermost first: each awaitable that
    has a frame (coroutine, generator, async generator), with that frame; it ends
    at the first awaitable without one (a future, the awaited object itself)."""
    chain: list[tuple[Any, Any]] = []
    current = coro
    while current is not None and (frame := _frame_of(current)) is not None:
        chain.append((current, frame))
        current = _next_awaited(current)
    return chain


def _is_internal(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_INTERNAL_DIRS)


def _task_location(task: asyncio.Task[Any]) -> tuple[Location | None, str | None, bool]:
    """Where ``task`` is suspended: the innermost frame of its await chain that is
    the program's (not asyncio's, not simloom's); what that frame awaits; whether
    the task has not started yet."""
    coro = task.get_coro()
    starts = inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == "CORO_CREATED"
    chain = await_chain(coro)
    user = [
        index
        for index, (_, frame) in enumerate(chain)
        if not _is_internal(frame.f_code.co_filename)
    ]
    if not user:
        # Only asyncio's or simloom's own frames (simloom's wrapper around main,
        # the loop's teardown tasks): no line of the program's to show.
        return None, None, starts
    index = user[-1]
    frame = chain[index][1]
    location = Location(frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_qualname)
    awaited: str | None = None
    if index + 1 < len(chain):
        awaited = getattr(chain[index + 1][0], "__qualname__", None)
    else:
        waiter = getattr(task, "_fut_waiter", None)
        if waiter is not None:
            awaited = type(waiter).__name__
    return location, awaited, starts


def _callback_location(callback: Any) -> Location | None:
    function = getattr(callback, "__func__", callback)
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    return Location(code.co_filename, code.co_firstlineno, code.co_qualname)


def _waiting(handle: _core.Handle, loop: Any) -> Waiting:
    task = _task_of(handle._callback)
    if task is not None:
        location, _, starts = _task_location(task)
        return Waiting(task.get_name(), location, _coroutine_name(task), starts)
    for_task, for_location = _awaiting_task(handle, loop)
    if for_task is not None:
        return Waiting(handle._label, for_location, None, False, for_task)
    return Waiting(handle._label, _callback_location(handle._callback))


def _awaiting_task(
    handle: _core.Handle, loop: Any
) -> tuple[tuple[str, str | None] | None, Location | None]:
    """The task awaiting a future that this plain callback is given (the timer of
    an ``asyncio.sleep``, a ``call_soon(fut.set_result, ...)``), and where it waits."""
    if _task_of(handle._callback) is not None or loop is None:
        return None, None
    futures = [arg for arg in handle._args if isinstance(arg, asyncio.Future)]
    target = getattr(handle._callback, "__self__", None)
    if isinstance(target, asyncio.Future):
        futures.append(target)
    if not futures:
        return None, None
    for task in sorted(asyncio.all_tasks(loop), key=lambda t: t.get_name()):
        waiter = getattr(task, "_fut_waiter", None)
        if waiter is not None and any(waiter is future for future in futures):
            return (task.get_name(), _coroutine_name(task)), _task_location(task)[0]
    return None, None


# ------------------------------------------------------------------ in words

#: Deviations told in code in a report; the rest are counted.
MAX_TOLD = 12


def _where(location: Location | None) -> str:
    if location is None:
        return ""
    return f" at {location} in {_short_function(location.function)}"


def _short_function(qualname: str) -> str:
    return qualname.rsplit("<locals>.", 1)[-1]


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _who(name: str, coroutine: str | None, is_task: bool) -> str:
    if not is_task:
        return f"callback `{_short_function(name)}`"
    if coroutine is not None and re.fullmatch(r"Task-\d+", name):
        # A loop-assigned name says little: add the coroutine the task runs.
        return f"`{name}` ({_short_function(coroutine)})"
    return f"`{name}`"


def _code(location: Location | None) -> str:
    """The location's source line without its comment ('' if unreadable)."""
    if location is None:
        return ""
    return location.source().split("  #", 1)[0].rstrip()


def _for_words(for_task: tuple[str, str | None], location: Location | None) -> str:
    code = _code(location)
    where = _where(location) + (f" `{_clip(code)}`" if code else "")
    return f"for {_who(for_task[0], for_task[1], True)}, waiting{where}"


def who(recorded: CausalStep) -> str:
    """The task (or callback) a step belongs to, in words."""
    if recorded.task is None:
        return _who(recorded.label, None, False)
    return _who(recorded.task, recorded.coroutine, True)


def step_words(recorded: CausalStep) -> str:
    """One step in words: who ran (on which host), resumed from which line."""
    words = _step_words_hostless(recorded)
    if recorded.host is not None and recorded.host != "main":
        who, _, rest = words.partition(" ")
        if who.startswith("`") and recorded.task is not None:
            # "`Task-5` (run) on n3 resumed ..." : after the name and coroutine.
            head, sep, tail = words.partition(") ")
            if sep and recorded.coroutine is not None and re.fullmatch(r"Task-\d+", recorded.task):
                return f"{head}) on {recorded.host} {tail}"
            return f"{who} on {recorded.host} {rest}"
        return f"{words} (on {recorded.host})"
    return words


def _step_words_hostless(recorded: CausalStep) -> str:
    if recorded.task is None and recorded.for_task is not None:
        callback = _who(recorded.label, None, False)
        return f"{callback} {_for_words(recorded.for_task, recorded.for_location)}"
    if recorded.task is None:
        return _who(recorded.label, None, False) + _where(recorded.location)
    who = _who(recorded.task, recorded.coroutine, True)
    if recorded.starts:
        return f"{who} started{_where(recorded.location)}"
    source = _code(recorded.location)
    if source.startswith(("await ", "async with ", "async for ")) or " await " in source:
        return f"{who} resumed from `{_clip(source)}`{_where(recorded.location)}"
    awaited = f" (its {recorded.awaited} returned)" if recorded.awaited else ""
    return f"{who} resumed{awaited}{_where(recorded.location)}"


def alternatives_words(recorded: CausalStep) -> str:
    """What else a decision could have run instead of ``recorded`` ("" if it made
    no choice): "instead of 2 other ready: `Task-2` (alice), waiting at bank.py:13; …"."""
    if not recorded.ready_others:
        return ""
    listed = _waiting_words(recorded.alternatives)
    more = recorded.ready_others - len(recorded.alternatives)
    if more > 0 and len(recorded.alternatives) <= 3:
        listed += f"; {more} more"
    return f"instead of {recorded.ready_others} other ready: {listed}"


def _waiting_words(waiting: Sequence[Waiting]) -> str:
    parts = []
    for other in waiting[:3]:
        if other.for_task is not None:
            callback = _who(other.label, None, False)
            parts.append(f"{callback} {_for_words(other.for_task, other.location)}")
            continue
        state = "not started yet" if other.starts else "waiting"
        where = f", {state}{_where(other.location)}" if other.location is not None else ""
        parts.append(_who(other.label, other.coroutine, other.coroutine is not None) + where)
    if len(waiting) > 3:
        parts.append(f"{len(waiting) - 3} more")
    return "; ".join(parts)


def told_in_code(
    trace: CausalTrace, deviations: Iterable[tuple[int, int]], labels: dict[int, str]
) -> list[str]:
    """One line per deviation of the tape (at most :data:`MAX_TOLD`), in code:
    what ran instead of what, and where; an in-program choice names the step it
    was taken in. ``labels`` maps a decision index to its label."""
    lines = []
    count = 0
    for index, value in deviations:
        count += 1
        if count > MAX_TOLD:
            continue
        label = labels.get(index, "?")
        chosen = trace.chosen_by(index)
        if chosen is not None and label == "loop.stall":
            # A faithful stall: the iteration ran until the next timer was due.
            lines.append(
                f"decision #{index}: a loop iteration ran long (loop.stall), until a timer "
                f"was due at {chosen.time_ns / 1e9:.3f} s; next ran {step_words(chosen)}"
            )
            continue
        if chosen is not None:
            text = f"decision #{index}: {step_words(chosen)}"
            if chosen.passed_over:
                text += f", ahead of {_waiting_words(chosen.passed_over)}"
            elif label != "sched.pick":
                text += f" ({label} = {value})"
            lines.append(text)
            continue
        during = trace.during(index)
        if label == "inject.cancel" and during is not None and during.task is not None:
            # An injected cancellation (cancellations=True): it landed at the await
            # the task was about to resume from.
            who = _who(during.task, during.coroutine, True)
            did = (
                "made the innermost asyncio.timeout of"
                if value == 2
                else "cancelled (injected CancelledError into)"
            )
            text = f"decision #{index}: {label} = {value}: {did} {who}"
            if value == 2:
                text += " expire (TimeoutError)"
            where = during.location
            if where is not None:
                code = _code(where)
                text += f", at the await {where} in {_short_function(where.function)}"
                text += f" `{_clip(code)}`" if code else ""
            lines.append(text)
            continue
        asked = trace.choices.get(index)
        text = f"decision #{index}: {label} = {value}"
        if asked is not None:
            code = _code(asked)
            text += f"{_where(asked)}" + (f" `{_clip(code)}`" if code else "")
        if during is not None:
            who = _who(during.task or during.label, during.coroutine, during.task is not None)
            text += f", in a step of {who}"
            if asked is None:
                text += _where(during.location)
        lines.append(text)
    if count > MAX_TOLD:
        lines.append(f"... and {count - MAX_TOLD} more deviation(s)")
    for fault in trace.faults[:MAX_TOLD]:
        lines.append(f"fault at {fault.time_ns / 1e9:.3f} s: {fault.text}{_where(fault.location)}")
    if len(trace.faults) > MAX_TOLD:
        lines.append(f"... and {len(trace.faults) - MAX_TOLD} more fault(s)")
    return lines


def decision_labels(result: RunResult) -> dict[int, str]:
    """Decision index → label, from a result's event log."""
    labels: dict[int, str] = {}
    index = 0
    for event in result.event_log:
        if event.kind == "decision":
            labels[index] = event.label or "?"
            index += 1
    return labels


def traced[T](run: Callable[[], T]) -> tuple[T, CausalTrace]:
    """Run ``run()`` (a replay) with a causal trace of the first SimLoop that
    runs in it; return what it returned and the trace."""
    global recording, run_observer
    trace = CausalTrace()
    saved = run_observer

    def observe(loop: Any) -> None:
        if trace._core_loop is None and not trace.steps:
            trace.install(loop)
        if saved is not None:
            saved(loop)

    saved_recording = recording
    run_observer = observe
    recording = trace
    try:
        result = run()
    finally:
        recording = saved_recording
        run_observer = saved
        trace.uninstall()
    return result, trace


#: Replays a tape with the causal trace recorded: (failed, digest, trace).
TracedReplay = Callable[["Tape"], tuple[bool, "str | None", CausalTrace]]


def remembering(replay: TracedReplay) -> TracedReplay:
    """``replay`` answering each tape once: a failure's report and its timeline
    replay the same variants (each deviation undone), and need each only once."""
    answers: dict[tuple[tuple[int, int], ...], tuple[bool, str | None, CausalTrace]] = {}

    def again(tape: Tape) -> tuple[bool, str | None, CausalTrace]:
        key = tuple(tape.deviations)
        if key not in answers:
            answers[key] = replay(tape)
        return answers[key]

    return again


#: Deviations tried one by one for the nearest passing universe.
MAX_UNDONE = 12


def explain(replay: TracedReplay, final: RunResult) -> list[str]:
    """The report's explanation of the failure ``final``: its deviations told in
    code, then the nearest passing universe (each deviation undone in turn; of
    those that pass, the one that stays with the failure longest) and where the
    two part. Empty when the tape has no deviation."""
    if not final.deviations:
        return []
    try:
        failed, digest, trace = replay(final.tape)
    except Exception as exc:  # the report must not give way to its explanation
        return [f"(not told: its traced replay raised {type(exc).__name__}: {exc})"]
    if not failed or digest != final.digest:
        return ["(not told: its traced replay took another course than the failure)"]
    lines = told_in_code(trace, final.tape.deviations, decision_labels(final))
    lines.extend(_nearest_passing(replay, final, trace))
    return lines


def _step_key(recorded: CausalStep) -> tuple[Any, ...]:
    return (recorded.label, recorded.task, recorded.location, recorded.time_ns)


@dataclass(frozen=True)
class NearestPassing:
    """The nearest passing universe of a failure: one deviation undone."""

    #: The undone deviation: its position in the tape, its decision and value.
    undone: int
    decision: int
    value: int
    #: The steps the two runs share before they part.
    common: int
    trace: CausalTrace


def nearest_passing(
    replay: TracedReplay, final: RunResult, failing: CausalTrace
) -> NearestPassing | None:
    """Each deviation of ``final`` undone in turn (at most :data:`MAX_UNDONE`): of
    the variants that pass, the one whose trace agrees with ``failing`` longest."""
    from .tape import Tape

    deviations = list(final.tape.deviations)
    best: NearestPassing | None = None
    for undone in range(min(len(deviations), MAX_UNDONE)):
        variant = Tape([d for i, d in enumerate(deviations) if i != undone])
        try:
            failed, _, trace = replay(variant)
        except Exception:
            continue
        if failed:
            continue
        common = 0
        for a, b in zip(failing.steps, trace.steps, strict=False):
            if _step_key(a) != _step_key(b):
                break
            common += 1
        if best is None or common > best.common:
            index, value = deviations[undone]
            best = NearestPassing(undone, index, value, common, trace)
    return best


def _nearest_passing(replay: TracedReplay, final: RunResult, failing: CausalTrace) -> list[str]:
    best = nearest_passing(replay, final, failing)
    if best is None:
        return ["nearest passing universe: none with one deviation undone (each still fails)"]
    common, passing = best.common, best.trace
    lines = [
        f"nearest passing universe: decision #{best.decision} undone (FIFO there, not "
        f"{best.value}); the two runs agree for {common} step(s), then part:"
    ]
    for name, run in (("the failure", failing), ("the passing run", passing)):
        if common < len(run.steps):
            step = run.steps[common]
            lines.append(
                f"  {name}, step #{step.step} at {step.time_ns / 1e9:.3f} s: {step_words(step)}"
            )
    return lines
