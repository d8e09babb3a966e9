"""Monitors' cost: universes with three ``simloom.always`` monitors vs without.

Workloads, each run as ``simloom.run(program, seed=s)`` over the same seeds, with and
without three monitors (trivial predicates over the program's state, so what is
measured is the judging, not the predicates' own work):

* ``steps`` -- 10 tasks x 1,000 ``await asyncio.sleep(0)``, each step incrementing a
  shared counter: the worst case, a step that does almost nothing.
* ``kv`` -- ``examples/replicated_kv.py``'s correct store (3 replicas, 3 clients,
  streams over the simulated network); the monitors watch the replicas' key counts.

Goal (issue 12): a universe with three ``always`` monitors runs at >= 80% of its
speed without them.

    python benchmarks/bench_monitors.py [--quick] [--repeat N] [--json out.json]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import simloom
from _common import Report, interleaved_best, parse_args, print_header, print_table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import replicated_kv

GOAL = 0.80


def steps_program(monitored: bool) -> Any:
    async def main() -> int:
        state = [0]
        if monitored:
            simloom.always(lambda: state[0] >= 0, name="non-negative")
            simloom.always(lambda: state[0] < 1 << 40, name="bounded")
            simloom.always(lambda: isinstance(state[0], int), name="an int")

        async def worker() -> None:
            for _ in range(1_000):
                state[0] += 1
                await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(10)))
        return state[0]

    return main


def kv_program(monitored: bool) -> Any:
    async def main(world: Any) -> Any:
        if monitored:
            replicas = replicated_kv.Replica.instances = []  # filled as replicas start
            simloom.always(lambda: all(len(r.data) <= 2 for r in replicas), name="two keys")
            simloom.always(lambda: len(replicas) <= 3, name="three replicas")
            simloom.always(lambda: all(r.name for r in replicas), name="named")
        return await replicated_kv.correct(world)

    return main


def measure(program: Any, universes: int, repeat: int) -> dict[str, float]:
    def contender(monitored: bool) -> Any:
        main = program(monitored)

        def run() -> float:
            start = time.perf_counter()
            for seed in range(universes):
                result = simloom.run(main, seed=seed)
                if result.error is not None:
                    raise SystemExit(f"universe {seed} failed: {result.error!r}")
            return time.perf_counter() - start

        return run

    return interleaved_best(
        {"without": contender(False), "with 3 always": contender(True)}, repeat=repeat
    )


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    title = "bench_monitors: three always monitors, judged between steps"
    print_header(title, args)
    report = Report("monitors", title)
    universes = {"steps": 5 if args.quick else 20, "kv": 10 if args.quick else 40}
    rows = []
    for case, program in (("steps", steps_program), ("kv", kv_program)):
        best = measure(program, universes[case], args.repeat)
        ratio = best["without"] / best["with 3 always"]
        for name, seconds in best.items():
            per = seconds / universes[case] * 1e3
            kept = f"{ratio:.0%}" if name != "without" else ""
            rows.append([case, name, f"{per:.2f}", f"{universes[case] / seconds:,.0f}", kept])
            report.measure(case, name, per, "ms/universe")
        report.goal(
            f"{case}: with three always monitors at >= {GOAL:.0%} of the speed without",
            f"{ratio:.0%}",
            ratio >= GOAL,
        )
    print_table(["workload", "monitors", "ms/universe", "universes/s", "speed kept"], rows)
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
