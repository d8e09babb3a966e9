"""Histories of client operations, and whether they are linearizable.

A :class:`History` records what clients asked of a shared object and what they got:
each operation is *invoked* (the client sends the request) and then completes as
``ok`` (with its result), ``fail`` (it certainly did not take effect) or ``info``
(unknown: a timeout, a dropped connection). An operation still pending when the
history is checked — its client's host crashed, its task was cancelled — is
``info`` too: it may have taken effect at any time after its invocation, or never.

:meth:`History.check_linearizable` asks whether some order of the operations,
consistent with real time (an operation that completed before another was invoked
comes first), is a legal run of a sequential *model* of the object. The search runs
in Rust (Wing and Gong's algorithm with Lowe's memoisation; a key-value model is
checked key by key). A failure is shrunk to a small sub-history that is still not
linearizable, drawn over time with the operation that cannot be placed.

Times: in a universe, each event is stamped with the virtual clock, and ordered by
the order the events were recorded in (virtual time does not advance inside a
step, so two events of one instant are still ordered as the program ran them).

Owns: recording (cheap: one small object per operation, no I/O) and the report.
Must not: decide linearizability (``simloom._core.check_linearizable`` does).
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from . import _core
from .errors import NotLinearizableError, NotSerializableError, SimloomUsageError
from .world import current_host

__all__ = [
    "ANOMALIES",
    "MODELS",
    "Anomaly",
    "History",
    "LinearizabilityResult",
    "Model",
    "Operation",
    "OperationFailed",
    "SerializabilityResult",
]

#: The built-in models :meth:`History.check_linearizable` knows by name.
MODELS: tuple[str, ...] = tuple(_core.LINEARIZABILITY_MODELS)

Status = Literal["pending", "ok", "fail", "info"]


class Model(Protocol):
    """A user model: a sequential specification of the object.

    ``init()`` returns the initial state; ``step(state, op)`` returns ``(True,
    new_state)`` when ``op`` (an :class:`Operation`: ``function``, ``args``,
    ``result``, ``result_known``, ``process``) may run alone in ``state`` and return
    what it returned, else ``(False, anything)``. States must be hashable and
    compare by value (tuples, frozensets, ints...): the search remembers the
    (placed operations, state) pairs it explored. An operation whose result is
    unknown (``result_known`` false) must be given the effect it would have had.
    """

    def init(self) -> Any: ...

    def step(self, state: Any, op: Operation) -> tuple[bool, Any]: ...


@dataclass(eq=False)
class Operation:
    """One client operation of a :class:`History`."""

    #: Its position in the history (invocation order), from 0.
    index: int
    #: The client that called it (a task name, a host, a client number).
    process: Any
    #: What it asked: ``"read"``, ``"write"``, ``"cas"``, ... (see the models).
    function: str
    args: tuple[Any, ...]
    #: The object addressed in a map of objects (the key-value model's key).
    key: Any
    #: Virtual time (ns) of the invocation; and its order among the history's events.
    invoked_ns: int
    invoked_order: int
    #: The host it was invoked on, in a universe with a world.
    host: str | None = None
    status: Status = "pending"
    result: Any = None
    #: Whether ``result`` is what it returned (False: unknown).
    result_known: bool = False
    completed_ns: int | None = None
    completed_order: int | None = None

    def describe(self) -> str:
        """``write(3)``, ``read() -> 3``, ``cas('x', 1, 2) -> False``, ``read() -> ?``."""
        key = [] if self.key is None else [self.key]
        call = f"{self.function}({', '.join(repr(a) for a in (*key, *self.args))})"
        if self.status == "fail":
            return f"{call} failed"
        if self.status in ("info", "pending"):
            return f"{call} -> ?"
        if self.result is None and self.function not in _RETURNING:
            return call
        return f"{call} -> {self.result!r}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (values through ``repr`` when JSON cannot hold them)."""
        return {
            "index": self.index,
            "process": _jsonable(self.process),
            "function": self.function,
            "key": _jsonable(self.key),
            "args": [_jsonable(a) for a in self.args],
            "host": self.host,
            "status": self.status,
            "result": _jsonable(self.result) if self.result_known else None,
            "result_known": self.result_known,
            "invoked_ns": self.invoked_ns,
            "completed_ns": self.completed_ns,
        }


_RETURNING = frozenset({"read", "get", "cas", "compare_and_set", "contains", "dequeue", "pop"})


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(v) for v in value), key=repr)
    return repr(value)


def _now_ns() -> tuple[int, str | None]:
    """Virtual time in a SimLoop (wall-clock monotonic time elsewhere), and the
    world host the caller runs on."""
    loop = asyncio.events._get_running_loop()
    if loop is not None and getattr(loop, "_simloom_loop", False):
        host = current_host()
        return int(loop._now_ns()), host.name if host is not None else None  # type: ignore[attr-defined]
    return time.monotonic_ns(), None


@dataclass(frozen=True)
class LinearizabilityResult:
    """What :meth:`History.check_linearizable` found."""

    ok: bool
    model: str
    #: Operations checked (failed ones are left out of the search).
    operations: int
    #: The counterexample, when not linearizable: a sub-history that is not, in
    #: invocation order; the operation that cannot be placed; those concurrent with
    #: it; whether the shrink finished (else it is small, not minimal).
    counterexample: tuple[Operation, ...] = ()
    unplaceable: Operation | None = None
    concurrent: tuple[Operation, ...] = ()
    minimal: bool = True
    #: The history checked (it goes into a failure's artifacts as JSON).
    history: History | None = field(default=None, repr=False, compare=False)
    _diagram: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return self.ok

    def explain(self) -> str:
        """The verdict in words; when not linearizable, the counterexample drawn
        over time, one row per process, the unplaceable operation marked."""
        if self.ok:
            return f"linearizable ({self.operations} operations, model {self.model})"
        return self._diagram


#: What each anomaly means, for the report.
ANOMALIES: dict[str, str] = {
    "G0": "write cycle: transactions overwrote each other's writes",
    "G1a": "aborted read: a committed transaction read a failed one's write",
    "G1b": "intermediate read: a transaction read a value its writer later overwrote",
    "G1c": "circular information flow: a cycle of writes and reads",
    "G-single": "read skew: a cycle with exactly one anti-dependency",
    "G2": "write skew: a cycle of anti-dependencies",
    "incompatible-order": "two reads of one list disagree on its order",
}

_EDGE_WORDS = {
    "ww": "{a}'s write of {k} was overwritten by {b}",
    "wr": "{b} read {a}'s write of {k}",
    "rw": "{a} read {k} before {b} wrote it",
    "rt": "{a} completed before {b} was invoked",
}


@dataclass(frozen=True)
class Anomaly:
    """One anomaly: its name (``G0`` ... ``G2``, ``-realtime`` when it needs real
    time), the transactions (a cycle's in order), and for a cycle the edge from
    each to the next (``ww``, ``wr``, ``rw``, ``rt``) and the key behind it."""

    name: str
    transactions: tuple[Operation, ...]
    edges: tuple[str, ...]
    keys: tuple[Any, ...]

    def explain(self) -> str:
        base = self.name.removesuffix("-realtime")
        meaning = ANOMALIES.get(base, base)
        if self.name.endswith("-realtime"):
            meaning += ", once real-time order counts (not strictly serializable)"
        lines = [f"  {self.name}: {meaning}"]
        names = [f"T#{t.index}" for t in self.transactions]
        for t in self.transactions:
            ops = t.result if t.result_known else (t.args[0] if t.args else ())
            lines.append(f"    T#{t.index} by {t.process!r}: {_micro_ops(ops)}")
        for i, edge in enumerate(self.edges):
            a = names[i]
            b = names[(i + 1) % len(names)]
            key = self.keys[i] if i < len(self.keys) else None
            words = _EDGE_WORDS.get(edge, edge).format(a=a, b=b, k=repr(key))
            lines.append(f"    {a} -{edge}-> {b}: {words}")
        return "\n".join(lines)


def _micro_ops(ops: Any) -> str:
    try:
        return (
            "["
            + ", ".join(" ".join(repr(p) if i else str(p) for i, p in enumerate(op)) for op in ops)
            + "]"
        )
    except TypeError:
        return repr(ops)


@dataclass(frozen=True)
class SerializabilityResult:
    """What :meth:`History.check_serializable` found."""

    ok: bool
    kind: str
    realtime: bool
    #: Committed transactions checked.
    transactions: int
    anomalies: tuple[Anomaly, ...] = ()
    history: History | None = field(default=None, repr=False, compare=False)

    def __bool__(self) -> bool:
        return self.ok

    def explain(self) -> str:
        strict = "strictly " if self.realtime else ""
        name = self.history.name if self.history is not None else "history"
        if self.ok:
            return f"{name} is {strict}serializable ({self.transactions} committed transactions, {self.kind})"
        found = ", ".join(a.name for a in self.anomalies)
        return "\n".join(
            [
                f"{name} is not {strict}serializable ({self.kind}, {self.transactions} "
                f"committed transactions): {found}",
                *(a.explain() for a in self.anomalies),
            ]
        )


class History:
    """Client operations on one object (or one map of objects), as they happened.

    Record with :meth:`invoke` and then :meth:`ok`, :meth:`fail` or :meth:`info`, or
    with ``async with history.call(process, "read") as op: op.result = await ...``.
    Check with :meth:`check_linearizable` or :meth:`assert_linearizable`.
    """

    def __init__(self, name: str = "history") -> None:
        self.name = name
        self._operations: list[Operation] = []
        #: Each process's latest operation (one at a time per process).
        self._pending: dict[Any, Operation] = {}
        self._order = 0

    def __len__(self) -> int:
        return len(self._operations)

    def __repr__(self) -> str:
        return f"History({self.name!r}, {len(self._operations)} operations)"

    @property
    def operations(self) -> Sequence[Operation]:
        """Every operation, in invocation order."""
        return tuple(self._operations)

    def _register(self) -> None:
        """Be one of the running universe's histories (written to its artifacts
        if it fails)."""
        loop = asyncio.events._get_running_loop()
        recorded = getattr(loop, "_simloom_histories", None) if loop is not None else None
        if recorded is not None and not any(h is self for h in recorded):
            recorded.append(self)

    def _tick(self) -> int:
        self._order += 1
        return self._order

    def invoke(self, process: Any, function: str, *args: Any, key: Any = None) -> Operation:
        """Record that ``process`` invoked ``function(*args)`` (on ``key``, for a
        map of objects) now; complete it later with :meth:`ok`/:meth:`fail`/:meth:`info`."""
        if not isinstance(function, str) or not function:
            raise SimloomUsageError(f"function must be a non-empty str, not {function!r}")
        busy = self._pending.get(_hashable(process))
        if busy is not None and busy.status == "pending":
            raise SimloomUsageError(
                f"process {process!r} invoked {function} while its operation #{busy.index} "
                f"({busy.describe()}) is still pending: one process calls one operation at a "
                "time (give concurrent callers their own process ids)"
            )
        now, host = _now_ns()
        self._register()
        op = Operation(
            index=len(self._operations),
            process=process,
            function=function,
            args=args,
            key=key,
            invoked_ns=now,
            invoked_order=self._tick(),
            host=host,
        )
        self._operations.append(op)
        self._pending[_hashable(process)] = op
        return op

    def _complete(self, op: Operation, status: Status, result: Any, known: bool) -> Operation:
        if op.index >= len(self._operations) or self._operations[op.index] is not op:
            raise SimloomUsageError(f"operation {op.describe()} is not one of {self!r}")
        if op.status != "pending":
            raise SimloomUsageError(
                f"operation #{op.index} ({op.describe()}) was already completed ({op.status})"
            )
        op.status, op.result, op.result_known = status, result, known
        op.completed_ns, _ = _now_ns()
        op.completed_order = self._tick()
        return op

    def ok(self, op: Operation, result: Any = None) -> Operation:
        """``op`` completed and returned ``result``."""
        return self._complete(op, "ok", result, True)

    def fail(self, op: Operation) -> Operation:
        """``op`` certainly did not take effect (the server said so)."""
        return self._complete(op, "fail", None, False)

    def info(self, op: Operation) -> Operation:
        """``op``'s outcome is unknown (a timeout, a lost connection): it may have
        taken effect at any time after its invocation, or never."""
        return self._complete(op, "info", None, False)

    @asynccontextmanager
    async def call(
        self, process: Any, function: str, *args: Any, key: Any = None
    ) -> AsyncIterator[Operation]:
        """Record one operation around a block: set ``op.result`` in it. The
        block's normal end is ``ok``; an exception (including a cancellation or a
        timeout) is ``info`` — unknown — and propagates. Raise
        :class:`OperationFailed` in the block (or call :meth:`fail` on ``op``) for a
        definite failure."""
        op = self.invoke(process, function, *args, key=key)
        try:
            yield op
        except OperationFailed:
            if op.status == "pending":
                self.fail(op)
        except BaseException:
            if op.status == "pending":
                self.info(op)
            raise
        else:
            if op.status == "pending":
                self.ok(op, op.result)

    # ----------------------------------------------------------------- checking

    def check_linearizable(
        self,
        model: str | Model,
        *,
        by_key: bool = False,
        max_steps: int = 50_000_000,
        shrink_checks: int = 2_000,
    ) -> LinearizabilityResult:
        """Is this history linearizable for ``model``?

        ``model`` is a built-in model's name — ``"register"`` (read/write),
        ``"cas-register"`` (and ``cas(old, new) -> bool``), ``"kv"`` (get/put/cas by
        ``key``, checked key by key), ``"counter"`` (add/read), ``"set"``
        (add/remove/contains/read), ``"queue"`` (enqueue/dequeue, ``None`` when
        empty), ``"mutex"`` (acquire/release; a lease too) — or a :class:`Model`.
        ``by_key``: operations on different keys are independent objects (always so
        for ``"kv"``). Operations still pending count as ``info``.
        """
        if isinstance(model, str):
            name = model  # the engine knows the names (and refuses others)
        else:
            if not (
                callable(getattr(model, "init", None)) and callable(getattr(model, "step", None))
            ):
                raise SimloomUsageError(
                    f"model must be a built-in model's name or have init() and step(state, op), "
                    f"not {model!r}"
                )
            name = type(model).__name__
        for argument, value in (("max_steps", max_steps), ("shrink_checks", shrink_checks)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SimloomUsageError(f"{argument} must be an int >= 1, not {value!r}")
        ops = self._operations
        found = _without_gc(_core.check_linearizable, model, ops, by_key, max_steps, shrink_checks)
        checked = sum(1 for op in ops if op.status != "fail")
        if found is None:
            return LinearizabilityResult(ok=True, model=name, operations=checked)
        indices, unplaceable, concurrent, minimal = found
        example = tuple(ops[i] for i in indices)
        result = LinearizabilityResult(
            ok=False,
            model=name,
            operations=checked,
            counterexample=example,
            unplaceable=ops[unplaceable],
            concurrent=tuple(ops[i] for i in concurrent),
            minimal=minimal,
            history=self,
            _diagram=_diagram(self, name, checked, example, ops[unplaceable], minimal),
        )
        return result

    def check_serializable(
        self, kind: str = "list-append", *, realtime: bool = False
    ) -> SerializabilityResult:
        """Are this history's transactions serializable (Elle's inference, in Rust)?

        Each operation is a transaction: ``history.invoke(process, "txn", ops)`` with
        ``ops`` a list of micro-operations ``(f, key, value)`` — ``("append", k, v)``
        and ``("r", k, None)`` for ``kind="list-append"`` (appended values unique
        per key), ``("w", k, v)`` and ``("r", k, None)`` for ``"rw-register"``
        (written values unique per key) — completed with ``history.ok(op, ops)``
        where each read has its value (the list read, the register's value). The
        anomalies: G0, G1a, G1b, G1c, G-single, G2 (and incompatible-order for lists);
        ``realtime=True`` also orders transactions by real time (strict
        serializability), reporting a cycle that needs it as ``<name>-realtime``.
        """
        if not isinstance(realtime, bool):
            raise SimloomUsageError(f"realtime must be a bool, not {realtime!r}")
        if kind not in ("list-append", "rw-register"):
            raise SimloomUsageError(
                f'unknown transaction kind {kind!r}: "list-append" or "rw-register"'
            )
        found = _without_gc(_core.check_serializable, self._operations, kind, realtime)
        anomalies = tuple(
            Anomaly(
                name=name,
                transactions=tuple(self._operations[i] for i in members),
                edges=tuple(edges),
                keys=tuple(keys),
            )
            for name, members, edges, keys in found
        )
        return SerializabilityResult(
            ok=not anomalies,
            kind=kind,
            realtime=realtime,
            transactions=sum(1 for op in self._operations if op.status == "ok"),
            anomalies=anomalies,
            history=self,
        )

    def assert_serializable(self, kind: str = "list-append", *, realtime: bool = False) -> None:
        """:meth:`check_serializable`, raising :class:`~simloom.NotSerializableError`
        (an ``AssertionError``) with the anomalies found when there are any."""
        result = self.check_serializable(kind, realtime=realtime)
        if not result.ok:
            raise NotSerializableError(result.explain(), result)

    def assert_linearizable(self, model: str | Model, **options: Any) -> None:
        """:meth:`check_linearizable`, raising :class:`~simloom.NotLinearizableError`
        (an ``AssertionError``: it fails a universe and shrinks like one) with the
        counterexample's diagram when the history is not linearizable."""
        result = self.check_linearizable(model, **options)
        if not result.ok:
            raise NotLinearizableError(result.explain(), result)

    def to_json(self) -> str:
        """The history as JSON (one object per operation), for artifacts."""
        return json.dumps(
            {"name": self.name, "operations": [op.as_dict() for op in self._operations]},
            indent=1,
            sort_keys=True,
        )


class OperationFailed(Exception):
    """Raise inside ``History.call``'s block: the operation certainly did not take
    effect (recorded as ``fail``). It does not propagate."""


def _without_gc(function: Any, *args: Any) -> Any:
    """Call ``function`` with the cyclic collector paused: reading a long history
    allocates small objects by the hundred thousand, and each generation-2
    collection they trigger would walk the whole history (nothing the check
    makes is cyclic garbage)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return function(*args)
    finally:
        if enabled:
            gc.enable()


def _hashable(process: Any) -> Any:
    try:
        hash(process)
    except TypeError:
        return ("unhashable", repr(process))
    return process


def _diagram(
    history: History,
    model: str,
    checked: int,
    example: Iterable[Operation],
    unplaceable: Operation,
    minimal: bool,
) -> str:
    """The counterexample over time: one row per process, each operation a bar from
    its invocation to its completion, in the order the events happened."""
    ops = sorted(example, key=lambda o: o.invoked_order)
    events: list[tuple[int, bool, Operation]] = []
    for op in ops:
        events.append((op.invoked_order, True, op))
        if op.completed_order is not None:
            events.append((op.completed_order, False, op))
    events.sort(key=lambda e: e[0])
    labels = {op.index: f"- {op.describe()} -" for op in ops}
    start: dict[int, int] = {}
    end: dict[int, int] = {}
    x = 0
    for _, is_call, op in events:
        if is_call:
            start[op.index] = x
            x += 1
        else:
            x = max(x, start[op.index] + len(labels[op.index]) + 1)
            end[op.index] = x
            x += 2
    open_end = x + 2
    for op in ops:
        if op.index not in end:
            end[op.index] = max(open_end, start[op.index] + len(labels[op.index]) + 2)
    processes: list[Any] = []
    for op in ops:
        if op.process not in processes:
            processes.append(op.process)
    names = {p: str(p) for p in processes}
    width = max(len(n) for n in names.values())
    rows = []
    for process in processes:
        line = [" "] * (max(end.values()) + 2)
        for op in ops:
            if op.process != process:
                continue
            a, b = start[op.index], end[op.index]
            line[a] = "|"
            label = labels[op.index]
            fill = "-" * (b - a - 1)
            body = (label + fill)[: b - a - 1] if len(label) <= b - a - 1 else label[: b - a - 1]
            pad = (b - a - 1 - len(label)) // 2
            if len(label) <= b - a - 1:
                body = "-" * pad + label + "-" * (b - a - 1 - pad - len(label))
            line[a + 1 : b] = list(body)
            if op.completed_order is None:
                line[b] = ">"  # never completed: it may take effect any time after
            else:
                line[b] = "|"
        mark = "  <- cannot be placed" if unplaceable.process == process else ""
        rows.append(f"    {names[process]:>{width}}  {''.join(line).rstrip()}{mark}")
    key = f" on key {unplaceable.key!r}" if unplaceable.key is not None else ""
    shrunk = "a minimal" if minimal else "a small (shrink stopped early)"
    lines = [
        f"{history.name} is not linearizable (model {model}, {checked} operations): "
        f"{unplaceable.describe()} by {unplaceable.process!r}{key} cannot be placed.",
        f"  {shrunk} sub-history that is not linearizable ({len(ops)} operations):",
        *rows,
        "  (time runs left to right in the order events happened; |--...-->: never "
        "completed, outcome unknown)",
    ]
    for op in ops:
        done = (
            f"{op.status} at {op.completed_ns / 1e9:.6f}s"
            if op.completed_ns is not None
            else "never completed"
        )
        host = f" on {op.host}" if op.host else ""
        lines.append(
            f"    #{op.index} {op.process!s:<{width}} {op.describe():<28} "
            f"invoked at {op.invoked_ns / 1e9:.6f}s{host}, {done}"
        )
    return "\n".join(lines)
