"""Bounded systematic search: every schedule with at most ``d`` deviations from FIFO.

A universe is a sequence of decisions, each answered with a rank in ``[0, bound)``;
rank 0 is the canonical (FIFO) answer and any other rank is a *deviation*. The
search walks *deviation sets*, one size at a time: it runs the canonical schedule
and records its decisions; for each set of k deviations, each decision ``i`` after
the set's last deviation and each alternative rank ``1..bound-1``, it replays the
set plus ``(i, rank)`` as a tape, and records that child's own decisions to extend
it at size k+1 (a decision's bound, and the decisions after it, can change with
earlier answers). Every set of at most ``d`` deviations that the program can take
is thereby run exactly once: a set is reached only from itself minus its last
deviation, and deviations are added in increasing index order. Every set of k
deviations runs before any of k+1, so a failure found has the fewest deviations any
failure within the bound has, and a search cut short by its cap has still proven
the sizes it finished.

One reduction, sound by construction: a decision that only weights what a *seeded*
strategy would answer later (``inject.rate``, the injection rate of
``cancellations=True``) is never deviated, since under a forced schedule (a tape)
its answer changes nothing: the schedule with it deviated runs exactly the schedule
without, which has one deviation fewer. Otherwise no schedule is skipped as
equivalent to another: the search does no partial-order reduction (see
docs/schedulers.md, "Bounded systematic search"). What it proves is
stated by :attr:`SystematicResult.proof`, never more: with no failure and the space
exhausted, "no failure in any schedule with at most d deviations from FIFO", with
the count of schedules and of decisions seen.

Owns: the enumeration and its result. Must not: parse scheduler names
(``_scheduler.py``) or report failures of ``@simloom.test`` (``_explore.py``).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _api, _core, _selfcheck
from ._api import Main, RunResult
from ._cancellations import RATE_LABEL
from ._config import UniverseConfig
from ._scheduler import (
    DEFAULT_MAX_SCHEDULES,
    DEFAULT_SYSTEMATIC_DEVIATIONS,
    MAX_SCHEDULES_LIMIT,
    MAX_SYSTEMATIC_DEVIATIONS,
)
from ._validation import check_flag, check_int
from .errors import SimloomError, SimloomNondeterminismError, SimloomUsageError
from .loop import SimLoop
from .tape import Tape

__all__ = ["SystematicResult", "explore_systematic", "search"]

#: One deviation: (decision index, nonzero rank).
Deviation = tuple[int, int]
#: A schedule the search may extend: its deviations, its decisions after the last
#: of them (packed: see :func:`_decisions`), and how many deviations reorder
#: ready callbacks.
Extendable = tuple[tuple[Deviation, ...], "array[int]", int]


@dataclass
class SystematicResult:
    """What a bounded systematic search did, and what it proved.

    ``exhausted`` is true when every schedule with at most ``deviations`` deviations
    from FIFO was run; ``failure`` is the first failing universe found (its ``tape``
    replays it with :func:`simloom.replay`), or ``None``. ``schedules`` counts the
    universes run (the canonical one included). ``min_decisions`` and
    ``max_decisions`` are the fewest and most decisions a schedule made: when they
    differ, the schedules did not all have the same decisions to deviate at.
    """

    deviations: int
    max_schedules: int
    #: At most this many of the deviations reorder ready callbacks (``p=``), or
    #: ``None`` when only ``deviations`` bounds them.
    preemptions: int | None = None
    schedules: int = 0
    exhausted: bool = False
    failure: RunResult | None = None
    canonical_decisions: int = 0
    min_decisions: int = 0
    max_decisions: int = 0
    #: Schedules per number of deviations (index 0: the canonical one).
    by_deviations: list[int] = field(default_factory=list)
    #: Every schedule with at most this many deviations ran and passed (-1: not
    #: even FIFO). The search runs all schedules with k deviations before any with
    #: k+1, so this holds however it ended.
    clean_up_to: int = -1

    @property
    def ok(self) -> bool:
        """True if no schedule failed (whether or not the bound was exhausted)."""
        return self.failure is None

    @property
    def proof(self) -> str:
        """What was proven, in words, and no more."""
        d = self.deviations
        plural = "" if d == 1 else "s"
        if self.preemptions is not None:
            plural += (
                f" ({'none' if self.preemptions == 0 else f'at most {self.preemptions}'}"
                " of them reordering ready callbacks)"
            )
        if self.failure is not None:
            tape = list(self.failure.tape.deviations)
            k = len(tape)
            text = (
                f"failure found in schedule {self.schedules}, with {k} deviation"
                f"{'' if k == 1 else 's'} from FIFO ({tape})"
            )
            if k:
                text += (
                    f"; no failure in any schedule with at most {k - 1} deviation"
                    f"{'' if k == 2 else 's'} ({self.schedules - self.by_deviations[k]} "
                    "schedules, all run): no schedule with fewer deviations fails"
                )
            return text
        if not self.exhausted:
            clean = self.clean_up_to
            return (
                f"bound not exhausted after {self.schedules} schedules (max_schedules="
                f"{self.max_schedules}): no failure in any schedule with at most {clean} "
                f"deviation{'' if clean == 1 else 's'} from FIFO (all run); nothing proven "
                f"about the schedules with {clean + 1} to {d} deviations not run"
            )
        text = (
            f"no failure in any schedule with at most {d} deviation{plural} from FIFO over "
            f"the {self.canonical_decisions} decisions of this program's FIFO schedule "
            f"({self.schedules} schedule{'' if self.schedules == 1 else 's'}, all run)"
        )
        if self.min_decisions != self.max_decisions:
            text += (
                f"; the number of decisions differs between schedules (from "
                f"{self.min_decisions} to {self.max_decisions}): each schedule's bound "
                "counts deviations among its own decisions"
            )
        return text

    def __str__(self) -> str:
        return self.proof


#: The decisions that order ready callbacks: a deviation there is a preemption.
ORDER_LABELS = frozenset({"sched.pick", "timer.order"})
#: Decisions whose answer only weights later answers of a seeded strategy: under a
#: tape they change nothing, so they are never deviated (the reduction).
NEUTRAL_LABELS = frozenset({RATE_LABEL})


def _decisions(result: RunResult) -> array[int]:
    """Each decision the universe made, in order, packed as ``bound << 1 | orders``:
    its bound (1 for a neutral one: no alternative worth running), and whether it
    orders ready callbacks. Packed, because the search keeps the decisions of every
    schedule it will extend (eight bytes a decision, not a tuple)."""
    labels: list[str] = []
    decisions: array[int] = array("Q")
    for raw in _core.decode_event_log(result.event_log_bytes):
        kind = raw[0]
        if kind == "label":
            labels.append(raw[2])
        elif kind == "decision":
            label = labels[raw[1]]
            bound = 1 if label in NEUTRAL_LABELS else int(raw[2])
            decisions.append(bound << 1 | (label in ORDER_LABELS))
    return decisions


def search(
    replay: Callable[[Tape], RunResult],
    deviations: int,
    max_schedules: int,
    on_result: Callable[[RunResult], None] | None = None,
    preemptions: int | None = None,
) -> SystematicResult:
    """The search over ``replay`` (a tape → its universe), one deviation count at a
    time: every schedule with k deviations runs before any with k+1."""
    outcome = SystematicResult(
        deviations, max_schedules, preemptions, by_deviations=[0] * (deviations + 1)
    )
    preemption_bound = deviations if preemptions is None else preemptions

    def run(devs: tuple[Deviation, ...]) -> array[int] | None:
        """Run one schedule: its decisions, or ``None`` if it failed."""
        result = replay(Tape(list(devs)))
        if result.misaligned:
            raise SimloomNondeterminismError(
                f"systematic search: the schedule with deviations {list(devs)} did not fit "
                "the program (a decision it deviates at was not asked, or had fewer "
                "alternatives than in the run it was derived from): the program is not "
                "deterministic under a fixed schedule; check_determinism=True names the "
                "source"
            )
        decisions = _decisions(result)
        count = len(decisions)
        if count != result.decisions:  # the enumeration would miss alternatives
            raise SimloomError(
                f"systematic search: the event log of the schedule with deviations "
                f"{list(devs)} lists {count} decisions, the engine counted "
                f"{result.decisions}; refusing to claim the bound was covered"
            )
        if outcome.schedules == 0:
            outcome.canonical_decisions = outcome.min_decisions = outcome.max_decisions = count
        outcome.min_decisions = min(outcome.min_decisions, count)
        outcome.max_decisions = max(outcome.max_decisions, count)
        outcome.schedules += 1
        outcome.by_deviations[len(devs)] += 1
        if on_result is not None:
            on_result(result)
        if result.error is not None:
            outcome.failure = result
            return None
        return decisions

    canonical = run(())
    if canonical is None:
        return outcome
    outcome.clean_up_to = 0
    # The schedules of the current deviation count that may be extended: their
    # deviations, their decisions, and how many deviations reorder ready callbacks.
    frontier: list[Extendable] = [((), canonical, 0)]
    for level in range(1, deviations + 1):
        following: list[Extendable] = []
        for devs, decisions, preempted in frontier:
            start = devs[-1][0] + 1 if devs else 0
            for offset, packed in enumerate(decisions):
                bound, orders = packed >> 1, packed & 1
                if orders and preempted >= preemption_bound:
                    continue
                index = start + offset
                for rank in range(1, bound):
                    if outcome.schedules >= max_schedules:
                        return outcome
                    child = (*devs, (index, rank))
                    ran = run(child)
                    if ran is None:
                        return outcome
                    if level < deviations:
                        following.append((child, ran[index + 1 :], preempted + orders))
        outcome.clean_up_to = level
        frontier = following
    outcome.exhausted = True
    return outcome


def explore_systematic(
    main: Main,
    *,
    deviations: int = DEFAULT_SYSTEMATIC_DEVIATIONS,
    max_schedules: int = DEFAULT_MAX_SCHEDULES,
    preemptions: int | None = None,
    check_determinism: bool = False,
    config: UniverseConfig | None = None,
    **options: Any,
) -> SystematicResult:
    """Run ``main`` under every schedule with at most ``deviations`` deviations from
    the canonical (FIFO) schedule, stopping at the first failure or after
    ``max_schedules`` schedules; say what was proven (:attr:`SystematicResult.proof`).

    A deviation is a decision answered with a nonzero rank: a ready callback run
    ahead of older ones, a fault, a ``simloom.draw`` other than 0, an injected
    cancellation (``cancellations=True``). ``preemptions`` bounds, further, the
    deviations that reorder ready callbacks (``sched.pick``, ``timer.order``); the
    others (draws, faults, injections) count only towards ``deviations``. The
    ``check_determinism=True`` runs every schedule twice and raises
    :class:`~simloom.SimloomNondeterminismError` if the runs differ. The universe
    options (``boundary``,
    budgets, ``cancellations``...) are those of :func:`simloom.run`, as keywords or
    as ``config=``. See docs/schedulers.md, "Bounded systematic search".
    """
    check_int("deviations", deviations, minimum=0, maximum=MAX_SYSTEMATIC_DEVIATIONS)
    check_int("max_schedules", max_schedules, minimum=1, maximum=MAX_SCHEDULES_LIMIT)
    if preemptions is not None:
        check_int("preemptions", preemptions, minimum=0, maximum=MAX_SYSTEMATIC_DEVIATIONS)
    check_flag("check_determinism", check_determinism)
    universe = _config(config, options)
    _api._check_main(main)
    replay = replayer(main, universe, check_determinism=check_determinism)

    return _api.frozen_heap().run(search, replay, deviations, max_schedules, None, preemptions)


def replayer(
    main: Main, config: UniverseConfig, *, check_determinism: bool = False
) -> Callable[[Tape], RunResult]:
    """What runs one schedule: a replay of its tape (twice, compared, when
    ``check_determinism``)."""
    if not check_determinism:
        return lambda tape: _api.replay(main, tape, config=config)

    def checked(tape: Tape) -> RunResult:
        return _selfcheck.run_twice(
            lambda trace: _api._universe(
                main,
                trace(SimLoop(tape=tape, config=config)),
                None,
                "replay",
                config.boundary_settings,
            ),
            f"the systematic schedule with deviations {list(tape.deviations)}",
        )

    return checked


def _config(config: UniverseConfig | None, options: dict[str, Any]) -> UniverseConfig:
    if not options:
        if config is not None and not isinstance(config, UniverseConfig):
            raise SimloomUsageError(
                f"config must be a simloom.UniverseConfig, got {type(config).__name__}"
            )
        return config or UniverseConfig()
    if config is not None:
        raise SimloomUsageError(
            f"pass either config= or {', '.join(f'{n}=' for n in options)}, not both"
        )
    try:
        return UniverseConfig(**options)
    except TypeError as exc:
        raise SimloomUsageError(f"explore_systematic(): {exc}") from None
