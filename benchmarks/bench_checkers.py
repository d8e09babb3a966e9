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

Contenders, in the same run: ``simloom`` (``History.check_linearizable``, the
search in Rust, including the conversion of the history) and ``naive`` (the same
algorithm, Wing-Gong with Lowe's memoisation and per-key partitioning, written
plainly in Python; no shrink).

    python benchmarks/bench_checkers.py [--quick] [--repeat N] [--json out.json]
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from _common import Report, interleaved_best, parse_args, print_header, print_table
from simloom import History

GOALS = {"register": 0.5, "kv": 1.0}


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
    print_table(["history", "operations", "checker", "ms (best)", "vs naive"], rows)
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
