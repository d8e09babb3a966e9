"""Timers: one virtual hour of 50 periodic workers plus a 1 Hz ticker.

Worker ``i`` (0..49) loops ``await asyncio.sleep(0.5 + 0.1 * i)`` for 3,600 virtual
seconds (periods 0.5 s .. 5.4 s, all distinct); the ticker sleeps 1 s, 3,600 times.
That is ~93,000 timer expiries (~187,000 loop steps: each expiry resolves the sleep's
future, then the task resumes).

Contenders (round-robin, best of N; each timing covers loop creation, the run and close):

* ``simloom fifo``   -- ``simloom.SimLoop()`` (FIFO) + ``run_until_complete``: the goal.
* ``simloom random`` -- ``simloom.SimLoop(seed=1, scheduler="random")`` (context only).
* ``naive``          -- the same workload on ``_common.NaiveLoop``: a pure-Python loop with
  a deque ready queue, a ``heapq`` timer queue and a virtual clock (the reference).
* ``stock``          -- not run: with a real clock it takes the hour itself (3,600 s).

Goal (from the issue): SimLoop FIFO runs the virtual hour in under 20 ms of wall time.

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


def workload(horizon_s: int) -> tuple[Callable[[], Coroutine[Any, Any, None]], int]:
    """The program and the number of timer expiries (sleeps) it makes. Periods are
    whole deciseconds, so every worker's sleep count is exact."""
    plan = [((5 + i) / 10, horizon_s * 10 // (5 + i)) for i in range(WORKERS)]
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
    program, expiries = workload(horizon)
    info: dict[str, Any] = {}

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
    for name, t in best.items():
        steps, vtime = info[key[name]]
        rows.append(
            [
                name,
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
            "virtual hour" if not args.quick else f"{horizon} virtual s",
            name,
            t * 1e3,
            "ms",
            f"{fmt_ratio(naive_t / t)} naive speed; {fmt_rate(expiries / t)} timers/s",
        )
    rows.append(["stock (real clock)", f"{horizon * 1e3:,.0f}", "", "", "", "", "", "1x"])
    report.measure(
        "virtual hour" if not args.quick else f"{horizon} virtual s",
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
    goal_ms = GOAL_MS * horizon / HORIZON_S
    report.goal(
        f"SimLoop FIFO runs {horizon} virtual seconds in < {goal_ms:g} ms wall",
        f"{fifo_ms:.1f} ms ({fmt_ratio(fifo_ms / goal_ms)} the budget;"
        f" naive heapq loop {naive_t * 1e3:.1f} ms)",
        fifo_ms < goal_ms,
    )
    report.goal(
        "SimLoop FIFO beats the naive pure-Python heapq loop",
        f"{fmt_ratio(naive_t / best['simloom fifo'])} naive speed",
        best["simloom fifo"] < naive_t,
    )
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
