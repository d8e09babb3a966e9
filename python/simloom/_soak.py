"""Soak runs: one exploration spread over a time budget, worker processes or a
Dask cluster, checkpointed and resumable (``simloom soak``).

A soak explores the seeds ``0, 1, 2, ...`` of one target exactly as
``@simloom.test`` explores them (the same :class:`~simloom._explore._Exploration`,
so seed ``i`` is the same universe in both). A coordinator hands the seeds out in
chunks (``[start, stop)`` ranges) to workers: this process, local worker processes
(``workers=N``) or the workers of a Dask cluster. A chunk counts only once its
worker has sent back its whole result; a chunk whose worker died is handed out
again, so the :class:`Ledger` of finished chunks holds every seed exactly once (it
refuses a chunk that overlaps one it holds).

After each finished chunk (at most every :data:`CHECKPOINT_EVERY` seconds) the
ledger, the failures and the statistics are written to the checkpoint file
atomically; ``resume=True`` reads it back and runs what is missing: the chunks
that were out when the run stopped first, then on from the highest seed.

A failing universe is saved, unshrunk, in the example database under the key
``@simloom.test`` uses for the same test id, so the developer's next pytest run of
that test replays it first and shrinks it (a Redis database shares it across
machines: ``database="redis://host:port/db"``).

Owns: chunking, the ledger, checkpoints, the worker pools, the PCT guarantee line.
Must not: explore a universe by itself (``_explore._Exploration`` does), parse the
command line or print (``cli.py`` does, through :class:`SoakProgress`).
"""

from __future__ import annotations

import bisect
import contextlib
import inspect
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._guarantee import GUARANTEE_DEPTHS as GUARANTEE_DEPTHS
from ._guarantee import pct_guarantee as pct_guarantee
from ._guarantee import task_count as _owners
from .errors import SimloomUsageError
from .tape import Tape, atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "ChunkJob",
    "ChunkResult",
    "Ledger",
    "SoakFailure",
    "SoakPlan",
    "SoakResult",
    "parse_duration",
    "pct_guarantee",
    "run_chunk",
    "soak",
]

CHECKPOINT_FORMAT = "simloom-soak-checkpoint"
CHECKPOINT_VERSION = 1
#: Seeds per chunk unless told: large enough that handing one out costs little next
#: to running it, small enough that a dead worker loses little work.
DEFAULT_CHUNK = 50
#: The checkpoint is rewritten after a finished chunk at most this often (seconds);
#: and always at the end.
CHECKPOINT_EVERY = 1.0
#: A chunk whose worker died this many times is not handed out again: the soak
#: stops with an error naming it (a seed that kills its worker every time).
MAX_CHUNK_ATTEMPTS = 4
#: Failing seeds saved in the example database per soak: each is replayed (and
#: shrunk) by the next pytest run, so a soak of a very buggy program must not
#: bury the developer under thousands.
MAX_SAVED_FAILURES = 5


# ------------------------------------------------------------------- budgets


_DURATION = re.compile(r"(\d+(?:\.\d*)?)([hms]?)")


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"10m"``, ``"1h30m"``, ``"2.5h"``."""
    cleaned = text.strip().lower()
    position, seconds = 0, 0.0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}
    while position < len(cleaned):
        match = _DURATION.match(cleaned, position)
        # A bare number is seconds only when it is the whole duration.
        if match is None or (match.group(2) == "" and (position, match.end()) != (0, len(cleaned))):
            raise SimloomUsageError(
                f"time must be a duration such as 90s, 10m or 1h30m, got {text!r}"
            )
        seconds += float(match.group(1)) * units[match.group(2)]
        position = match.end()
    if not cleaned or seconds <= 0:
        raise SimloomUsageError(f"time must be a positive duration such as 10m, got {text!r}")
    return seconds


# ------------------------------------------------------------------- the ledger


class Ledger:
    """The seed ranges whose universes have run, as disjoint sorted intervals.

    :meth:`record` refuses a range that overlaps one already recorded, so a seed
    can never be counted twice; :meth:`missing` lists the holes below a bound."""

    def __init__(self, intervals: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._stops: list[int] = []
        for start, stop in intervals:
            self.record(start, stop)

    def record(self, start: int, stop: int) -> None:
        if not 0 <= start < stop:
            raise SimloomUsageError(
                f"a seed range must be 0 <= start < stop, got [{start}, {stop})"
            )
        index = bisect.bisect_right(self._starts, start)
        if index > 0 and self._stops[index - 1] > start:
            raise SimloomUsageError(
                f"seeds [{start}, {stop}) overlap seeds already run "
                f"[{self._starts[index - 1]}, {self._stops[index - 1]})"
            )
        if index < len(self._starts) and self._starts[index] < stop:
            raise SimloomUsageError(
                f"seeds [{start}, {stop}) overlap seeds already run "
                f"[{self._starts[index]}, {self._stops[index]})"
            )
        # Merge with the neighbours it touches.
        if index > 0 and self._stops[index - 1] == start:
            index -= 1
            start = self._starts[index]
            del self._starts[index], self._stops[index]
        if index < len(self._starts) and self._starts[index] == stop:
            stop = self._stops[index]
            del self._starts[index], self._stops[index]
        self._starts.insert(index, start)
        self._stops.insert(index, stop)

    def intervals(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._stops, strict=True))

    def count(self) -> int:
        """Seeds run."""
        return sum(stop - start for start, stop in self.intervals())

    def end(self) -> int:
        """One past the highest seed run (0 if none)."""
        return self._stops[-1] if self._stops else 0

    def missing(self, below: int) -> list[tuple[int, int]]:
        """The ranges of seeds under ``below`` not run yet."""
        holes: list[tuple[int, int]] = []
        position = 0
        for start, stop in self.intervals():
            if start >= below:
                break
            if start > position:
                holes.append((position, start))
            position = stop
        if position < below:
            holes.append((position, below))
        return holes

    def __contains__(self, seed: object) -> bool:
        if not isinstance(seed, int):
            return False
        index = bisect.bisect_right(self._starts, seed)
        return index > 0 and self._stops[index - 1] > seed


# ------------------------------------------------------------------- chunks


@dataclass(frozen=True)
class ChunkJob:
    """What a worker is handed: run seeds ``[start, stop)`` of ``target``."""

    target: str
    test_id: str
    scheduler: str | None
    cancellations: bool
    start: int
    stop: int
    attempt: int = 1


@dataclass(frozen=True)
class SoakFailure:
    """A failing universe a soak found."""

    seed: int
    scheduler: str
    error: str
    tape: str  # the tape's JSON

    def as_tape(self) -> Tape:
        return Tape.loads(self.tape)


@dataclass
class ChunkResult:
    """What a worker sends back for one chunk: every seed of it ran (``seeds`` is
    the count the worker itself made), with these failures and statistics."""

    start: int
    stop: int
    seeds: int
    worker: str
    attempt: int = 1
    failures: list[SoakFailure] = field(default_factory=list)
    pct_universes: int = 0
    max_owners: int = 0
    max_steps: int = 0
    pct_depth: int = 0
    seconds: float = 0.0


#: Per worker process: the exploration of the target it was last handed.
_worker_cache: dict[tuple[str, str, str | None, bool], Any] = {}


def _exploration(job: ChunkJob) -> Any:
    key = (job.target, job.test_id, job.scheduler, job.cancellations)
    exploration = _worker_cache.get(key)
    if exploration is None:
        exploration = load_exploration(
            job.target, job.test_id, scheduler=job.scheduler, cancellations=job.cancellations
        )
        _worker_cache.clear()
        _worker_cache[key] = exploration
    return exploration


def run_chunk(job: ChunkJob) -> ChunkResult:
    """Run one chunk (in whatever process is handed it) and say what it found."""
    from . import _api
    from ._scheduler import parse_scheduler

    exploration = _exploration(job)
    result = ChunkResult(
        job.start, job.stop, 0, worker=f"{os.uname().nodename}:{os.getpid()}", attempt=job.attempt
    )
    started = time.perf_counter()

    def explore() -> None:
        for seed in range(job.start, job.stop):
            universe = exploration._run_seed(seed)
            result.seeds += 1
            result.max_steps = max(result.max_steps, universe.steps)
            if universe.eager_starts is False:
                # PCT's guarantee is claimed only for universes run as the theorem
                # assumes: no eager starts, and change points drawn over every
                # decision the universe made (a horizon at least its decisions).
                spec = parse_scheduler(universe.scheduler)
                if spec.horizon >= universe.decisions:
                    result.pct_universes += 1
                    depth = spec.depth
                    result.pct_depth = min(result.pct_depth, depth) if result.pct_depth else depth
                    result.max_owners = max(result.max_owners, _owners(universe))
            if universe.error is not None:
                from ._report import _error_line

                result.failures.append(
                    SoakFailure(
                        seed,
                        universe.scheduler,
                        _error_line(universe.error),
                        universe.tape.to_json(),
                    )
                )

    _api.frozen_heap().run(explore)
    result.seconds = time.perf_counter() - started
    return result


# ------------------------------------------------------------------- targets


def load_exploration(
    target: str, test_id: str, *, scheduler: str | None, cancellations: bool
) -> Any:
    """The :class:`~simloom._explore._Exploration` of ``target``: an async function
    (``MODULE:FUNCTION``, ``FILE.py:FUNCTION``) explored as ``simloom explore``
    does, or an ``@simloom.test`` in a test file (``FILE.py::TEST``) explored with
    its own options."""
    from . import testing
    from ._config import UniverseConfig
    from ._explore import _Exploration
    from ._targets import load_async_function, load_attribute

    options = testing.Options(shrink=False, cancellations=cancellations)
    if "::" in target:
        where, _, name = target.partition("::")
        wrapper = load_attribute(f"{where}:{name.replace('::', '.')}")
        settings = _decorated_settings(target, wrapper)
        return _Exploration(
            settings["fn"],
            wrapper,
            (),
            {},
            options=options,
            test_id=test_id,
            runs=None,
            scheduler=scheduler or settings["scheduler"],
            required=[],
            config=settings["universe"],
            check_determinism=settings["check_determinism"],
            wants_world=settings["wants_world"],
        )
    function = load_async_function(target)
    return _Exploration(
        function,
        function,
        (),
        {},
        options=options,
        test_id=test_id,
        runs=None,
        scheduler=scheduler,
        required=[],
        config=UniverseConfig(),
        check_determinism=False,
        wants_world="world" in inspect.signature(function).parameters,
    )


def _decorated_settings(target: str, wrapper: Any) -> dict[str, Any]:
    """What ``@simloom.test`` was given for ``wrapper`` (read from its closure:
    the decorator keeps no other record of the function it wraps)."""
    if not getattr(wrapper, "_simloom_test", False):
        raise SimloomUsageError(f"target {target!r} is not decorated with @simloom.test")
    names = inspect.getclosurevars(wrapper).nonlocals
    wanted = ("fn", "scheduler", "universe", "check_determinism", "wants_world")
    if any(name not in names for name in wanted):  # pragma: no cover - testing.py changed
        raise SimloomUsageError(f"target {target!r}: cannot read its @simloom.test options")
    fixtures = [name for name in inspect.signature(names["fn"]).parameters if name != "world"]
    if fixtures:
        raise SimloomUsageError(
            f"target {target!r} takes pytest fixtures ({', '.join(fixtures)}); a soak runs "
            "tests outside pytest, so only a `world` parameter can be given"
        )
    return {name: names[name] for name in wanted}


# ------------------------------------------------------------------- the plan


@dataclass
class SoakPlan:
    """What to soak and how."""

    target: str
    test_id: str
    universes: int | None = None
    seconds: float | None = None
    workers: int = 1
    cluster: str | None = None
    chunk: int = DEFAULT_CHUNK
    scheduler: str | None = None
    cancellations: bool = False
    checkpoint: Path | None = None
    resume: bool = False
    #: ``None``: Hypothesis's default example database (``.hypothesis/examples``);
    #: ``"redis://host:port/db"``; a directory; ``"none"``: save nowhere.
    database: str | None = None
    max_failures: int = 1
    #: ``redis://host:port/db``: share the seed sequence with the other processes
    #: (machines) soaking the same ``share_name`` there (see ``_soak_redis``).
    share: str | None = None
    #: The shared soak's name (default: the test id and scheduler).
    share_name: str | None = None


@dataclass
class SoakResult:
    """What a soak did (and what its checkpoint holds)."""

    target: str
    test_id: str
    scheduler: str | None
    ledger: Ledger
    #: Every chunk this run finished, in the order they came back.
    chunks: list[ChunkResult] = field(default_factory=list)
    failures: list[SoakFailure] = field(default_factory=list)
    universes: int = 0
    pct_universes: int = 0
    max_owners: int = 0
    max_steps: int = 0
    pct_depth: int = 0
    #: Chunks handed out again after their worker died.
    retried: int = 0
    seconds: float = 0.0
    #: Failures saved in the example database by this run.
    saved: int = 0
    resumed_from: int = 0
    #: Where the checkpoint was written.
    checkpoint: Path | None = None
    #: A shared soak: the seed ranges every process of it has run (from Redis),
    #: and which processes ran them.
    shared_intervals: list[tuple[int, int]] | None = None
    shared_workers: int = 0

    def add(self, chunk: ChunkResult) -> None:
        self.ledger.record(chunk.start, chunk.stop)
        if chunk.seeds != chunk.stop - chunk.start:
            raise SimloomUsageError(
                f"chunk [{chunk.start}, {chunk.stop}) came back with {chunk.seeds} seeds run"
            )
        self.chunks.append(chunk)
        self.failures.extend(chunk.failures)
        self.universes += chunk.seeds
        self.pct_universes += chunk.pct_universes
        self.max_owners = max(self.max_owners, chunk.max_owners)
        self.max_steps = max(self.max_steps, chunk.max_steps)
        if chunk.pct_universes:
            # The guarantee holds for bugs no deeper than the shallowest universe's.
            self.pct_depth = (
                min(self.pct_depth, chunk.pct_depth) if self.pct_depth else chunk.pct_depth
            )

    @property
    def rate(self) -> float:
        """Universes per second in this run."""
        ran = sum(chunk.seeds for chunk in self.chunks)
        return ran / self.seconds if self.seconds > 0 else 0.0

    def guarantee(self) -> str | None:
        return pct_guarantee(
            self.pct_universes, self.max_owners, self.max_steps, depth=self.pct_depth
        )

    # -- the checkpoint file

    def to_json(self) -> bytes:
        document = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "target": self.target,
            "test_id": self.test_id,
            "scheduler": self.scheduler,
            "seeds_run": [list(interval) for interval in self.ledger.intervals()],
            "universes": self.universes,
            "pct_universes": self.pct_universes,
            "max_owners": self.max_owners,
            "max_steps": self.max_steps,
            "pct_depth": self.pct_depth,
            "retried": self.retried,
            "failures": [asdict(failure) for failure in self.failures],
        }
        return json.dumps(document, indent=1).encode()

    @classmethod
    def from_checkpoint(cls, path: Path) -> SoakResult:
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise SimloomUsageError(f"no checkpoint to resume from: {path}") from None
        except (OSError, ValueError) as exc:
            raise SimloomUsageError(f"checkpoint {path} cannot be read: {exc}") from None
        if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
            raise SimloomUsageError(f"{path} is not a simloom soak checkpoint")
        if document.get("version") != CHECKPOINT_VERSION:
            raise SimloomUsageError(
                f"checkpoint {path} has version {document.get('version')!r}; this simloom "
                f"reads version {CHECKPOINT_VERSION}"
            )
        try:
            result = cls(
                target=str(document["target"]),
                test_id=str(document["test_id"]),
                scheduler=document["scheduler"],
                ledger=Ledger((int(a), int(b)) for a, b in document["seeds_run"]),
                failures=[SoakFailure(**failure) for failure in document["failures"]],
                universes=int(document["universes"]),
                pct_universes=int(document["pct_universes"]),
                max_owners=int(document["max_owners"]),
                max_steps=int(document["max_steps"]),
                pct_depth=int(document["pct_depth"]),
                retried=int(document["retried"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SimloomUsageError(f"checkpoint {path} is corrupt: {exc!r}") from None
        if result.universes != result.ledger.count():
            raise SimloomUsageError(
                f"checkpoint {path} is corrupt: {result.universes} universes but "
                f"{result.ledger.count()} seeds in its ledger"
            )
        result.resumed_from = result.universes
        return result


# ------------------------------------------------------------------- running


@dataclass(frozen=True)
class SoakProgress:
    """Told after each finished chunk."""

    universes: int
    total: int | None
    failures: int
    elapsed: float
    seconds: float | None


def _default_checkpoint(test_id: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_id).strip("_") or "target"
    return Path(".sim") / "soak" / f"{safe}.checkpoint.json"


class _Handout:
    """The chunks still to hand out: holes of a resumed run first, then chunks of
    fresh seeds, then (once the budget is reached) nothing; and chunks given back
    when their worker died."""

    def __init__(self, plan: SoakPlan, ledger: Ledger) -> None:
        self.plan = plan
        self.retry: list[tuple[int, int, int]] = []
        self.next_seed = ledger.end()
        below = ledger.end() if plan.universes is None else min(ledger.end(), plan.universes)
        for start, stop in ledger.missing(below):
            for low in range(start, stop, plan.chunk):
                self.retry.append((low, min(stop, low + plan.chunk), 1))
        self.stopped = False

    def take(self) -> tuple[int, int, int] | None:
        if self.retry:
            return self.retry.pop(0)
        if self.stopped:
            return None
        limit = self.plan.universes
        if limit is not None and self.next_seed >= limit:
            return None
        stop = self.next_seed + self.plan.chunk
        if limit is not None:
            stop = min(stop, limit)
        chunk = (self.next_seed, stop, 1)
        self.next_seed = stop
        return chunk

    def give_back(self, job: ChunkJob) -> None:
        if job.attempt >= MAX_CHUNK_ATTEMPTS:
            raise SimloomUsageError(
                f"seeds [{job.start}, {job.stop}) of {job.test_id} killed their worker "
                f"{job.attempt} times; run one alone: simloom explore TARGET --seed {job.start}"
            )
        self.retry.append((job.start, job.stop, job.attempt + 1))


def soak(plan: SoakPlan, *, progress: Callable[[SoakProgress], None] | None = None) -> SoakResult:
    """Run ``plan``; return what it did (its checkpoint holds the same)."""
    if plan.universes is None and plan.seconds is None:
        raise SimloomUsageError("a soak needs a budget: universes=N or seconds=S (or both)")
    if plan.workers < 1:
        raise SimloomUsageError(f"workers must be >= 1, got {plan.workers}")
    if plan.chunk < 1:
        raise SimloomUsageError(f"chunk must be >= 1, got {plan.chunk}")
    checkpoint = plan.checkpoint or _default_checkpoint(plan.test_id)
    if plan.resume:
        result = SoakResult.from_checkpoint(checkpoint)
        if (result.target, result.test_id, result.scheduler) != (
            plan.target,
            plan.test_id,
            plan.scheduler,
        ):
            raise SimloomUsageError(
                f"checkpoint {checkpoint} is of {result.test_id} (scheduler "
                f"{result.scheduler or 'default'}), not {plan.test_id} (scheduler "
                f"{plan.scheduler or 'default'}); resume with the same target and scheduler"
            )
    else:
        result = SoakResult(plan.target, plan.test_id, plan.scheduler, Ledger())
    # Fail on a bad target here, before any worker starts.
    exploration = load_exploration(
        plan.target, plan.test_id, scheduler=plan.scheduler, cancellations=plan.cancellations
    )
    result.checkpoint = checkpoint
    handout = _Handout(plan, result.ledger)
    shared = None
    if plan.share is not None:
        from ._soak_redis import SharedSeeds

        if plan.resume:
            raise SimloomUsageError(
                "a shared soak resumes from its Redis server: run the same command again "
                "(without --resume)"
            )
        shared = SharedSeeds(
            plan.share,
            plan.share_name or f"{plan.test_id}|{plan.scheduler or 'default'}",
            chunk=plan.chunk,
            universes=plan.universes,
            owner=f"{os.uname().nodename}:{os.getpid()}",
        )
    started = time.perf_counter()
    last_checkpoint = started

    def next_job() -> ChunkJob | None:
        if plan.seconds is not None and time.perf_counter() - started >= plan.seconds:
            handout.stopped = True
        if len(result.failures) >= plan.max_failures:
            handout.stopped = True
        if shared is not None:
            if handout.stopped:
                return None
            claim = shared.claim(wait=True)
            if claim is None:
                return None
            start, stop = shared.seeds(claim.chunk)
            attempt = claim.attempt
            if attempt > MAX_CHUNK_ATTEMPTS:
                raise SimloomUsageError(
                    f"seeds [{start}, {stop}) of {plan.test_id} killed their worker "
                    f"{attempt - 1} times; run one alone: simloom explore TARGET --seed {start}"
                )
            return ChunkJob(
                plan.target, plan.test_id, plan.scheduler, plan.cancellations, start, stop, attempt
            )
        chunk = handout.take()
        if chunk is None:
            return None
        start, stop, attempt = chunk
        return ChunkJob(
            plan.target, plan.test_id, plan.scheduler, plan.cancellations, start, stop, attempt
        )

    def finished(chunk: ChunkResult) -> None:
        nonlocal last_checkpoint
        if shared is not None and not shared.finish(chunk.start // plan.chunk, chunk.worker):
            return  # another process recorded it first (it outlived its lease)
        result.add(chunk)
        result.seconds = time.perf_counter() - started
        now = time.perf_counter()
        if now - last_checkpoint >= CHECKPOINT_EVERY:
            atomic_write(checkpoint, result.to_json())
            last_checkpoint = now
        if progress is not None:
            progress(
                SoakProgress(
                    result.universes,
                    plan.universes,
                    len(result.failures),
                    now - started,
                    plan.seconds,
                )
            )

    def died(job: ChunkJob) -> None:
        result.retried += 1
        if shared is not None:
            shared.give_back(job.start // plan.chunk)
        else:
            handout.give_back(job)

    try:
        if plan.cluster is not None:
            _run_on_cluster(plan.cluster, next_job, finished, died, plan.workers)
        elif plan.workers == 1:
            while (job := next_job()) is not None:
                finished(run_chunk(job))
        else:
            _run_on_processes(plan.workers, next_job, finished, died)
    finally:
        result.seconds = time.perf_counter() - started
        atomic_write(checkpoint, result.to_json())
    if shared is not None:
        done = shared.done()
        result.shared_intervals = Ledger(shared.seeds(chunk) for chunk in done).intervals()
        result.shared_workers = len(set(done.values()))
    result.saved = _save_failures(plan, exploration, result.failures)
    return result


def _run_on_processes(
    workers: int,
    next_job: Callable[[], ChunkJob | None],
    finished: Callable[[ChunkResult], None],
    died: Callable[[ChunkJob], None],
) -> None:
    """Local worker processes (spawned: a fork would copy the coordinator's engine
    and threads), two chunks in flight per worker. A worker that dies breaks the
    pool: its chunks (and the others in flight) are handed out again to a new one."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from ._hashseed import pinned_environment

    context = multiprocessing.get_context("spawn")
    with _environment(pinned_environment(os.environ)):
        while True:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
            in_flight: dict[Future[ChunkResult], ChunkJob] = {}
            broken = False
            try:
                while True:
                    while not broken and len(in_flight) < 2 * workers:
                        job = next_job()
                        if job is None:
                            break
                        in_flight[pool.submit(run_chunk, job)] = job
                    if not in_flight:
                        return
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        job = in_flight.pop(future)
                        try:
                            finished(future.result())
                        except BrokenProcessPool:
                            broken = True
                            died(job)
                    if broken:
                        # The pool fails every chunk still out; those that did finish
                        # before it broke keep their results.
                        for future, job in in_flight.items():
                            if (
                                future.done()
                                and not future.cancelled()
                                and future.exception() is None
                            ):
                                finished(future.result())
                            else:
                                died(job)
                        in_flight.clear()
                        break
            finally:
                pool.shutdown(wait=not broken, cancel_futures=True)


@contextlib.contextmanager
def _environment(environment: dict[str, str]) -> Iterator[None]:
    """``os.environ`` as ``environment`` while worker processes start (they inherit
    it: a pinned hash seed makes their universes the coordinator's)."""
    saved = dict(os.environ)
    os.environ.update(environment)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run_on_cluster(
    address: str,
    next_job: Callable[[], ChunkJob | None],
    finished: Callable[[ChunkResult], None],
    died: Callable[[ChunkJob], None],
    workers: int,
) -> None:
    """A Dask distributed cluster at ``address``: each chunk is one task. A task
    whose worker died (Dask gives up on it, or its result never comes) is handed
    out again as a new task; a chunk counts when its result arrives."""
    import importlib

    try:
        # Untyped: reached through Any.
        distributed: Any = importlib.import_module("distributed")
    except ImportError:  # pragma: no cover - distributed is optional
        raise SimloomUsageError(
            "--cluster needs Dask distributed: pip install distributed"
        ) from None

    with distributed.Client(address, set_as_default=False) as client:
        capacity = max(workers, sum(client.nthreads().values()) or 1)
        in_flight: dict[Any, ChunkJob] = {}
        pending = distributed.as_completed([], loop=client.loop)

        def submit() -> None:
            while len(in_flight) < 2 * capacity:
                job = next_job()
                if job is None:
                    return
                # pure=False: a retried chunk is a new task, not the failed one.
                future = client.submit(run_chunk, job, pure=False, retries=0)
                in_flight[future] = job
                pending.add(future)

        submit()
        while in_flight:
            future = next(pending)
            job = in_flight.pop(future)
            try:
                chunk = future.result()
            except distributed.KilledWorker:
                died(job)
            except SimloomUsageError as exc:  # the target cannot be loaded there
                raise SimloomUsageError(f"on the cluster's worker: {exc}") from None
            except Exception as exc:
                if future.status == "error" and not _lost_worker(exc):
                    raise SimloomUsageError(
                        f"seeds [{job.start}, {job.stop}) failed on the cluster: "
                        f"{type(exc).__name__}: {exc}"
                    ) from None
                died(job)
            else:
                finished(chunk)
            submit()


def _lost_worker(error: BaseException) -> bool:
    """Whether a Dask task's error says its worker went away (as opposed to the
    chunk itself raising)."""
    names = {type(error).__name__ for error in _chain(error)}
    return bool(
        names & {"KilledWorker", "CommClosedError", "FutureCancelledError", "CancelledError"}
    )


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _save_failures(plan: SoakPlan, exploration: Any, failures: list[SoakFailure]) -> int:
    """Save the first failures, unshrunk, under the test's example-database key
    (the secondary one: the next run replays *and shrinks* them)."""
    if not failures or plan.database == "none":
        return 0
    from hypothesis import settings

    from ._shrink import _HypothesisRun

    database = open_database(plan.database)
    base = settings(database=database) if database is not None else exploration.settings
    hypothesis_run = _HypothesisRun(
        plan.test_id,
        exploration.main,
        base,
        exploration.config,
        shrink=False,
        scheduler=exploration._question_model(),
    )
    if not hypothesis_run.persistent:
        return 0
    saved = 0
    for failure in failures[:MAX_SAVED_FAILURES]:
        hypothesis_run.save(failure.as_tape())
        saved += 1
    return saved


def open_database(spec: str | None) -> Any:
    """The example database ``spec`` names: ``None`` (Hypothesis's default
    settings' one), ``redis://host:port/db`` (a Redis server, shared by machines),
    or a directory."""
    if spec is None:
        return None
    if spec.startswith(("redis://", "rediss://", "unix://")):
        try:
            import redis
            from hypothesis.extra.redis import RedisExampleDatabase
        except ImportError:  # pragma: no cover - redis is optional
            raise SimloomUsageError(
                "a Redis example database needs redis-py: pip install redis"
            ) from None
        return RedisExampleDatabase(redis.Redis.from_url(spec))
    from hypothesis.database import DirectoryBasedExampleDatabase

    return DirectoryBasedExampleDatabase(spec)
