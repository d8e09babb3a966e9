"""The bug zoo: small racy asyncio programs, one bug class each, plus correct controls.

Every program is an ``async def`` taking no arguments, with a one-line docstring naming
its class. A **bug** passes on the stock asyncio loop and under simloom's FIFO
scheduler (the stock order) and fails -- ``AssertionError``, or
``simloom.SimDeadlockError`` for the lock-order deadlock -- under some other
interleaving. A **control** has the same shape with the bug fixed and must pass under
every schedule.

Which scheduler finds what (``benchmarks/zoo_rates.py`` has the figures): the uniform
random walk finds every bug; PCT finds ``starvation`` at once where the random walk
rarely does, but PCT of depth 3 cannot produce the three preemptions
``deep_ordering`` needs; PCT with the fixed horizon of 100 decisions rarely preempts
inside the few decisions of the smallest programs (``pct:auto`` does).

``BUGS`` and ``CONTROLS`` keep a stable order (the bug classes in the order of the
zoo's issue). ``tests/test_zoo.py`` checks the zoo; ``benchmarks/zoo_rates.py``
measures how fast each scheduler finds each bug.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import simloom

from .cancel_leak import cancel_leaks_lock, cancel_safe_lock
from .check_then_act import check_then_act, single_flight_cache
from .condition_if import condition_if_not_while, condition_while
from .deep_ordering import deep_ordering
from .double_init import double_init, locked_init
from .lock_order import lock_order_deadlock, ordered_locks
from .lost_update import locked_counter, lost_update
from .starvation import starvation
from .taskgroup_half import taskgroup_commit_after, taskgroup_half_applied
from .timeout_race import idempotent_retry, timeout_same_instant

Program = Callable[[], Awaitable[Any]]

#: Racy programs, one bug class each: pass under the stock order, fail under some other.
BUGS: dict[str, Program] = {
    "lost_update": lost_update,
    "check_then_act": check_then_act,
    "double_init": double_init,
    "cancel_leaks_lock": cancel_leaks_lock,
    "timeout_same_instant": timeout_same_instant,
    "taskgroup_half_applied": taskgroup_half_applied,
    "lock_order_deadlock": lock_order_deadlock,
    "condition_if_not_while": condition_if_not_while,
    "starvation": starvation,
    "deep_ordering": deep_ordering,
}

#: The same shapes with the bug fixed: must pass under every schedule.
CONTROLS: dict[str, Program] = {
    "locked_counter": locked_counter,
    "single_flight_cache": single_flight_cache,
    "locked_init": locked_init,
    "cancel_safe_lock": cancel_safe_lock,
    "idempotent_retry": idempotent_retry,
    "taskgroup_commit_after": taskgroup_commit_after,
    "ordered_locks": ordered_locks,
    "condition_while": condition_while,
}


#: Every program, bugs first.
PROGRAMS: dict[str, Program] = {**BUGS, **CONTROLS}


def describe(program: Program) -> str:
    """The first line of a program's docstring: its bug class."""
    return (program.__doc__ or "").strip().splitlines()[0]


def scheduler_for(scheduler: str, seed: int) -> str:
    """The scheduler seed ``seed`` runs under: ``"random|pct"`` alternates (even seeds
    random, odd seeds PCT); a plain name is used for every seed."""
    options = scheduler.split("|")
    return options[seed % len(options)]


def explore(program: Program, scheduler: str, seeds: range) -> Iterator[simloom.RunResult]:
    """``simloom.run(program, seed=s, scheduler=scheduler_for(scheduler, s))`` for each
    seed, in order (``"random|pct"`` alternates schedulers across seeds)."""
    for seed in seeds:
        yield simloom.run(program, seed=seed, scheduler=scheduler_for(scheduler, seed))


def first_failure(program: Program, scheduler: str, seeds: range) -> simloom.RunResult | None:
    """The first failing universe among ``seeds`` (``None`` if every one passed)."""
    for result in explore(program, scheduler, seeds):
        if not result.ok:
            return result
    return None


__all__ = [
    "BUGS",
    "CONTROLS",
    "PROGRAMS",
    "Program",
    "describe",
    "explore",
    "first_failure",
    "scheduler_for",
]
