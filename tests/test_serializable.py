"""Serializability of transaction histories (Elle-style, in Rust): each anomaly on a
history built to have it; the checker against a brute-force reference written here
(every serial order of the committed transactions, executed) on Hypothesis-generated
histories of a store whose transactions read from snapshots; misuse."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import simloom
from hypothesis import given, settings
from hypothesis import strategies as st
from simloom import History, NotSerializableError, SimloomUsageError

Micro = tuple[str, str, Any]


def record(history: History, process: Any, done: list[Micro], status: str = "ok") -> Any:
    """One transaction: invoked with its reads unknown, completed with ``done``."""
    op = history.invoke(process, "txn", [(f, k, None if f == "r" else v) for f, k, v in done])
    if status == "ok":
        history.ok(op, done)
    elif status == "fail":
        history.fail(op)
    return op


def anomalies(history: History, **options: Any) -> list[str]:
    return sorted(a.name for a in history.check_serializable(**options).anomalies)


def test_a_serial_history_is_serializable_and_strictly_so() -> None:
    h = History("store")
    record(h, 1, [("append", "x", 1), ("r", "y", [])])
    record(h, 2, [("r", "x", [1]), ("append", "y", 2)])
    record(h, 3, [("r", "x", [1]), ("r", "y", [2])])
    assert h.check_serializable().ok
    assert h.check_serializable(realtime=True).ok
    assert (
        "is strictly serializable (3 committed transactions"
        in h.check_serializable(realtime=True).explain()
    )


def test_write_skew_is_g2_with_its_cycle() -> None:
    h = History("oncall")
    a = h.invoke("alice", "txn", [("r", "x", None), ("append", "y", 1)])
    b = h.invoke("bob", "txn", [("r", "y", None), ("append", "x", 2)])
    h.ok(a, [("r", "x", []), ("append", "y", 1)])
    h.ok(b, [("r", "y", []), ("append", "x", 2)])
    record(h, "auditor", [("r", "x", [2]), ("r", "y", [1])])
    result = h.check_serializable()
    assert not result.ok
    (g2,) = result.anomalies
    assert g2.name == "G2" and g2.edges == ("rw", "rw")
    assert {t.process for t in g2.transactions} == {"alice", "bob"}
    text = result.explain()
    assert "G2: write skew" in text
    assert "read 'x' before" in text and "read 'y' before" in text
    with pytest.raises(NotSerializableError) as raised:
        h.assert_serializable()
    assert isinstance(raised.value, AssertionError)
    assert raised.value.result.anomalies == result.anomalies


def test_each_named_anomaly() -> None:
    g0 = History()
    a = g0.invoke(1, "txn", [("append", "x", 1), ("append", "y", 2)])
    b = g0.invoke(2, "txn", [("append", "x", 3), ("append", "y", 4)])
    g0.ok(a, [("append", "x", 1), ("append", "y", 2)])
    g0.ok(b, [("append", "x", 3), ("append", "y", 4)])
    record(g0, 3, [("r", "x", [1, 3]), ("r", "y", [4, 2])])
    assert anomalies(g0) == ["G0"]

    g1a = History()
    record(g1a, 1, [("append", "x", 1)], status="fail")
    record(g1a, 2, [("r", "x", [1])])
    assert anomalies(g1a) == ["G1a"]

    g1b = History()
    a = g1b.invoke(1, "txn", [("append", "x", 1), ("append", "x", 2)])
    record(g1b, 2, [("r", "x", [1])])
    g1b.ok(a, [("append", "x", 1), ("append", "x", 2)])
    record(g1b, 3, [("r", "x", [1, 2])])
    assert "G1b" in anomalies(g1b)

    g1c = History()
    a = g1c.invoke(1, "txn", [("append", "x", 1), ("r", "y", None)])
    b = g1c.invoke(2, "txn", [("append", "y", 2), ("r", "x", None)])
    g1c.ok(a, [("append", "x", 1), ("r", "y", [2])])
    g1c.ok(b, [("append", "y", 2), ("r", "x", [1])])
    assert anomalies(g1c) == ["G1c"]

    single = History()
    a = single.invoke(1, "txn", [("r", "x", None), ("r", "y", None)])
    record(single, 2, [("append", "x", 2), ("append", "y", 1)])
    single.ok(a, [("r", "x", []), ("r", "y", [1])])
    record(single, 3, [("r", "x", [2])])
    assert anomalies(single) == ["G-single"]

    disagree = History()
    record(disagree, 1, [("append", "x", 1)])
    record(disagree, 2, [("append", "x", 2)])
    record(disagree, 3, [("r", "x", [1, 2])])
    record(disagree, 4, [("r", "x", [2, 1])])
    assert "incompatible-order" in anomalies(disagree)


def test_a_stale_read_is_serializable_but_not_strictly() -> None:
    h = History()
    record(h, 1, [("append", "x", 1)])
    record(h, 2, [("r", "x", [])])  # invoked after the append committed
    record(h, 3, [("r", "x", [1])])
    assert anomalies(h) == []
    assert anomalies(h, realtime=True) == ["G-single-realtime"]
    assert "once real-time order counts" in h.check_serializable(realtime=True).explain()


def test_read_write_registers() -> None:
    lost = History()
    a = lost.invoke(1, "txn", [("r", "x", None), ("w", "x", 1)])
    b = lost.invoke(2, "txn", [("r", "x", None), ("w", "x", 2)])
    lost.ok(a, [("r", "x", None), ("w", "x", 1)])
    lost.ok(b, [("r", "x", None), ("w", "x", 2)])
    assert anomalies(lost, kind="rw-register") == ["G2"]
    serial = History()
    record(serial, 1, [("w", "x", 1)])
    record(serial, 2, [("r", "x", 1), ("w", "x", 2)])
    record(serial, 3, [("r", "x", 2)])
    assert anomalies(serial, kind="rw-register", realtime=True) == []


def test_an_unknown_transaction_may_have_committed() -> None:
    h = History()
    op = h.invoke(1, "txn", [("append", "x", 1)])
    h.info(op)  # the reply was lost: it may have committed
    record(h, 2, [("r", "x", [1])])
    assert h.check_serializable().ok


# ---------------------------------------------------------- brute force


def serial_order_exists(transactions: list[list[Micro]]) -> bool:
    """Some order of the transactions, each run alone from the empty store, in
    which every read returns what it returned."""
    for order in itertools.permutations(range(len(transactions))):
        state: dict[str, list[int]] = {}
        if all(_runs(state, transactions[t]) for t in order):
            return True
    return False


def _runs(state: dict[str, list[int]], txn: list[Micro]) -> bool:
    for f, key, value in txn:
        if f == "r":
            if state.get(key, []) != list(value):
                return False
        else:
            state.setdefault(key, []).append(value)
    return True


@st.composite
def snapshot_histories(draw: st.DrawFn) -> tuple[History, list[list[Micro]]]:
    """Transactions (reads, then appends of unique values, on keys x and y) that
    commit one after another, each reading from a snapshot taken after any
    earlier number of commits (a store with weak isolation: snapshots may be
    stale); then an observer reads every key. Shrinks toward few, serial
    transactions."""
    count = draw(st.integers(1, 4))
    keys = ["x", "y"]
    plans = []
    value = 0
    for _ in range(count):
        reads = draw(st.lists(st.sampled_from(keys), unique=True, max_size=2))
        appends = []
        for key in draw(st.lists(st.sampled_from(keys), unique=True, min_size=1, max_size=2)):
            value += 1
            appends.append((key, value))
        plans.append((reads, appends))
    state: dict[str, list[int]] = {}
    snapshots: list[dict[str, list[int]]] = [{}]
    done: list[list[Micro]] = []
    for position, (reads, appends) in enumerate(plans):
        snapshot = snapshots[draw(st.integers(0, position))]
        txn: list[Micro] = [("r", k, list(snapshot.get(k, []))) for k in reads]
        for key, v in appends:
            state.setdefault(key, []).append(v)
            txn.append(("append", key, v))
        snapshots.append({k: list(v) for k, v in state.items()})
        done.append(txn)
    done.append([("r", k, list(state.get(k, []))) for k in keys])
    # Invocations and completions interleave freely (realtime is not checked).
    history = History("snapshots")
    ops = [
        history.invoke(i, "txn", [(f, k, None) for f, k, _ in txn]) for i, txn in enumerate(done)
    ]
    for op, txn in zip(ops, done, strict=True):
        history.ok(op, txn)
    return history, done


@settings(max_examples=500, deadline=None)
@given(snapshot_histories())
def test_the_checker_agrees_with_brute_force(case: tuple[History, list[list[Micro]]]) -> None:
    history, transactions = case
    result = history.check_serializable()
    assert result.ok == serial_order_exists(transactions), result.explain()


# ------------------------------------------------------------------ misuse


def test_misuse_is_named() -> None:
    h = History()
    with pytest.raises(SimloomUsageError, match="unknown transaction kind"):
        h.check_serializable("snapshot")
    with pytest.raises(SimloomUsageError, match="realtime must be a bool"):
        h.check_serializable(realtime="yes")  # type: ignore[arg-type]
    record(h, 1, [("insert", "x", 1)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown micro-operation 'insert'"):
        h.check_serializable()
    bad = History()
    op = bad.invoke(1, "txn", [("r", "x")])
    bad.ok(op, [("r", "x")])
    with pytest.raises(ValueError, match=r"a micro-operation is \(f, key, value\)"):
        bad.check_serializable()


def test_a_failed_check_in_a_universe_fails_it() -> None:
    async def main() -> None:
        h = History()
        record(h, 1, [("append", "x", 1)], status="fail")
        record(h, 2, [("r", "x", [1])])
        h.assert_serializable()

    result = simloom.run(main)
    assert isinstance(result.error, NotSerializableError)
    assert "G1a: aborted read" in str(result.error)
