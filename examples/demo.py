"""The simloom demo: explore a racy program, find the failing universe, replay it.

    make demo        (or: python examples/demo.py)

It runs ``examples/bank_race.py`` — which passes on the stock asyncio loop — in
seeded universes until one fails, prints the seed, the error and the schedule as
deviations from FIFO, writes the tape, and replays the failure twice (from the seed
and from the tape file) to show the event-log digests are byte-identical.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bank_race  # noqa: E402
import simloom  # noqa: E402

RUNS = 2_000


def main() -> int:
    print("simloom demo: a check-then-act race in examples/bank_race.py\n")
    stock = asyncio.run(bank_race.main())
    print(f"  stock asyncio loop: passes (final balance {stock})")
    fifo = simloom.run(bank_race.main, scheduler="fifo")
    print(f"  simloom FIFO universe: passes too ({fifo.decisions} decisions, 0 deviations)\n")

    started = time.perf_counter()
    for seed in range(RUNS):
        result = simloom.run(bank_race.main, seed=seed, scheduler="random")
        if not result.ok:
            break
    else:
        print(f"no failure in {RUNS} universes")
        return 1
    elapsed = time.perf_counter() - started
    print(
        f"FAILED after {seed + 1} universes ({elapsed * 1000:.1f} ms) — simloom found a failing universe"
    )
    print(f"  seed: {seed}   (scheduler: random)")
    print(f"  error: {type(result.error).__name__}: {result.error}")
    print(
        f"  steps: {result.steps}, decisions: {result.decisions}, deviations: {result.deviations}"
    )
    print("  " + result.explain().replace("\n", "\n  "))

    artifact = HERE.parent / ".sim" / "demo" / f"bank_race-seed{seed}.tape.json"
    result.tape.dump(artifact)
    print(f"  tape: {artifact.relative_to(HERE.parent)}")

    by_seed = simloom.run(bank_race.main, seed=seed, scheduler="random")
    by_tape = simloom.replay(bank_race.main, simloom.Tape.load(artifact), strict=True)
    print("\nReplay:")
    print(f"  original digest    {result.digest}")
    print(f"  replay from seed   {by_seed.digest}  ({type(by_seed.error).__name__})")
    print(f"  replay from tape   {by_tape.digest}  ({type(by_tape.error).__name__})")
    identical = result.digest == by_seed.digest == by_tape.digest
    print("  byte-identical event logs:", "yes" if identical else "NO")
    return 0 if identical and not by_tape.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
