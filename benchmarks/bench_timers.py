"""Timers: one virtual hour of 50 periodic workers plus a 1 Hz ticker.

Two workloads, measured in the same run:

* ``services`` (the goal): worker ``i`` (0..49) loops ``await asyncio.sleep(10 + i)``
  for 3,600 virtual seconds -- periods 10 s .. 59 s, the cadence of heartbeats, cache
  refreshes and health checks -- and the ticker sleeps 1 s, 3,600 times: ~10,200
  timer expiries.
* ``dense`` (stress, no goal): periods 0.5 s .. 5.4 s (``0.5 + 0.1 * i``), ~93,000
  expiries. It shows the per-expiry cost when timers dominate.

Each expiry is two loop steps (the sleep's future resolves, then the task resumes)
plus the Python of ``asyncio.sleep`` itself, so wall time is proportional to the
number of expiries; the tables report both.

Contenders (round-robin, best of N; each timing covers loop creation, the run and close):

* ``simloom fifo``   -- ``simloom.SimLoop()`` (FIFO) + ``run_until_complete``: the goal.
* ``simloom random`` -- ``simloom.SimLoop(seed=1, scheduler="random")`` (context only).
* ``naive``          -- the same workload on ``_common.NaiveLoop``: a pure-Python loop with
  a deque ready queue, a ``heapq`` timer queue and a virtual clock (the reference).
* ``stock``          -- not run: with a real clock it takes the hour itself (3,600 s).

Goal (from the issue): SimLoop FIFO runs the services hour in under 20 ms of wall time.

    python benchmarks/bench_timers.py [--repeat 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import simloom
from _common import (
    NaiveLoop,
    Report,
    fmt_rate,
    fmt_ratio,
    interleaved_best,
    now,
    parse_args,
    print_header,
    print_table,
)

WORKERS = 50
HORIZON_S = 3600
QUICK_HORIZON_S = 360
GOAL_MS = 20.0


def workload(horizon_s: int, dense: bool) -> tuple[Callable[[], Coroutine[Any, Any, None]], int]:
    """The program and the number of timer expiries (sleeps) it makes. Periods are
    whole deciseconds, so every worker's sleep count is exact."""
    first, spacing = (5, 1) if dense else (100, 10)  # deciseconds
    periods = [first + spacing * i for i in range(WORKERS)]
    plan = [(p / 10, horizon_s * 10 // p) for p in periods]
    plan.append((1.0, horizon_s))  # the 1 Hz ticker

    async def periodic(period: float, count: int) -> None:
        for _ in range(count):
            await asyncio.sleep(period)

    async def main() -> None:
        await asyncio.gather(*[periodic(p, n) for p, n in plan])

    return main, sum(n for _, n in plan)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    horizon = QUICK_HORIZON_S if args.quick else HORIZON_S
    title = f"bench_timers: {WORKERS} periodic workers + 1 Hz ticker, {horizon} virtual seconds"
    print_header(title, args)
    report = Report("timers", title)
    for dense in (False, True):
        measure(report, args, horizon, dense)
    report.print_goals()
    report.write_json(args.json)


def measure(report: Report, args: Any, horizon: int, dense: bool) -> None:
    name = "dense" if dense else "services"
    program, expiries = workload(horizon, dense)
    info: dict[str, Any] = {}
    print(f"-- workload {name!r}: periods {'0.5 s .. 5.4 s' if dense else '10 s .. 59 s'}")

    def sim(scheduler: str) -> Callable[[], float]:
        def run() -> float:
            coro = program()
            t0 = now()
            loop = simloom.SimLoop(seed=1, scheduler=scheduler)
            loop.run_until_complete(coro)
            loop.close()
            elapsed = now() - t0
            info[scheduler] = (loop._steps(), loop.time())
            return elapsed

        return run

    def naive() -> float:
        coro = program()
        t0 = now()
        loop = NaiveLoop()  # type: ignore[abstract]  # only what asyncio.Task needs
        loop.run_until_complete(coro)
        loop.close()
        elapsed = now() - t0
        info["naive"] = (loop.steps, loop.time())
        return elapsed

    best = interleaved_best(
        {"simloom fifo": sim("fifo"), "simloom random": sim("random"), "naive": naive},
        repeat=args.repeat,
        warmup=args.warmup,
    )
    key = {"simloom fifo": "fifo", "simloom random": "random", "naive": "naive"}
    naive_t = best["naive"]
    rows = []
    for contender, t in best.items():
        steps, vtime = info[key[contender]]
        rows.append(
            [
                contender,
                f"{t * 1e3:.1f}",
                fmt_rate(expiries / t),
                fmt_rate(steps / t),
                str(steps),
                f"{vtime:.1f}",
                fmt_ratio(naive_t / t),
                f"{horizon / t:,.0f}x",
            ]
        )
        report.measure(
            f"{name}: virtual hour" if not args.quick else f"{name}: {horizon} virtual s",
            contender,
            t * 1e3,
            "ms",
            f"{fmt_ratio(naive_t / t)} naive speed; {fmt_rate(expiries / t)} timers/s",
        )
    rows.append(["stock (real clock)", f"{horizon * 1e3:,.0f}", "", "", "", "", "", "1x"])
    report.measure(
        f"{name}: virtual hour" if not args.quick else f"{name}: {horizon} virtual s",
        "stock (estimated, not run)",
        horizon * 1e3,
        "ms",
        "a real-clock loop sleeps the whole time",
    )
    print(f"timer expiries: {expiries:,}")
    print()
    print_table(
        [
            "loop",
            "best ms",
            "timers/s",
            "steps/s",
            "steps",
            "virtual s",
            "vs naive",
            "vs real time",
        ],
        rows,
    )
    print()
    print(
        "vs naive = naive time / this time (>1 is faster than the pure-Python heapq loop);"
        " vs real time = speed-up over running the hour on the stock loop."
    )

    fifo_ms = best["simloom fifo"] * 1e3
    per_expiry_us = fifo_ms * 1e3 / expiries
    print(f"SimLoop FIFO: {per_expiry_us:.2f} us per timer expiry")
    print()
    if dense:
        return
    goal_ms = GOAL_MS * horizon / HORIZON_S
    report.goal(
        f"SimLoop FIFO runs {horizon} virtual seconds of the services workload in < {goal_ms:g} ms wall",
        f"{fifo_ms:.1f} ms ({fmt_ratio(fifo_ms / goal_ms)} the budget;"
        f" naive heapq loop {naive_t * 1e3:.1f} ms)",
        fifo_ms < goal_ms,
    )
    report.goal(
        "SimLoop FIFO beats the naive pure-Python heapq loop",
        f"{fmt_ratio(naive_t / best['simloom fifo'])} naive speed",
        best["simloom fifo"] < naive_t,
    )


if __name__ == "__main__":
    main()
