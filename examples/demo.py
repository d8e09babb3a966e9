"""The simloom demo: explore racy programs, shrink the failure, replay it forever.

    make demo        (or: python examples/demo.py)

1. ``examples/bank_race.py`` — a check-then-act race that passes on the stock asyncio
   loop. ``@simloom.test`` explores seeded universes, finds the race, hands the
   failing tape to Hypothesis to shrink, and reports the minimal schedule; the
   minimal universe then replays byte-for-byte from its tape and from its seed.
2. ``examples/bpo42130.py`` — the pre-3.12 ``asyncio.wait_for`` that could swallow a
   cancellation delivered in the same instant the inner future completed. The same
   exploration finds it; this Python's own ``asyncio.wait_for`` survives it.
3. ``examples/toy_raft.py`` — five Raft nodes electing a leader over the simulated
   network while a nemesis partitions, crashes and restarts them. With the planted
   double-vote bug (a vote granted before it is on disk) exploration elects two
   leaders in one term and shrinks the universe to the few faults that do it; the
   correct Raft survives 500 universes, and the coverage counters show the faults.
4. ``examples/replicated_kv.py`` — a primary-backup key-value store that spreads
   reads over its backups. No reply is wrong on its own; the clients' recorded
   history is checked for linearizability (in Rust) and the stale read is shrunk
   to the put and the two gets that no order explains. Reads from the primary
   survive.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bank_race  # noqa: E402
import bpo42130  # noqa: E402
import replicated_kv  # noqa: E402
import simloom  # noqa: E402
import toy_raft  # noqa: E402
from hypothesis import settings  # noqa: E402
from hypothesis.database import InMemoryExampleDatabase  # noqa: E402
from simloom import testing  # noqa: E402

RUNS = 2_000
RAFT_BUG_HUNT_RUNS = 50
RAFT_SURVIVAL_RUNS = 500
KV_RUNS = 300
KV_OPERATIONS = 12  # 3 clients x 4


def explore(
    name: str,
    program: Callable[..., Awaitable[Any]],
    runs: int = RUNS,
    require_coverage: tuple[str, ...] = (),
) -> BaseException | None:
    """Run ``program`` as a ``@simloom.test`` would (handing it the universe's world
    if it takes one); return the failure, if any."""
    if "world" in inspect.signature(program).parameters:

        async def body(world: Any) -> None:
            await program(world)

    else:

        async def body() -> None:  # type: ignore[misc]
            await program()

    body.__qualname__ = name
    test = simloom.test(runs=runs, require_coverage=require_coverage)(body)
    test = settings(database=InMemoryExampleDatabase())(test)
    try:
        test()
    except Exception as exc:
        return exc
    return None


def replay_twice(program: Callable[..., Awaitable[Any]], report: str) -> bool:
    """Replay the minimal universe from its artifact tape and from its seed."""
    tape_path = Path(re.search(r"artifacts: (\S+?),", report)[1])  # type: ignore[index]
    seed = int(re.search(r"seed: (\d+)", report)[1])  # type: ignore[index]
    scheduler = re.search(r"scheduler (\S+?);", report)[1]  # type: ignore[index]
    tape = simloom.Tape.load(tape_path)
    first = simloom.replay(program, tape, strict=True)
    second = simloom.replay(program, tape, strict=True)
    by_seed = simloom.run(program, seed=seed, scheduler=scheduler)
    print(f"  replay of the minimal tape  {first.digest}  ({type(first.error).__name__})")
    print(f"  and again                   {second.digest}  ({type(second.error).__name__})")
    print(
        f"  seed {seed} as first found     {by_seed.digest[:16]}…  "
        f"({type(by_seed.error).__name__}, {by_seed.deviations} deviations)"
    )
    return first.digest == second.digest and first.error is not None


def show(failure: BaseException) -> str:
    report = next(n for n in failure.__notes__ if "simloom found" in n)
    print("FAILED — " + report)
    return report


def main() -> int:
    testing.configure(testing.Options(artifact_dir=Path(".sim") / "failures"))
    status = 0

    print("== 1. examples/bank_race.py: two withdrawals, one check-then-act race\n")
    print(f"  stock asyncio loop: passes (final balance {asyncio.run(bank_race.main())})\n")
    failure = explore("test_bank_race", bank_race.main)
    if failure is None:
        print(f"  no failure in {RUNS} universes")
        return 1
    report = show(failure)
    status |= not replay_twice(bank_race.main, report)

    print("\n== 2. examples/bpo42130.py: the swallowed cancellation (bpo-42130)\n")
    print(f"  stock loop, legacy wait_for: {asyncio.run(bpo42130.main_legacy())}")
    print(f"  stock loop, asyncio.wait_for: {asyncio.run(bpo42130.main_stdlib())}\n")
    failure = explore("test_legacy_wait_for", bpo42130.main_legacy)
    if failure is None:
        print(f"  legacy wait_for: no failure in {RUNS} universes")
        return 1
    report = show(failure)
    status |= not replay_twice(bpo42130.main_legacy, report)
    survivor = explore("test_stdlib_wait_for", bpo42130.main_stdlib)
    verdict = "survives" if survivor is None else f"FAILS: {survivor!r}"
    print(f"\n  Python {sys.version.split()[0]}'s asyncio.wait_for {verdict} {RUNS} universes.")
    status |= survivor is not None

    print("\n== 3. examples/toy_raft.py: five Raft nodes, partitions, crashes, restarts\n")
    status |= raft()

    print("\n== 4. examples/replicated_kv.py: reads from backups, checked for linearizability\n")
    status |= kv()
    return status


def kv() -> int:
    """Find the stale read with the linearizability check; the primary-only
    store survives."""
    failure = explore("test_replicated_kv_reads_any", replicated_kv.buggy, runs=KV_RUNS)
    if failure is None:
        print(f"  no failure in {KV_RUNS} universes")
        return 1
    report = show(failure)
    print("\n  the history of the minimal universe, checked:")
    print("    " + str(failure).replace("\n", "\n    "))
    history = re.search(r"artifacts: .*?(\S+\.history\.json)", report)
    print(f"  (all {KV_OPERATIONS} operations: {history[1] if history else 'not written'})\n")
    status = not replay_twice(replicated_kv.buggy, report)
    survivor = explore("test_replicated_kv_reads_primary", replicated_kv.correct, runs=KV_RUNS)
    verdict = "survives" if survivor is None else f"FAILS: {survivor!r}"
    print(f"\n  the store that reads from its primary {verdict} {KV_RUNS} universes.")
    return int(status) | (survivor is not None)


def raft() -> int:
    """Hunt the planted double vote, then let the correct Raft survive."""
    buggy = toy_raft.scenario_main(toy_raft.DOUBLE_VOTE, toy_raft.QUICK)
    print(
        f"  planted bug: a vote granted before it is on disk; exploring {RAFT_BUG_HUNT_RUNS} "
        "universes (faults in the first 8 virtual seconds)\n"
    )
    started = time.perf_counter()
    failure = explore("test_toy_raft_double_vote", buggy, runs=RAFT_BUG_HUNT_RUNS)
    if failure is None:
        print(f"  no failure in {RAFT_BUG_HUNT_RUNS} universes")
        return 1
    report = show(failure)
    print(f"\n  the minimal universe, as it failed ({time.perf_counter() - started:.1f} s in all):")
    print("    " + str(failure).replace("\n", "\n    "))
    print()
    status = not replay_twice(buggy, report)

    correct = toy_raft.scenario_main()
    started = time.perf_counter()
    survivor = explore(
        "test_toy_raft",
        correct,
        runs=RAFT_SURVIVAL_RUNS,
        require_coverage=toy_raft.FAULT_COVERAGE + toy_raft.RAFT_COVERAGE,
    )
    seconds = time.perf_counter() - started
    if survivor is not None:
        print(f"\n  the correct Raft FAILS: {survivor!r}")
        return 1
    coverage = testing.session_stats[-1].coverage
    counted = ", ".join(
        f"{label} {coverage[label]}" for label in toy_raft.FAULT_COVERAGE + toy_raft.RAFT_COVERAGE
    )
    print(
        f"\n  the correct Raft survives {RAFT_SURVIVAL_RUNS} universes of 30 virtual seconds "
        f"({seconds:.1f} s, {RAFT_SURVIVAL_RUNS / seconds:.0f} universes/s)"
    )
    print(f"  coverage: {counted}")
    return int(status)


if __name__ == "__main__":
    raise SystemExit(main())
