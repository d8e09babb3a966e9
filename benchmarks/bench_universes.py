"""Fresh-universe throughput on a small racy program: the lost-update counter.

Three workers each do three times ``{read; await asyncio.sleep(0); write}`` on a
shared counter, so most schedules lose updates. One universe is one
``simloom.run(main, seed=s)`` (random walk, a new seed each time: set-up, run,
deterministic teardown, digest). The reference, in the same run, is one
``asyncio.run(main())`` on the stock loop per universe.

Measured twice: on a small heap, and with a million extra live GC-tracked objects
(``ballast = [[i] for i in range(1_000_000)]``), because anything that walks the
whole heap per universe (a full ``gc.collect()``) shows up there.

Goals (from the issue): >= 3,000 universes/s; >= 1,000 universes/s with the ballast.

    python benchmarks/bench_universes.py [--repeat 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Callable

import simloom
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

BATCH = 1_000  # universes per timing sample
QUICK_BATCH = 200
BALLAST_SIZE = 1_000_000
GOAL_SMALL_HEAP = 3_000
GOAL_BALLAST = 1_000


async def lost_update() -> int:
    """3 workers x 3 x {read; yield; write}: 9 without a race, fewer when updates are lost."""
    counter = 0

    async def worker() -> None:
        nonlocal counter
        for _ in range(3):
            seen = counter
            await asyncio.sleep(0)
            counter = seen + 1

    await asyncio.gather(worker(), worker(), worker())
    return counter


def measure(batch: int, repeat: int, warmup: int) -> tuple[dict[str, float], Counter[int]]:
    outcomes: Counter[int] = Counter()
    next_seed = 0

    def sim() -> float:
        nonlocal next_seed
        seeds = range(next_seed, next_seed + batch)
        next_seed += batch
        t0 = now()
        for seed in seeds:
            result = simloom.run(lost_update, seed=seed)
            outcomes[result.value] += 1
        return now() - t0

    def stock() -> float:
        t0 = now()
        for _ in range(batch):
            asyncio.run(lost_update())
        return now() - t0

    contenders: dict[str, Callable[[], float]] = {"simloom.run": sim, "asyncio.run": stock}
    best = interleaved_best(contenders, repeat=repeat, warmup=warmup)
    return {name: batch / t for name, t in best.items()}, outcomes


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    batch = QUICK_BATCH if args.quick else BATCH
    title = "bench_universes: fresh universes/s, 3-task lost-update counter"
    print_header(title, args)
    report = Report("universes", title)

    rates: dict[str, dict[str, float]] = {}
    outcomes: dict[str, Counter[int]] = {}
    rates["small heap"], outcomes["small heap"] = measure(batch, args.repeat, args.warmup)
    ballast = [[i] for i in range(BALLAST_SIZE)]
    gc.collect()
    heap = len(gc.get_objects())
    case = f"+{BALLAST_SIZE:,} objects"
    rates[case], outcomes[case] = measure(batch, args.repeat, args.warmup)
    assert len(ballast) == BALLAST_SIZE  # kept alive through the measurement
    del ballast

    rows = []
    for case_name, r in rates.items():
        for name, rate in r.items():
            ratio = rate / r["asyncio.run"]
            rows.append([case_name, name, fmt_rate(rate), f"{1e6 / rate:.0f}", fmt_ratio(ratio)])
            report.measure(case_name, name, rate, "universes/s", f"{fmt_ratio(ratio)} stock")
    print(f"batch: {batch} universes per sample; heap with ballast: {heap:,} GC-tracked objects")
    print()
    print_table(["heap", "runner", "universes/s", "us/universe", "vs stock"], rows)

    print()
    for case_name, seen in outcomes.items():
        total = sum(seen.values())
        lost = total - seen.get(9, 0)
        spread = ", ".join(f"{v}: {n}" for v, n in sorted(seen.items()))
        print(
            f"outcomes ({case_name}): final counter {{{spread}}}; lost updates in {lost / total:.1%}"
        )
        report.note(f"{case_name}: lost updates in {lost / total:.1%} of universes")

    case_names = list(rates)
    for case_name, goal in zip(case_names, (GOAL_SMALL_HEAP, GOAL_BALLAST), strict=True):
        rate = rates[case_name]["simloom.run"]
        stock = rates[case_name]["asyncio.run"]
        report.goal(
            f"simloom.run >= {goal:,} universes/s ({case_name})",
            f"{fmt_rate(rate)}/s ({fmt_ratio(rate / stock)} asyncio.run's {fmt_rate(stock)}/s)",
            rate >= goal,
        )
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
