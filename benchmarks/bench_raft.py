"""Toy-Raft universes per second: a 5-node election with faults over 30 virtual seconds.

One universe is ``simloom.run(toy_raft.scenario_main(), seed=s)`` on the standard
scenario of ``examples/toy_raft.py``: five hosts, each running a Raft node (streams
between hosts, term and vote fsynced on the host's disk), a nemesis that partitions,
crashes and restarts nodes for 20 virtual seconds, then 10 more seconds in which one
leader must be followed by all. Set-up, teardown and digest are included.

Contenders, round-robin, each sample a batch of universes:

- **simloom.run** — the standard scenario (30 virtual seconds), a new seed each time;
- **simloom.run, no faults** — the same cluster with the nemesis idle, to show what
  the faults themselves cost.

The reference is the same election on a real clock: 30 wall seconds per universe
(the cluster's timers are real seconds: heartbeats, election timeouts, the nemesis),
so ``vs real time`` is how many times faster than real time a universe runs. Steps
per second put the per-step cost beside ``bench_steps.py``.

Goal (issue 9): >= 100 universes/s for the 5-node, 30-virtual-second election with
faults (it was >= 50 when the toy Raft landed).

    python benchmarks/bench_raft.py [--repeat 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import simloom
from _common import Report, fmt_rate, interleaved_best, now, parse_args, print_header, print_table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import toy_raft

BATCH = 40
QUICK_BATCH = 10
GOAL = 100


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    batch = QUICK_BATCH if args.quick else BATCH
    title = "bench_raft: toy-Raft universes/s (5 nodes, 30 virtual s, faults)"
    print_header(title, args)
    report = Report("raft", title)

    standard = toy_raft.STANDARD
    idle = replace(standard, fault_seconds=0.0)
    programs = {
        "simloom.run": toy_raft.scenario_main(None, standard),
        "simloom.run, no faults": toy_raft.scenario_main(None, idle),
    }
    steps: dict[str, int] = dict.fromkeys(programs, 0)
    virtual: dict[str, float] = dict.fromkeys(programs, 0.0)
    errors: dict[str, int] = dict.fromkeys(programs, 0)
    next_seed = [0]

    def contender(name: str):  # type: ignore[no-untyped-def]
        program = programs[name]

        def run() -> float:
            first = next_seed[0]
            next_seed[0] += batch
            total_steps = 0
            total_virtual = 0.0
            started = now()
            for seed in range(first, first + batch):
                result = simloom.run(program, seed=seed)
                total_steps += result.steps
                total_virtual += result.virtual_time
                errors[name] += result.error is not None
            elapsed = now() - started
            steps[name] = total_steps
            virtual[name] = total_virtual
            return elapsed

        return run

    best = interleaved_best(
        {name: contender(name) for name in programs}, repeat=args.repeat, warmup=args.warmup
    )
    rows = []
    for name, seconds in best.items():
        rate = batch / seconds
        per_universe_virtual = virtual[name] / batch
        speedup = per_universe_virtual / (seconds / batch)
        step_rate = steps[name] / seconds
        rows.append(
            [
                name,
                fmt_rate(rate),
                f"{seconds / batch * 1e3:.1f}",
                fmt_rate(step_rate),
                f"{per_universe_virtual:.1f}",
                f"{speedup:,.0f}x",
            ]
        )
        report.measure("raft", name, rate, "universes/s", f"{speedup:,.0f}x real time")
    print(f"batch: {batch} universes per sample")
    print()
    print_table(
        ["runner", "universes/s", "ms/universe", "steps/s", "virtual s", "vs real time"], rows
    )
    print()
    print(f"universes ending in an error: {errors}")
    rate = batch / best["simloom.run"]
    report.goal(
        f"toy Raft >= {GOAL} universes/s (5 nodes, 30 virtual s, faults)",
        f"{rate:,.0f}/s",
        rate >= GOAL,
    )
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
