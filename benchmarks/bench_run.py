"""``simloom.run`` as users run it: whole universes of N tasks x M ``sleep(0)``, per
scheduler, and the memory of a long random walk.

Part (a), throughput. Cases 10 x 10,000, 100 x 1,000 and 1,000 x 100 (100,000 task
steps each). Contenders, round-robin in the same process, best of N:

* ``stock``          -- ``asyncio.run(main())``
* ``run fifo`` / ``run random`` (the default scheduler) / ``run pct`` --
  ``simloom.run(main, seed=1, scheduler=...)``: set-up, the steps, deterministic
  teardown, the digest and the ``RunResult`` (tape included), all timed
* ``loop random``    -- context: the bare loop, ``SimLoop(scheduler="random")`` +
  ``run_until_complete``, so the table shows what a universe adds around it

Steps/s = tasks x iterations / wall time for every contender.

Part (b), memory, in a fresh interpreter each: a 5,000,000-step random walk (two tasks
spinning on ``sleep(0)``, a deviation at every other step) through ``simloom.run``:
the peak RSS of the whole process; and the CBOR size of a 100,000-step FIFO tape.

Goals (issue 9): ``simloom.run`` random and pct >= 1.5x stock steps/s in every case;
the 5M-step walk's peak RSS <= 150 MB; the FIFO tape <= 16 bytes.

    python benchmarks/bench_run.py [--repeat 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any

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

CASES = [(10, 10_000), (100, 1_000), (1_000, 100)]
QUICK_CASES = [(10, 2_000), (100, 200), (1_000, 20)]
SCHEDULERS = ("fifo", "random", "pct")
GOAL_SCHEDULERS = ("random", "pct")  # the default scheduler, and PCT
GOAL_VS_STOCK = 1.5
WALK_STEPS = 5_000_000
QUICK_WALK_STEPS = 1_000_000
GOAL_WALK_PEAK_MB = 150
FIFO_TAPE_STEPS = 100_000
GOAL_FIFO_TAPE_BYTES = 16
#: These programs spin at one virtual instant by design: no livelock error, no budget.
UNBOUNDED: dict[str, Any] = {"livelock_steps": 10**9, "max_steps": None}


def make_main(n_tasks: int, iterations: int) -> Callable[[], Coroutine[Any, Any, None]]:
    async def worker() -> None:
        for _ in range(iterations):
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*[worker() for _ in range(n_tasks)])

    return main


def run_case(n_tasks: int, iterations: int, repeat: int, warmup: int) -> dict[str, float]:
    main = make_main(n_tasks, iterations)

    def stock() -> float:
        t0 = now()
        asyncio.run(main())
        return now() - t0

    def run(scheduler: str) -> Callable[[], float]:
        def timed() -> float:
            t0 = now()
            result = simloom.run(main, seed=1, scheduler=scheduler, **UNBOUNDED)
            elapsed = now() - t0
            result.raise_error()
            return elapsed

        return timed

    def bare_loop() -> float:
        loop = simloom.SimLoop(seed=1, scheduler="random", livelock_steps=10**9)
        try:
            coro = main()
            t0 = now()
            loop.run_until_complete(coro)
            return now() - t0
        finally:
            loop.close()

    contenders: dict[str, Callable[[], float]] = {"stock": stock}
    contenders.update({f"run {s}": run(s) for s in SCHEDULERS})
    contenders["loop random"] = bare_loop
    return interleaved_best(contenders, repeat=repeat, warmup=warmup)


# ------------------------------------------------------------------ memory (child)


def peak_rss_mb() -> float:
    """The process's peak resident set (``VmHWM``; ``ru_maxrss`` would include the
    parent's peak, which Linux carries across ``exec``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def walk(steps: int) -> dict[str, float]:
    """In a fresh interpreter: one ``steps``-step random walk, its peak RSS."""

    async def spin() -> None:
        for _ in range(steps // 2):
            await asyncio.sleep(0)

    async def two_spinners() -> None:
        await asyncio.gather(spin(), spin())

    async def fifo_spinners() -> None:
        async def short_spin() -> None:
            for _ in range(FIFO_TAPE_STEPS // 2):
                await asyncio.sleep(0)

        await asyncio.gather(short_spin(), short_spin())

    fifo = simloom.run(fifo_spinners, scheduler="fifo", **UNBOUNDED)
    baseline = peak_rss_mb()
    t0 = now()
    result = simloom.run(two_spinners, seed=1, scheduler="random", **UNBOUNDED)
    elapsed = now() - t0
    peak = peak_rss_mb()
    return {
        "steps": result.steps,
        "deviations": result.deviations,
        "event_log_mb": len(result.event_log_bytes) / 1e6,
        "tape_mb": sys.getsizeof(result.tape) / 1e6,
        "baseline_mb": baseline,
        "peak_mb": peak,
        "seconds": elapsed,
        "fifo_steps": fifo.steps,
        "fifo_tape_bytes": len(fifo.tape.to_cbor()),
    }


def measure_walk(steps: int) -> dict[str, float]:
    child = subprocess.run(
        [sys.executable, __file__, "--child-walk", str(steps)],
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(child.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child-walk":
        print(json.dumps(walk(int(sys.argv[2]))))
        return
    args = parse_args(__doc__.splitlines()[0])
    title = "bench_run: simloom.run steps/s per scheduler, and a long walk's memory"
    print_header(title, args)
    report = Report("run", title)
    rows = []
    for n_tasks, iterations in QUICK_CASES if args.quick else CASES:
        case = f"{n_tasks}x{iterations}"
        best = run_case(n_tasks, iterations, args.repeat, args.warmup)
        steps = n_tasks * iterations
        rates = {name: steps / t for name, t in best.items()}
        for name, rate in rates.items():
            ratio = rate / rates["stock"]
            report.measure(case, name, rate, "steps/s", f"{fmt_ratio(ratio)} stock")
            rows.append([case, name, f"{best[name] * 1e3:.1f}", fmt_rate(rate), fmt_ratio(ratio)])
        for scheduler in GOAL_SCHEDULERS:
            ratio = rates[f"run {scheduler}"] / rates["stock"]
            report.goal(
                f"[{case}] simloom.run {scheduler} >= {GOAL_VS_STOCK}x stock steps/s",
                f"{fmt_ratio(ratio)} ({fmt_rate(rates[f'run {scheduler}'])} vs "
                f"{fmt_rate(rates['stock'])})",
                ratio >= GOAL_VS_STOCK,
            )
    print_table(["case", "contender", "best ms", "steps/s", "vs stock"], rows)

    steps = QUICK_WALK_STEPS if args.quick else WALK_STEPS
    memory = measure_walk(steps)
    print()
    print(
        f"random walk of {memory['steps']:,.0f} steps: {memory['deviations']:,.0f} deviations, "
        f"tape {memory['tape_mb']:.1f} MB, event log {memory['event_log_mb']:.1f} MB; "
        f"peak RSS {memory['peak_mb']:.0f} MB (interpreter before the run: "
        f"{memory['baseline_mb']:.0f} MB), {memory['seconds']:.1f} s"
    )
    print(
        f"FIFO tape of {memory['fifo_steps']:,.0f} steps: {memory['fifo_tape_bytes']:.0f} bytes (CBOR)"
    )
    report.measure("walk", "peak RSS", memory["peak_mb"], "MB")
    report.measure("walk", "tape", memory["tape_mb"], "MB")
    report.measure("fifo tape", "CBOR", memory["fifo_tape_bytes"], "bytes")
    report.goal(
        f"{steps:,}-step random walk: peak RSS <= {GOAL_WALK_PEAK_MB} MB",
        f"{memory['peak_mb']:.0f} MB",
        memory["peak_mb"] <= GOAL_WALK_PEAK_MB,
    )
    report.goal(
        f"{FIFO_TAPE_STEPS:,}-step FIFO tape <= {GOAL_FIFO_TAPE_BYTES} bytes",
        f"{memory['fifo_tape_bytes']:.0f} bytes",
        memory["fifo_tape_bytes"] <= GOAL_FIFO_TAPE_BYTES,
    )
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
