"""bpo-42130: ``asyncio.wait_for`` could swallow a cancellation.

Before Python 3.12, ``asyncio.wait_for(aw, timeout)`` wrapped ``aw`` in a task
(``inner``) and waited on a private ``waiter`` future, released either by ``inner``
finishing or by the timeout. When the task running ``wait_for`` (``outer``) was
cancelled, ``wait_for`` caught the ``CancelledError`` and checked whether ``inner``
was done: if it was, it *returned inner's result* instead of re-raising. So if the
inner operation completed in the same event-loop iteration in which ``outer`` was
cancelled -- after ``outer.cancel()`` but before ``outer`` resumed -- the
cancellation was silently dropped: ``outer.cancel()`` returned ``True``, yet ``outer``
returned normally. Code that relies on cancellation (shutdown, ``asyncio.timeout``, a
``TaskGroup`` tearing down its children) then keeps running or hangs. Python 3.12
reimplemented ``wait_for`` on top of ``asyncio.timeout``, which always propagates the
cancellation.

This file has a standalone reimplementation of the old algorithm
(:func:`legacy_wait_for`), and one scenario run twice: :func:`main_legacy` uses the
old algorithm (buggy), :func:`main_stdlib` uses the running Python's
``asyncio.wait_for`` (which must survive every schedule). In the scenario a request
runs ``wait_for(fetch(), timeout=10)``; the response arrives at t = 1 s, and at the
same instant shutdown cancels the request. Both pass on the stock loop, whose order
lets the request see its cancellation before the response is decoded; simloom finds
the schedule in which the response is decoded first.

    python examples/bpo42130.py     # explore, print the failing seed, replay it
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

#: When the response arrives, and when shutdown cancels the request (seconds: virtual
#: in a simulation, real and short on the stock loop).
RESPONSE_AT = 0.05
#: The request's own timeout: far away, it never fires here.
REQUEST_TIMEOUT = 10.0


# ------------------------------------------------ the pre-3.12 wait_for algorithm


def _release_waiter(waiter: asyncio.Future[None], *_: object) -> None:
    """Wake whoever waits on ``waiter`` (a done-callback and a timer callback)."""
    if not waiter.done():
        waiter.set_result(None)


async def _cancel_and_wait(fut: asyncio.Future[Any]) -> None:
    """Cancel ``fut`` and wait until it has actually finished (whatever its outcome)."""
    waiter: asyncio.Future[None] = fut.get_loop().create_future()
    wake = functools.partial(_release_waiter, waiter)
    fut.add_done_callback(wake)
    try:
        fut.cancel()
        await waiter  # not "await fut": its outcome is not ours to raise
    finally:
        fut.remove_done_callback(wake)


async def legacy_wait_for[T](aw: Awaitable[T], timeout: float | None) -> T:
    """``asyncio.wait_for`` as it worked before Python 3.12, bpo-42130 included."""
    if timeout is None:
        return await aw
    loop = asyncio.get_running_loop()
    inner = asyncio.ensure_future(aw)
    if timeout <= 0:
        if inner.done():
            return inner.result()
        await _cancel_and_wait(inner)
        try:
            return inner.result()
        except asyncio.CancelledError as exc:
            raise TimeoutError() from exc

    # One future, released by whichever comes first: inner finishing, or the timeout.
    waiter: asyncio.Future[None] = loop.create_future()
    timeout_handle = loop.call_later(timeout, _release_waiter, waiter)
    wake = functools.partial(_release_waiter, waiter)
    inner.add_done_callback(wake)
    try:
        try:
            await waiter
        except asyncio.CancelledError:
            # We (the task running wait_for) were cancelled.
            if inner.done():
                # bpo-42130: inner finished in the same loop iteration in which we were
                # cancelled. Returning its result drops the cancellation on the floor.
                return inner.result()
            inner.remove_done_callback(wake)
            await _cancel_and_wait(inner)  # never leave inner running behind us
            raise
        if inner.done():  # inner finished first
            return inner.result()
        # The timeout fired first: cancel inner, wait for it, report the timeout.
        inner.remove_done_callback(wake)
        await _cancel_and_wait(inner)
        try:
            return inner.result()  # inner may have finished despite the cancellation
        except asyncio.CancelledError as exc:
            raise TimeoutError() from exc
    finally:
        timeout_handle.cancel()


# ------------------------------------------------------------------ the scenario

WaitFor = Callable[[Awaitable[str], float], Awaitable[str]]


async def fetch() -> str:
    """The inner operation: the response arrives at RESPONSE_AT, then is decoded."""
    await asyncio.sleep(RESPONSE_AT)  # the response arrives ...
    await asyncio.sleep(0)  # ... and is decoded
    return "response"


async def scenario(wait_for: WaitFor) -> str:
    """A request with a (long) timeout, cancelled by shutdown as its response arrives.

    Invariant: a task whose ``cancel()`` returned ``True`` ends cancelled -- it does
    not return normally.
    """

    async def request() -> str:
        return await wait_for(fetch(), REQUEST_TIMEOUT)

    outer = asyncio.create_task(request(), name="request")
    await asyncio.sleep(RESPONSE_AT)  # shutdown, at the instant the response arrives
    delivered = outer.cancel()
    try:
        value = await outer
    except asyncio.CancelledError:
        return "cancelled"
    assert not delivered, (
        f"cancellation swallowed: outer.cancel() returned True, yet the task returned {value!r}"
    )
    return value  # it had finished before shutdown: cancel() was a no-op


async def main_legacy() -> str:
    """bpo-42130 with the pre-3.12 wait_for: the cancellation can be swallowed."""
    return await scenario(legacy_wait_for)


async def main_stdlib() -> str:
    """The same scenario with this Python's asyncio.wait_for (fixed in 3.12)."""
    return await scenario(asyncio.wait_for)


# ------------------------------------------------------------------- exploration


def explore(
    main: Callable[[], Awaitable[Any]], scheduler: str = "random", seeds: int = 2000
) -> Any:
    """The first failing universe of ``main`` among seeds ``0..seeds-1``, or None."""
    import simloom

    for seed in range(seeds):
        result = simloom.run(main, seed=seed, scheduler=scheduler)
        if not result.ok:
            return result
    return None


def _demo() -> int:
    import simloom

    print(f"Python {sys.version.split()[0]}: bpo-42130, the swallowed cancellation\n")
    print(f"  stock loop, legacy wait_for: {asyncio.run(main_legacy())}")
    print(f"  stock loop, asyncio.wait_for: {asyncio.run(main_stdlib())}")
    fifo = simloom.run(main_legacy, scheduler="fifo")
    print(f"  simloom FIFO, legacy wait_for: {fifo.value} ({fifo.decisions} decisions)\n")

    status = 0
    for scheduler in ("random", "pct"):
        result = explore(main_legacy, scheduler)
        if result is None:
            print(f"{scheduler}: no failure in 2000 universes")
            status = 1
            continue
        print(f"{scheduler}: legacy wait_for FAILED at seed {result.seed}")
        print(f"  error: {type(result.error).__name__}: {result.error}")
        print(f"  decisions: {result.decisions}, deviations: {result.deviations}")
        print("  " + result.explain().replace("\n", "\n  "))
        by_seed = simloom.run(main_legacy, seed=result.seed, scheduler=scheduler)
        by_tape = simloom.replay(main_legacy, result.tape, strict=True)
        same = result.digest == by_seed.digest == by_tape.digest
        print(f"  digest            {result.digest}")
        print(f"  replay from seed  {by_seed.digest}  ({type(by_seed.error).__name__})")
        print(f"  replay from tape  {by_tape.digest}  ({type(by_tape.error).__name__})")
        print(f"  identical: {'yes' if same else 'NO'}\n")
        status |= not same
        survivor = explore(main_stdlib, scheduler)
        verdict = "survives" if survivor is None else f"FAILS at seed {survivor.seed}"
        print(f"  asyncio.wait_for {verdict} seeds 0..1999 under {scheduler}\n")
        status |= survivor is not None
    return status


if __name__ == "__main__":
    raise SystemExit(_demo())
