"""A universe never hangs: step and virtual-time budgets, and the wall-clock watchdog.

Each program that used to run forever (a deadlock hidden behind a periodic timer, a
spin on a nanosecond sleep, a periodic timer alone, a callback that never yields)
ends, with the default settings, with a named error in well under five seconds of
wall time, saying which budget ran out, its value, how to raise it and what was
still scheduled. The hanging programs run in a subprocess with a timeout, so a
regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import simloom
from hypothesis import given, settings
from simloom import (
    SimBudgetExceededError,
    SimloomUsageError,
    SimStepBudgetError,
    SimTimeBudgetError,
    SimWatchdogError,
)

#: Seconds every hanging case must end within, with the default settings: of CPU
#: time, so that a machine shared with other work does not make the test flaky,
#: and (more generously) of wall time. Measured: 0.2-2.2 s (docs/testing.md).
WELL_UNDER = 5.0
WALL_LIMIT = 15.0

_RUNNER = """
import json, runpy, sys, time
import simloom
namespace = runpy.run_path(sys.argv[1])
started, cpu_started = time.perf_counter(), time.process_time()
result = simloom.run(namespace["main"], seed=0)
print(json.dumps({
    "error": type(result.error).__name__,
    "message": str(result.error),
    "seconds": time.perf_counter() - started,
    "cpu_seconds": time.process_time() - cpu_started,
    "steps": result.steps,
    "virtual_time": result.virtual_time,
}))
"""


def run_program(source: str, directory: Path) -> dict[str, Any]:
    """Run ``main`` of ``source`` (saved as ``program.py``) under ``simloom.run`` with
    the default settings, in a subprocess that is killed if it hangs."""
    program = directory / "program.py"
    program.write_text(textwrap.dedent(source))
    completed = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(program)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    outcome: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return outcome


HIDDEN_DEADLOCK = """
import asyncio

async def main():
    async def heartbeat():
        while True:
            await asyncio.sleep(1)

    # Each waits for the other to be ready first.
    transfer_ready, audit_ready = asyncio.Event(), asyncio.Event()

    async def transfer():
        await audit_ready.wait()
        transfer_ready.set()

    async def audit():
        await transfer_ready.wait()
        audit_ready.set()

    asyncio.create_task(heartbeat(), name="heartbeat")
    await asyncio.gather(
        asyncio.create_task(transfer(), name="transfer"),
        asyncio.create_task(audit(), name="audit"),
    )
"""


def test_a_deadlock_hidden_by_a_periodic_timer_ends_naming_the_tasks_that_made_no_progress(
    tmp_path: Path,
) -> None:
    outcome = run_program(HIDDEN_DEADLOCK, tmp_path)
    assert outcome["error"] == "SimTimeBudgetError"
    assert outcome["cpu_seconds"] < WELL_UNDER and outcome["seconds"] < WALL_LIMIT
    message = outcome["message"]
    assert message.startswith("virtual-time budget exhausted")
    assert "max_virtual_time=86400" in message
    assert outcome["virtual_time"] == 86_400
    # The periodic timer, its task and the line it sleeps at.
    assert "set by task 'heartbeat' at main.<locals>.heartbeat (" in message
    assert "program.py:7) → sleep" in message
    # The two tasks waiting on each other, where, and that they made no progress.
    assert "No progress in the last 12 hours of virtual time" in message
    assert "transfer: waits for a Future at main.<locals>.transfer (" in message
    assert "program.py:13) → Event.wait" in message
    assert "audit: waits for a Future at main.<locals>.audit (" in message
    assert "program.py:17) → Event.wait" in message
    assert "last ran at virtual time 0.000000s" in message
    assert "--simloom-max-virtual-time" in message


def test_a_spin_on_a_nanosecond_sleep_ends_with_the_step_budget_naming_the_spinner(
    tmp_path: Path,
) -> None:
    outcome = run_program(
        directory=tmp_path,
        source="""
        import asyncio

        async def main():
            async def poll():
                while True:
                    await asyncio.sleep(1e-9)
            await asyncio.create_task(poll(), name="poller")
        """,
    )
    assert outcome["error"] == "SimStepBudgetError"
    assert outcome["cpu_seconds"] < WELL_UNDER and outcome["seconds"] < WALL_LIMIT
    message = outcome["message"]
    assert message.startswith("step budget exhausted: 1,000,000 steps ran")
    assert "(max_steps=1,000,000)" in message
    assert "task 'poller' at main.<locals>.poll (" in message
    assert "program.py:7) → sleep" in message
    assert "(100%)" in message
    assert "max_steps=N" in message and "--simloom-max-steps=N" in message


def test_a_periodic_timer_alone_ends_with_the_time_budget_naming_the_timer(
    tmp_path: Path,
) -> None:
    outcome = run_program(
        directory=tmp_path,
        source="""
        import asyncio

        async def main():
            while True:
                await asyncio.sleep(1)
        """,
    )
    assert outcome["error"] == "SimTimeBudgetError"
    assert outcome["cpu_seconds"] < WELL_UNDER and outcome["seconds"] < WALL_LIMIT
    message = outcome["message"]
    assert "ran 86,400.000000 virtual seconds (1 day)" in message
    assert "the next timer is due at 86401.000000s" in message
    assert "set by task 'Task-1' at main (" in message
    assert "program.py:6) → sleep" in message
    assert "the program is busy, not stuck" in message


@pytest.mark.parametrize(
    ("source", "where", "line"),
    [
        (
            """
            import asyncio

            async def main():
                async def spin():
                    while True:
                        pass
                await asyncio.create_task(spin(), name="spinner")
            """,
            "in task 'spinner'",
            'program.py", line 6, in spin\n    while True:',
        ),
        (
            """
            import asyncio

            def wait_for_flag(flags):
                while not flags:
                    pass

            async def main():
                asyncio.get_running_loop().call_soon(wait_for_flag, [])
                await asyncio.sleep(1)
            """,
            "in a callback",
            'program.py", line 5, in wait_for_flag\n    while not flags:',
        ),
    ],
    ids=["task", "callback"],
)
def test_a_step_that_never_yields_is_stopped_by_the_watchdog_with_its_stack(
    source: str, where: str, line: str, tmp_path: Path
) -> None:
    outcome = run_program(source, tmp_path)
    assert outcome["error"] == "SimWatchdogError"
    assert outcome["cpu_seconds"] < WELL_UNDER and outcome["seconds"] < WALL_LIMIT
    message = outcome["message"]
    assert message.startswith("watchdog: one step has run for 2.")
    assert "(watchdog=2 s)" in message
    assert where in message
    assert line in message
    assert "--simloom-watchdog=<seconds>" in message


# ------------------------------------------------------------ per test, per option


async def _ticks_forever() -> None:
    while True:
        await asyncio.sleep(0.5)


def test_budgets_are_set_per_run() -> None:
    result = simloom.run(_ticks_forever, seed=0, max_steps=1_000)
    assert isinstance(result.error, SimStepBudgetError)
    assert "(max_steps=1,000)" in str(result.error)
    assert result.error.budget == "max_steps" and result.error.limit == 1_000
    result = simloom.run(_ticks_forever, seed=0, max_virtual_time=60)
    assert isinstance(result.error, SimTimeBudgetError)
    assert result.virtual_time == 60
    assert "max_virtual_time=60" in str(result.error)
    again = simloom.replay(_ticks_forever, result.tape, max_virtual_time=60)
    assert isinstance(again.error, SimTimeBudgetError)
    assert again.digest == result.digest


def test_a_budget_set_on_a_test_applies_to_its_universes_and_its_shrinking() -> None:
    @settings(database=None)
    @simloom.test(runs=3, max_virtual_time=30)
    async def test_ticks() -> None:
        await _ticks_forever()

    started = time.perf_counter()
    with pytest.raises(SimTimeBudgetError, match=r"max_virtual_time=30\b") as raised:
        test_ticks()
    assert time.perf_counter() - started < WELL_UNDER
    assert "simloom found a failing universe" in "\n".join(raised.value.__notes__)


def test_a_watchdog_set_on_a_test_stops_a_step_that_never_yields() -> None:
    @settings(database=None)
    @simloom.test(runs=1, watchdog=0.2)
    async def test_spins() -> None:
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            pass

    started = time.perf_counter()
    with pytest.raises(SimWatchdogError, match=r"watchdog=0\.2 s"):
        test_spins()
    assert time.perf_counter() - started < WELL_UNDER


def test_universes_take_budgets_too() -> None:
    @settings(max_examples=2, database=None)
    @given(simloom.universes(max_steps=500))
    def check(universe: simloom.Universe) -> None:
        with pytest.raises(SimStepBudgetError, match="max_steps=500"):
            universe.run(_ticks_forever)

    check()


def test_command_line_options_override_a_tests_budgets(tmp_path: Path) -> None:
    (tmp_path / "test_ticks.py").write_text(
        textwrap.dedent(
            """
            import asyncio
            import simloom

            @simloom.test(runs=2, max_steps=10_000_000)
            async def test_ticks():
                while True:
                    await asyncio.sleep(0.5)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x"]
    completed = subprocess.run(
        [*command, "--simloom-max-steps=1000", "--simloom-no-shrink", "test_ticks.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "SimStepBudgetError: step budget exhausted" in completed.stdout
    assert "(max_steps=1,000)" in completed.stdout
    refused = subprocess.run(
        [*command, "--simloom-watchdog=-1", "test_ticks.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert refused.returncode == 4
    assert "--simloom-watchdog: watchdog must be wall-clock seconds" in refused.stderr


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"max_steps": 0}, "max_steps must be an integer in [1, 2**63) or None"),
        ({"max_steps": True}, "max_steps"),
        ({"max_steps": 2**70}, "max_steps"),
        ({"max_steps": 1.5}, "max_steps"),
        ({"max_virtual_time": 0}, "max_virtual_time must be virtual seconds in (0, 1e10]"),
        ({"max_virtual_time": float("nan")}, "max_virtual_time"),
        ({"max_virtual_time": float("inf")}, "max_virtual_time"),
        ({"max_virtual_time": True}, "max_virtual_time"),
        ({"max_virtual_time": "60"}, "max_virtual_time"),
        ({"watchdog": -1}, "watchdog must be wall-clock seconds in (0, 1e10], or 0 or None"),
        ({"watchdog": float("nan")}, "watchdog"),
        ({"watchdog": True}, "watchdog"),
    ],
    ids=lambda value: repr(value) if not isinstance(value, dict) else "-".join(map(str, value)),
)
def test_every_entry_point_refuses_a_bad_budget_naming_it_and_its_range(
    arguments: dict[str, Any], named: str
) -> None:
    async def main() -> None:
        pass

    entry_points = [
        lambda: simloom.SimLoop(**arguments),
        lambda: simloom.run(main, **arguments),
        lambda: simloom.replay(main, simloom.Tape(), **arguments),
        lambda: simloom.test(**arguments)(main),
        lambda: simloom.universes(**arguments),
    ]
    for entry_point in entry_points:
        with pytest.raises(SimloomUsageError) as raised:
            entry_point()
        assert named in str(raised.value)


def test_none_turns_each_budget_off() -> None:
    async def long_but_finite() -> int:
        for _ in range(100):
            await asyncio.sleep(3_600)
        return 1

    assert simloom.run(long_but_finite, seed=0).error is not None
    result = simloom.run(long_but_finite, seed=0, max_virtual_time=None)
    assert result.value == 1 and result.virtual_time == 360_000
    loop = simloom.SimLoop(max_steps=None, max_virtual_time=None, watchdog=0)
    assert loop.budgets.max_steps is None and loop.budgets.watchdog is None
    loop.close()


# ------------------------------------------------- the universe after a budget


def test_teardown_still_runs_after_a_budget_stops_the_universe() -> None:
    unwound: list[str] = []

    async def main() -> None:
        async def worker(name: str) -> None:
            try:
                while True:
                    await asyncio.sleep(1e-9)
            finally:
                await asyncio.sleep(1)
                unwound.append(name)

        workers = [asyncio.create_task(worker("a")), asyncio.create_task(worker("b"))]
        await asyncio.Event().wait()
        del workers

    result = simloom.run(main, seed=0, max_steps=10_000)
    assert isinstance(result.error, SimStepBudgetError)
    assert sorted(unwound) == ["a", "b"]


# Teardown gives up on the stubborn task once the allowance is spent: the coroutines
# it had no steps left to run are reported as never awaited, honestly.
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_a_program_that_ignores_cancellation_cannot_outrun_the_teardown_allowance() -> None:
    async def main() -> None:
        async def stubborn() -> None:
            while True:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(1e-9)

        task = asyncio.create_task(stubborn(), name="stubborn")
        await asyncio.sleep(10)
        del task

    result = simloom.run(main, seed=0, max_steps=50_000)
    assert isinstance(result.error, SimStepBudgetError)
    # The run's budget, then teardown's allowance, then nothing more.
    assert result.steps <= 50_000 + 100_000 + 10
    # The task teardown gave up on is collected here, not in a later test.
    del result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        gc.collect()


def test_asyncio_run_raises_the_budget_error_and_still_closes_the_loop() -> None:
    loops: list[simloom.SimLoop] = []

    def factory() -> simloom.SimLoop:
        loops.append(simloom.SimLoop(max_virtual_time=10))
        return loops[-1]

    with pytest.raises(SimTimeBudgetError, match="max_virtual_time=10"):
        asyncio.run(_ticks_forever(), loop_factory=factory)
    assert loops[0].is_closed()
    assert not asyncio.all_tasks(loops[0])


def test_each_run_of_a_reused_loop_gets_the_whole_budget() -> None:
    loop = simloom.SimLoop(max_steps=1_000)
    try:
        for _ in range(5):
            loop.run_until_complete(_sleep_zero(400))
        with pytest.raises(SimStepBudgetError):
            loop.run_until_complete(_sleep_zero(2_000))
    finally:
        loop.close()


async def _sleep_zero(times: int) -> None:
    for _ in range(times):
        await asyncio.sleep(0)


def test_budget_errors_are_one_family() -> None:
    for kind in (SimStepBudgetError, SimTimeBudgetError, SimWatchdogError):
        assert issubclass(kind, SimBudgetExceededError)
        assert issubclass(kind, simloom.SimloomError)


# --------------------------------------------------------------- the watchdog


async def _busy_program() -> int:
    total = 0

    async def worker(n: int) -> None:
        nonlocal total
        for i in range(200):
            total += i * n
            await asyncio.sleep(0.001 * simloom.draw("pause", 3))

    await asyncio.gather(*(worker(n) for n in range(5)))
    return total


def test_the_watchdog_changes_nothing_when_it_does_not_fire() -> None:
    watched = simloom.run(_busy_program, seed=7, watchdog=0.5)
    unwatched = simloom.run(_busy_program, seed=7, watchdog=None)
    assert watched.ok and unwatched.ok
    assert watched.digest == unwatched.digest
    assert watched.tape == unwatched.tape


def test_the_watchdog_never_fires_outside_a_run() -> None:
    loop = simloom.SimLoop(watchdog=0.05)
    try:
        loop.run_until_complete(asyncio.sleep(1))
        # Busy in real time after the run, with the loop still alive: not a step.
        deadline = time.perf_counter() + 0.4
        while time.perf_counter() < deadline:
            pass
        assert loop.run_until_complete(asyncio.sleep(1, result="fine")) == "fine"
    finally:
        loop.close()


def test_a_slow_step_below_the_limit_is_not_stopped() -> None:
    async def main() -> str:
        # A few tenths of a second of real work in one step (counted, not timed: the
        # boundary may make the clocks virtual).
        total = 0
        for number in range(3_000_000):
            total += number
        return "done"

    # The limit is far above the step's few tenths of a second, so that a loaded
    # machine (CI sharing its cores) cannot push the step over it.
    assert simloom.run(main, seed=0, watchdog=15.0).value == "done"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_after_a_universe_finds_no_thread_of_simlooms() -> None:
    # The watchdog thread is stopped before a fork (CPython warns about forking a
    # multi-threaded process, and the child would not have it) and starts again later.
    # In a fresh interpreter: this test process may hold other tests' threads, and
    # the warning counts every thread of the process.
    program = textwrap.dedent(
        """
        import asyncio, os, warnings
        import simloom

        async def main():
            await asyncio.sleep(1)

        assert simloom.run(main, seed=0).ok
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        print([str(w.message) for w in caught if "multi-threaded" in str(w.message)])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    test_a_step_that_never_yields_in_process_is_still_stopped_after_a_fork()


def test_a_step_that_never_yields_in_process_is_still_stopped_after_a_fork() -> None:
    async def spins() -> None:
        while True:
            pass

    result = simloom.run(spins, seed=0, watchdog=0.2)
    assert isinstance(result.error, SimWatchdogError)
