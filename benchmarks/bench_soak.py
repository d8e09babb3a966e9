"""Soak throughput: universes/s of ``simloom soak`` on 1 and 2 workers.

The workload is the lost-update counter of ``bench_universes.py`` made longer (6
workers x 10 x {read; await asyncio.sleep(0); write}), explored with the default
``mixed`` scheduler through ``simloom._soak.soak`` exactly as ``simloom soak
--universes N`` runs it: 1 worker is this process, 2 workers are two spawned worker
processes fed chunks of seeds (their start-up, the hand-out and the checkpoints are
inside the timed region). The figure is universes per second of wall time;
``steady`` leaves out the start-up (from the first chunk back to the last).

Goal (issue 13): >= 1.8x universes/s with 2 workers on 2 cores vs 1. The machine
may be shared: the load average is printed before and after.

    python benchmarks/bench_soak.py [--repeat 3] [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from _common import Report, fmt_rate, fmt_ratio, now, parse_args, print_header, print_table
from simloom import _soak

UNIVERSES = 12_000
QUICK_UNIVERSES = 3_000
CHUNK = 100
GOAL_RATIO = 1.8


async def long_lost_update() -> int:
    counter = 0

    async def worker() -> None:
        nonlocal counter
        for _ in range(10):
            seen = counter
            await asyncio.sleep(0)
            counter = seen + 1

    await asyncio.gather(*(worker() for _ in range(6)))
    return counter


def soak_rate(workers: int, universes: int, directory: Path) -> tuple[float, float]:
    """(universes/s of wall time, universes/s once the first chunk is back)."""
    firsts: list[float] = []

    def progress(_: _soak.SoakProgress) -> None:
        firsts.append(now())

    plan = _soak.SoakPlan(
        target=f"{Path(__file__).resolve()}:long_lost_update",
        test_id="bench_soak.py:long_lost_update",
        universes=universes,
        workers=workers,
        chunk=CHUNK,
        checkpoint=directory / f"soak-{workers}.json",
        database="none",
    )
    started = now()
    result = _soak.soak(plan, progress=progress)
    elapsed = now() - started
    assert result.universes == universes and result.ledger.intervals() == [(0, universes)]
    steady = (universes - CHUNK) / (firsts[-1] - firsts[0]) if len(firsts) > 1 else 0.0
    return universes / elapsed, steady


def _bare(universes: int) -> float:
    """Seconds one process takes for ``universes`` bare ``simloom.run`` calls."""
    import simloom

    started = now()
    for seed in range(universes):
        simloom.run(long_lost_update, seed=seed)
    return now() - started


def bare_rate(processes: int, universes: int) -> float:
    """Universes/s of ``processes`` spawned processes each running its share with no
    soak around it: what the cores give right now (the ceiling for a soak)."""
    import multiprocessing

    share = universes // processes
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.apply(_bare, (10,))  # started and imported before the clock runs
        seconds = pool.map(_bare, [share] * processes, chunksize=1)
    return share * processes / max(seconds)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    universes = QUICK_UNIVERSES if args.quick else UNIVERSES
    title = "bench_soak: simloom soak universes/s, 1 vs 2 workers"
    print_header(title, args)
    report = Report("soak", title)
    load_before = os.getloadavg()
    best: dict[int, tuple[float, float]] = {1: (0.0, 0.0), 2: (0.0, 0.0)}
    bare = {1: 0.0, 2: 0.0}
    with tempfile.TemporaryDirectory() as directory:
        for _ in range(args.warmup + args.repeat):
            for workers in (1, 2):  # round-robin: drift on a busy machine hits both
                rate, steady = soak_rate(workers, universes, Path(directory))
                best[workers] = (max(best[workers][0], rate), max(best[workers][1], steady))
                bare[workers] = max(bare[workers], bare_rate(workers, universes))
    load_after = os.getloadavg()
    rows = []
    for workers, (rate, steady) in best.items():
        ratio = rate / best[1][0]
        rows.append([f"{workers} worker(s)", fmt_rate(rate), fmt_rate(steady), fmt_ratio(ratio)])
        report.measure(
            "soak", f"{workers} worker(s)", rate, "universes/s", f"{fmt_ratio(ratio)} 1 worker"
        )
    print(f"{universes} universes per soak, chunks of {CHUNK}; cores: {os.cpu_count()}")
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        "(other processes share the cores)"
    )
    print()
    print_table(["workers", "universes/s", "steady/s", "vs 1 worker"], rows)
    capacity = bare[2] / bare[1]
    print()
    print(
        f"bare simloom.run loops, no soak: 1 process {fmt_rate(bare[1])}/s, 2 processes "
        f"{fmt_rate(bare[2])}/s = {fmt_ratio(capacity)}: what the cores give now"
    )
    report.measure("bare", "1 process", bare[1], "universes/s")
    report.measure("bare", "2 processes", bare[2], "universes/s", f"{fmt_ratio(capacity)} 1")
    report.note(f"2 bare processes give {fmt_ratio(capacity)} one (the ceiling)")
    report.note(f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}")
    ratio = best[2][0] / best[1][0]
    steady_ratio = best[2][1] / best[1][1] if best[1][1] else 0.0
    report.goal(
        f"2 workers >= {GOAL_RATIO}x the universes/s of 1",
        f"{fmt_ratio(ratio)} end to end, {fmt_ratio(steady_ratio)} steady "
        f"(the cores gave {fmt_ratio(capacity)} to bare processes)",
        ratio >= GOAL_RATIO,
    )
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
