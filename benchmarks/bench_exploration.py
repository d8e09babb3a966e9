"""Exploration: ``@simloom.test``, ``@given(simloom.universes())`` and shrinking on the zoo.

Three measurements on the bug zoo (``tests/zoo``), in one run:

* **(a) ``@simloom.test`` exploration.** The zoo's three-task controls
  (``locked_counter``: three increments under a lock; ``single_flight_cache``: three
  gets sharing one in-flight fetch; ``locked_init``: two callers, then a third, of a
  lock-guarded lazy init) pass under every schedule, so a call of
  ``@simloom.test(runs=2000)`` -- default scheduler ``mixed`` (the swarm
  ``simloom.testing.DEFAULT_MIX``), a throwaway in-memory Hypothesis database, artifacts in a
  temporary directory -- explores all 2,000 universes. Each timing is one whole call
  (the database replay check, the pct:auto horizon probe, 2,000 universes, the frozen
  heap). Reference: 2,000 × ``asyncio.run(main())`` on the stock loop; context:
  2,000 × ``simloom.run(main, seed=s)`` (random walk) without the decorator.
* **(b) Hypothesis-driven universes.** ``@settings(max_examples=N, database=None,
  deadline=None) @given(simloom.universes())`` with ``universe.run(main)`` on the same
  programs, with the default Hypothesis backend and with ``backend="simloom"`` (the
  Rust strategy generates each universe). Rate = universes that ran to completion
  per second (test cases Hypothesis abandons as too large are counted in the notes,
  not in the rate). Reference: the same Hypothesis test drawing one integer
  (``st.integers(min_value=0)``, a stand-in for a seed) and running
  ``asyncio.run(main())`` -- the ratio is simloom's overhead in Hypothesis mode.
* **(c) Shrinking.** Every zoo bug through ``@simloom.test(runs=2000)`` with its
  defaults, called directly: the failure is caught and the report note read -- the
  universe where it was found, draws and schedule deviations before → after
  shrinking, the shrinker's candidate runs and wall time -- plus the wall time of the
  whole failing call. Times are the best of N; counts are shown as a range when the
  (randomised) shrinker ends in different places.

(b) runs every timing sample in a fresh interpreter (this script with ``--child``;
a 10-example warm-up of the same test comes first, in that interpreter), and (c)
each bug in its own: simloom retains the whole universe (loop, tasks, frames) of
every Hypothesis test case that fails or is abandoned, and every later
``asyncio.run`` and universe teardown scans the retained tasks
(``asyncio.all_tasks``), so whatever runs after them in the same process gets slower
and slower. A separate child measures that drift: twelve back-to-back
``given(universes())`` tests in one interpreter (reported as a note).

Goals: (a) ``@simloom.test`` explores >= 2,000 universes/s; (b) >= 400 universes/s in
Hypothesis mode (checked for both backends); (c) the acceptance of the zoo: every bug
found within 2,000 universes, shallow races shrunk to <= 2 deviations, deep ordering
to <= 3 (starvation is long by construction and has no bound). Goals (a) and (b) are
checked on the slowest of the three programs.

    python benchmarks/bench_exploration.py [--repeat 5] [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
from collections.abc import Callable, Coroutine
from typing import Any, cast

import simloom
import simloom.testing
import zoo_rates
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
from hypothesis import given, settings
from hypothesis import strategies as st
from simloom.hypothesis import universes
from zoo_rates import zoo

PROGRAMS = ("locked_counter", "single_flight_cache", "locked_init")
RUNS = 2_000
QUICK_RUNS = 500
EXAMPLES = 500  # max_examples per Hypothesis timing
QUICK_EXAMPLES = 100
WARMUP_EXAMPLES = 10  # in-process warm-up of each (b) sample
SHRINK_RUNS = 2_000
DRIFT_PROGRAM = "locked_counter"
DRIFT_ROUNDS = 12  # after one unreported warm-up round
DRIFT_EXAMPLES = 300
QUICK_DRIFT_EXAMPLES = 100
GOAL_EXPLORE = 2_000
GOAL_HYPOTHESIS = 400


def coroutine(program: zoo.Program) -> Coroutine[Any, Any, Any]:
    """``program()`` for ``asyncio.run`` (zoo programs are typed as returning awaitables)."""
    return cast(Coroutine[Any, Any, Any], program())


# ------------------------------------------------------------ (a) @simloom.test


def measure_decorator(
    report: Report, runs: int, repeat: int, warmup: int
) -> dict[str, dict[str, float]]:
    rates: dict[str, dict[str, float]] = {}
    for name in PROGRAMS:
        program = zoo.CONTROLS[name]

        def decorated(program: zoo.Program = program) -> float:
            test = zoo_rates.decorated(program, runs)
            gc.collect()
            t0 = now()
            test()
            elapsed = now() - t0
            stats = simloom.testing.session_stats[-1]
            assert stats.outcome == "passed" and stats.universes == runs, stats
            return elapsed

        def plain(program: zoo.Program = program) -> float:
            gc.collect()
            t0 = now()
            for seed in range(runs):
                simloom.run(program, seed=seed)
            return now() - t0

        def stock(program: zoo.Program = program) -> float:
            gc.collect()
            t0 = now()
            for _ in range(runs):
                asyncio.run(coroutine(program))
            return now() - t0

        contenders: dict[str, Callable[[], float]] = {
            "@simloom.test (mixed)": decorated,
            "simloom.run (random)": plain,
            "asyncio.run": stock,
        }
        best = interleaved_best(contenders, repeat=repeat, warmup=warmup)
        rates[name] = {contender: runs / t for contender, t in best.items()}

    rows = []
    for name, r in rates.items():
        for contender, rate in r.items():
            ratio = rate / r["asyncio.run"]
            rows.append([name, contender, fmt_rate(rate), f"{1e6 / rate:.0f}", fmt_ratio(ratio)])
            report.measure(
                f"(a) {name}", contender, rate, "universes/s", f"{fmt_ratio(ratio)} asyncio.run"
            )
    print(f"(a) @simloom.test(runs={runs}) on the three-task controls, one call per sample")
    print()
    print_table(["program", "runner", "universes/s", "us/universe", "vs stock"], rows)
    print()
    return rates


# ----------------------------------------------------------- (b) Hypothesis mode


class HypothesisTest:
    """One Hypothesis test, built before the clock starts; counts its test cases."""

    def __init__(self, program: zoo.Program, examples: int, kind: str) -> None:
        self.calls = 0
        self.completed = 0
        self.schedules: set[tuple[tuple[int, int], ...]] = set()
        self.track = False
        options: dict[str, Any] = {"max_examples": examples, "database": None, "deadline": None}
        if kind == "simloom backend":
            options["backend"] = "simloom"

        if kind == "stock":

            @settings(**options)
            @given(st.integers(min_value=0))
            def test(seed: int) -> None:
                self.calls += 1
                asyncio.run(coroutine(program))
                self.completed += 1

        else:

            @settings(**options)
            @given(universes())  # simloom.universes (mypy sees the lazy attribute as object)
            def test(universe: Any) -> None:
                self.calls += 1
                universe.run(program)
                self.completed += 1
                if self.track:
                    self.schedules.add(tuple(universe.result.tape.deviations))

        self.test: Callable[[], None] = test

    def run(self) -> float:
        gc.collect()
        t0 = now()
        self.test()
        return now() - t0


KINDS = {
    "given(universes())": "universes",
    'given(universes()), backend="simloom"': "simloom backend",
    "given(integers()) + asyncio.run": "stock",
}
SIMLOOM_KINDS = ("given(universes())", 'given(universes()), backend="simloom"')
STOCK = "given(integers()) + asyncio.run"


def sample_child(name: str, label: str, examples: int) -> dict[str, Any]:
    """One timing sample of (b), in a fresh interpreter: a 10-example warm-up of the
    same test, then the timed test."""
    program = zoo.CONTROLS[name]
    HypothesisTest(program, WARMUP_EXAMPLES, KINDS[label]).run()
    test = HypothesisTest(program, examples, KINDS[label])
    seconds = test.run()
    return {"seconds": seconds, "calls": test.calls, "completed": test.completed}


def diversity_child(name: str, examples: int) -> dict[str, Any]:
    """Untimed, in a fresh interpreter: how many distinct schedules each simloom test
    ran, and how many test cases Hypothesis abandoned."""
    diversity = {}
    for label in SIMLOOM_KINDS:
        test = HypothesisTest(zoo.CONTROLS[name], examples, KINDS[label])
        test.track = True
        test.run()
        diversity[label] = {
            "schedules": len(test.schedules),
            "fifo": () in test.schedules,
            "completed": test.completed,
            "abandoned": test.calls - test.completed,
        }
    return diversity


def drift_child(name: str, examples: int, rounds: int) -> dict[str, Any]:
    """``rounds`` back-to-back calls of given(universes()) and of the stock test on one
    program in one interpreter: the rates, and the SimLoops still alive after each."""
    program = zoo.CONTROLS[name]
    out: dict[str, list[float]] = {
        "universes": [],
        "stock": [],
        "loops": [],
        "tasks": [],
        "objects": [],
    }
    for round_ in range(rounds + 1):
        for kind in ("universes", "stock"):
            test = HypothesisTest(program, examples, kind)
            elapsed = test.run()
            if round_:
                out[kind].append(test.completed / elapsed)
        if not round_:
            continue
        gc.collect()
        objects = gc.get_objects()
        out["loops"].append(sum(isinstance(o, simloom.SimLoop) for o in objects))
        out["objects"].append(len(objects))
        # Every asyncio.run (and every universe's teardown) scans this WeakSet.
        out["tasks"].append(len(asyncio.tasks._scheduled_tasks))  # type: ignore[attr-defined]
        del objects
    return out


def child(kind: str, *argv: str) -> Any:
    """Run one part of the benchmark in a fresh interpreter (this script, ``--child``);
    its result comes back as JSON on the last line of stdout."""
    command = [sys.executable, __file__, "--child", kind, *argv]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"bench_exploration: child {kind} {argv} failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_hypothesis(report: Report, examples: int, repeat: int) -> dict[str, dict[str, float]]:
    rates: dict[str, dict[str, float]] = {}
    rows = []
    notes = []
    for name in PROGRAMS:
        totals = {label: [0, 0] for label in KINDS}

        def contender(
            label: str, name: str = name, totals: dict[str, list[int]] = totals
        ) -> Callable[[], float]:
            def run() -> float:
                sample = child("sample", name, label, str(examples))
                totals[label][0] += sample["calls"]
                totals[label][1] += sample["completed"]
                # Seconds per `examples` completed universes: the rate is what counts.
                return float(sample["seconds"] * examples / max(sample["completed"], 1))

            return run

        # Every sample is a fresh interpreter, so no warm-up sample (each child warms
        # up in-process).
        best = interleaved_best(
            {label: contender(label) for label in KINDS}, repeat=repeat, warmup=0
        )
        rates[name] = r = {label: examples / t for label, t in best.items()}
        for label, rate in r.items():
            ratio = rate / r[STOCK]
            calls, completed = totals[label]
            cases = calls / max(completed, 1)
            rows.append(
                [name, label, fmt_rate(rate), f"{1e6 / rate:.0f}", fmt_ratio(ratio), f"{cases:.2f}"]
            )
            report.measure(
                f"(b) {name}",
                label,
                rate,
                "universes/s",
                f"{fmt_ratio(ratio)} stock in Hypothesis; {cases:.2f} test cases per universe",
            )
        parts = []
        for label, d in child("diversity", name, str(examples)).items():
            parts.append(
                f"{KINDS[label]}: {d['schedules']} distinct schedules in {d['completed']} "
                f"universes, {d['abandoned']} test cases abandoned"
            )
        notes.append(f"{name}: " + "; ".join(parts))
    print(
        f"(b) Hypothesis mode: max_examples={examples}, database=None, deadline=None; "
        "every sample in a fresh interpreter"
    )
    print()
    print_table(
        ["program", "test", "universes/s", "us/universe", "vs stock", "cases/universe"], rows
    )
    print()
    print("   cases/universe: test cases Hypothesis ran per universe that completed (the")
    print("   others were abandoned: 'exceeded maximum test case size')")
    for text in notes:
        print(f"   {text}")
        report.note(f"(b) {text}")

    drift_examples = DRIFT_EXAMPLES if examples >= EXAMPLES else QUICK_DRIFT_EXAMPLES
    drift = child("drift", DRIFT_PROGRAM, str(drift_examples), str(DRIFT_ROUNDS))
    text = (
        f"{DRIFT_ROUNDS} back-to-back given(universes()) tests (max_examples={drift_examples}) "
        f"on {DRIFT_PROGRAM} in one "
        f"interpreter: {fmt_rate(drift['universes'][0])} -> {fmt_rate(drift['universes'][-1])} "
        f"universes/s; the stock Hypothesis test run between them "
        f"{fmt_rate(drift['stock'][0])} -> {fmt_rate(drift['stock'][-1])}/s; SimLoops still "
        f"alive after a full gc.collect(): {drift['loops'][0]} -> {drift['loops'][-1]}, "
        f"tasks in asyncio's all-tasks set {drift['tasks'][0]:,} -> {drift['tasks'][-1]:,} "
        f"({drift['objects'][-1] - drift['objects'][0]:+,} GC-tracked objects)"
    )
    print(f"   drift: {text}")
    report.note(f"(b) drift: {text}")
    print()
    return rates


# ------------------------------------------------------------------- (c) shrinking


def measure_shrinks(report: Report, repeat: int) -> list[zoo_rates.Shrink]:
    shrinks = []
    for name in zoo.BUGS:
        shrink = zoo_rates.measure_shrink_isolated(name, SHRINK_RUNS, repeat)
        shrinks.append(shrink)
        if not shrink.failed:
            report.measure(f"(c) {name}", "whole call (passed!)", 0.0, "ms")
            continue
        found = zoo_rates._span(shrink.values(lambda a: a.found_at))
        schedulers = ", ".join(sorted({a.scheduler for a in shrink.attempts if a.scheduler}))
        deviations = zoo_rates._arrow(shrink, lambda a: a.deviations)
        candidates = zoo_rates._span(shrink.values(lambda a: a.candidates))
        shrink_s = shrink.best(lambda a: a.shrink_seconds) or 0.0
        whole_s = shrink.best(lambda a: a.seconds) or 0.0
        story = (
            f"found at universe {found} ({schedulers}); deviations {deviations}; "
            f"{candidates} candidate runs"
        )
        report.measure(f"(c) {name}", "shrink", shrink_s * 1e3, "ms", story)
        report.measure(f"(c) {name}", "whole failing call", whole_s * 1e3, "ms")
    print(
        f"(c) every zoo bug through @simloom.test(runs={SHRINK_RUNS}) defaults, "
        f"best of {repeat}, each bug in a fresh interpreter (counts: range)"
    )
    print()
    print(zoo_rates.render_shrinks(shrinks, markdown=False))
    print()
    return shrinks


# ------------------------------------------------------------------------- main


def slowest(rates: dict[str, dict[str, float]], label: str) -> tuple[str, float, float]:
    name = min(rates, key=lambda n: rates[n][label])
    return name, rates[name][label], min(r[label] for r in rates.values())


def child_main(kind: str, argv: list[str]) -> None:
    result: Any
    if kind == "sample":
        name, label, examples = argv
        result = sample_child(name, label, int(examples))
    elif kind == "diversity":
        name, examples = argv
        result = diversity_child(name, int(examples))
    elif kind == "drift":
        name, examples, rounds = argv
        result = drift_child(name, int(examples), int(rounds))
    else:
        raise SystemExit(f"bench_exploration: unknown child {kind!r}")
    print(json.dumps(result))


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child_main(sys.argv[2], sys.argv[3:])
        return
    args = parse_args(__doc__.splitlines()[0])
    runs = QUICK_RUNS if args.quick else RUNS
    examples = QUICK_EXAMPLES if args.quick else EXAMPLES
    title = "bench_exploration: @simloom.test, given(universes()) and shrinking on the zoo"
    print_header(title, args)
    report = Report("exploration", title)

    with zoo_rates.artifacts_elsewhere():
        explore = measure_decorator(report, runs, args.repeat, args.warmup)
    hypothesis = measure_hypothesis(report, examples, args.repeat)
    shrinks = measure_shrinks(report, args.repeat)

    name, rate, _ = slowest(explore, "@simloom.test (mixed)")
    stock = explore[name]["asyncio.run"]
    report.goal(
        f"@simloom.test(runs={runs}) explores >= {GOAL_EXPLORE:,} universes/s "
        "(3-task controls, slowest)",
        f"{fmt_rate(rate)}/s on {name} ({fmt_ratio(rate / stock)} asyncio.run's "
        f"{fmt_rate(stock)}/s)",
        rate >= GOAL_EXPLORE,
    )
    for label in ("given(universes())", 'given(universes()), backend="simloom"'):
        name, rate, _ = slowest(hypothesis, label)
        stock = hypothesis[name]["given(integers()) + asyncio.run"]
        report.goal(
            f"{label} >= {GOAL_HYPOTHESIS} universes/s (3-task controls, slowest)",
            f"{fmt_rate(rate)}/s on {name} ({fmt_ratio(rate / stock)} the stock loop's "
            f"{fmt_rate(stock)}/s in the same Hypothesis test)",
            rate >= GOAL_HYPOTHESIS,
        )
    for passed, text in zoo_rates.acceptance([], shrinks, SHRINK_RUNS):
        claim, _, measured = text.partition(" -- ")
        report.goal(claim, measured, passed)
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
