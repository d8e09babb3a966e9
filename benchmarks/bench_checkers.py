"""Linearizability checking: simloom's Rust search vs the same search in pure Python.

Workloads (deterministic, seeded; every history is linearizable by construction:
each operation takes effect at a point inside its interval, on an atomic object):

* ``register`` -- 10,000 read/write operations of 10 concurrent clients on one
  register (the goal: checked in under 0.5 s).
* ``kv`` -- 100,000 get/put operations of 50 clients over 1,000 keys (the goal:
  under 1 s); checked key by key.
* ``register, stale read`` -- the register history with one read made stale near
  its end: not linearizable; the time includes the shrink to a small
  counterexample.
* ``list-append`` -- 100,000 transactions of 50 clients over 10,000 keys (1-3
  reads and appends each), executed one at a time: serializable
  (``History.check_serializable``, Elle's inference in Rust; the goal: under 2 s),
  against the same inference (edges from the longest reads, a cycle search)
  in plain Python. Peak memory of the check is measured in child processes at
  25,000, 50,000 and 100,000 transactions (it should grow linearly).

Contenders, in the same run: ``simloom`` (``History.check_linearizable``, the
search in Rust, including the conversion of the history) and ``naive`` (the same
algorithm, Wing-Gong with Lowe's memoisation and per-key partitioning, written
plainly in Python; no shrink).

    python benchmarks/bench_checkers.py [--quick] [--repeat N] [--json out.json]
"""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import Report, interleaved_best, parse_args, print_header, print_table
from simloom import History

GOALS = {"register": 0.5, "kv": 1.0, "list-append": 2.0}


def generate(ops: int, clients: int, keys: int, seed: int) -> History:
    """An atomic map driven by ``clients``: each operation is invoked, takes effect
    at a later point, and completes later still; events are recorded in time order."""
    rng = random.Random(seed)
    free_at = [0] * clients
    values: dict[int, int] = {}
    planned: list[tuple[int, int, int, int, str, int]] = []
    clock = 0
    for i in range(ops):
        clock += rng.randint(0, 2)
        client = rng.randrange(clients)
        invoked = max(clock, free_at[client] + 1)
        point = invoked + rng.randint(0, 6)
        completed = point + rng.randint(0, 6)
        free_at[client] = completed
        planned.append((invoked, point, completed, client, rng.choice(("read", "write")), i))
    # Apply the effects in linearization-point order to learn each read's result.
    results: dict[int, Any] = {}
    for _, _, _, _, function, i in sorted(planned, key=lambda p: (p[1], p[5])):
        key = i % keys
        if function == "write":
            values[key] = i
            results[i] = i
        else:
            results[i] = values.get(key)
    events = []
    for invoked, _, completed, client, function, i in planned:
        events.append((invoked, 0, i, client, function))
        events.append((completed, 1, i, client, function))
    events.sort()
    history = History("bench")
    live: dict[int, Any] = {}
    for _, kind, i, client, function in events:
        key = (i % keys) if keys > 1 else None
        if kind == 0:
            args = (results[i],) if function == "write" else ()
            live[i] = history.invoke(
                client, "put" if keys > 1 and function == "write" else function, *args, key=key
            )
        else:
            history.ok(live.pop(i), None if function == "write" else results[i])
    return history


def make_stale(history: History) -> None:
    """Make one read near the end return a value written (and overwritten) about a
    hundred operations before it: a stale read."""
    ops = history.operations
    for op in reversed(ops[: len(ops) - 50]):
        if op.function == "read" and op.result is not None:
            old = next(o for o in reversed(ops[: op.index - 100]) if o.function == "write")
            op.result = old.args[0]
            return
    raise AssertionError("no read to make stale")


# ------------------------------------------------------------- the reference


def naive_check(history: History) -> bool:
    """Wing-Gong with Lowe's memoisation, per key, in plain Python (register model)."""
    parts: dict[Any, list[Any]] = {}
    for op in history.operations:
        parts.setdefault(op.key, []).append(op)
    return all(_naive_single(ops) for ops in parts.values())


def _naive_single(ops: list[Any]) -> bool:
    # Entries: [op index, is_call, partner, prev, next]; entry 0 is the head.
    events = []
    for i, op in enumerate(ops):
        events.append((op.invoked_order, 0, i))
        events.append((op.completed_order, 1, i))
    events.sort()
    entries: list[list[int]] = [[-1, 0, -1, -1, -1]]
    call_at = {}
    for _, kind, i in events:
        n = len(entries)
        entries.append([i, 1 - kind, -1, n - 1, -1])
        entries[n - 1][4] = n
        if kind == 0:
            call_at[i] = n
        else:
            entries[call_at[i]][2] = n

    def unlink(at: int) -> None:
        _, _, _, prev, nxt = entries[at]
        entries[prev][4] = nxt
        if nxt != -1:
            entries[nxt][3] = prev

    def relink(at: int) -> None:
        _, _, _, prev, nxt = entries[at]
        entries[prev][4] = at
        if nxt != -1:
            entries[nxt][3] = at

    placed = 0
    seen: set[tuple[int, Any]] = set()
    stack: list[tuple[int, Any]] = []
    state: Any = None
    entry = entries[0][4]
    while entries[0][4] != -1:
        i, is_call, partner, _, nxt = entries[entry]
        if is_call:
            op = ops[i]
            if op.function == "read":
                ok, new = op.result == state, state
            else:
                ok, new = True, op.args[0]
            if ok and (placed | (1 << i), new) not in seen:
                seen.add((placed | (1 << i), new))
                stack.append((entry, state))
                placed |= 1 << i
                state = new
                unlink(partner)
                unlink(entry)
                entry = entries[0][4]
                continue
            entry = nxt
        else:
            if not stack:
                return False
            call, state = stack.pop()
            placed &= ~(1 << entries[call][0])
            relink(call)
            relink(entries[call][2])
            entry = entries[call][4]
    return True


def generate_transactions(count: int, clients: int, keys: int, seed: int) -> History:
    """``count`` list-append transactions run one at a time on an in-memory store,
    recorded with overlapping invocations (each client one at a time)."""
    rng = random.Random(seed)
    store: dict[int, list[int]] = {}
    history = History("bench transactions")
    pending: dict[int, tuple[Any, list[tuple[str, int, Any]]]] = {}
    value = 0
    for _ in range(count):
        client = rng.randrange(clients)
        if client in pending:
            op, done = pending.pop(client)
            history.ok(op, done)
        micro: list[tuple[str, int, Any]] = []
        for _ in range(rng.randint(1, 3)):
            key = rng.randrange(keys)
            if rng.random() < 0.5:
                micro.append(("r", key, list(store.get(key, []))))
            else:
                value += 1
                store.setdefault(key, []).append(value)
                micro.append(("append", key, value))
        op = history.invoke(client, "txn", [(f, k, None if f == "r" else v) for f, k, v in micro])
        pending[client] = (op, micro)
    for op, done in pending.values():
        history.ok(op, done)
    return history


def naive_serializable(history: History) -> bool:
    """Elle's list-append inference in plain Python: ww/wr/rw edges from the
    longest read of each key, then Tarjan's algorithm for a cycle."""
    ops = [op for op in history.operations if op.status == "ok"]
    writer: dict[tuple[Any, Any], int] = {}
    longest: dict[Any, list[Any]] = {}
    for t, op in enumerate(ops):
        for f, key, v in op.result:
            if f == "append":
                writer[(key, v)] = t
            elif len(v) > len(longest.get(key, ())):
                longest[key] = v
    edges: list[set[int]] = [set() for _ in ops]
    for key, order in longest.items():
        for a, b in itertools.pairwise(order):
            if (key, a) in writer and (key, b) in writer:
                edges[writer[(key, a)]].add(writer[(key, b)])
    for t, op in enumerate(ops):
        for f, key, v in op.result:
            if f != "r":
                continue
            if v and (key, v[-1]) in writer:
                edges[writer[(key, v[-1])]].add(t)
            order = longest.get(key, [])
            if len(v) < len(order) and (key, order[len(v)]) in writer:
                edges[t].add(writer[(key, order[len(v)])])
    for t, targets in enumerate(edges):
        targets.discard(t)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    counter = 0
    for root in range(len(ops)):
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    size = 0
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        size += 1
                        if member == node:
                            break
                    if size > 1:
                        return False
    return True


def transaction_memory(count: int) -> float:
    """Peak RSS (MB) that checking ``count`` transactions adds, in a child: the
    peak is reset (``/proc/self/clear_refs``) once the history is built, and
    compared with the resident size then."""
    here = str(Path(__file__).resolve().parent)
    code = (
        f"import sys; sys.path.insert(0, {here!r}); import bench_checkers as b; "
        f"h = b.generate_transactions({count}, 50, 10_000, seed=3); "
        "status = lambda f: int(next(l.split()[1] for l in open('/proc/self/status') "
        "if l.startswith(f))); "
        "open('/proc/self/clear_refs', 'w').write('5'); before = status('VmRSS:'); "
        "ok = h.check_serializable().ok; print(ok, status('VmHWM:') - before)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    ok, grown = out.stdout.split()
    if ok != "True":
        raise SystemExit("the generated transactions were not serializable")
    return int(grown) / 1024


# ------------------------------------------------------------------ running


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    scale = 10 if args.quick else 1
    title = "bench_checkers: linearizability, Rust search vs the same search in Python"
    print_header(title, args)
    report = Report("checkers", title)
    workloads = {
        "register": (generate(10_000 // scale, 10, 1, seed=1), "register", True),
        "kv": (generate(100_000 // scale, 50, 1_000 // scale, seed=2), "kv", True),
    }
    stale = generate(10_000 // scale, 10, 1, seed=1)
    make_stale(stale)
    workloads["register, stale read"] = (stale, "register", False)
    rows = []
    for case, (history, model, expected) in workloads.items():
        answers: dict[str, bool] = {}

        def simloom_run(
            h: History = history, m: str = model, answers: dict[str, bool] = answers
        ) -> float:
            start = time.perf_counter()
            answers["simloom"] = h.check_linearizable(m).ok
            return time.perf_counter() - start

        def naive_run(h: History = history, answers: dict[str, bool] = answers) -> float:
            start = time.perf_counter()
            answers["naive"] = naive_check(h)
            return time.perf_counter() - start

        best = interleaved_best(
            {"simloom": simloom_run, "naive": naive_run},
            repeat=min(args.repeat, 3),
            warmup=1,
        )
        if answers != {"simloom": expected, "naive": expected}:
            sys.exit(f"{case}: wrong answer {answers}, expected {expected}")
        ratio = best["naive"] / best["simloom"]
        rows.append(
            [case, f"{len(history):,}", "simloom", f"{best['simloom'] * 1e3:.1f}", f"{ratio:.1f}x"]
        )
        rows.append(
            [case, f"{len(history):,}", "naive Python", f"{best['naive'] * 1e3:.1f}", "1.0x"]
        )
        report.measure(case, "simloom", best["simloom"], "s", f"{ratio:.1f}x naive")
        report.measure(case, "naive", best["naive"], "s")
        if case in GOALS and not args.quick:
            report.goal(
                f"{case}: {len(history):,} operations checked in under {GOALS[case]} s",
                f"{best['simloom']:.3f} s ({ratio:.1f}x the Python search)",
                best["simloom"] < GOALS[case],
            )
    transactions = generate_transactions(100_000 // scale, 50, 10_000 // scale, seed=3)
    answers: dict[str, bool] = {}

    def simloom_txn() -> float:
        start = time.perf_counter()
        answers["simloom"] = transactions.check_serializable().ok
        return time.perf_counter() - start

    def naive_txn() -> float:
        start = time.perf_counter()
        answers["naive"] = naive_serializable(transactions)
        return time.perf_counter() - start

    best = interleaved_best(
        {"simloom": simloom_txn, "naive": naive_txn}, repeat=min(args.repeat, 3)
    )
    if answers != {"simloom": True, "naive": True}:
        sys.exit(f"list-append: wrong answer {answers}")
    ratio = best["naive"] / best["simloom"]
    count = f"{len(transactions):,}"
    rows.append(["list-append", count, "simloom", f"{best['simloom'] * 1e3:.1f}", f"{ratio:.1f}x"])
    rows.append(["list-append", count, "naive Python", f"{best['naive'] * 1e3:.1f}", "1.0x"])
    report.measure("list-append", "simloom", best["simloom"], "s", f"{ratio:.1f}x naive")
    report.measure("list-append", "naive", best["naive"], "s")
    if not args.quick:
        report.goal(
            f"list-append: {len(transactions):,} transactions checked in under 2 s",
            f"{best['simloom']:.3f} s ({ratio:.1f}x the Python inference)",
            best["simloom"] < GOALS["list-append"],
        )
    print_table(["history", "operations", "checker", "ms (best)", "vs naive"], rows)
    sizes = (2_500, 5_000, 10_000) if args.quick else (25_000, 50_000, 100_000)
    grown = {n: transaction_memory(n) for n in sizes}
    print()
    for n, mb in grown.items():
        print(f"list-append check of {n:,} transactions: peak RSS +{mb:.1f} MB")
        report.measure("list-append memory", f"{n} transactions", mb, "MB")
    report.note(
        "peak RSS growth per size: " + ", ".join(f"{n}: {mb:.1f} MB" for n, mb in grown.items())
    )
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
