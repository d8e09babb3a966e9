"""Shared helpers for the ``bench_*.py`` scripts (not a benchmark itself).

* :func:`best_of` / :func:`interleaved_best` -- warm-up plus best-of-N timing with
  ``time.perf_counter``; contenders are measured round-robin so that drift on a busy
  machine hits every contender alike.
* :class:`NaiveLoop` -- the pure-Python reference loop: a bare
  ``asyncio.AbstractEventLoop`` with a deque of ``(callback, args, context)`` tuples
  (no ``asyncio.Handle`` objects), a ``heapq`` timer queue and a virtual clock.
* :class:`Report` -- the table, the ``goal`` lines, and the ``--json`` output that
  ``run_all.py`` collects.

Every benchmark prints ratios against a reference measured in the same run; absolute
figures alone mean little across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import heapq
import json
import os
import platform
import subprocess
import sys
import time
from asyncio import events, futures, tasks
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# ---------------------------------------------------------------------- timing


def interleaved_best(
    contenders: dict[str, Callable[[], float]], *, repeat: int = 5, warmup: int = 1
) -> dict[str, float]:
    """Run every contender ``warmup + repeat`` times, round-robin, and return each
    one's best (smallest) time in seconds. A contender runs its workload and returns
    the seconds it measured itself (so set-up can stay outside the timed region)."""
    best = dict.fromkeys(contenders, float("inf"))
    for rep in range(warmup + repeat):
        for name, run in contenders.items():
            elapsed = run()
            if rep >= warmup:
                best[name] = min(best[name], elapsed)
    return best


def best_of(run: Callable[[], float], *, repeat: int = 5, warmup: int = 1) -> float:
    """Best (smallest) of ``repeat`` timings after ``warmup`` discarded ones."""
    return interleaved_best({"x": run}, repeat=repeat, warmup=warmup)["x"]


# ------------------------------------------------------------- reference loop


class _Timer:
    """What ``call_later``/``call_at`` return: just enough for ``asyncio.sleep``
    (which cancels its timer handle in a ``finally``)."""

    __slots__ = ("args", "callback", "cancelled", "context")

    def __init__(
        self, callback: Callable[..., object], args: tuple[Any, ...], context: contextvars.Context
    ) -> None:
        self.callback = callback
        self.args = args
        self.context = context
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class NaiveLoop(asyncio.AbstractEventLoop):
    """A bare pure-Python event loop that skips asyncio's Handle objects.

    The ready queue is a deque of ``(callback, args, context)`` tuples; timers sit in a
    ``heapq`` of ``(when, seq, timer)``; the clock is virtual (it jumps to the next
    timer when nothing is ready). One iteration moves due timers to the ready queue and
    runs the callbacks that were ready when it began, like ``BaseEventLoop._run_once``
    minus the selector. No debug mode, no exception handling beyond printing: it is the
    floor a Python-level loop can reach, not a usable loop.
    """

    def __init__(self) -> None:
        self._ready: deque[tuple[Callable[..., object], tuple[Any, ...], contextvars.Context]] = (
            deque()
        )
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = 0
        self._now = 0.0
        self._closed = False
        self.steps = 0

    # -- the surface asyncio.Task / Future / sleep / gather use
    def time(self) -> float:
        return self._now

    def get_debug(self) -> bool:
        return False

    def call_soon(  # type: ignore[override]
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> None:
        if context is None:
            context = contextvars.copy_context()
        self._ready.append((callback, args, context))

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> _Timer:
        timer = _Timer(callback, args, context or contextvars.copy_context())
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, timer))
        return timer

    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> _Timer:
        return self.call_at(self._now + delay, callback, *args, context=context)

    def create_future(self) -> asyncio.Future[Any]:
        return futures.Future(loop=self)

    def create_task(self, coro: Any, *, name: str | None = None, context: Any = None) -> Any:
        return tasks.Task(coro, loop=self, name=name, context=context)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        print(f"NaiveLoop: {context.get('message')}: {context.get('exception')!r}", file=sys.stderr)

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready.clear()
        self._timers.clear()

    def is_running(self) -> bool:
        return events._get_running_loop() is self

    # -- running
    def _run_once(self) -> None:
        ready, timers = self._ready, self._timers
        if not ready:
            while timers and timers[0][2].cancelled:
                heapq.heappop(timers)
            if not timers:
                raise RuntimeError("NaiveLoop: deadlock (nothing ready, no timer)")
            self._now = timers[0][0]
        now = self._now
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled:
                ready.append((timer.callback, timer.args, timer.context))
        popleft = ready.popleft
        n = len(ready)
        self.steps += n
        for _ in range(n):
            callback, args, context = popleft()
            context.run(callback, *args)

    def run_until_complete(self, future: Any) -> Any:
        future = tasks.ensure_future(future, loop=self)
        events._set_running_loop(self)
        try:
            while not future.done():
                self._run_once()
        finally:
            events._set_running_loop(None)
        return future.result()


# -------------------------------------------------------------------- report


@dataclass
class Measurement:
    case: str
    contender: str
    value: float
    unit: str
    ratios: str = ""


@dataclass
class Goal:
    text: str
    measured: str
    passed: bool


@dataclass
class Report:
    bench: str
    title: str
    measurements: list[Measurement] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def measure(self, case: str, contender: str, value: float, unit: str, ratios: str = "") -> None:
        self.measurements.append(Measurement(case, contender, value, unit, ratios))

    def goal(self, text: str, measured: str, passed: bool) -> bool:
        self.goals.append(Goal(text, measured, passed))
        return passed

    def note(self, text: str) -> None:
        self.notes.append(text)

    def print_goals(self) -> None:
        print()
        for g in self.goals:
            print(f"goal {'PASS' if g.passed else 'MISS'}: {g.text} -- measured {g.measured}")
        passed = sum(g.passed for g in self.goals)
        print(f"goals: {passed}/{len(self.goals)} PASS")

    def write_json(self, path: str | None) -> None:
        if path:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(asdict(self), f, indent=2)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain fixed-width table: first column left-aligned, the rest right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        out = [str(cells[0]).ljust(widths[0])]
        out += [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x"


# ------------------------------------------------------------------ plumbing


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import simloom

    commit = "unknown"
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "python", "rust"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if dirty:
            commit += " (+ uncommitted changes in python/ or rust/)"
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "simloom": f"{simloom.__version__} @ {commit}",
    }


def parse_args(
    description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The common options; ``extra`` adds a benchmark's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeat", type=int, default=5, help="best of N (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded warm-up runs")
    parser.add_argument("--quick", action="store_true", help="smaller workload, best of 2")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.quick:
        args.repeat = min(args.repeat, 2)
    return args


def print_header(title: str, args: argparse.Namespace) -> None:
    info = machine_info()
    print(f"== {title}")
    print(
        f"   {info['python']} | {info['cpu']} ({info['cores']} cores) | simloom {info['simloom']}"
        f" | best of {args.repeat} after {args.warmup} warm-up"
        + (" | QUICK (smaller workload)" if args.quick else "")
    )
    print()


def now() -> float:
    return time.perf_counter()
