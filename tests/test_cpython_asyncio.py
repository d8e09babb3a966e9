"""CPython's own asyncio semantics tests, run with SimLoop as the event loop.

The modules below of ``test.test_asyncio`` (shipped with the interpreter running the
suite) run twice, each in child processes with a wall-clock limit per test (a hang
is a failure, never a hang of this suite): once on the stock loop and once with
every loop they ask for being a :class:`simloom.SimLoop` (see
``tests/cpython_asyncio_runner.py`` for how). Every test that passes on the stock
loop must pass under SimLoop, except the few in :data:`SKIPS`, each of which
genuinely cannot run in a simulation.

The default run covers a fast subset (futures2, context, locks and the
executor/``run_coroutine_threadsafe`` tests of test_tasks); ``SIMLOOM_CPYTHON_ASYNCIO=1``
runs all twelve modules (about a minute and a half on two cores).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import simloom

pytest.importorskip("test.test_asyncio.utils", reason="this Python ships without its tests")

sys.path.insert(0, str(Path(__file__).parent))
import cpython_asyncio_runner as runner

MODULES = [
    "test_locks",
    "test_queues",
    "test_taskgroups",
    "test_timeouts",
    "test_waitfor",
    "test_pep492",
    "test_context",
    "test_futures",
    "test_futures2",
    "test_runners",
    "test_tasks",
    "test_protocols",
]

#: Tests that pass on the stock loop and cannot pass in a simulation, with why.
#: Keep this short, and never use it for a semantics bug of SimLoop.
SKIPS: dict[str, str] = {}

FAST = [
    ("test_futures2", None),
    ("test_context", None),
    ("test_locks", None),
    ("test_tasks", ["test.test_asyncio.test_tasks.RunCoroutineThreadsafeTests"]),
]
FULL = os.environ.get("SIMLOOM_CPYTHON_ASYNCIO") == "1"
CASES = [(module, None) for module in MODULES] if FULL else FAST


def _child_environment() -> dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(simloom.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_root, env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    return env


def _passes(outcomes: dict[str, dict[str, Any]]) -> set[str]:
    return {test for test, entry in outcomes.items() if entry["outcome"] == "pass"}


@pytest.mark.parametrize(("module", "only"), CASES, ids=[module for module, _ in CASES])
def test_cpython_asyncio_module_passes_under_simloop_as_on_the_stock_loop(
    module: str, only: list[str] | None
) -> None:
    env = _child_environment()
    stock = runner.run_module(module, "stock", env=env, only=only)
    simulated = runner.run_module(module, "sim", env=env, only=only)
    assert _passes(stock), f"{module}: nothing passed on the stock loop: {stock}"
    hangs = sorted(test for test, entry in simulated.items() if entry["outcome"] == "hang")
    assert hangs == [], f"hung under SimLoop: {hangs}"
    missing = sorted(test for test in _passes(stock) - _passes(simulated) if test not in SKIPS)
    details = "\n\n".join(
        f"{test}: {simulated.get(test, {}).get('outcome')}\n"
        f"{simulated.get(test, {}).get('detail', '')}"
        for test in missing
    )
    assert missing == [], f"pass on the stock loop, not under SimLoop:\n{details}"


def test_every_skip_names_a_test_that_exists() -> None:
    import unittest

    known = set()
    for module in {test.split(".")[2] for test in SKIPS}:
        loaded = __import__(f"test.test_asyncio.{module}", fromlist=["_"])
        suite = unittest.defaultTestLoader.loadTestsFromModule(loaded)
        known |= {test.id() for test in runner._flatten(suite)}
    assert set(SKIPS) <= known
