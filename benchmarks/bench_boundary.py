"""The determinism boundary's cost: per universe, per patched call, per check.

Four measurements, each against the same workload without the boundary, in one run:

* **(a) ``@simloom.test`` exploration** -- the goal. ``@simloom.test(runs=2000)``
  (every default: the boundary is on) against ``@simloom.test(runs=2000,
  boundary=False)`` on the zoo's three-task controls (``locked_counter``,
  ``single_flight_cache``, ``locked_init``), which pass under every schedule. A
  throwaway in-memory example database and a temporary artifact directory. One
  sample = one whole call.
* **(b) ``simloom.run``** -- the lost-update counter of ``bench_universes.py``,
  ``simloom.run(main, seed=s, boundary=True)`` against ``boundary=False``, batches of
  1,000 universes; plus the boundary's own enter/exit in microseconds (installing
  the redirects and the per-universe state, and restoring them).
* **(c) patched calls** -- 100,000 calls inside one universe of ``time.monotonic()``,
  ``time.time()``, ``datetime.now(UTC)``, ``random.random()`` and ``os.urandom(16)``,
  with the boundary against without it (the real builtin): ns per call.
* **(d) the self-check** -- ``check_determinism=True`` on the lost-update counter
  against a plain run (it runs every universe twice, traced).

Goal (from the issue): the boundary costs ``@simloom.test`` at most 10% of its
universes/s (ratio >= 0.90 on the slowest control).

    python benchmarks/bench_boundary.py [--repeat 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import datetime
import gc
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import simloom
import simloom.testing
from _common import (
    Report,
    fmt_rate,
    fmt_ratio,
    interleaved_best,
    now,
    parse_args,
    print_header,
    print_table,
)
from bench_universes import lost_update
from hypothesis import settings
from hypothesis.database import InMemoryExampleDatabase
from simloom import _boundary
from simloom.loop import SimLoop
from zoo_rates import zoo

PROGRAMS = ("locked_counter", "single_flight_cache", "locked_init")
RUNS = 2_000
QUICK_RUNS = 500
BATCH = 1_000
QUICK_BATCH = 200
CALLS = 100_000
QUICK_CALLS = 20_000
GOAL_EXPLORATION_RATIO = 0.90


# ------------------------------------------------------------ (a) @simloom.test


def exploration(program: zoo.Program, runs: int, boundary: bool) -> Callable[[], float]:
    def sample() -> float:
        test = settings(database=InMemoryExampleDatabase())(
            simloom.test(runs=runs, boundary=boundary)(program)
        )
        gc.collect()
        t0 = now()
        test()
        elapsed = now() - t0
        stats = simloom.testing.session_stats[-1]
        assert stats.outcome == "passed" and stats.universes == runs, stats
        return elapsed

    return sample


def measure_exploration(
    report: Report, runs: int, repeat: int, warmup: int
) -> dict[str, tuple[float, float]]:
    rates: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as artifacts:
        simloom.testing.configure(simloom.testing.Options(artifact_dir=Path(artifacts)))
        for name in PROGRAMS:
            program = zoo.CONTROLS[name]
            best = interleaved_best(
                {
                    "boundary on": exploration(program, runs, True),
                    "boundary off": exploration(program, runs, False),
                },
                repeat=repeat,
                warmup=warmup,
            )
            on, off = runs / best["boundary on"], runs / best["boundary off"]
            rates[name] = (on, off)
            report.measure(
                name, "@simloom.test, boundary on", on, "universes/s", fmt_ratio(on / off)
            )
            report.measure(name, "@simloom.test, boundary off", off, "universes/s")
        simloom.testing.configure(simloom.testing.Options())
    return rates


# ------------------------------------------------------------ (b) simloom.run


def measure_runs(
    report: Report, batch: int, repeat: int, warmup: int
) -> tuple[float, float, float]:
    next_seed = 0

    def runs(boundary: bool) -> Callable[[], float]:
        def sample() -> float:
            nonlocal next_seed
            seeds = range(next_seed, next_seed + batch)
            next_seed += batch
            t0 = now()
            for seed in seeds:
                simloom.run(lost_update, seed=seed, boundary=boundary)
            return now() - t0

        return sample

    best = interleaved_best(
        {"boundary on": runs(True), "boundary off": runs(False)}, repeat=repeat, warmup=warmup
    )
    on, off = batch / best["boundary on"], batch / best["boundary off"]
    report.measure(
        "lost_update", "simloom.run, boundary on", on, "universes/s", fmt_ratio(on / off)
    )
    report.measure("lost_update", "simloom.run, boundary off", off, "universes/s")

    loop = SimLoop()
    patches = _boundary.settings(True, _boundary.DEFAULT_WALL_CLOCK_EPOCH)
    rounds = 20_000

    def enter_exit() -> float:
        t0 = now()
        for _ in range(rounds):
            with _boundary.patched(loop, patches):
                pass
        return now() - t0

    micros = interleaved_best({"enter/exit": enter_exit}, repeat=repeat, warmup=warmup)
    enter_exit_us = micros["enter/exit"] / rounds * 1e6
    loop.close()
    report.measure("boundary", "enter + exit", enter_exit_us, "us")
    return on, off, enter_exit_us


# ------------------------------------------------------------ (c) patched calls

CALL_CASES: dict[str, Callable[[], object]] = {
    "time.monotonic()": time.monotonic,
    "time.time()": time.time,
    "datetime.now(UTC)": lambda: datetime.datetime.now(datetime.UTC),
    "random.random()": random.random,
    "os.urandom(16)": lambda: os.urandom(16),
}


def measure_calls(report: Report, calls: int, repeat: int, warmup: int) -> list[list[str]]:
    """ns per call: a universe making ``calls`` calls minus one making none, timed
    from outside (inside, the boundary's own clocks are virtual)."""
    rows = []
    for label, call in CALL_CASES.items():

        def universes(boundary: bool, call: Callable[[], object] = call) -> Callable[[], float]:
            async def calling() -> None:
                for _ in range(calls):
                    call()

            async def idle() -> None:
                for _ in range(calls):
                    pass

            def sample() -> float:
                t0 = now()
                simloom.run(calling, boundary=boundary).raise_error()
                t1 = now()
                simloom.run(idle, boundary=boundary).raise_error()
                return max(0.0, (t1 - t0) - (now() - t1))

            return sample

        best = interleaved_best(
            {"patched": universes(True), "real": universes(False)},
            repeat=repeat,
            warmup=warmup,
        )
        patched, real = best["patched"] / calls * 1e9, best["real"] / calls * 1e9
        report.measure(label, "patched", patched, "ns/call", f"real {real:.0f} ns")
        rows.append([label, f"{patched:,.0f}", f"{real:,.0f}", f"+{patched - real:,.0f}"])
    return rows


# ------------------------------------------------------------ (d) self-check


def measure_check(report: Report, batch: int, repeat: int, warmup: int) -> tuple[float, float]:
    def runs(check: bool) -> Callable[[], float]:
        def sample() -> float:
            t0 = now()
            for seed in range(batch):
                simloom.run(lost_update, seed=seed, check_determinism=check)
            return now() - t0

        return sample

    best = interleaved_best(
        {"checked": runs(True), "plain": runs(False)}, repeat=repeat, warmup=warmup
    )
    checked, plain = batch / best["checked"], batch / best["plain"]
    report.measure(
        "lost_update", "check_determinism=True", checked, "universes/s", fmt_ratio(checked / plain)
    )
    return checked, plain


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    runs = QUICK_RUNS if args.quick else RUNS
    batch = QUICK_BATCH if args.quick else BATCH
    calls = QUICK_CALLS if args.quick else CALLS
    title = "bench_boundary: the determinism boundary's cost"
    print_header(title, args)
    report = Report("boundary", title)

    exploration_rates = measure_exploration(report, runs, args.repeat, args.warmup)
    print(f"(a) @simloom.test(runs={runs:,}) on the zoo controls")
    print()
    print_table(
        ["program", "boundary on /s", "boundary off /s", "ratio"],
        [
            [name, fmt_rate(on), fmt_rate(off), f"{on / off:.3f}"]
            for name, (on, off) in exploration_rates.items()
        ],
    )

    on, off, enter_exit_us = measure_runs(report, batch, args.repeat, args.warmup)
    print()
    print(f"(b) simloom.run on the lost-update counter, batches of {batch:,}")
    print()
    print_table(
        ["runner", "universes/s", "us/universe", "ratio"],
        [
            ["boundary on", fmt_rate(on), f"{1e6 / on:.1f}", f"{on / off:.3f}"],
            ["boundary off", fmt_rate(off), f"{1e6 / off:.1f}", "1.000"],
        ],
    )
    print(f"boundary enter + exit alone: {enter_exit_us:.2f} us per universe")

    print()
    print(f"(c) {calls:,} calls inside one universe")
    print()
    print_table(
        ["call", "patched ns", "real ns", "difference"],
        measure_calls(report, calls, args.repeat, args.warmup),
    )

    checked, plain = measure_check(report, batch, args.repeat, args.warmup)
    print()
    print("(d) the self-check on the lost-update counter")
    print()
    print_table(
        ["runner", "universes/s", "ratio"],
        [
            ["check_determinism=True", fmt_rate(checked), f"{checked / plain:.3f}"],
            ["plain", fmt_rate(plain), "1.000"],
        ],
    )

    worst = min(
        exploration_rates, key=lambda name: exploration_rates[name][0] / exploration_rates[name][1]
    )
    ratio = exploration_rates[worst][0] / exploration_rates[worst][1]
    report.goal(
        f"@simloom.test with the boundary >= {GOAL_EXPLORATION_RATIO:.2f}x without it",
        f"{ratio:.3f}x on {worst} (the lowest ratio), {fmt_rate(exploration_rates[worst][0])}/s",
        ratio >= GOAL_EXPLORATION_RATIO,
    )
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
