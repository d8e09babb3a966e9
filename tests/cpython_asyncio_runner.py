"""Run one module of CPython's ``test.test_asyncio`` on the stock loop or on SimLoop.

This is the child process of ``tests/test_cpython_asyncio.py`` (and a tool: run it by
hand to see what a module does under SimLoop)::

    python tests/cpython_asyncio_runner.py --loop sim test_locks
    python tests/cpython_asyncio_runner.py --loop stock test_tasks --results out.jsonl

With ``--loop sim`` every loop the tests ask for is a :class:`simloom.SimLoop`:
``asyncio.new_event_loop()`` and ``asyncio.get_event_loop()`` (through an event loop
policy, which also serves ``asyncio.run``, ``asyncio.Runner`` and
``IsolatedAsyncioTestCase``), and ``test_utils.TestLoop`` (the fake-clock loop many
tests build with a time generator) becomes :class:`SimTestLoop`, a SimLoop that
feeds the generator the deadline of every timer it schedules, as ``TestLoop`` does,
while time stays the simulation's virtual clock.

Each test's outcome is written to ``--results`` as one JSON line, as soon as it is
known, and a test that runs longer than ``--per-test-timeout`` wall-clock seconds is
a hang: the process dumps every thread's stack and exits, and the parent records the
test as ``hang`` and starts a new process for the rest of the module. So a hang is a
failure, never a hang of the suite.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import json
import signal
import sys
import unittest
from collections.abc import Iterator
from typing import Any, TextIO


def _install_simloop() -> Any:
    """Make every loop the tests ask for a SimLoop; returns the factory."""
    import inspect

    from simloom import SimLoop
    from test.test_asyncio import utils as test_utils

    extra: dict[str, Any] = {}
    if "boundary" in inspect.signature(SimLoop).parameters:
        # The real-thread and real-socket tests are the test suite's business, not
        # the program's: leave the boundary off, as the stock loop has none.
        extra["boundary"] = False

    def new_sim_loop() -> asyncio.AbstractEventLoop:
        return SimLoop(**extra)

    base_policy: Any = asyncio.DefaultEventLoopPolicy

    class SimLoopPolicy(base_policy):  # type: ignore[misc, valid-type]
        """The default policy, making SimLoops."""

        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return new_sim_loop()

    # ``asyncio.set_event_loop_policy(None)`` (every module's tearDownModule) re-creates
    # the policy from ``asyncio.DefaultEventLoopPolicy``: replace that too.
    asyncio.DefaultEventLoopPolicy = SimLoopPolicy  # type: ignore[misc]
    asyncio.set_event_loop_policy(SimLoopPolicy())

    class SimTestLoop(SimLoop):  # type: ignore[misc]
        """``test_utils.TestLoop`` on SimLoop: the time generator is sent the deadline
        of every timer scheduled, and its answers advance the virtual clock at the end
        of the loop iteration, as TestLoop does; when nothing is ready the clock
        still jumps to the next deadline by itself. ``close()`` checks the generator
        finished, as TestLoop does."""

        def __init__(self, gen: Any = None) -> None:
            super().__init__(**extra)
            if gen is None:

                def gen() -> Iterator[None]:
                    yield

                self._check_on_close = False
            else:
                self._check_on_close = True
            self._gen = gen()
            next(self._gen)
            self._gen_done = False
            self._pending_advance = 0.0

        def _run_steps(self, budget: int) -> str:
            # One step at a time, so the generator's advances land between
            # iterations (batches), where TestLoop._run_once applies them.
            for _ in range(budget):
                if self._pending_advance and not self._batch_ready():
                    self._apply_advance()
                status: str = super()._run_steps(1)
                if status != "budget":
                    self._apply_advance()
                    return status
            return "budget"

        def _apply_advance(self) -> None:
            advance, self._pending_advance = self._pending_advance, 0.0
            self.advance_time(advance)

        def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> Any:
            handle = super().call_at(when, callback, *args, context=context)
            if not self._gen_done:
                try:
                    advance = self._gen.send(when)
                except StopIteration:
                    self._gen_done = True
                else:
                    self._pending_advance += advance or 0.0
            return handle

        def call_later(self, delay: float, callback: Any, *args: Any, context: Any = None) -> Any:
            return self.call_at(self.time() + delay, callback, *args, context=context)

        def advance_time(self, advance: float | None) -> None:
            if advance:
                self._advance_clock(advance)

        def close(self) -> None:
            was_closed = self.is_closed()
            super().close()
            if self._check_on_close and not was_closed and not self._gen_done:
                try:
                    self._gen.send(0)
                except StopIteration:
                    pass
                else:  # pragma: no cover - a test's own assertion
                    raise AssertionError("Time generator is not finished")

    test_utils.TestLoop = SimTestLoop  # type: ignore[misc]

    # Count the loops each test makes that are not SimLoops (a test building a
    # BaseEventLoop with mocks, or a selector loop by hand), so the report can say
    # which passes were not on SimLoop.
    original_init = asyncio.BaseEventLoop.__init__

    def counting_init(self: asyncio.BaseEventLoop, *args: Any, **kwargs: Any) -> None:
        _LOOPS_MADE["other"] += 1
        original_init(self, *args, **kwargs)

    asyncio.BaseEventLoop.__init__ = counting_init  # type: ignore[method-assign]
    original_sim_init = SimLoop.__init__

    def counting_sim_init(self: SimLoop, *args: Any, **kwargs: Any) -> None:
        _LOOPS_MADE["sim"] += 1
        original_sim_init(self, *args, **kwargs)

    SimLoop.__init__ = counting_sim_init  # type: ignore[method-assign]

    return new_sim_loop


def _adapt_module(module: Any, new_sim_loop: Any) -> None:
    """Two modules build their loop by hand as ``asyncio.BaseEventLoop()`` with a
    mocked selector (so no real I/O happens): give them SimLoops instead."""
    name = module.__name__.rsplit(".", 1)[-1]
    if name == "test_runners":

        def new_loop(self: Any) -> Any:
            loop = new_sim_loop()
            loop.shutdown_ag_run = False

            async def shutdown_asyncgens() -> None:
                loop.shutdown_ag_run = True

            loop.shutdown_asyncgens = shutdown_asyncgens
            return loop

        module.BaseTest.new_loop = new_loop
    elif name == "test_pep492":

        def set_up(self: Any) -> None:
            super(module.BaseTest, self).setUp()
            self.loop = new_sim_loop()
            self.set_event_loop(self.loop)

        module.BaseTest.setUp = set_up


#: Loops made during the current test, by kind.
_LOOPS_MADE = {"sim": 0, "other": 0}


def _flatten(suite: unittest.TestSuite) -> Iterator[unittest.TestCase]:
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _flatten(item)
        else:
            yield item


def _filtered(suite: unittest.TestSuite, skip: set[str]) -> unittest.TestSuite:
    """The suite without the tests in ``skip`` (structure kept, so class and module
    fixtures still run)."""
    kept = unittest.TestSuite()
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            inner = _filtered(item, skip)
            if inner.countTestCases():
                kept.addTest(inner)
        elif item.id() not in skip:
            kept.addTest(item)
    return kept


class _StreamingResult(unittest.TestResult):
    """Writes each test's outcome as it happens; arms the hang watchdog per test."""

    def __init__(self, out: TextIO, per_test_timeout: float) -> None:
        super().__init__()
        self._out = out
        self._timeout = per_test_timeout
        self._outcome: dict[str, str] = {}

    def _write(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._outcome[test.id()] = "pass"
        self._write({"start": test.id()})
        _LOOPS_MADE["sim"] = _LOOPS_MADE["other"] = 0
        faulthandler.dump_traceback_later(self._timeout, exit=True)

    def stopTest(self, test: unittest.TestCase) -> None:
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        self._write(
            {
                "test": test.id(),
                "outcome": self._outcome.pop(test.id(), "pass"),
                "loops": dict(_LOOPS_MADE),
            }
        )

    def _mark(self, test: Any, outcome: str, err: Any = None) -> None:
        test_id = test.id() if hasattr(test, "id") else str(test)
        if test_id not in self._outcome:
            # A class or module fixture failed: no startTest for it.
            self._write({"test": test_id, "outcome": outcome, "fixture": True})
        else:
            self._outcome[test_id] = outcome
        if err is not None and outcome in ("fail", "error"):
            text = self._exc_info_to_string(err, test)
            self._write({"detail": test_id, "text": text[-3000:]})

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._mark(test, "error", err)

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._mark(test, "fail", err)

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._mark(test, "skip")

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._mark(test, "xfail")

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._mark(test, "fail")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failure = issubclass(err[0], test.failureException)
            self._mark(test, "fail" if failure else "error", err)


def run_module(
    module: str,
    loop: str,
    *,
    python: str = sys.executable,
    per_test_timeout: float = 20.0,
    env: dict[str, str] | None = None,
    only: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run ``module`` in child processes until every test has an outcome; return
    ``{test id: {"outcome": ..., "detail": ...}}``. A test that hangs is recorded as
    ``hang`` (with the stack dump) and the rest of the module runs in a new process;
    a child that dies otherwise marks its running test ``crash``."""
    import os
    import subprocess
    import tempfile

    outcomes: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="simloom-cpython-") as scratch:
        results_path = os.path.join(scratch, "results.jsonl")
        skip_path = os.path.join(scratch, "skip.txt")
        for _attempt in range(200):
            with open(skip_path, "w") as skip_file:
                skip_file.write("".join(f"{test_id}\n" for test_id in outcomes))
            open(results_path, "w").close()
            command = [
                python,
                os.path.abspath(__file__),
                module,
                "--loop",
                loop,
                "--results",
                results_path,
                "--per-test-timeout",
                str(per_test_timeout),
                "--skip-file",
                skip_path,
            ]
            for test_id in only or ():
                command += ["--only", test_id]
            try:
                child = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=per_test_timeout * 50 + 120,
                )
                stderr, returncode = child.stderr, child.returncode
            except subprocess.TimeoutExpired as expired:
                stderr = str(expired.stderr or "")
                returncode = -9
            running: str | None = None
            with open(results_path) as results:
                for line in results:
                    record = json.loads(line)
                    if "start" in record:
                        running = record["start"]
                    elif "detail" in record:
                        outcomes.setdefault(record["detail"], {"outcome": "error"})
                        outcomes[record["detail"]]["detail"] = record["text"]
                    else:
                        entry = outcomes.setdefault(record["test"], {})
                        entry["outcome"] = record["outcome"]
                        if "loops" in record:
                            entry["loops"] = record["loops"]
                        if record["test"] == running:
                            running = None
            if running is None:
                if returncode != 0:
                    outcomes[f"{module}:<process>"] = {"outcome": "crash", "detail": stderr[-3000:]}
                return outcomes
            hung = "Timeout (" in stderr
            outcomes[running] = {"outcome": "hang" if hung else "crash", "detail": stderr[-3000:]}
    raise RuntimeError(f"{module}: too many hangs or crashes")


def summarize(outcomes: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Count outcomes: pass, fail, error, skip, xfail, hang, crash; and
    ``pass-not-on-simloop``: passes that made a loop other than a SimLoop (and no
    SimLoop), i.e. tests of the stock loop's internals."""
    counts: dict[str, int] = {}
    for entry in outcomes.values():
        counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        loops = entry.get("loops")
        if entry["outcome"] == "pass" and loops and loops["other"] and not loops["sim"]:
            counts["pass-not-on-simloop"] = counts.get("pass-not-on-simloop", 0) + 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="a module of test.test_asyncio, e.g. test_locks")
    parser.add_argument("--loop", choices=["stock", "sim"], required=True)
    parser.add_argument("--results", help="JSON-lines output (default: stdout)")
    parser.add_argument("--per-test-timeout", type=float, default=20.0)
    parser.add_argument("--skip", action="append", default=[], help="test id not to run")
    parser.add_argument("--skip-file", help="file of test ids not to run, one a line")
    parser.add_argument(
        "--only", action="append", default=[], help="run only these ids (or id prefixes)"
    )
    args = parser.parse_args(argv)
    # A child of a background job inherits SIGINT ignored, and then the tests that
    # interrupt themselves (``_thread.interrupt_main``, ``raise_signal(SIGINT)``)
    # would wait forever on the stock loop too: give Python its usual handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    new_sim_loop = _install_simloop() if args.loop == "sim" else None
    module = __import__(f"test.test_asyncio.{args.module}", fromlist=["_"])
    if new_sim_loop is not None:
        _adapt_module(module, new_sim_loop)
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    skip = set(args.skip)
    if args.skip_file:
        with open(args.skip_file) as lines:
            skip |= {line.strip() for line in lines if line.strip()}
    if args.only:
        wanted = set(args.only)
        skip |= {
            t.id()
            for t in _flatten(suite)
            if not any(t.id() == w or t.id().startswith(w + ".") for w in wanted)
        }
    suite = _filtered(suite, skip)
    out: TextIO = open(args.results, "a") if args.results else sys.stdout  # noqa: SIM115
    try:
        result = _StreamingResult(out, args.per_test_timeout)
        suite.run(result)
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
