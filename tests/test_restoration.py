"""What a universe changes in the process is always put back, and an interrupt
always reaches the caller.

A ``KeyboardInterrupt`` injected at any line simloom runs (under ``simloom.run``,
``@simloom.test`` and a Hypothesis ``universes()`` test) propagates exactly once,
and afterwards the clocks are real, nothing is patched or registered, the
collector is on and unfrozen, and a new universe starts. Real SIGINTs against a
loop of universes, and Ctrl-C in a pytest session, show the same. Teardown reports
what the stock loop reports, and ``SystemExit``/``KeyboardInterrupt`` from the
program propagate as on the stock loop.

``SIMLOOM_EXHAUSTIVE_INTERRUPTS=1`` injects at every point under all three
entry points (by default every point under ``simloom.run``, and under the other
two every line of the universe's life cycle plus a sample of the rest).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import interrupt_points as points
import pytest
import simloom
from hypothesis import given, settings
from simloom import SimloomUsageError, UnhandledExceptionError

EXHAUSTIVE = os.environ.get("SIMLOOM_EXHAUSTIVE_INTERRUPTS") == "1"
TESTS_DIR = Path(__file__).parent
PYTHON_DIR = Path(simloom.__file__).parent.parent

#: Functions whose every line is an injection point in every mode: the universe's
#: life cycle (set-up, teardown, restoration).
LIFECYCLE = {
    "_universe",
    "_universe_guard",
    "_run_main",
    "_teardown",
    "_settle",
    "_run_quietly",
    "_close",
    "frozen_heap",
    "_collect_garbage",
    "_refuse_a_running_loop",
    "SimLoop.run_forever",
    "SimLoop._running_state",
    "SimLoop.run_until_complete",
    "SimLoop.close",
    "SimLoop.shutdown_asyncgens",
    "plan",
    "_Universe.plan",
    "_Universe.enter",
    "_Universe.leave",
    "_Universe.__init__",
    "enter_universe",
}


@pytest.fixture
def quiet() -> Iterator[None]:
    """Interrupted universes abandon tasks and coroutines, as an interrupted
    ``asyncio.run`` does; their warnings are not what these tests check."""
    logger = logging.getLogger("simloom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
            gc.collect()  # what the interrupted universes abandoned, warnings and all
        finally:
            logger.setLevel(level)


def _lifecycle_points(action: Callable[[], object], sample: int) -> list[int]:
    """Every point on a life-cycle line (first occurrence of each line), and
    ``sample`` others spread evenly."""
    traced = points.trace_points_with_functions(action)
    chosen: dict[tuple[str, int], int] = {}
    for index, (filename, line, function) in enumerate(traced):
        if function in LIFECYCLE or function.split(".")[-1] in LIFECYCLE:
            chosen.setdefault((filename, line), index)
    picked = set(chosen.values())
    if EXHAUSTIVE:
        return list(range(len(traced)))
    stride = max(1, len(traced) // max(1, sample))
    picked.update(range(0, len(traced), stride))
    return sorted(picked)


def _inject_everywhere(action: Callable[[], object], selected: list[int]) -> None:
    baseline = points.Baseline()
    assert points.broken_state(baseline) == []
    swallowed: list[str] = []
    broken: list[str] = []
    for count, point in enumerate(selected):
        if count % 50 == 0:
            gc.collect()  # what interrupted universes abandoned (all_tasks() slows down)
        reached, where = points.interrupt_at(point, action)
        if where is None:
            continue  # this run took a shorter path (the point does not exist)
        if reached != 1:
            swallowed.append(where)
        problems = points.broken_state(baseline)
        if problems:
            broken.append(f"{where}: {'; '.join(problems)}")
            points.repair(baseline)
    assert not swallowed and not broken, (
        f"of {len(selected)} points: {len(swallowed)} swallowed the interrupt, "
        f"{len(broken)} left state broken:\n" + "\n".join((swallowed + broken)[:20])
    )


def test_keyboard_interrupt_at_any_line_of_simloom_run_propagates_and_restores(
    quiet: None,
) -> None:
    def run() -> object:
        return simloom.run(points.busy_universe, boundary=True)

    every_point = list(range(len(points.trace_points(run))))
    assert len(every_point) > 500
    _inject_everywhere(run, every_point)


def test_keyboard_interrupt_at_any_line_of_a_simloom_test_propagates_and_restores(
    quiet: None,
) -> None:
    @simloom.test(runs=2)
    async def test_busy() -> None:
        await points.busy_universe()

    _inject_everywhere(test_busy, _lifecycle_points(test_busy, sample=300))


def test_keyboard_interrupt_at_any_line_of_a_hypothesis_universe_propagates_and_restores(
    quiet: None,
) -> None:
    @settings(max_examples=1, database=None, derandomize=True)
    @given(simloom.universes())
    def test_busy(universe: simloom.Universe) -> None:
        universe.run(points.busy_universe)

    _inject_everywhere(test_busy, _lifecycle_points(test_busy, sample=60))


# --------------------------------------------------------------- real signals

SIGNALS_CHILD = """
import json, os, random, signal, sys, threading, time
# A shell that starts jobs in the background makes them ignore SIGINT, and the
# child inherits that: the test is about a process where Ctrl-C raises.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {tests_dir!r})
import interrupt_points as points
import simloom

baseline = points.Baseline()
rng = random.Random(7)
broken, swallowed, caught = [], 0, 0
for attempt in range({attempts}):
    sent = threading.Event()
    def interrupt(delay=rng.uniform(0, 0.004)):
        time.sleep(delay)
        sent.set()
        os.kill(os.getpid(), signal.SIGINT)
    sender = threading.Thread(target=interrupt)
    try:
        sender.start()
        deadline = None
        while True:
            simloom.run(points.busy_universe, boundary=True)
            if sent.is_set():
                deadline = deadline or time.perf_counter() + 1.0
                if time.perf_counter() > deadline:
                    swallowed += 1
                    break
    except KeyboardInterrupt:
        caught += 1
    sender.join()
    problems = points.broken_state(baseline)
    if problems:
        broken.append(problems)
        points.repair(baseline)
print(json.dumps({{"caught": caught, "swallowed": swallowed, "broken": broken}}))
"""


def test_real_sigints_against_a_loop_of_universes_always_interrupt_and_restore() -> None:
    attempts = 300 if EXHAUSTIVE else 120
    child = subprocess.run(
        [sys.executable, "-c", SIGNALS_CHILD.format(tests_dir=str(TESTS_DIR), attempts=attempts)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(PYTHON_DIR)},
    )
    assert child.returncode == 0, child.stderr[-3000:]
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome == {"caught": attempts, "swallowed": 0, "broken": []}, child.stderr[-3000:]
    assert "Exception ignored" not in child.stderr


def _sigint_by_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


CTRL_C_TESTS = """
import asyncio, pathlib, time
import simloom

@simloom.test(runs=1_000_000, files=False)
async def test_explores_for_a_long_time():
    pathlib.Path({started!r}).touch()
    for _ in range(20):
        await asyncio.sleep(0.1)

def test_runs_after_it():
    pathlib.Path({after!r}).write_text(repr(time.time()))
"""


def test_ctrl_c_during_a_simloom_test_stops_the_session_with_keyboard_interrupt(
    tmp_path: Path,
) -> None:
    for attempt in range(10 if EXHAUSTIVE else 2):
        started = tmp_path / f"started-{attempt}"
        after = tmp_path / f"after-{attempt}"
        test_file = tmp_path / f"test_ctrl_c_{attempt}.py"
        test_file.write_text(CTRL_C_TESTS.format(started=str(started), after=str(after)))
        session = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(PYTHON_DIR)},
            # SIGINT as a terminal delivers it, even when this run inherited an
            # ignored SIGINT (a background job of a non-interactive shell).
            preexec_fn=_sigint_by_default,
        )
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05 + 0.07 * attempt)
        session.send_signal(signal.SIGINT)
        output, _ = session.communicate(timeout=60)
        assert "KeyboardInterrupt" in output, output
        assert "FAILED" not in output, output
        assert "Cannot close a running event loop" not in output, output
        assert not after.exists(), f"a test ran after Ctrl-C: {output}"


# ------------------------------------------------------------- what teardown says


async def leaves_a_task_that_raises_when_cancelled() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            raise ValueError("raised while cancelled") from None

    asyncio.get_running_loop().leftover = asyncio.create_task(stubborn())  # type: ignore[attr-defined]
    await asyncio.sleep(0)


async def leaves_an_async_generator_whose_finally_raises() -> None:
    async def numbers() -> Any:
        try:
            yield 1
            yield 2
        finally:
            raise ValueError("raised in the generator's finally")

    generator = numbers()
    asyncio.get_running_loop().generator = generator  # type: ignore[attr-defined]
    await generator.__anext__()


async def exits_during_teardown() -> None:
    async def exits_when_cancelled() -> None:
        try:
            await asyncio.sleep(100)
        finally:
            raise SystemExit(3)

    asyncio.get_running_loop().leftover = asyncio.create_task(exits_when_cancelled())  # type: ignore[attr-defined]
    await asyncio.sleep(0)


def _stock(program: Callable[[], Any]) -> tuple[str | None, list[str]]:
    """What ``asyncio.run`` on the stock loop does: the exception it raises (or
    None) and the messages its exception handler got."""
    messages: list[str] = []

    def factory() -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda _, context: messages.append(context["message"]))
        return loop

    try:
        asyncio.run(program(), loop_factory=factory)
    except BaseException as exc:
        return type(exc).__name__, messages
    return None, messages


def test_a_leftover_task_that_raises_when_cancelled_fails_the_universe() -> None:
    assert _stock(leaves_a_task_that_raises_when_cancelled) == (
        None,
        ["unhandled exception during asyncio.run() shutdown"],
    )
    result = simloom.run(leaves_a_task_that_raises_when_cancelled)
    assert isinstance(result.error, UnhandledExceptionError)
    assert "raised while cancelled" in str(result.error)
    assert "'Task-2'" in str(result.error)


def test_an_async_generator_whose_finally_raises_fails_the_universe() -> None:
    raised, messages = _stock(leaves_an_async_generator_whose_finally_raises)
    assert raised is None
    assert messages and "closing of asynchronous generator" in messages[0]
    result = simloom.run(leaves_an_async_generator_whose_finally_raises)
    assert isinstance(result.error, UnhandledExceptionError)
    assert "closing of asynchronous generator" in str(result.error)
    assert "numbers" in str(result.error)
    assert "raised in the generator's finally" in str(result.error)


def test_system_exit_during_teardown_propagates_as_on_the_stock_loop() -> None:
    assert _stock(exits_during_teardown)[0] == "SystemExit"
    baseline = points.Baseline()
    with pytest.raises(SystemExit) as exited:
        simloom.run(exits_during_teardown)
    assert exited.value.code == 3
    assert points.broken_state(baseline) == []


async def exits_in_an_unreferenced_task() -> None:
    async def exits() -> None:
        await asyncio.sleep(0.005)
        raise SystemExit(4)

    asyncio.create_task(exits())  # noqa: RUF006 - unreferenced on purpose
    await asyncio.sleep(0.01)


async def interrupts_in_a_callback() -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    asyncio.get_running_loop().call_soon(interrupt)
    await asyncio.sleep(0.01)


async def interrupts_in_the_main_task() -> None:
    await asyncio.sleep(0.01)
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("program", "raised"),
    [
        (exits_in_an_unreferenced_task, SystemExit),
        (interrupts_in_a_callback, KeyboardInterrupt),
        (interrupts_in_the_main_task, KeyboardInterrupt),
    ],
)
def test_system_exit_and_keyboard_interrupt_from_the_program_propagate(
    program: Callable[[], Any], raised: type[BaseException]
) -> None:
    assert _stock(program)[0] == raised.__name__
    baseline = points.Baseline()
    for scheduler in ("fifo", "random"):
        with pytest.raises(raised):
            simloom.run(program, scheduler=scheduler)
        loop = simloom.SimLoop()
        try:
            with pytest.raises(raised):
                loop.run_until_complete(program())
        finally:
            loop.close()
        assert points.broken_state(baseline) == []


def test_a_keyboard_interrupt_in_a_finalizer_during_collection_is_raised_not_printed(
    quiet: None,
) -> None:
    class InterruptsWhenCollected:
        def __init__(self) -> None:
            self.cycle = self

        def __del__(self) -> None:
            raise KeyboardInterrupt("in a finalizer")

    async def leaves_garbage() -> None:
        InterruptsWhenCollected()
        await asyncio.sleep(0)

    unraisable: list[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with pytest.raises(KeyboardInterrupt, match="in a finalizer"):
            simloom.run(leaves_garbage)
    finally:
        sys.unraisablehook = previous
    assert unraisable == []
    assert points.broken_state(points.Baseline()) == []


# ----------------------------------------------------------------- misuse


def test_simloom_run_inside_a_running_loop_is_a_usage_error() -> None:
    async def nested() -> None:
        simloom.run(points.small_universe)

    with pytest.raises(SimloomUsageError, match=r"inside a running event loop.*[Aa]wait"):
        asyncio.run(nested())
    with pytest.raises(SimloomUsageError, match="inside a running event loop"):
        simloom.run(nested).raise_error()


# ------------------------------------------------------- the guard itself


class Target:
    pass


def test_a_restoration_installs_all_or_nothing_and_undoes_in_reverse() -> None:
    target = Target()
    target.kept = "outside"  # type: ignore[attr-defined]
    registry: dict[int, str] = {1: "taken"}
    order: list[str] = []
    guard = simloom._core.Restoration()
    guard.set_attr(target, "kept", "inside")
    guard.set_attr(target, "added", "inside")
    guard.call(lambda: order.append("enter"), lambda: order.append("exit"))
    guard.claim(registry, 1, "mine", "key 1 is taken")
    with pytest.raises(SimloomUsageError, match="key 1 is taken"):
        guard.run(lambda: order.append("body"))
    assert order == ["enter", "exit"]  # the body never ran; the call was undone
    assert target.kept == "outside" and not hasattr(target, "added")  # type: ignore[attr-defined]
    assert registry == {1: "taken"}

    guard = simloom._core.Restoration()
    guard.set_attr(target, "kept", "inside")
    guard.claim(registry, 2, "mine", "key 2 is taken")

    def body() -> str:
        assert guard.active and registry[2] == "mine"
        return target.kept  # type: ignore[attr-defined, no-any-return]

    assert guard.run(body) == "inside"
    assert not guard.active and target.kept == "outside" and 2 not in registry  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="runs only once"):
        guard.run(body)


def test_a_restoration_retries_an_undo_an_interrupt_hits_and_then_raises_it() -> None:
    attempts: list[int] = []

    def restore_something() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise KeyboardInterrupt("during the undo")

    guard = simloom._core.Restoration()
    guard.call(None, restore_something)
    with pytest.raises(KeyboardInterrupt, match="during the undo"):
        guard.run(lambda: None)
    assert len(attempts) == 2

    # The function's own interrupt is what propagates, once.
    attempts.clear()
    guard = simloom._core.Restoration()
    guard.call(None, restore_something)

    def interrupted() -> None:
        raise KeyboardInterrupt("in the function")

    with pytest.raises(KeyboardInterrupt, match="in the function"):
        guard.run(interrupted)
    assert len(attempts) == 2


def test_shared_attributes_stay_until_the_last_guard_leaves() -> None:
    target = Target()
    target.helper = "original"  # type: ignore[attr-defined]
    outer = simloom._core.Restoration()
    outer.shared_attr(target, "helper", "wrapped")
    inner = simloom._core.Restoration()
    inner.shared_attr(target, "helper", "wrapped")

    def nested() -> None:
        inner.run(lambda: None)
        assert target.helper == "wrapped"  # type: ignore[attr-defined]

    outer.run(nested)
    assert target.helper == "original"  # type: ignore[attr-defined]


def test_a_guard_collected_on_another_thread_is_freed_quietly() -> None:
    # The garbage collector runs on whichever thread allocates: a guard in a cycle
    # (a loop's, say) can be freed by the watchdog thread's collection. That must
    # free it, not raise "is unsendable, but is being dropped on another thread".
    class Holder:
        pass

    raised: list[object] = []
    previous = sys.unraisablehook
    sys.unraisablehook = raised.append
    gc.disable()
    try:
        holder = Holder()
        holder.guard = simloom._core.Restoration()  # type: ignore[attr-defined]
        holder.cycle = holder  # type: ignore[attr-defined]
        probe = weakref.ref(holder)
        del holder
        worker = threading.Thread(target=gc.collect)
        worker.start()
        worker.join()
    finally:
        gc.enable()
        sys.unraisablehook = previous
    assert probe() is None
    assert raised == []
