"""Injecting ``KeyboardInterrupt`` at every line simloom runs, and checking that
the process is as it was afterwards. Shared by ``test_restoration.py`` and its
child processes.

A first run traces the line events in simloom's own files (``sys.settrace``); a
*point* is the index of one such event. Running again with a tracer that raises
``KeyboardInterrupt`` at point ``k`` is what a signal arriving there does (a
tracer's exception disables the tracer, so each run is interrupted once).
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import simloom
from simloom import _boundary, _hostfs, _patches

PACKAGE_DIR = os.path.dirname(os.path.abspath(simloom.__file__))
#: The wall clock at virtual time zero under the boundary (2025-01-01).
VIRTUAL_EPOCH = 1735689600.0

Tracer = Callable[[FrameType, str, Any], Any]


def _in_simloom(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(PACKAGE_DIR)


def trace_points_with_functions(action: Callable[[], object]) -> list[tuple[str, int, str]]:
    """The line events in simloom's files while ``action()`` runs, in order: file,
    line and the function's qualified name. (Run once untraced first, so that
    one-time work, imports and caches, is not counted: later runs skip it.)"""
    action()
    events: list[tuple[str, int, str]] = []

    def local(frame: FrameType, event: str, arg: Any) -> Tracer:
        if event == "line":
            code = frame.f_code
            events.append((code.co_filename, frame.f_lineno, code.co_qualname))
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Tracer | None:
        return local if _in_simloom(frame) else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        action()
    finally:
        sys.settrace(previous)
    return events


def trace_points(action: Callable[[], object]) -> list[tuple[str, int]]:
    """The line events in simloom's files while ``action()`` runs, in order."""
    return [(filename, line) for filename, line, _ in trace_points_with_functions(action)]


class Injected(KeyboardInterrupt):
    """The interrupt the tracer raises (a ``KeyboardInterrupt``, so simloom treats
    it as one), naming where."""


def interrupt_at(point: int, action: Callable[[], object]) -> tuple[int, str | None]:
    """Run ``action()`` raising ``Injected`` at line event ``point`` of simloom's
    files. Returns whether a ``KeyboardInterrupt`` reached the caller (1; 0 if
    the call returned or raised something else) and where it was injected
    (``None``: the point was never reached)."""
    seen = 0
    where: list[str] = []

    def local(frame: FrameType, event: str, arg: Any) -> Tracer:
        nonlocal seen
        if event == "line":
            if seen == point:
                seen += 1
                where.append(f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}")
                raise Injected(where[0])
            seen += 1
        return local

    def calls(frame: FrameType, event: str, arg: Any) -> Tracer | None:
        return local if _in_simloom(frame) else None

    previous = sys.gettrace()
    reached = 0
    sys.settrace(calls)
    try:
        action()
    except KeyboardInterrupt:
        reached = 1
    except BaseException:
        pass  # something else reached the caller instead: not propagated
    finally:
        sys.settrace(previous)
    return reached, (where[0] if where else None)


# ------------------------------------------------------------------- the program


async def busy_universe() -> None:
    """Touches everything a universe installs: tasks, timers, an async generator
    left open, a task left running, the boundary's clocks, random and uuid, and the
    patched ``as_completed``. (File I/O on a host's disk: test_hostfs.py injects
    into a universe of its own.)"""

    async def ticker() -> None:
        while True:
            await asyncio.sleep(1)

    async def numbers() -> Any:
        yield 1
        yield 2

    loop = asyncio.get_running_loop()
    loop.leftover = asyncio.create_task(ticker())  # type: ignore[attr-defined]
    generator = numbers()
    loop.generator = generator  # type: ignore[attr-defined]
    await generator.__anext__()
    random.random()
    time.time()
    uuid.uuid4()
    for waiting in asyncio.as_completed([asyncio.sleep(0.5), asyncio.sleep(0.1)]):
        await waiting
    await asyncio.sleep(2)


async def small_universe() -> float:
    await asyncio.sleep(1)
    return time.time()


# ----------------------------------------------------------------- the state


def _frozen_after_a_collection() -> int:
    gc.collect()
    return gc.get_freeze_count()


@dataclass
class Baseline:
    """The process state outside any universe, taken once before the runs."""

    asyncgen_hooks: Any = field(default_factory=sys.get_asyncgen_hooks)
    unraisablehook: Any = field(default_factory=lambda: sys.unraisablehook)
    trace: Any = field(default_factory=sys.gettrace)
    #: CPython 3.12 counts the immortal objects a full collection met as frozen
    #: (about 400): the count outside any universe, not necessarily 0.
    frozen: int = field(default_factory=lambda: _frozen_after_a_collection())
    #: tempfile's name generator (a universe with files starts its own).
    tempfile_names: Any = field(default_factory=lambda: tempfile._name_sequence)  # type: ignore[attr-defined]


def broken_state(baseline: Baseline) -> list[str]:
    """What is not as it was outside a universe (empty: all restored)."""
    problems: list[str] = []
    now = time.time()
    if abs(now - VIRTUAL_EPOCH) < 86_400 * 30 or now < 1.7e9:
        problems.append(f"time.time() is virtual ({now})")
    first = time.monotonic()
    try:
        time.sleep(0.0001)
    except Exception as exc:
        problems.append(f"time.sleep raises {type(exc).__name__}")
    if time.monotonic() == first:
        problems.append("time.monotonic() does not move")
    if asyncio.events._get_running_loop() is not None:
        problems.append("a loop is still running")
    if sys.get_asyncgen_hooks() != baseline.asyncgen_hooks:
        problems.append("async-generator hooks still installed")
    if sys.unraisablehook is not baseline.unraisablehook:
        problems.append("sys.unraisablehook replaced")
    if _boundary._active:
        problems.append("_boundary._active is not empty")
    redirects = _boundary._redirects
    if redirects is not None and redirects.active():
        problems.append(f"builtins still redirected: {redirects.active()[:3]}...")
    if asyncio.as_completed is not _patches._original_as_completed:
        problems.append("asyncio.as_completed still patched")
    if asyncio.tasks.as_completed is not _patches._original_as_completed:
        problems.append("asyncio.tasks.as_completed still patched")
    if not gc.isenabled():
        problems.append("gc disabled")
    restoration = getattr(simloom._core, "Restoration", None)  # (absent before it existed)
    users = restoration.frozen_heap_users() if restoration is not None else 0
    if gc.get_freeze_count() > baseline.frozen or users:
        problems.append(f"gc frozen ({gc.get_freeze_count()} objects)")
    if threading.get_ident() in _boundary._active:
        problems.append("this thread still has a universe")
    if tempfile._name_sequence is not baseline.tempfile_names:  # type: ignore[attr-defined]
        problems.append("tempfile's name generator is not restored")
    if _hostfs.universes:
        problems.append("the file handlers still see a universe")
    try:
        result = simloom.run(small_universe, boundary=True)
    except BaseException as exc:
        problems.append(f"a new universe cannot start: {type(exc).__name__}: {exc}")
    else:
        if result.error is not None:
            problems.append(f"a new universe fails: {result.error!r}")
        elif result.value != VIRTUAL_EPOCH + 1:
            problems.append(f"a new universe sees time {result.value}")
    return problems


def repair(baseline: Baseline) -> None:
    """Put things back by hand after a broken point, so the next point starts
    clean (only needed when restoration is broken)."""
    asyncio.events._set_running_loop(None)
    sys.set_asyncgen_hooks(*baseline.asyncgen_hooks)
    sys.unraisablehook = baseline.unraisablehook
    _boundary._active.clear()
    if _boundary._redirects is not None:
        _boundary._redirects.restore()
    asyncio.as_completed = asyncio.tasks.as_completed = _patches._original_as_completed
    for module, counter in ((_boundary, "_installed_universes"), (_patches, "_depth")):
        if hasattr(module, counter):
            setattr(module, counter, 0)
    from simloom import _api

    if hasattr(_api, "_frozen_depth"):
        _api._frozen_depth = 0  # type: ignore[attr-defined]
    gc.enable()
    gc.unfreeze()
