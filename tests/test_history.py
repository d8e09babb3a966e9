"""Histories and the linearizability check: the Rust search against a brute-force
reference written here (every order consistent with real time, every subset of the
operations whose outcome is unknown) on Hypothesis-generated histories, user models
in Python, the counterexample and its diagram, recording inside universes, and
misuse."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import simloom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase
from simloom import History, LinearizabilityCheckError, NotLinearizableError, SimloomUsageError

# --------------------------------------------------------------- the reference


@dataclass
class Spec:
    """One recorded operation, for building a History in a chosen event order."""

    process: int
    function: str
    args: tuple[Any, ...]
    result: Any
    status: str  # "ok", "fail", "info", "pending"
    key: Any = None


def reference_step(model: str, state: Any, op: Spec, known: bool) -> tuple[bool, Any]:
    """The models' semantics, written plainly (the reference the Rust models are
    checked against)."""
    f, a, r = op.function, op.args, op.result
    if model in ("register", "cas-register"):
        if f == "read":
            return (not known or r == state), state
        if f == "write":
            return True, a[0]
        if f == "cas":
            swapped = state == a[0]
            if known and bool(r) != swapped:
                return False, state
            return True, a[1] if swapped else state
    if model == "counter":
        if f == "add":
            return True, state + a[0]
        if f == "read":
            return (not known or r == state), state
    if model == "set":
        if f == "add":
            return True, state | {a[0]}
        if f == "remove":
            return True, state - {a[0]}
        if f == "contains":
            return (not known or bool(r) == (a[0] in state)), state
        if f == "read":
            return (not known or set(r) == state), state
    if model == "queue":
        if f == "enqueue":
            return True, (*state, a[0])
        if f == "dequeue":
            if not known:
                return True, state[1:]
            if r is None:
                return not state, state
            return bool(state) and state[0] == r, state[1:]
    if model == "mutex":
        if f == "acquire":
            if not known:
                return True, (op.process if state is None else state)
            if r:
                return state is None, op.process
            return state is not None, state
        if f == "release":
            return state == op.process, None
    raise AssertionError(f"{model}: {f}")


INITIAL = {
    "register": None,
    "cas-register": None,
    "counter": 0,
    "set": frozenset(),
    "queue": (),
    "mutex": None,
}


def brute_force(model: str, ops: list[simloom.history.Operation]) -> bool:
    """Is there an order of the operations, consistent with real time, legal for
    the model, that contains every ok operation and any subset of the unknown ones?"""
    live = [o for o in ops if o.status != "fail"]

    def must_precede(a: Any, b: Any) -> bool:
        return (
            a.completed_order is not None
            and a.status == "ok"
            and a.completed_order < b.invoked_order
        )

    def go(used: frozenset[int], state: Any) -> bool:
        if all(o.index in used for o in live if o.status == "ok"):
            return True
        for o in live:
            if o.index in used:
                continue
            if any(p.index not in used and must_precede(p, o) for p in live):
                continue
            spec = Spec(o.process, o.function, o.args, o.result, o.status)
            ok, nxt = reference_step(model, state, spec, o.result_known)
            if ok and go(used | {o.index}, frozenset(nxt) if isinstance(nxt, set) else nxt):
                return True
        return False

    return go(frozenset(), INITIAL[model])


FUNCTIONS = {
    "register": ["read", "write"],
    "cas-register": ["read", "write", "cas"],
    "counter": ["read", "add"],
    "set": ["add", "remove", "contains", "read"],
    "queue": ["enqueue", "dequeue"],
    "mutex": ["acquire", "release"],
}


@st.composite
def histories(draw: st.DrawFn, model: str) -> History:
    """A history of up to 7 operations of 3 processes, with the invocations and
    completions interleaved as the strategy chooses (shrinks toward few, sequential,
    completed operations)."""
    n = draw(st.integers(1, 7))
    small = st.integers(0, 2)
    specs = []
    for _ in range(n):
        f = draw(st.sampled_from(FUNCTIONS[model]))
        if f in ("write", "add", "remove", "contains", "enqueue"):
            args: tuple[Any, ...] = (draw(small),)
        elif f == "cas":
            args = (draw(small), draw(small))
        else:
            args = ()
        if f == "read" and model == "set":
            result: Any = draw(st.frozensets(small))
        elif f in ("read", "dequeue"):
            result = draw(st.none() | small)
        elif f in ("cas", "contains", "acquire"):
            result = draw(st.booleans())
        else:
            result = None
        status = draw(st.sampled_from(["ok", "ok", "ok", "ok", "fail", "info", "pending"]))
        specs.append(Spec(draw(st.integers(0, 2)), f, args, result, status))
    # An event order: each op is invoked, then (unless pending) completed later;
    # one process's operations do not overlap.
    history = History(model)
    pending: list[tuple[Spec, Any]] = []
    busy: set[int] = set()
    crashed: set[int] = set()  # a process whose call never completes calls no more
    queue = list(specs)
    while queue or pending:
        can_invoke = [s for s in queue if s.process not in busy | crashed]
        invoke = bool(can_invoke) and (not pending or draw(st.booleans()))
        if invoke:
            spec = can_invoke[0]
            queue.remove(spec)
            op = history.invoke(spec.process, spec.function, *spec.args)
            if spec.status == "pending":
                crashed.add(spec.process)
                continue
            busy.add(spec.process)
            pending.append((spec, op))
        elif pending:
            spec, op = pending.pop(draw(st.integers(0, len(pending) - 1)))
            busy.discard(spec.process)
            if spec.status == "ok":
                history.ok(op, spec.result)
            elif spec.status == "fail":
                history.fail(op)
            else:
                history.info(op)
        else:  # only pending-forever operations of busy processes are left
            break
    return history


MODELS = sorted(FUNCTIONS)


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_search_agrees_with_brute_force(model: str, data: st.DataObject) -> None:
    history = data.draw(histories(model))
    expected = brute_force(model, list(history.operations))
    result = history.check_linearizable(model)
    assert result.ok == expected, history.to_json()
    if not result.ok:
        # The counterexample is itself not linearizable, and names an operation in it.
        assert not brute_force(model, list(result.counterexample))
        assert result.unplaceable in result.counterexample


class PlainRegister:
    """A user model: the register, in Python."""

    def init(self) -> Any:
        return None

    def step(self, state: Any, op: simloom.history.Operation) -> tuple[bool, Any]:
        spec = Spec(op.process, op.function, op.args, op.result, op.status)
        return reference_step("cas-register", state, spec, op.result_known)


@settings(max_examples=300, deadline=None)
@given(history=histories("cas-register"))
def test_a_python_model_gets_the_same_answers(history: History) -> None:
    assert history.check_linearizable(PlainRegister()).ok == brute_force(
        "cas-register", list(history.operations)
    )


# ---------------------------------------------------------- the counterexample


def stale_read_history() -> History:
    h = History("account")
    h.ok(h.invoke("writer", "write", 1))
    h.ok(h.invoke("writer", "write", 2))
    for i in range(20):  # noise that does not matter
        h.ok(h.invoke(f"reader-{i}", "read"), 2)
    h.ok(h.invoke("late", "read"), 1)
    return h


def test_a_stale_read_is_shrunk_to_the_writes_that_explain_it() -> None:
    result = stale_read_history().check_linearizable("register")
    assert not result.ok and result.minimal
    assert [op.describe() for op in result.counterexample] == [
        "write(1)",
        "write(2)",
        "read() -> 1",
    ]
    assert result.unplaceable is not None and result.unplaceable.process == "late"
    text = result.explain()
    assert "account is not linearizable (model register, 23 operations)" in text
    assert "read() -> 1 by 'late' cannot be placed" in text
    assert "<- cannot be placed" in text.splitlines()[3]
    assert text.count("\n") < 12, "the report stays short"


def test_assert_linearizable_raises_an_assertion_error_with_the_diagram() -> None:
    with pytest.raises(NotLinearizableError) as raised:
        stale_read_history().assert_linearizable("register")
    assert isinstance(raised.value, AssertionError)
    assert "cannot be placed" in str(raised.value)
    assert raised.value.result.unplaceable.process == "late"


def test_a_key_value_history_names_the_key() -> None:
    h = History("kv")
    for key in ("a", "b", "c"):
        h.ok(h.invoke(1, "put", 5, key=key))
    h.ok(h.invoke(2, "get", key="a"), 5)
    h.ok(h.invoke(2, "get", key="b"), None)  # lost write on b
    result = h.check_linearizable("kv")
    assert not result.ok
    assert "get('b') -> None by 2 on key 'b' cannot be placed" in result.explain()
    assert {op.key for op in result.counterexample} == {"b"}


def test_two_lease_holders() -> None:
    h = History("lease")
    a = h.invoke("n1", "acquire")
    b = h.invoke("n2", "acquire")
    h.ok(a, True)
    h.ok(b, True)
    assert not h.check_linearizable("lease").ok
    h2 = History("lease")
    h2.ok(h2.invoke("n1", "acquire"), True)
    h2.ok(h2.invoke("n1", "release"))
    h2.ok(h2.invoke("n2", "acquire"), True)
    assert h2.check_linearizable("mutex").ok


def test_call_records_ok_fail_and_unknown() -> None:
    h = History()

    async def main() -> None:
        async with h.call("c", "write", 1) as op:
            op.result = None
        async with h.call("c", "write", 2):
            raise simloom.OperationFailed
        with pytest.raises(TimeoutError):
            async with h.call("c", "write", 3):
                raise TimeoutError

    simloom.run(main, scheduler="fifo")
    assert [op.status for op in h.operations] == ["ok", "fail", "info"]
    assert h.check_linearizable("register").ok


# --------------------------------------------------------- inside a universe


def test_events_carry_virtual_time_and_the_host_and_a_crashed_client_is_unknown() -> None:
    h = History("register")

    async def main(world: simloom.World) -> None:
        client = world.host("client")

        async def write_then_hang() -> None:
            op = h.invoke("client", "write", 7)
            await asyncio.sleep(10)  # the host crashes before it completes
            h.ok(op)

        client.spawn(write_then_hang)
        await asyncio.sleep(1)
        client.crash()
        await asyncio.sleep(1)
        h.ok(h.invoke("checker", "read"), 7)  # the write took effect after all

    result = simloom.run(main, scheduler="fifo")
    assert result.error is None, result.error
    write, read = h.operations
    assert write.host == "client" and write.status == "pending"
    assert write.invoked_ns == 0 and read.invoked_ns == 2_000_000_000
    # The pending write may have taken effect: the read of 7 is linearizable...
    assert h.check_linearizable("register").ok
    # ...and so is a read of None (it may not have).
    read.result = None
    assert h.check_linearizable("register").ok


def test_two_events_of_one_virtual_instant_keep_their_order() -> None:
    h = History()

    async def main() -> None:
        h.ok(h.invoke(1, "write", 1))
        h.ok(h.invoke(2, "read"), None)  # after the write completed: stale

    simloom.run(main)
    assert {op.invoked_ns for op in h.operations} == {0}
    assert not h.check_linearizable("register").ok


def test_a_violation_fails_the_universe_and_shrinks(tmp_path: Any) -> None:
    from simloom import testing

    previous = testing.options()
    testing.configure(testing.Options(artifact_dir=tmp_path))
    try:

        @settings(database=InMemoryExampleDatabase())
        @simloom.test(runs=300)
        async def lost_update() -> None:
            # Two clients increment a shared counter by read-modify-write: a
            # schedule that interleaves them loses an update, which only the
            # history's final read shows.
            h = History("counter")
            total = 0

            async def client(i: int) -> None:
                nonlocal total
                async with h.call(i, "add", 1):
                    seen = total
                    await asyncio.sleep(0)
                    total = seen + 1

            await asyncio.gather(client(1), client(2))
            async with h.call(0, "read") as op:
                op.result = total
            h.assert_linearizable("counter")

        with pytest.raises(NotLinearizableError) as raised:
            lost_update()
    finally:
        testing.configure(previous)
    text = str(raised.value)
    assert "read() -> 1 by 0 cannot be placed" in text
    assert "add(1)" in text


# ------------------------------------------------------------------- misuse


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: h.check_linearizable("regsiter"), "unknown model 'regsiter'"),
        (lambda h: h.check_linearizable(object()), "must be a built-in model's name"),
        (lambda h: h.check_linearizable("register", max_steps=0), "max_steps must be an int >= 1"),
        (lambda h: h.invoke(1, ""), "function must be a non-empty str"),
    ],
)
def test_misuse_is_a_named_error(call: Callable[[History], object], message: str) -> None:
    with pytest.raises(SimloomUsageError, match=message):
        call(History())


def test_a_function_the_model_does_not_have_is_named() -> None:
    h = History()
    h.ok(h.invoke(1, "enqueue", 1))
    with pytest.raises(ValueError, match="no function 'enqueue'"):
        h.check_linearizable("register")


def test_completing_twice_or_overlapping_one_process_is_refused() -> None:
    h = History()
    op = h.invoke(1, "write", 1)
    with pytest.raises(SimloomUsageError, match="is still pending"):
        h.invoke(1, "read")
    h.ok(op)
    with pytest.raises(SimloomUsageError, match="already completed"):
        h.ok(op)


def test_a_python_model_that_raises_or_answers_badly_is_reported() -> None:
    class Broken:
        def init(self) -> int:
            return 0

        def step(self, state: int, op: Any) -> Any:
            raise KeyError("boom")

    class Shapeless(Broken):
        def step(self, state: int, op: Any) -> Any:
            return True

    h = History()
    h.ok(h.invoke(1, "write", 1))
    with pytest.raises(KeyError, match="boom"):
        h.check_linearizable(Broken())
    with pytest.raises(TypeError, match=r"returns \(ok, new_state\)"):
        h.check_linearizable(Shapeless())


def test_a_search_over_its_budget_says_so() -> None:
    h = History()
    ops = [h.invoke(i, "write", i) for i in range(12)]
    for op in ops:
        h.ok(op)
    h.ok(h.invoke(99, "read"), 100)  # nothing wrote 100: every order must be tried
    with pytest.raises(LinearizabilityCheckError, match="gave up after"):
        h.check_linearizable("register", max_steps=1_000)
