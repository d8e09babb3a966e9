"""The bug zoo: small racy asyncio programs, one bug class each, plus correct controls.

21 bugs, 19 controls (``starvation`` and ``deep_ordering`` have none).

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

Two bugs, ``sem_cancel_leak`` and ``queue_cancel_lost`` (listed in
``NEEDS_CANCELLATIONS``), show only under injected cancellations
(``cancellations=True``): nothing in them cancels anything, so they pass every plain
schedule. ``iterate_while_mutated`` fails with ``RuntimeError`` (a dict changed size
during iteration), every other bug with ``AssertionError``.

``BUGS`` and ``CONTROLS`` keep a stable order (the first ten bug classes in the
order of the zoo's issue, then those of issue 13). ``tests/test_zoo.py`` checks the zoo; ``benchmarks/zoo_rates.py``
measures how fast each scheduler finds each bug.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import simloom

from .asyncgen_cleanup import asyncgen_aclosing, asyncgen_cleanup_race
from .cancel_injected import (
    queue_cancel_lost,
    queue_requeue_safe,
    sem_async_with,
    sem_cancel_leak,
)
from .cancel_leak import cancel_leaks_lock, cancel_safe_lock
from .check_then_act import check_then_act, single_flight_cache
from .condition_if import condition_if_not_while, condition_while
from .deep_ordering import deep_ordering
from .double_init import double_init, locked_init
from .iterate_mutate import iterate_snapshot, iterate_while_mutated
from .lease_timers import lease_renewed_at_expiry, lease_renewed_early
from .lock_no_recheck import lock_with_recheck, lock_without_recheck
from .lock_order import lock_order_deadlock, ordered_locks
from .lost_update import locked_counter, lost_update
from .lost_wakeup import event_clear_then_recheck, lost_wakeup
from .priority_inversion import no_await_under_lock, priority_inversion
from .publish_init import publish_after_init, publish_before_init
from .reordering import message_reordering, sequenced_messages
from .stale_cache import stale_cache_fill, versioned_cache_fill
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
    "lost_wakeup": lost_wakeup,
    "priority_inversion": priority_inversion,
    "message_reordering": message_reordering,
    "lease_renewed_at_expiry": lease_renewed_at_expiry,
    "asyncgen_cleanup_race": asyncgen_cleanup_race,
    "publish_before_init": publish_before_init,
    "iterate_while_mutated": iterate_while_mutated,
    "stale_cache_fill": stale_cache_fill,
    "lock_without_recheck": lock_without_recheck,
    "sem_cancel_leak": sem_cancel_leak,
    "queue_cancel_lost": queue_cancel_lost,
}

#: Bugs that show only under injected cancellations (``cancellations=True``): under
#: every plain schedule they pass. Rate tables run them with injection on, or skip them.
NEEDS_CANCELLATIONS: frozenset[str] = frozenset({"sem_cancel_leak", "queue_cancel_lost"})

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
    "event_clear_then_recheck": event_clear_then_recheck,
    "no_await_under_lock": no_await_under_lock,
    "sequenced_messages": sequenced_messages,
    "lease_renewed_early": lease_renewed_early,
    "asyncgen_aclosing": asyncgen_aclosing,
    "publish_after_init": publish_after_init,
    "iterate_snapshot": iterate_snapshot,
    "versioned_cache_fill": versioned_cache_fill,
    "lock_with_recheck": lock_with_recheck,
    "sem_async_with": sem_async_with,
    "queue_requeue_safe": queue_requeue_safe,
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


def explore(
    program: Program, scheduler: str, seeds: range, *, cancellations: bool = False
) -> Iterator[simloom.RunResult]:
    """``simloom.run(program, seed=s, scheduler=scheduler_for(scheduler, s))`` for each
    seed, in order (``"random|pct"`` alternates schedulers across seeds);
    ``cancellations=True`` injects cancellations."""
    for seed in seeds:
        yield simloom.run(
            program,
            seed=seed,
            scheduler=scheduler_for(scheduler, seed),
            cancellations=cancellations,
        )


def first_failure(
    program: Program, scheduler: str, seeds: range, *, cancellations: bool = False
) -> simloom.RunResult | None:
    """The first failing universe among ``seeds`` (``None`` if every one passed)."""
    for result in explore(program, scheduler, seeds, cancellations=cancellations):
        if not result.ok:
            return result
    return None


__all__ = [
    "BUGS",
    "CONTROLS",
    "NEEDS_CANCELLATIONS",
    "PROGRAMS",
    "Program",
    "describe",
    "explore",
    "first_failure",
    "scheduler_for",
]
