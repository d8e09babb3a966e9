"""Step throughput: N tasks each doing M ``await asyncio.sleep(0)``.

Cases: 10 x 10,000, 100 x 1,000 and 1,000 x 100 (the same 100,000 task steps; the
larger the task count, the more callbacks are ready at each decision, so the per-step
cost must not grow with it).

Contenders, all running the same coroutine in the same process, round-robin, best of N:

* ``stock``  -- ``asyncio.new_event_loop()`` (the selector loop on Linux) + ``run_until_complete``
* ``naive``  -- a bare pure-Python loop without ``asyncio.Handle`` objects (``_common.NaiveLoop``)
* ``fifo`` / ``random`` / ``pct`` -- ``simloom.SimLoop(seed=1, scheduler=...)``

Steps are counted as tasks x iterations for every contender (SimLoop also counts the few
steps ``gather`` adds; see the ``sim steps`` column). Only ``run_until_complete`` is timed.

Goals (from the issue): SimLoop FIFO and random >= 1.5x stock steps/s; PCT >= random/1.5;
and SimLoop should beat the naive pure-Python loop.

    python benchmarks/bench_steps.py [--repeat 5] [--quick] [--json out.json]
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

CASES = [(10, 10_000), (100, 1_000), (1_000, 100)]
QUICK_CASES = [(10, 2_000), (100, 200), (1_000, 20)]
SCHEDULERS = ("fifo", "random", "pct")
GOAL_VS_STOCK = 1.5
GOAL_PCT_VS_RANDOM = 1.5


def make_main(n_tasks: int, iterations: int) -> Callable[[], Coroutine[Any, Any, None]]:
    async def worker() -> None:
        for _ in range(iterations):
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*[worker() for _ in range(n_tasks)])

    return main


def run_case(
    n_tasks: int, iterations: int, repeat: int, warmup: int
) -> tuple[dict[str, float], dict[str, int]]:
    main = make_main(n_tasks, iterations)
    sim_steps: dict[str, int] = {}

    def stock() -> float:
        loop = asyncio.new_event_loop()
        try:
            coro = main()
            t0 = now()
            loop.run_until_complete(coro)
            return now() - t0
        finally:
            loop.close()

    def naive() -> float:
        loop = NaiveLoop()  # type: ignore[abstract]  # only what asyncio.Task needs
        try:
            coro = main()
            t0 = now()
            loop.run_until_complete(coro)
            return now() - t0
        finally:
            loop.close()

    def sim(scheduler: str) -> Callable[[], float]:
        def run() -> float:
            loop = simloom.SimLoop(seed=1, scheduler=scheduler, livelock_steps=10**9)
            try:
                coro = main()
                t0 = now()
                loop.run_until_complete(coro)
                elapsed = now() - t0
                sim_steps[scheduler] = loop._steps()
                return elapsed
            finally:
                loop.close()

        return run

    contenders: dict[str, Callable[[], float]] = {"stock": stock, "naive": naive}
    contenders.update({s: sim(s) for s in SCHEDULERS})
    return interleaved_best(contenders, repeat=repeat, warmup=warmup), sim_steps


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    title = "bench_steps: task-step throughput, await asyncio.sleep(0)"
    print_header(title, args)
    report = Report("steps", title)
    rows = []
    rates_by_case: dict[str, dict[str, float]] = {}
    for n_tasks, iterations in QUICK_CASES if args.quick else CASES:
        case = f"{n_tasks}x{iterations}"
        best, sim_steps = run_case(n_tasks, iterations, args.repeat, args.warmup)
        steps = n_tasks * iterations
        rates = {name: steps / t for name, t in best.items()}
        rates_by_case[case] = rates
        for name, rate in rates.items():
            ratios = f"{fmt_ratio(rate / rates['stock'])} stock, {fmt_ratio(rate / rates['naive'])} naive"
            report.measure(case, name, rate, "steps/s", ratios)
            rows.append(
                [
                    case,
                    name,
                    f"{best[name] * 1e3:.1f}",
                    fmt_rate(rate),
                    fmt_ratio(rate / rates["stock"]),
                    fmt_ratio(rate / rates["naive"]),
                    f"{1e9 / rate:.0f}",
                    str(sim_steps.get(name, "")),
                ]
            )
    print_table(
        ["case", "loop", "best ms", "steps/s", "vs stock", "vs naive", "ns/step", "sim steps"],
        rows,
    )

    cases = list(rates_by_case)
    first, last = cases[0], cases[-1]
    print()
    print(f"per-step cost growth, {last} vs {first} (1.00x = flat; >1 = slower with more ready):")
    for name in rates_by_case[first]:
        growth = rates_by_case[first][name] / rates_by_case[last][name]
        print(f"  {name:<7} {fmt_ratio(growth)}")
        report.note(f"per-step cost {last} vs {first}, {name}: {fmt_ratio(growth)}")

    for case, rates in rates_by_case.items():
        stock, random_rate = rates["stock"], rates["random"]
        for sched in ("fifo", "random"):
            r = rates[sched] / stock
            report.goal(
                f"[{case}] SimLoop {sched} >= {GOAL_VS_STOCK}x stock steps/s",
                f"{fmt_ratio(r)} ({fmt_rate(rates[sched])} vs {fmt_rate(stock)})",
                r >= GOAL_VS_STOCK,
            )
        r = rates["pct"] / random_rate
        report.goal(
            f"[{case}] SimLoop pct within {GOAL_PCT_VS_RANDOM}x of random walk",
            f"pct/random = {fmt_ratio(r)} (goal >= {1 / GOAL_PCT_VS_RANDOM:.2f}x)",
            rates["pct"] >= random_rate / GOAL_PCT_VS_RANDOM,
        )
        worst = min(SCHEDULERS, key=lambda s: rates[s])
        r = rates[worst] / rates["naive"]
        report.goal(
            f"[{case}] every SimLoop scheduler beats the naive pure-Python loop",
            f"slowest ({worst}) = {fmt_ratio(r)} naive",
            r > 1.0,
        )
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
