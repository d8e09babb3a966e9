"""Parity: interleaving-independent programs behave the same under SimLoop as under
the stock asyncio loop -- the same value, or the same exception (type and text; for an
exception group, the same tree of leaves).

Each program in ``parity_programs.PROGRAMS`` is run once on the stock loop (the
reference outcome) and then

* ``simloop``          -- ``asyncio.run(prog(), loop_factory=simloom.SimLoop)`` (FIFO);
* ``fifo``             -- ``simloom.run(prog, seed=0, scheduler="fifo")``;
* ``random-seedN``     -- ``simloom.run(prog, seed=N, scheduler="random")``;
* ``pct-seedN``        -- ``simloom.run(prog, seed=N, scheduler="pct")``;

and every one of those outcomes must equal the reference.  ``FIFO_PROGRAMS`` depend on
the order of ready callbacks, so they are only compared between the stock loop and
SimLoop's FIFO schedule; ``RUNNER_PROGRAMS`` drive an ``asyncio.Runner`` themselves.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import parity_programs as pp
import pytest
import simloom

SEEDS = (1, 2, 3)

Outcome = tuple[Any, ...]


def describe(exc: BaseException) -> Any:
    """Type and text of an exception; an exception group as its sorted tree of leaves."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = sorted((describe(e) for e in exc.exceptions), key=repr)
        return (type(exc).__name__, exc.message, leaves)
    return (type(exc).__name__, str(exc))


def outcome(fn: Callable[[], Any]) -> Outcome:
    """Call ``fn``: ("ok", value) or ("raise", <describe(exception)>)."""
    try:
        return ("ok", fn())
    except BaseException as exc:
        return ("raise", describe(exc))


def sim_outcome(prog: pp.Program, scheduler: str, seed: int) -> Outcome:
    """The outcome of ``simloom.run``: main's value or error from the ``RunResult``,
    or what ``simloom.run`` itself raised (a ``SystemExit`` escapes it, as it escapes
    ``asyncio.run``)."""
    try:
        result = simloom.run(prog, seed=seed, scheduler=scheduler)
    except BaseException as exc:
        return ("raise", describe(exc))
    if result.error is not None:
        return ("raise", describe(result.error))
    return ("ok", result.value)


@functools.cache
def stock_outcome(name: str) -> Outcome:
    return outcome(lambda: asyncio.run(pp.PROGRAMS[name]()))


@functools.cache
def stock_fifo_outcome(name: str) -> Outcome:
    return outcome(lambda: asyncio.run(pp.FIFO_PROGRAMS[name]()))


VARIANTS = ["simloop", "fifo"] + [f"{s}-seed{n}" for s in ("random", "pct") for n in SEEDS]


def run_variant(prog: pp.Program, variant: str) -> Outcome:
    if variant == "simloop":
        return outcome(lambda: asyncio.run(prog(), loop_factory=simloom.SimLoop))
    if variant == "fifo":
        return sim_outcome(prog, "fifo", 0)
    scheduler, _, seed = variant.partition("-seed")
    return sim_outcome(prog, scheduler, int(seed))


def test_enough_programs() -> None:
    assert len(pp.PROGRAMS) >= 50


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", sorted(pp.PROGRAMS))
def test_parity(name: str, variant: str) -> None:
    expected = stock_outcome(name)
    actual = run_variant(pp.PROGRAMS[name], variant)
    assert actual == expected, f"{name} [{variant}]\n stock: {expected!r}\n   sim: {actual!r}"


@pytest.mark.parametrize("variant", ["simloop", "fifo"])
@pytest.mark.parametrize("name", sorted(pp.FIFO_PROGRAMS))
def test_fifo_order_parity(name: str, variant: str) -> None:
    expected = stock_fifo_outcome(name)
    actual = run_variant(pp.FIFO_PROGRAMS[name], variant)
    assert actual == expected, f"{name} [{variant}]\n stock: {expected!r}\n   sim: {actual!r}"


def test_random_schedules_do_reorder_ready_callbacks() -> None:
    """Guard against a vacuous pass: the FIFO-only programs must come out differently
    under some random or PCT schedule, or those variants are FIFO in disguise."""
    differing = [
        (name, variant)
        for name in sorted(pp.FIFO_PROGRAMS)
        for variant in VARIANTS[2:]
        if run_variant(pp.FIFO_PROGRAMS[name], variant) != stock_fifo_outcome(name)
    ]
    assert len(differing) >= len(pp.FIFO_PROGRAMS)


@pytest.mark.parametrize("name", sorted(pp.RUNNER_PROGRAMS))
def test_runner_parity(name: str) -> None:
    fn = pp.RUNNER_PROGRAMS[name]
    expected = outcome(lambda: fn(None))
    actual = outcome(lambda: fn(simloom.SimLoop))
    assert actual == expected, f"{name}\n stock: {expected!r}\n   sim: {actual!r}"
