"""The visual timeline of a universe: one self-contained HTML file drawn from its
causal trace (``simloom timeline ARTIFACT -o FILE.html``).

:func:`build` turns a traced replay into a plain, JSON-able model: the world's
hosts (each a lane, its tasks rows within it), every step with its words and
source line, the messages (the step that sent, the world's delivery step, the step
the delivery woke), the faults the program injected (partitions and crashes as
bands until their heal or restart, the others as marks), the tape's deviations
told as the report's "schedule in code" tells them, and the step where the nearest
passing universe parts from the failure. :func:`render` embeds that model, escaped,
as JSON in the HTML template ``_timeline.html`` (inline CSS, JS and SVG: no font,
script, image or request from outside); the page draws itself from it, so a few
thousand steps cost a few hundred kilobytes, not an SVG element each in the file.

The bytes depend only on the artifact (and the program it replays): no timestamp,
no random id, keys sorted.

Owns: the timeline's model and its HTML. Must not: run or replay a universe (the
CLI hands it the traces), nor change what the causal trace records.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from ._causal import (
    CausalStep,
    CausalTrace,
    Location,
    NearestPassing,
    decision_labels,
    step_words,
    told_in_code,
    who,
)

if TYPE_CHECKING:
    from ._api import RunResult

__all__ = ["FORMAT", "Timeline", "build", "render"]

#: The model's format name and version (in the embedded JSON).
FORMAT = "simloom.timeline"
VERSION = 1

#: The labels of the world's delivery callbacks (the network's timer and the
#: hand-over of an accept or of an event for a late-registered side).
_DELIVERIES = ("NetCore._due", "NetCore._deliver")

_SIMLOOM_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

#: The row of a host's lane for its plain callbacks (not a task's).
CALLBACKS_ROW = "(callbacks)"

#: The lane of the world's own steps (deliveries, its timers).
WORLD_LANE = "(world)"


@dataclass(frozen=True)
class Timeline:
    """A timeline's model (``data``) and what it counts, for the CLI's summary."""

    data: dict[str, Any]

    @property
    def hosts(self) -> int:
        return len(self.data["hosts"])

    @property
    def steps(self) -> int:
        return len(self.data["steps"])

    @property
    def messages(self) -> int:
        return len(self.data["messages"])

    @property
    def deviations(self) -> int:
        return len(self.data["deviations"])

    @property
    def faults(self) -> int:
        return len(self.data["faults"])


class _Locations:
    """The source locations a model names, each once (a step refers to its index:
    a loop's line recurs in every iteration)."""

    def __init__(self) -> None:
        self.table: list[dict[str, Any]] = []
        self._index: dict[Location, int] = {}

    def __call__(self, location: Location | None) -> int | None:
        if location is None:
            return None
        index = self._index.get(location)
        if index is None:
            index = self._index[location] = len(self.table)
            self.table.append(
                {
                    "file": location.file,
                    "name": os.path.basename(location.file),
                    "line": location.line,
                    "function": location.function.rsplit("<locals>.", 1)[-1],
                    "source": location.source(),
                }
            )
        return index


def _task_row(step: CausalStep) -> str:
    if step.task is None:
        return CALLBACKS_ROW
    if step.coroutine is not None and re.fullmatch(r"Task-\d+", step.task):
        return f"{step.task} ({step.coroutine.rsplit('<locals>.', 1)[-1]})"
    return step.task


def build(
    trace: CausalTrace,
    result: RunResult,
    *,
    hosts: list[str],
    nearest: NearestPassing | None,
    header: dict[str, Any],
) -> Timeline:
    """The model of ``result``'s universe from its causal ``trace``. ``hosts`` are
    the world's host names in creation order (a host that never ran still gets a
    lane); ``nearest`` the nearest passing universe, if one was found (its steps
    after the two part are drawn too, on request); ``header`` what the page's
    title says (test, seed, error, ...)."""
    steps = trace.steps
    by_number = {step.step: step for step in steps}
    board = _Board(hosts, steps)
    children: dict[int, list[int]] = {}
    for step in steps:
        children.setdefault(step.parent, []).append(step.step)

    where = _Locations()
    drawn: list[dict[str, Any]] = []
    for step in steps:
        lane, row, timer = board.place(step)
        record: dict[str, Any] = {
            "n": step.step,
            "t": step.time_ns,
            "lane": lane,
            "row": row,
            "words": step_words(step),
            "who": who(step),
            "task": step.task,
            "coroutine": step.coroutine,
            "host": step.host,
            "parent": step.parent,
            "woke": children.get(step.step, []),
            "at": where(step.location),
            "awaited": step.awaited,
            "starts": step.starts,
        }
        if timer:
            record["timer"] = True
        if step.decisions[1] > step.decisions[0]:
            record["decisions"] = [step.decisions[0], step.decisions[1]]
        if step.passed_over:
            record["passed_over"] = [
                {
                    "label": other.label,
                    "coroutine": other.coroutine,
                    "at": where(other.location),
                    "starts": other.starts,
                }
                for other in step.passed_over
            ]
        if step.ready_others:
            record["alternatives"] = {
                "count": step.ready_others,
                "shown": [
                    {
                        "label": other.label,
                        "coroutine": other.coroutine,
                        "at": where(other.location),
                    }
                    for other in step.alternatives
                ],
            }
        drawn.append(record)

    failure_rows = {name: list(rows) for name, rows in board.rows.items()}
    messages = _messages(steps, by_number, children)
    labels = decision_labels(result)
    deviations = []
    for index, value in result.tape.deviations:
        chosen = trace.chosen_by(index) or trace.during(index)
        told = told_in_code(trace, [(index, value)], labels)
        deviations.append(
            {
                "decision": index,
                "value": value,
                "label": labels.get(index, "?"),
                "step": chosen.step if chosen is not None else None,
                "text": told[0] if told else f"decision #{index} = {value}",
                "asked_at": where(trace.choices.get(index)),
            }
        )

    data: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "header": header,
        "steps": drawn,
        "messages": messages,
        "faults": _faults(trace, board.lanes, steps[-1].step if steps else 0, where),
        "deviations": deviations,
        "nearest": _nearest(nearest, trace, board, where),
        "locations": where.table,
    }

    # The rows only the nearest passing universe's steps use (its own tasks) are
    # drawn only with them.
    def lane_of(name: str) -> dict[str, Any]:
        rows = board.rows.get(name, [])
        ours = failure_rows.get(name, [])
        return {"name": name, "rows": ours, "passing_rows": rows[len(ours) :]}

    data["hosts"] = [lane_of(name) for name in board.lanes]
    data["world"] = lane_of(WORLD_LANE)
    return Timeline(data)


class _Board:
    """Where each step is drawn: a lane per host (the world's hosts in creation
    order, then any other a step ran on), a row per task within it."""

    def __init__(self, hosts: list[str], steps: list[CausalStep]) -> None:
        self.lanes: list[str] = list(hosts)
        for step in steps:
            if step.host is not None and step.host not in self.lanes:
                self.lanes.append(step.host)
        # Without a world every step is the program's own: one lane, "main".
        self.worldless = not self.lanes
        if self.worldless:
            self.lanes.append("main")
        self.rows: dict[str, list[str]] = {lane: [] for lane in self.lanes}
        self.rows[WORLD_LANE] = []
        self.task_place: dict[str, tuple[str, str]] = {}
        self.learn(steps)

    def learn(self, steps: list[CausalStep]) -> None:
        """Where the tasks of ``steps`` run (a task's host and row)."""
        for step in steps:
            if step.task is not None and step.host is not None:
                self.task_place.setdefault(step.task, (step.host, _task_row(step)))

    def place(self, step: CausalStep) -> tuple[str, str, bool]:
        """The step's lane and row, and whether it is a timer drawn in the row of
        the task whose sleep it ends."""
        lane, row, timer = step.host, _task_row(step), False
        if lane is None and step.task is not None and step.task in self.task_place:
            # A task's step before the world existed (main's first).
            lane, row = self.task_place[step.task]
        if lane is None and step.for_task is not None and step.for_task[0] in self.task_place:
            lane, row = self.task_place[step.for_task[0]]
            timer = True
        if lane is None and (self.worldless or not _is_worlds(step)):
            # A callback in the test's own context (gather's, a future's): main's.
            lane = "main"
        if lane is None:
            lane, row = WORLD_LANE, step.label
        if lane not in self.rows:  # "main" of a world that did not say its hosts
            self.lanes.append(lane)
            self.rows[lane] = []
        if row not in self.rows[lane]:
            self.rows[lane].append(row)
        return lane, row, timer


def _is_worlds(step: CausalStep) -> bool:
    """Whether a step with no host is the world's own (its network's)."""
    if step.label.startswith("NetCore."):
        return True
    location = step.location
    return location is not None and os.path.abspath(location.file).startswith(_SIMLOOM_DIR)


def _is_delivery(step: CausalStep) -> bool:
    return step.host is None and step.label in _DELIVERIES


def _receiver(
    step: CausalStep, by_number: dict[int, CausalStep], children: dict[int, list[int]]
) -> CausalStep | None:
    """The first step on a host that the delivery ``step`` woke, directly or
    through the world's delivery steps of the same instant (an accept handed on)."""
    for child in children.get(step.step, []):
        woken = by_number[child]
        if woken.host is not None:
            return woken
    for child in children.get(step.step, []):
        woken = by_number[child]
        if _is_delivery(woken) and woken.time_ns == step.time_ns:
            found = _receiver(woken, by_number, children)
            if found is not None:
                return found
    return None


def _sender(
    step: CausalStep,
    receiver: CausalStep,
    by_number: dict[int, CausalStep],
    children: dict[int, list[int]],
) -> CausalStep | None:
    """The step on a host that sent what the delivery ``step`` hands
    ``receiver``: the first step on a host up its causal chain (the network's
    timer, re-armed by each delivery, links a queued segment to the one before it,
    back to the writer's step). A chain that comes back to the receiver's own host
    through an earlier delivery to another host is the network's answer on that
    host's behalf (a connection's handshake): that host's step sent it."""
    passed: list[CausalStep] = []
    current = step
    for _ in range(10_000):
        parent = by_number.get(current.parent) if current.parent else None
        if parent is None:
            return None
        if parent.host is not None:
            break
        if not _is_delivery(parent):
            return None
        passed.append(parent)
        current = parent
    else:
        return None
    if parent.host == receiver.host:
        for earlier in passed:
            if earlier.time_ns == step.time_ns:
                continue
            answered = _receiver(earlier, by_number, children)
            if answered is not None and answered.host != receiver.host:
                return answered
    return parent


def _messages(
    steps: list[CausalStep], by_number: dict[int, CausalStep], children: dict[int, list[int]]
) -> list[dict[str, Any]]:
    """Each world delivery that woke a step on a host: (sender, delivery, receiver)."""
    messages = []
    for step in steps:
        if not _is_delivery(step):
            continue
        receiver = next(
            (
                by_number[child]
                for child in children.get(step.step, [])
                if by_number[child].host is not None
            ),
            None,
        )
        if receiver is None:
            continue
        sender = _sender(step, receiver, by_number, children)
        if sender is None:
            continue
        messages.append(
            {
                "from": sender.step,
                "via": step.step,
                "to": receiver.step,
                "src": sender.host,
                "dst": receiver.host,
            }
        )
    return messages


def _hosts_named(text: str, hosts: list[str]) -> list[str]:
    words = set(re.findall(r"[\w.-]+", text))
    return [host for host in hosts if host in words]


def _faults(
    trace: CausalTrace, hosts: list[str], last_step: int, where: _Locations
) -> list[dict[str, Any]]:
    """The injected faults; a partition lasts until a heal, a crash until its
    host's restart (``until``: the step that ended it, the last step if none)."""
    faults: list[dict[str, Any]] = []
    open_partitions: list[dict[str, Any]] = []
    down: dict[str, dict[str, Any]] = {}
    for fault in trace.faults:
        kind = fault.text.split(" ", 1)[0]
        record: dict[str, Any] = {
            "kind": kind,
            "text": fault.text,
            "step": fault.step,
            "t": fault.time_ns,
            "hosts": _hosts_named(fault.text, hosts),
            "at": where(fault.location),
        }
        if kind == "partition":
            record["until"] = last_step
            sides = fault.text.removeprefix("partition ").split(" | ", 1)
            if len(sides) == 2:
                record["sides"] = [_hosts_named(side, hosts) for side in sides]
            open_partitions.append(record)
        elif kind == "heal":
            healed = set(record["hosts"])
            for partition in list(open_partitions):
                if not healed or healed == set(partition["hosts"]):
                    partition["until"] = fault.step
                    open_partitions.remove(partition)
        elif kind == "crash" and record["hosts"]:
            record["until"] = last_step
            down[record["hosts"][0]] = record
        elif kind == "restart" and record["hosts"] and record["hosts"][0] in down:
            down.pop(record["hosts"][0])["until"] = fault.step
        faults.append(record)
    return faults


#: The nearest passing universe's steps after it parts, drawn at most.
MAX_PASSING_STEPS = 2000


def _nearest(
    nearest: NearestPassing | None, trace: CausalTrace, board: _Board, where: _Locations
) -> dict[str, Any] | None:
    if nearest is None:
        return None
    steps = trace.steps
    parting = steps[nearest.common] if nearest.common < len(steps) else None
    passing = (
        nearest.trace.steps[nearest.common] if nearest.common < len(nearest.trace.steps) else None
    )
    # Every step of the failure is the passing run's too: they part within the
    # step that took the undone decision (an in-program choice there).
    within = None
    if parting is None:
        within = trace.chosen_by(nearest.decision) or trace.during(nearest.decision)
        parting = within
        passing = nearest.trace.step(within.step) if within is not None else None
    # What the passing run does from where the two part, drawn over the failure's
    # board (its own tasks get rows of their own: a name like Task-21 may be
    # another task there).
    board.task_place = {}
    board.learn(nearest.trace.steps)
    start = nearest.common if within is None else steps.index(within)
    after = []
    for index, step in enumerate(nearest.trace.steps[start:][:MAX_PASSING_STEPS]):
        lane, row, _ = board.place(step)
        after.append(
            {
                "i": start + index,
                "n": step.step,
                "t": step.time_ns,
                "lane": lane,
                "row": row,
                "words": step_words(step),
                "at": where(step.location),
            }
        )
    return {
        "decision": nearest.decision,
        "value": nearest.value,
        "common": nearest.common,
        "step": parting.step if parting is not None else None,
        "within": within is not None,
        "failure": step_words(parting) if parting is not None else None,
        "passing": step_words(passing) if passing is not None else None,
        "passing_t": passing.time_ns if passing is not None else None,
        "after": after,
    }


def _script_json(data: dict[str, Any]) -> str:
    """``data`` as JSON safe inside a ``<script>`` element: no ``<``, ``>`` or
    ``&`` (so no ``</script>`` or ``<!--`` from a task's name), nor the two line
    separators JavaScript once refused in strings."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def render(timeline: Timeline) -> str:
    """The timeline's HTML page: one file, everything inline."""
    template = resources.files(__package__).joinpath("_timeline.html").read_text("utf-8")
    title = f"simloom timeline: {timeline.data['header'].get('test') or 'a universe'}"
    fills = {"TITLE": html.escape(title), "DATA": _script_json(timeline.data)}
    # One pass, so that a title holding "{{DATA}}" stays text.
    return re.sub(r"\{\{(TITLE|DATA)\}\}", lambda match: fills[match[1]], template)
