"""``pytest --simloom``: existing asyncio tests run on SimLoop unchanged.

Each test writes a small test file and runs pytest on it in a subprocess (the
option changes the process's event-loop policy while a test runs). The styles
are the ones the standard library and anyio's pytest plugin (a test dependency)
give, and pytest-asyncio's at every loop scope (its loop-factory hook).
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
import simloom

pytest_plugins = ["pytester"]

STYLES = """
import asyncio
import unittest

import pytest
import simloom


def loop_name():
    return type(asyncio.get_running_loop()).__name__


def test_asyncio_run_in_a_sync_test():
    async def main():
        await asyncio.sleep(0.01)
        return loop_name()

    assert asyncio.run(main()) == "SimLoop"


def test_runner_and_new_event_loop():
    async def main():
        return loop_name()

    with asyncio.Runner() as runner:
        assert runner.run(main()) == "SimLoop"
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == "SimLoop"
    finally:
        loop.close()


class TestIsolated(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.setup_loop = loop_name()

    async def test_on_simloop(self):
        self.assertEqual(self.setup_loop, "SimLoop")
        self.assertEqual(loop_name(), "SimLoop")


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
async def resource(anyio_backend):
    yield loop_name()


@pytest.mark.anyio
@pytest.mark.parametrize("delay", [1, 2])
async def test_anyio_fixture_and_parametrize(resource, delay):
    await asyncio.sleep(delay / 100)
    assert resource == "SimLoop"
    assert loop_name() == "SimLoop"


@pytest.mark.no_simloom
def test_opted_out():
    async def main():
        return loop_name()

    assert asyncio.run(main()) != "SimLoop"


@pytest.mark.no_simloom
def test_policy_restored_after_each_test():
    assert type(asyncio.get_event_loop_policy()).__name__ != "_Policy"
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly", *args)


def test_every_style_runs_on_simloop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_styles=STYLES)
    result = run(pytester, "--simloom=3", "-v")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["*--simloom: asyncio tests on SimLoop, FIFO then 3 explored*"])


def test_without_the_option_nothing_changes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_styles=STYLES)
    result = run(pytester)
    # The stock loop everywhere: the tests that check for SimLoop fail.
    result.assert_outcomes(passed=2, failed=5)


PYTEST_ASYNCIO = """
import asyncio

import pytest
import pytest_asyncio

counter = 0


def loop_name():
    return type(asyncio.get_running_loop()).__name__


async def bump():
    global counter
    seen = counter
    await asyncio.sleep(0)
    counter = seen + 1


async def lost_update():
    global counter
    counter = 0
    await asyncio.gather(bump(), bump())
    assert counter == 1


@pytest_asyncio.fixture
async def per_test():
    await asyncio.sleep(0.01)
    yield loop_name()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def per_module():
    yield asyncio.get_running_loop()


@pytest.mark.asyncio
async def test_function_scope(per_test):
    assert per_test == "SimLoop" == loop_name()


@pytest.mark.asyncio
async def test_function_scope_race():
    await lost_update()


@pytest.mark.asyncio(loop_scope="module")
async def test_module_scope_race(per_module):
    assert asyncio.get_running_loop() is per_module
    assert loop_name() == "SimLoop"
    await lost_update()


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("n", [1, 2])
async def test_session_scope_race(n):
    await asyncio.sleep(n)
    await lost_update()


class TestClassScope:
    @pytest.mark.asyncio(loop_scope="class")
    async def test_race(self):
        await lost_update()
"""


def test_pytest_asyncio_at_every_loop_scope(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_pa=PYTEST_ASYNCIO)
    result = run(pytester, "--simloom=8", "--simloom-scheduler=random", "-p", "asyncio")
    # Every test runs on SimLoop; the function-scoped race is explored and found.
    result.assert_outcomes(passed=5, failed=1)
    out = result.stdout.str()
    assert "test_function_scope_race is schedule-dependent" in out
    # A test on a wider-scoped loop runs on that one loop in every universe: it
    # is said to be FIFO only, not passed off as explored.
    result.stdout.fnmatch_lines(
        [
            "4 test(s) ran FIFO only, their explored universes not run: *wider scope*",
            "  test_pa.py::test_module_scope_race",
            "  test_pa.py::test_session_scope_race[[]1[]]",
            "  test_pa.py::test_session_scope_race[[]2[]]",
            "  test_pa.py::TestClassScope::test_race",
        ]
    )


RACE = """
import asyncio

counter = 0


async def bump():
    global counter
    seen = counter
    await asyncio.sleep(0)
    counter = seen + 1


def test_lost_update():
    global counter
    counter = 0

    async def main():
        await asyncio.gather(bump(), bump())

    asyncio.run(main())
    # FIFO runs the two reads before both writes: 1. Another order gives 2.
    assert counter == 1


def test_fails_on_fifo():
    async def main():
        raise ValueError("broken on every schedule")

    asyncio.run(main())
"""


def test_schedule_dependent_failure_is_reported_with_seed_replay_and_shrink(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_race=RACE)
    result = run(pytester, "--simloom=8", "--simloom-scheduler=random")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "test_lost_update is schedule-dependent" in out
    seed = int(re.search(r"failed in universe (\d+)", out).group(1))  # type: ignore[union-attr]
    command = (
        f"pytest 'test_race.py::test_lost_update' --simloom-seed={seed} --simloom "
        "--simloom-scheduler=random"
    )
    assert f"replay it: {command}" in out
    assert "shrunk:" in out and "minimal schedule: FIFO everywhere except:" in out
    # The minimal schedule in code: which task ran ahead of which, and where.
    result.stdout.fnmatch_lines(
        [
            "  the schedule in code:",
            "    decision #*: `Task-*` (bump) resumed from `await asyncio.sleep(0)` at "
            "test_race.py:* in bump, ahead of `Task-*` (bump)*",
        ]
    )
    # A test failing on FIFO fails with its own error, not a schedule report.
    assert "test_fails_on_fifo is schedule-dependent" not in out
    result.stdout.fnmatch_lines(["*ValueError: broken on every schedule*"])

    # The replay command reproduces it, and only that universe runs.
    replay = run(
        pytester,
        "test_race.py::test_lost_update",
        f"--simloom-seed={seed}",
        "--simloom",
        "--simloom-scheduler=random",
    )
    replay.assert_outcomes(failed=1)
    replay.stdout.fnmatch_lines(["*assert 2 == 1*"])

    # FIFO alone: the schedule-dependent test passes.
    fifo = run(pytester, "--simloom")
    fifo.assert_outcomes(passed=1, failed=1)


def test_the_replay_command_carries_the_session_budgets(pytester: pytest.Pytester) -> None:
    # A budget decides where a universe stops: a replay without it is another run.
    pytester.makepyfile(test_race=RACE)
    budgets = ("--simloom-max-steps=5000", "--simloom-max-virtual-time=60")
    result = run(
        pytester, "--simloom=8", "--simloom-scheduler=random", "-k", "lost_update", *budgets
    )
    result.assert_outcomes(failed=1)
    seed = int(re.search(r"failed in universe (\d+)", result.stdout.str()).group(1))  # type: ignore[union-attr]
    result.stdout.fnmatch_lines(
        [
            f"*replay it: pytest 'test_race.py::test_lost_update' --simloom-seed={seed} "
            "--simloom-max-steps=5000 --simloom-max-virtual-time=60 --simloom "
            "--simloom-scheduler=random"
        ]
    )


OUTSIDE = """
import asyncio

runs = 0


def test_depends_on_a_module_global():
    global runs
    runs += 1

    async def main():
        await asyncio.sleep(0)

    asyncio.run(main())
    assert runs == 1  # true on the first run only, whatever the schedule
"""


def test_a_failure_on_the_fifo_schedule_itself_is_not_called_schedule_dependent(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_outside=OUTSIDE)
    result = run(pytester, "--simloom=5")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "is schedule-dependent" not in out
    assert "test_depends_on_a_module_global is not schedule-dependent: universe 0 failed" in out
    result.stdout.fnmatch_lines(
        ["*NOT schedule-dependent (failed on the FIFO schedule in universe 0*"]
    )


GARBAGE = """
import asyncio
import gc
import socket

runs = 0


def test_leaks_a_socket_in_a_cycle():
    holder = {"socket": socket.socket()}
    holder["self"] = holder  # freed only by the collector, whenever it runs


def test_on_whose_universe_the_collector_runs():
    global runs
    runs += 1

    async def main():
        await asyncio.sleep(0)
        if runs == 2:
            gc.collect()  # (as an allocation-triggered collection would, at any time)

    asyncio.run(main())


def test_that_leaks_in_every_run():
    async def main():
        holder = {"socket": socket.socket()}
        holder["self"] = holder
        del holder
        gc.collect()

    asyncio.run(main())
"""


def test_garbage_an_earlier_test_made_does_not_fail_a_universe(
    pytester: pytest.Pytester,
) -> None:
    # The socket's ResourceWarning, an error under -W error, is raised in the
    # first explored universe of the second test: not its garbage.
    pytester.makepyfile(test_garbage=GARBAGE)
    pytester.makeini(
        "[pytest]\nfilterwarnings =\n    error::ResourceWarning\n"
        "    error::pytest.PytestUnraisableExceptionWarning\n"
    )
    result = run(pytester, "--simloom=3", "-v")
    out = result.stdout.str()
    result.assert_outcomes(passed=2, failed=1)
    assert "test_garbage.py::test_on_whose_universe_the_collector_runs PASSED" in out
    assert "FAILED test_garbage.py::test_that_leaks_in_every_run" in out
    result.stdout.fnmatch_lines(
        [
            "*unraisable exception(s) from garbage that the universe's run*",
            "*::test_on_whose_universe_the_collector_runs (universe 0): Exception ignored in:"
            " <socket.socket*ResourceWarning: unclosed*",
        ]
    )


UNREPRODUCED = """
import asyncio

runs = 0


def test_fails_on_its_second_run_only():
    global runs
    runs += 1

    async def worker(log, name):
        for _ in range(3):
            log.append(name)
            await asyncio.sleep(0)

    async def main():
        log = []
        await asyncio.gather(worker(log, "a"), worker(log, "b"))
        assert runs != 2  # true on every run but the second, whatever the schedule

    asyncio.run(main())
"""


def test_a_failure_its_own_universe_does_not_repeat_is_not_called_schedule_dependent(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_unreproduced=UNREPRODUCED)
    result = run(pytester, "--simloom=3", "--simloom-scheduler=random")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "is schedule-dependent" not in out
    assert (
        "test_fails_on_its_second_run_only is not schedule-dependent: universe 0 failed, "
        "and the very same universe" in out
    )
    result.stdout.fnmatch_lines(["*NOT schedule-dependent (universe 0 failed once and passed*"])


def test_universes_are_deterministic(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_race=RACE)
    options = ("--simloom=8", "--simloom-scheduler=random", "-k", "lost_update")
    first = run(pytester, *options).stdout.str()
    second = run(pytester, *options).stdout.str()
    pick = re.compile(r"failed in universe \d+|decision #\d+: \S+ = \d+ \(of \d+\)")
    assert pick.findall(first) and pick.findall(first) == pick.findall(second)


def test_the_default_scheduler_reports_no_interleaving_a_real_loop_cannot_produce(
    pytester: pytest.Pytester,
) -> None:
    # The lost update needs the second task's read to run before the first task's
    # write, though the first task became ready first: no real loop does that with
    # sleep(0) alone. The random walk reports it (above); the default, faithful
    # scheduler explores only what a real loop can vary and passes it.
    pytester.makepyfile(test_race=RACE)
    result = run(pytester, "--simloom=20", "-k", "lost_update")
    result.assert_outcomes(passed=1)
    assert "explored universes (faithful)" in result.stdout.str()


LOST = """
import asyncio


async def fail():
    raise ValueError("nobody awaits me")


def test_lost_task_exception():
    async def main():
        task = asyncio.get_running_loop().create_task(fail())
        await asyncio.sleep(0.01)
        del task

    asyncio.run(main())


def test_library_reports_through_the_handler():
    async def main():
        loop = asyncio.get_running_loop()
        loop.call_exception_handler({"message": "job failed", "exception": KeyError("x")})
        await asyncio.sleep(0)

    asyncio.run(main())
"""


def test_lost_exceptions_are_logged_as_on_the_stock_loop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_lost=LOST)
    stock = run(pytester, "-o", "log_level=ERROR")
    stock.assert_outcomes(passed=2)
    logged = run(pytester, "--simloom=2", "-o", "log_level=ERROR", "-rA")
    logged.assert_outcomes(passed=2)
    logged.stdout.fnmatch_lines(["*ERROR*asyncio*job failed*"])
    strict = run(pytester, "--simloom", "--simloom-strict")
    strict.assert_outcomes(failed=2)
    strict.stdout.fnmatch_lines(["*UnhandledExceptionError*job failed*"])


MARKERS = """
import asyncio

import pytest
import simloom

order = []


async def step(name):
    await asyncio.sleep(0)
    order.append(name)


@pytest.mark.simloom(universes=6)
def test_marked_in():
    order.clear()

    async def main():
        await asyncio.gather(step("a"), step("b"))
        return type(asyncio.get_running_loop()).__name__

    assert asyncio.run(main()) == "SimLoop"
    assert order == ["a", "b"]


def test_unmarked():
    async def main():
        return type(asyncio.get_running_loop()).__name__

    assert asyncio.run(main()) != "SimLoop"
"""


def test_marker_opts_a_test_in_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_markers=MARKERS)
    result = run(pytester, "--simloom-scheduler=random")
    result.assert_outcomes(passed=1, failed=1)
    assert "test_marked_in is schedule-dependent" in result.stdout.str()


def test_ini_option_sets_the_universes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_race=RACE)
    pytester.makeini("[pytest]\nsimloom = 8\n")
    result = run(pytester, "-k", "lost_update", "--simloom-scheduler=random")
    assert "test_lost_update is schedule-dependent" in result.stdout.str()
    off = run(pytester, "-k", "lost_update", "-o", "simloom=off")
    off.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--simloom=lots"], "--simloom takes a number of universes*got 'lots'*"),
        (["--simloom=-1"], "--simloom must be a non-negative integer, got '-1'"),
        (["-o", "simloom=many"], "*ini option simloom takes a number*got 'many'*"),
    ],
)
def test_invalid_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile(test_x="def test_x(): pass\n")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_invalid_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_x="import pytest\n@pytest.mark.simloom(universes='x')\ndef test_x(): pass\n"
    )
    result = run(pytester, "--simloom")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*simloom(universes=...) must be a non-negative integer*'x'*"])


INTERRUPT = """
import asyncio


def test_interrupted():
    async def main():
        raise KeyboardInterrupt

    asyncio.run(main())


def test_not_reached():
    pass
"""


def test_keyboard_interrupt_propagates_and_the_policy_is_restored(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_interrupt=INTERRUPT)
    pytester.makeconftest(
        """
import asyncio


def pytest_unconfigure(config):
    print("policy after:", type(asyncio.get_event_loop_policy()).__name__)
"""
    )
    result = run(pytester, "--simloom=2", "-s")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    out = result.stdout.str()
    assert "KeyboardInterrupt" in out
    assert "policy after: _UnixDefaultEventLoopPolicy" in out


async def _reports_through_the_handler() -> None:
    loop = asyncio.get_running_loop()
    loop.call_exception_handler({"message": "job failed", "exception": KeyError("x")})
    await asyncio.sleep(0)


def test_unhandled_policy_is_a_configuration_field(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(simloom.SimloomUsageError, match="unhandled must be one of"):
        simloom.UniverseConfig(unhandled="ignore")
    strict = simloom.run(_reports_through_the_handler, scheduler="fifo")
    assert isinstance(strict.error, simloom.UnhandledExceptionError)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        logged = simloom.run(
            _reports_through_the_handler,
            scheduler="fifo",
            config=simloom.UniverseConfig(unhandled="log"),
        )
    assert logged.ok
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == ["job failed"]
    # The budgets of a configuration keep its policy.
    config = simloom.UniverseConfig(unhandled="log")
    assert config.with_budgets(config.budgets).unhandled == "log"


DEBUG_AND_EXIT = """
import asyncio

import pytest


def test_debug_follows_the_environment():
    async def main():
        return asyncio.get_running_loop().get_debug()

    assert asyncio.run(main()) is True


def test_set_debug_is_honoured():
    async def main():
        loop = asyncio.get_running_loop()
        loop.set_debug(False)
        return loop.get_debug()

    assert asyncio.run(main()) is False


def test_system_exit_in_an_unreferenced_task_propagates():
    async def leave():
        raise SystemExit(3)

    async def main():
        asyncio.get_running_loop().create_task(leave())
        await asyncio.sleep(1)

    with pytest.raises(SystemExit) as exit:
        asyncio.run(main())
    assert exit.value.code == 3
"""


def test_debug_mode_and_system_exit_as_on_the_stock_loop(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_debug=DEBUG_AND_EXIT)
    monkeypatch.setenv("PYTHONASYNCIODEBUG", "1")
    run(pytester, "-k", "not system_exit").assert_outcomes(passed=2)
    run(pytester, "--simloom=2").assert_outcomes(passed=3)
    monkeypatch.delenv("PYTHONASYNCIODEBUG")
    no_debug = run(pytester, "--simloom", "-k", "environment")
    no_debug.assert_outcomes(failed=1)


REAL_SERVER_THREAD = """
import asyncio
import socket
import threading

import pytest


@pytest.fixture
def real_server():
    # A real server started by a sync fixture, outside the universe: its thread
    # waits in a real accept() for the test's client.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve():
        connection, _ = listener.accept()
        connection.close()

    threading.Thread(target=serve, name="real-server").start()
    yield port


def test_client_of_a_real_server(real_server):
    async def main():
        reader, writer = await asyncio.open_connection("127.0.0.1", real_server)
        writer.close()

    asyncio.run(main())
"""


def test_a_real_server_thread_left_waiting_never_hangs_pytest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_real=REAL_SERVER_THREAD)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--simloom", "-p", "no:asyncio", timeout=120
    )
    # The client is refused with a named escape (a real server listens there) ...
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*EscapedSimulationError*"])
    # ... its server thread never gets a client, and pytest still exits, naming it.
    assert "non-daemon thread(s) started outside the simulation" in result.stderr.str()
    assert "real-server at real_server.<locals>.serve (" in result.stderr.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
