"""Determinism torture: the same seed gives the same universe, and its tape replays it.

``N`` seeds (2,000 by default; ``SIMLOOM_TORTURE_SEEDS=10000`` for the long form) are
spread over the racy programs of ``torture_programs.PROGRAMS`` and over schedulers:
seed ``s`` runs program ``s % P`` under ``SCHEDULERS[(s // P) % len(SCHEDULERS)]``.
For every seed the program is

* run twice with that seed and scheduler (``r1``, ``r2``);
* replayed from ``r1.tape`` (``r3``), and replayed again with ``strict=True`` (``r4``);

and all four must agree on everything: digest, event-log bytes, value or error (type
and text), steps, decisions, deviations, virtual time, coverage, tape, and no replay
may be misaligned. Between runs the heap is perturbed (a seed-dependent amount of
ballast is allocated and kept alive), so behaviour that leaks from object addresses
(``id()``-hashed sets, for instance) shows up as a difference instead of hiding behind
an allocator that happens to hand out the same addresses twice.

The other tests check that the torture is not vacuous (schedules really vary with the
seed), that tapes survive JSON and CBOR files, that two fresh processes agree, and pin
down minimal reproductions of the nondeterminism the torture found.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import simloom
import torture_programs as tp

N_SEEDS = int(os.environ.get("SIMLOOM_TORTURE_SEEDS", "2000"))
CHUNK = 100
CHUNKS = max(1, -(-N_SEEDS // CHUNK))
NAMES = list(tp.PROGRAMS)
SCHEDULERS = ("random", "pct", "random", "pct:d=5,k=400", "fifo")
TESTS_DIR = str(Path(__file__).resolve().parent)


def plan(seed: int) -> tuple[str, str]:
    """The program and scheduler that torture seed ``seed`` runs."""
    name = NAMES[seed % len(NAMES)]
    scheduler = SCHEDULERS[(seed // len(NAMES)) % len(SCHEDULERS)]
    return name, scheduler


def describe(exc: BaseException) -> Any:
    """Type and text of an exception; an exception group as its tree of leaves."""
    if isinstance(exc, BaseExceptionGroup):
        return (type(exc).__qualname__, exc.message, [describe(e) for e in exc.exceptions])
    cause = exc.__cause__
    return (type(exc).__qualname__, str(exc), None if cause is None else describe(cause))


def outcome(result: Any) -> tuple[str, str]:
    """The value (as its repr: plain data) or the error of a run."""
    if result.error is not None:
        return ("raise", repr(describe(result.error)))
    return ("ok", repr(result.value))


def fingerprint(result: Any) -> dict[str, Any]:
    """Everything a run of a universe must reproduce."""
    return {
        "digest": result.digest,
        "event_log_bytes": result.event_log_bytes,
        "outcome": outcome(result),
        "steps": result.steps,
        "decisions": result.decisions,
        "deviations": result.deviations,
        "virtual_time_ns": result.virtual_time_ns,
        "coverage": sorted(result.coverage.items()),
        "tape": list(result.tape.deviations),
        "misaligned": result.misaligned,
    }


def differences(reference: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Fields where ``other`` differs from ``reference``, with a short view of both."""

    def short(value: Any) -> str:
        text = f"<{len(value)} bytes>" if isinstance(value, bytes) else repr(value)
        return text if len(text) <= 160 else text[:157] + "..."

    return [
        f"{key}: {short(reference[key])} != {short(other[key])}"
        for key in reference
        if reference[key] != other[key]
    ]


def ballast(seed: int, salt: int) -> list[Any]:
    """A seed-dependent amount of live garbage in many allocator size classes (tuples
    of 0..39 items), to shift the addresses of the objects the next run allocates."""
    return [tuple(range(i % 40)) for i in range((seed * 7919 + salt * 104729) % 997)]


def torture_one(seed: int) -> list[str]:
    """Run, re-run, replay and strictly replay one seed; return what went wrong."""
    name, scheduler = plan(seed)
    prog = tp.PROGRAMS[name]
    where = f"seed={seed} program={name} scheduler={scheduler}"
    problems: list[str] = []
    r1 = simloom.run(prog, seed=seed, scheduler=scheduler)
    keep = ballast(seed, 1)
    r2 = simloom.run(prog, seed=seed, scheduler=scheduler)
    keep.append(ballast(seed, 2))
    r3 = simloom.replay(prog, r1.tape)
    keep.append(ballast(seed, 3))
    try:
        r4: Any = simloom.replay(prog, r1.tape, strict=True)
    except simloom.TapeMisalignedError as exc:
        r4 = None
        problems.append(f"{where}: strict replay raised {exc!r}")
    del keep
    f1 = fingerprint(r1)
    if r1.misaligned:
        problems.append(f"{where}: a seeded run reports misaligned")
    if scheduler == "fifo" and len(r1.tape):
        problems.append(f"{where}: a FIFO run recorded a non-empty tape {r1.tape!r}")
    for label, other in (("rerun", r2), ("replay", r3), ("strict replay", r4)):
        if other is None:
            continue
        diff = differences(f1, fingerprint(other))
        if diff:
            problems.append(f"{where}: {label} differs from the first run: " + "; ".join(diff))
    if r1.error is not None:
        # The programs catch every failure they inject: an error is a semantic slip.
        problems.append(f"{where}: program ended with {describe(r1.error)!r}")
    return problems


def test_programs_registered() -> None:
    assert len(NAMES) >= 10
    assert all(isinstance(name, str) for name in NAMES)


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_torture(chunk: int) -> None:
    seeds = range(chunk * CHUNK, min(N_SEEDS, (chunk + 1) * CHUNK))
    problems = [problem for seed in seeds for problem in torture_one(seed)]
    assert not problems, (
        f"{len(problems)} problem(s) in seeds {seeds.start}..{seeds.stop - 1}:\n"
        + "\n".join(problems)
    )


# ------------------------------------------------------------------ not vacuous


@pytest.mark.parametrize("name", NAMES)
def test_schedules_really_vary(name: str) -> None:
    """Across seeds, random and PCT schedules differ (digests, tapes), random runs
    almost always deviate from FIFO, and FIFO ignores the seed."""
    prog = tp.PROGRAMS[name]
    seeds = range(40)
    for scheduler in ("random", "pct"):
        runs = [simloom.run(prog, seed=s, scheduler=scheduler) for s in seeds]
        digests = collections.Counter(r.digest for r in runs)
        assert len(digests) >= len(runs) // 2, (name, scheduler, digests.most_common(3))
        assert len({r.steps for r in runs} | {r.virtual_time_ns for r in runs}) > 1
        deviating = sum(r.deviations > 0 for r in runs)
        if scheduler == "random":
            assert deviating >= 0.9 * len(runs), (name, deviating)
        else:
            assert deviating > 0, name
    fifo = {simloom.run(prog, seed=s, scheduler="fifo").digest for s in seeds[:5]}
    assert len(fifo) == 1, (name, fifo)


def test_programs_make_many_decisions() -> None:
    """Each program is a real workout: tens to hundreds of steps and decisions."""
    for name, prog in tp.PROGRAMS.items():
        result = simloom.run(prog, seed=1, scheduler="random")
        assert 50 <= result.steps <= 1000, (name, result.steps)
        assert result.decisions >= 40, (name, result.decisions)
        assert result.virtual_time_ns > 0, name


# ----------------------------------------------------------- tapes through files

FILE_SEEDS = range(0, N_SEEDS, 50)


@pytest.mark.parametrize("seed", FILE_SEEDS)
def test_tape_file_round_trip(seed: int, tmp_path: Path) -> None:
    name, scheduler = plan(seed)
    prog = tp.PROGRAMS[name]
    first = simloom.run(prog, seed=seed, scheduler=scheduler)
    tapes = {}
    for suffix in ("json", "cbor"):
        path = tmp_path / f"seed{seed}.{suffix}"
        first.tape.dump(path)
        tapes[suffix] = simloom.Tape.load(path)
        tapes[f"{suffix}-bytes"] = simloom.Tape.loads(first.tape.dumps(suffix))  # type: ignore[arg-type]
    assert json.loads((tmp_path / f"seed{seed}.json").read_text())["deviations"] == [
        list(d) for d in first.tape.deviations
    ]
    tapes["draws"] = simloom.Tape.from_draws(first.tape.to_draws())
    for how, tape in tapes.items():
        assert tape == first.tape, (seed, how)
        again = simloom.replay(prog, tape, strict=True)
        assert not again.misaligned, (seed, how)
        assert again.digest == first.digest, (seed, name, scheduler, how)
        assert again.event_log_bytes == first.event_log_bytes, (seed, how)
        assert outcome(again) == outcome(first), (seed, how)


# ------------------------------------------------------------------- two processes

CHILD = """
import json, sys
sys.path.insert(0, {tests_dir!r})
import simloom
import torture_programs
ballast = [tuple(range(i % 40)) for i in range(int(sys.argv[2]))]
for seed, name, scheduler in json.loads(sys.argv[1]):
    prog = torture_programs.PROGRAMS[name]
    result = simloom.run(prog, seed=seed, scheduler=scheduler)
    replayed = simloom.replay(prog, result.tape)
    print(json.dumps([seed, result.digest, replayed.digest, repr(result.value)]))
"""


def child_digests(jobs: list[tuple[int, str, str]], ballast_size: int) -> list[Any]:
    """Run ``jobs`` in a fresh interpreter (hash seed pinned to 0) that first
    allocates ``ballast_size`` tuples of assorted sizes, as importing other modules would."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    code = CHILD.format(tests_dir=TESTS_DIR)
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(jobs), str(ballast_size)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_two_fresh_processes_agree() -> None:
    """Two fresh interpreters (pinned hash seed; different address-space layouts and
    heap histories) produce the same digests and values for the same seeds, and each
    replays its own tapes."""
    seeds = [*range(2 * len(NAMES)), 256, 777, 1999]  # every program under random and pct
    jobs = [(seed, *plan(seed)) for seed in seeds]
    first = child_digests(jobs, ballast_size=0)
    second = child_digests(jobs, ballast_size=5000)
    assert len(first) == len(second) == len(jobs)
    mismatched = [
        f"seed={job[0]} program={job[1]} scheduler={job[2]}: {a[1:]} != {b[1:]}"
        for job, a, b in zip(jobs, first, second, strict=True)
        if a != b
    ]
    assert not mismatched, "\n".join(mismatched)
    for seed, digest, replayed, _ in first:
        assert digest == replayed, seed


# ---------------------------------------------- minimal reproductions of findings


def perturbed_runs(main: Callable[[], Any], runs: int = 40) -> collections.Counter[Any]:
    """Run ``main`` (FIFO, seed 0) ``runs`` times with differently shifted heaps;
    count the distinct (digest, value) pairs."""
    seen: collections.Counter[Any] = collections.Counter()
    keep = []
    for k in range(runs):
        keep.append(ballast(k, 7))
        result = simloom.run(main, seed=0, scheduler="fifo")
        seen[(result.digest, outcome(result))] += 1
    return seen


async def taskgroup_abort() -> list[int]:
    """A TaskGroup child fails; the order its siblings see their cancellation is the
    iteration order of ``TaskGroup._tasks``, a set hashed by ``id()``."""
    order: list[int] = []

    async def child(i: int) -> None:
        try:
            if i == 0:
                await asyncio.sleep(0.01)
                raise ValueError("boom")
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            order.append(i)
            raise

    try:
        async with asyncio.TaskGroup() as tg:
            for i in range(6):
                tg.create_task(child(i), name=f"child-{i}")
    except* ValueError:
        pass
    return order


async def as_completed_coroutines() -> list[int]:
    """``asyncio.as_completed`` wraps coroutines in tasks in the iteration order of
    ``set(fs)``, a set hashed by ``id()``."""

    async def job(i: int) -> int:
        await asyncio.sleep(0)
        return i

    return [await f for f in asyncio.as_completed([job(i) for i in range(6)])]


def test_taskgroup_abort_order_is_deterministic() -> None:
    seen = perturbed_runs(taskgroup_abort)
    assert len(seen) == 1, f"{len(seen)} different universes from one seed: {seen.most_common(4)}"


def test_as_completed_with_coroutines_is_deterministic() -> None:
    seen = perturbed_runs(as_completed_coroutines)
    assert len(seen) == 1, f"{len(seen)} different universes from one seed: {seen.most_common(4)}"


# ------------------------------------------------------------------ worlds

WORLD_SEEDS = int(os.environ.get("SIMLOOM_WORLD_TORTURE_SEEDS", "1000"))
WORLD_NAMES = list(tp.WORLD_PROGRAMS)
WORLD_CHUNKS = max(1, -(-WORLD_SEEDS // CHUNK))


def torture_world_one(seed: int) -> list[str]:
    """``torture_one`` for the world programs: network and disk faults included."""
    name = WORLD_NAMES[seed % len(WORLD_NAMES)]
    scheduler = SCHEDULERS[(seed // len(WORLD_NAMES)) % len(SCHEDULERS)]
    prog = tp.WORLD_PROGRAMS[name]
    where = f"seed={seed} world program={name} scheduler={scheduler}"
    r1 = simloom.run(prog, seed=seed, scheduler=scheduler)
    keep = ballast(seed, 1)
    r2 = simloom.run(prog, seed=seed, scheduler=scheduler)
    keep.append(ballast(seed, 2))
    r3 = simloom.replay(prog, r1.tape, strict=True)
    del keep
    problems = []
    if r1.error is not None:
        problems.append(f"{where}: program ended with {describe(r1.error)!r}")
    f1 = fingerprint(r1)
    for label, other in (("rerun", r2), ("strict replay", r3)):
        diff = differences(f1, fingerprint(other))
        if diff:
            problems.append(f"{where}: {label} differs from the first run: " + "; ".join(diff))
    return problems


@pytest.mark.parametrize("chunk", range(WORLD_CHUNKS))
def test_world_torture(chunk: int) -> None:
    seeds = range(chunk * CHUNK, min(WORLD_SEEDS, (chunk + 1) * CHUNK))
    problems = [problem for seed in seeds for problem in torture_world_one(seed)]
    assert not problems, (
        f"{len(problems)} problem(s) in seeds {seeds.start}..{seeds.stop - 1}:\n"
        + "\n".join(problems)
    )


@pytest.mark.parametrize("name", WORLD_NAMES)
def test_world_faults_really_vary(name: str) -> None:
    """The world programs' outcomes and schedules differ across seeds: the faults
    are exercised, not vacuous."""
    prog = tp.WORLD_PROGRAMS[name]
    runs = [simloom.run(prog, seed=s, scheduler="random") for s in range(30)]
    assert len({r.digest for r in runs}) >= 15
    assert len({repr(r.value) for r in runs}) >= 3, [r.value for r in runs[:5]]
