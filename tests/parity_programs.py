"""Small asyncio programs for the parity suite (tests/test_parity.py).

Every program in ``PROGRAMS`` is an ``async def`` that takes no arguments and returns a
JSON-like value (or raises).  Its outcome -- the value, or the type and text of the
exception -- must not depend on the interleaving of ready callbacks, nor on which of
two timers with the same deadline fires first: results are sorted or aggregated, or
their order is forced by a primitive or by clearly distinct deadlines (never two equal
deadlines; a timeout and a sleep are always at least 5x apart).  So the stock loop,
SimLoop's FIFO schedule and any seeded random or PCT schedule must all agree.

Rules the programs follow:

* every sleep and timeout is at most 0.05 s, because the stock loop runs in real time;
* only relative facts about ``loop.time()`` are returned, never an exact time;
* no threads, except ``loop.run_in_executor(None, ...)`` with a pure function;
* no reliance on default task names (their counter is process-global);
* every task a program starts is finished or cancelled before it returns.

``FIFO_PROGRAMS`` is a second, smaller registry of programs whose result *does* depend
on the order of ready callbacks (done-callback order, ``sleep(0)`` ping-pong, lock
hand-over order ...).  The stock loop runs ready callbacks first-in first-out, and so
does SimLoop's FIFO schedule, so these must agree between the two -- but a random
schedule may legitimately change them.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

Program = Callable[[], Awaitable[Any]]

PROGRAMS: dict[str, Program] = {}
FIFO_PROGRAMS: dict[str, Program] = {}


def program(fn: Program) -> Program:
    """Register an interleaving-independent program under its function name."""
    assert fn.__name__ not in PROGRAMS, fn.__name__
    PROGRAMS[fn.__name__] = fn
    return fn


def fifo_program(fn: Program) -> Program:
    """Register a program whose result is fixed only by the FIFO schedule."""
    assert fn.__name__ not in FIFO_PROGRAMS, fn.__name__
    FIFO_PROGRAMS[fn.__name__] = fn
    return fn


class AppError(Exception):
    """A user-defined exception, to check that custom types cross task boundaries."""


async def _cancel_and_wait(*tasks: asyncio.Future[Any]) -> list[bool]:
    """Cancel ``tasks``, wait for them to finish and say which ended cancelled."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return [task.cancelled() for task in tasks]


def _exc(exc: BaseException) -> list[Any]:
    return [type(exc).__name__, str(exc)]


# --------------------------------------------------------------------------- Lock


@program
async def lock_serialises_increments() -> Any:
    lock = asyncio.Lock()
    counter = 0
    inside = 0
    max_inside = 0

    async def worker() -> None:
        nonlocal counter, inside, max_inside
        for _ in range(3):
            async with lock:
                inside += 1
                max_inside = max(max_inside, inside)
                seen = counter
                await asyncio.sleep(0)
                await asyncio.sleep(0.001)
                counter = seen + 1
                inside -= 1

    await asyncio.gather(*(worker() for _ in range(8)))
    return {"counter": counter, "max_inside": max_inside, "locked": lock.locked()}


@program
async def lock_state_and_release_of_unlocked_lock_raises() -> Any:
    lock = asyncio.Lock()
    states = [lock.locked()]
    await lock.acquire()
    states.append(lock.locked())
    lock.release()
    states.append(lock.locked())
    try:
        lock.release()
    except RuntimeError as exc:
        return [states, _exc(exc)]
    return [states, "no error"]


@program
async def lock_waiter_cancelled_while_waiting_leaves_lock_usable() -> Any:
    lock = asyncio.Lock()
    got_it: list[str] = []

    async def contender(name: str) -> None:
        async with lock:
            got_it.append(name)

    await lock.acquire()
    doomed = asyncio.create_task(contender("doomed"))
    await asyncio.sleep(0.01)
    doomed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await doomed
    lock.release()
    survivor = asyncio.create_task(contender("survivor"))
    await asyncio.wait_for(survivor, 0.05)
    return {"doomed_cancelled": doomed.cancelled(), "got_it": got_it, "locked": lock.locked()}


# -------------------------------------------------------------------------- Event


@program
async def event_set_wakes_every_waiter() -> Any:
    event = asyncio.Event()

    async def waiter(i: int) -> int:
        flag = await event.wait()
        assert flag is True
        return i * 10

    tasks = [asyncio.create_task(waiter(i)) for i in range(5)]
    await asyncio.sleep(0.01)
    before = [t.done() for t in tasks]
    event.set()
    results = await asyncio.gather(*tasks)
    return {"done_before_set": before, "results": results, "is_set": event.is_set()}


@program
async def event_clear_makes_later_waiters_block() -> Any:
    event = asyncio.Event()
    event.set()
    immediate = await event.wait()
    event.clear()
    try:
        await asyncio.wait_for(event.wait(), 0.01)
        outcome = "woke"
    except TimeoutError:
        outcome = "timed out"
    return [immediate, outcome, event.is_set()]


# ---------------------------------------------------------------------- Condition


@program
async def condition_wait_for_predicate_wakes_at_threshold() -> Any:
    cond = asyncio.Condition()
    value = 0

    async def producer() -> None:
        nonlocal value
        for _ in range(5):
            await asyncio.sleep(0.005)
            async with cond:
                value += 1
                cond.notify_all()

    async def consumer() -> int:
        async with cond:
            await cond.wait_for(lambda: value >= 3)
            return value

    prod = asyncio.create_task(producer())
    seen = await consumer()
    await prod
    return {"seen_at_wakeup": seen, "final": value}


@program
async def condition_notify_one_wakes_exactly_one_waiter() -> Any:
    cond = asyncio.Condition()
    woke: list[int] = []

    async def waiter(i: int) -> None:
        async with cond:
            await cond.wait()
            woke.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await asyncio.sleep(0.005)
    counts = []
    async with cond:
        cond.notify(1)
    await asyncio.sleep(0.005)
    counts.append(len(woke))
    async with cond:
        cond.notify(2)
    await asyncio.sleep(0.005)
    counts.append(len(woke))
    await asyncio.gather(*tasks)
    return {"woken_counts": counts, "woke": sorted(woke)}


@program
async def condition_notify_all_wakes_every_waiter() -> Any:
    cond = asyncio.Condition()
    woke: list[int] = []

    async def waiter(i: int) -> int:
        async with cond:
            await cond.wait()
            woke.append(i)
            return i

    tasks = [asyncio.create_task(waiter(i)) for i in range(4)]
    await asyncio.sleep(0.005)
    async with cond:
        cond.notify_all()
    results = await asyncio.gather(*tasks)
    return {"results": results, "woke": sorted(woke), "locked_after": cond.locked()}


@program
async def condition_requires_holding_the_lock() -> Any:
    cond = asyncio.Condition()
    errors = []
    try:
        await cond.wait()
    except RuntimeError as exc:
        errors.append(_exc(exc))
    try:
        cond.notify()
    except RuntimeError as exc:
        errors.append(_exc(exc))
    try:
        cond.notify_all()
    except RuntimeError as exc:
        errors.append(_exc(exc))
    return errors


@program
async def condition_shares_an_explicit_lock() -> Any:
    lock = asyncio.Lock()
    cond = asyncio.Condition(lock)
    async with lock:
        held = [cond.locked(), lock.locked()]
        cond.notify_all()  # allowed: the shared lock is held
    return [held, cond.locked(), lock.locked()]


@program
async def condition_wait_cancelled_reacquires_lock() -> Any:
    cond = asyncio.Condition()
    held_on_cancel: list[bool] = []

    async def waiter() -> None:
        async with cond:
            try:
                await cond.wait()
            except asyncio.CancelledError:
                held_on_cancel.append(cond.locked())
                raise

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0.005)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return {
        "held_on_cancel": held_on_cancel,
        "cancelled": task.cancelled(),
        "locked": cond.locked(),
    }


# ---------------------------------------------------------------------- Semaphore


@program
async def semaphore_limits_concurrency() -> Any:
    sem = asyncio.Semaphore(3)
    inside = 0
    max_inside = 0
    finished = 0

    async def worker(i: int) -> int:
        nonlocal inside, max_inside, finished
        async with sem:
            inside += 1
            max_inside = max(max_inside, inside)
            await asyncio.sleep(0.002)
            inside -= 1
        finished += 1
        return i

    results = await asyncio.gather(*(worker(i) for i in range(10)))
    return {
        "max_inside": max_inside,
        "finished": finished,
        "results": results,
        "locked": sem.locked(),
    }


@program
async def semaphore_locked_reflects_value() -> Any:
    sem = asyncio.Semaphore(2)
    states = [sem.locked()]
    await sem.acquire()
    states.append(sem.locked())
    await sem.acquire()
    states.append(sem.locked())
    sem.release()
    states.append(sem.locked())
    sem.release()
    sem.release()  # a plain Semaphore may go above its initial value
    states.append(sem.locked())
    try:
        asyncio.Semaphore(-1)
    except ValueError as exc:
        return [states, _exc(exc)]
    return [states, "no error"]


@program
async def bounded_semaphore_over_release_raises_value_error() -> Any:
    sem = asyncio.BoundedSemaphore(2)
    await sem.acquire()
    sem.release()
    try:
        sem.release()
    except ValueError as exc:
        return _exc(exc)
    return "no error"


@program
async def semaphore_waiter_cancelled_does_not_leak_a_slot() -> Any:
    sem = asyncio.Semaphore(1)
    await sem.acquire()

    async def waiter() -> None:
        async with sem:
            pass

    doomed = asyncio.create_task(waiter())
    await asyncio.sleep(0.005)
    doomed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await doomed
    sem.release()
    ok = asyncio.create_task(waiter())
    await asyncio.wait_for(ok, 0.05)
    # exactly one slot again: one acquire succeeds, a second would block
    await sem.acquire()
    return {"doomed_cancelled": doomed.cancelled(), "locked_after_one_acquire": sem.locked()}


# ------------------------------------------------------------------------ Barrier


@program
async def barrier_wait_indices_are_a_permutation() -> Any:
    barrier = asyncio.Barrier(3)

    async def party(delay: float) -> int:
        await asyncio.sleep(delay)
        return await barrier.wait()

    indices = await asyncio.gather(party(0.001), party(0.003), party(0.005))
    return {"indices": sorted(indices), "n_waiting": barrier.n_waiting, "broken": barrier.broken}


@program
async def barrier_abort_breaks_current_and_future_waiters() -> Any:
    barrier = asyncio.Barrier(3)
    waiters = [asyncio.create_task(barrier.wait()) for _ in range(2)]
    await asyncio.sleep(0.005)
    n_waiting = barrier.n_waiting
    await barrier.abort()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    try:
        await barrier.wait()
        late = "passed"
    except asyncio.BrokenBarrierError as exc:
        late = _exc(exc)
    return {
        "n_waiting_before_abort": n_waiting,
        "waiters": sorted(type(r).__name__ for r in results),
        "late": late,
        "broken": barrier.broken,
    }


@program
async def barrier_is_reusable_across_cycles() -> Any:
    barrier = asyncio.Barrier(2)
    rounds: list[tuple[int, int]] = []

    async def party(pid: int) -> int:
        for cycle in range(3):
            await asyncio.sleep(0.001 * (pid + 1))
            await barrier.wait()
            rounds.append((cycle, pid))
        return pid

    await asyncio.gather(party(0), party(1))
    # each cycle is entered by both parties before the next one starts
    per_cycle = [sorted(p for c, p in rounds if c == cycle) for cycle in range(3)]
    return {"per_cycle": per_cycle, "parties": barrier.parties, "n_waiting": barrier.n_waiting}


@program
async def barrier_reset_breaks_waiters_then_works_again() -> Any:
    barrier = asyncio.Barrier(2)
    waiter = asyncio.create_task(barrier.wait())
    await asyncio.sleep(0.005)
    await barrier.reset()
    first = await asyncio.gather(waiter, return_exceptions=True)
    indices = await asyncio.gather(barrier.wait(), barrier.wait())
    return {
        "first": [type(r).__name__ for r in first],
        "second_cycle": sorted(indices),
        "broken": barrier.broken,
    }


@program
async def barrier_wait_timeout_leaves_barrier_unbroken() -> Any:
    barrier = asyncio.Barrier(2)
    try:
        async with asyncio.timeout(0.005):
            await barrier.wait()
        outcome = "passed"
    except TimeoutError:
        outcome = "timeout"
    return {"outcome": outcome, "broken": barrier.broken, "n_waiting": barrier.n_waiting}


# -------------------------------------------------------------------------- Queue


@program
async def queue_join_waits_for_every_task_done() -> Any:
    queue: asyncio.Queue[int] = asyncio.Queue()
    handled: list[int] = []

    async def consumer() -> None:
        while True:
            item = await queue.get()
            await asyncio.sleep(0.001)
            handled.append(item)
            queue.task_done()

    consumers = [asyncio.create_task(consumer()) for _ in range(3)]
    for i in range(20):
        queue.put_nowait(i)
    await queue.join()
    snapshot = sorted(handled)
    cancelled = await _cancel_and_wait(*consumers)
    return {
        "handled": snapshot,
        "sum": sum(snapshot),
        "consumers_cancelled": cancelled,
        "empty": queue.empty(),
    }


@program
async def queue_nowait_raises_queue_full_and_queue_empty() -> Any:
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=2)
    events: list[Any] = []
    queue.put_nowait("a")
    queue.put_nowait("b")
    events.append(["full", queue.full(), queue.qsize()])
    try:
        queue.put_nowait("c")
    except asyncio.QueueFull as exc:
        events.append(_exc(exc))
    events.append(queue.get_nowait())
    events.append(queue.get_nowait())
    try:
        queue.get_nowait()
    except asyncio.QueueEmpty as exc:
        events.append(_exc(exc))
    events.append(["empty", queue.empty(), queue.maxsize])
    return events


@program
async def queue_maxsize_applies_backpressure() -> Any:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=2)
    max_size = 0
    received: list[int] = []

    async def producer() -> None:
        nonlocal max_size
        for i in range(10):
            await queue.put(i)
            max_size = max(max_size, queue.qsize())
        await queue.put(-1)

    async def consumer() -> None:
        while (item := await queue.get()) != -1:
            await asyncio.sleep(0.001)
            received.append(item)

    await asyncio.gather(producer(), consumer())
    return {"max_qsize": max_size, "received": received}


@program
async def priority_queue_yields_smallest_first() -> Any:
    queue: asyncio.PriorityQueue[tuple[int, str]] = asyncio.PriorityQueue()
    for item in [(5, "e"), (1, "a"), (4, "d"), (2, "b"), (3, "c")]:
        await queue.put(item)
    return [await queue.get() for _ in range(queue.qsize())]


@program
async def lifo_queue_yields_newest_first() -> Any:
    queue: asyncio.LifoQueue[int] = asyncio.LifoQueue()
    for i in range(5):
        queue.put_nowait(i)
    return [queue.get_nowait() for _ in range(5)]


@program
async def queue_many_producers_many_consumers_lose_nothing() -> Any:
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue(maxsize=3)
    got: list[tuple[int, int]] = []

    async def producer(pid: int) -> None:
        for i in range(5):
            await queue.put((pid, i))

    async def consumer() -> None:
        while True:
            got.append(await queue.get())
            queue.task_done()

    consumers = [asyncio.create_task(consumer()) for _ in range(2)]
    await asyncio.gather(*(producer(p) for p in range(3)))
    await queue.join()
    await _cancel_and_wait(*consumers)
    return sorted(got)


@program
async def queue_task_done_too_many_times_raises_value_error() -> Any:
    queue: asyncio.Queue[int] = asyncio.Queue()
    queue.put_nowait(1)
    queue.get_nowait()
    queue.task_done()
    try:
        queue.task_done()
    except ValueError as exc:
        return _exc(exc)
    return "no error"


@program
async def queue_cancelled_getter_does_not_swallow_an_item() -> Any:
    queue: asyncio.Queue[str] = asyncio.Queue()
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.005)
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    queue.put_nowait("kept")
    return {
        "getter_cancelled": getter.cancelled(),
        "item": queue.get_nowait(),
        "empty": queue.empty(),
    }


# -------------------------------------------------------------------------- sleep


@program
async def sleep_returns_its_result_argument() -> Any:
    a = await asyncio.sleep(0, result="zero")
    b = await asyncio.sleep(0.002, result={"k": [1, 2]})
    c = await asyncio.sleep(0.001)
    return [a, b, c]


@program
async def sleepers_finish_in_deadline_order() -> Any:
    order: list[str] = []

    async def sleeper(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        order.append(name)

    await asyncio.gather(sleeper("c", 0.03), sleeper("a", 0.01), sleeper("b", 0.02))
    return order


@program
async def loop_time_is_monotonic_across_sleeps() -> Any:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.sleep(0.02)
    t1 = loop.time()
    await asyncio.sleep(0)
    t2 = loop.time()
    await asyncio.sleep(0.01)
    t3 = loop.time()
    return [t1 - t0 >= 0.019, t2 >= t1, t3 - t2 >= 0.009, t3 > t0]


@program
async def zero_sleep_yields_without_advancing_order_of_results() -> Any:
    counts = [0, 0]

    async def spinner(i: int) -> int:
        for _ in range(50):
            counts[i] += 1
            await asyncio.sleep(0)
        return counts[i]

    results = await asyncio.gather(spinner(0), spinner(1))
    return [results, counts]


# ----------------------------------------------------------------- asyncio.timeout


@program
async def timeout_expiry_raises_timeout_error() -> Any:
    async with asyncio.timeout(0.005):
        await asyncio.sleep(0.05)
    return "not reached"


@program
async def timeout_not_reached_leaves_expired_false() -> Any:
    async with asyncio.timeout(0.05) as cm:
        value = await asyncio.sleep(0.002, result="finished")
    return [value, cm.expired(), cm.when() is not None]


@program
async def timeout_expired_flag_after_expiry() -> Any:
    cm = asyncio.timeout(0.005)
    try:
        async with cm:
            await asyncio.sleep(0.05)
    except TimeoutError as exc:
        return [cm.expired(), type(exc).__name__, type(exc.__context__).__name__]
    return "no timeout"


@program
async def timeout_reschedule_extends_the_deadline() -> Any:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(0.005) as cm:
        cm.reschedule(loop.time() + 0.05)
        await asyncio.sleep(0.01)
        cm.reschedule(None)
        when_none = cm.when() is None
        await asyncio.sleep(0.01)
    return [cm.expired(), when_none]


@program
async def timeout_reschedule_shortens_the_deadline() -> Any:
    loop = asyncio.get_running_loop()
    cm = asyncio.timeout(None)
    try:
        async with cm:
            cm.reschedule(loop.time() + 0.005)
            await asyncio.sleep(0.05)
    except TimeoutError:
        return ["timeout", cm.expired()]
    return ["no timeout", cm.expired()]


@program
async def nested_timeouts_inner_expires_first() -> Any:
    outer = asyncio.timeout(0.05)
    inner = asyncio.timeout(0.005)
    async with outer:
        try:
            async with inner:
                await asyncio.sleep(0.05)
        except TimeoutError:
            caught = "inner timeout"
        await asyncio.sleep(0.001)
    return [caught, inner.expired(), outer.expired()]


@program
async def nested_timeouts_outer_expires_first() -> Any:
    outer = asyncio.timeout(0.005)
    inner = asyncio.timeout(0.05)
    try:
        async with outer, inner:
            await asyncio.sleep(0.05)
    except TimeoutError:
        return ["outer timeout", inner.expired(), outer.expired()]
    return "no timeout"


@program
async def timeout_at_absolute_deadline_expires() -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.005
    cm = asyncio.timeout_at(deadline)
    try:
        async with cm:
            await asyncio.sleep(0.05)
    except TimeoutError:
        return ["timeout", cm.expired(), cm.when() == deadline]
    return ["no timeout"]


@program
async def timeout_with_deadline_in_the_past_expires_at_next_await() -> Any:
    loop = asyncio.get_running_loop()
    results = []
    for cm in (asyncio.timeout(0), asyncio.timeout(-1), asyncio.timeout_at(loop.time() - 1)):
        try:
            async with cm:
                await asyncio.sleep(0.05)
            results.append("no timeout")
        except TimeoutError:
            results.append(["timeout", cm.expired()])
    return results


@program
async def timeout_lets_an_outside_cancel_through_as_cancelled_error() -> Any:
    seen: list[str] = []

    async def worker() -> None:
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(0.05)
        except TimeoutError:
            seen.append("timeout")
            raise
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = asyncio.create_task(worker())
    await asyncio.sleep(0.005)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return {"seen": seen, "cancelled": task.cancelled()}


@program
async def timeout_on_a_synchronous_body_does_not_fire() -> Any:
    async with asyncio.timeout(0.001) as cm:
        total = sum(range(1000))
    return [total, cm.expired()]


# ----------------------------------------------------------------------- wait_for


@program
async def wait_for_returns_the_result_in_time() -> Any:
    return await asyncio.wait_for(asyncio.sleep(0.002, result="in time"), timeout=0.05)


@program
async def wait_for_timeout_raises_and_cancels_inner() -> Any:
    inner_saw: list[str] = []

    async def slow() -> str:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            inner_saw.append("cancelled")
            raise
        return "slow"

    try:
        await asyncio.wait_for(slow(), timeout=0.005)
    except TimeoutError as exc:
        return [type(exc).__name__, inner_saw]
    return ["no timeout", inner_saw]


@program
async def wait_for_propagates_inner_cancellation() -> Any:
    loop = asyncio.get_running_loop()
    inner = asyncio.create_task(asyncio.sleep(0.05))
    loop.call_later(0.005, inner.cancel)
    try:
        await asyncio.wait_for(inner, timeout=0.04)
    except asyncio.CancelledError:
        # our own task was not cancelled, so it is the inner cancellation surfacing
        me = asyncio.current_task()
        assert me is not None
        return ["cancelled", inner.cancelled(), me.cancelling()]
    except TimeoutError:
        return ["timeout"]
    return ["finished"]


@program
async def wait_for_none_timeout_waits_for_completion() -> Any:
    return await asyncio.wait_for(asyncio.sleep(0.005, result="waited"), None)


@program
async def wait_for_propagates_inner_exception() -> Any:
    async def bad() -> None:
        await asyncio.sleep(0.001)
        raise KeyError("missing")

    try:
        await asyncio.wait_for(bad(), timeout=0.05)
    except KeyError as exc:
        return _exc(exc)
    return "no error"


@program
async def wait_for_zero_timeout_on_done_future_returns_result() -> Any:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    fut.set_result("ready")
    value = await asyncio.wait_for(fut, 0)
    try:
        await asyncio.wait_for(asyncio.sleep(0.05), 0)
        late = "finished"
    except TimeoutError:
        late = "timeout"
    return [value, late]


# ------------------------------------------------------------------------- shield


@program
async def shield_outer_cancelled_inner_completes() -> Any:
    inner = asyncio.create_task(asyncio.sleep(0.02, result="inner done"))

    async def outer() -> str:
        return await asyncio.shield(inner)

    outer_task = asyncio.create_task(outer())
    await asyncio.sleep(0.005)
    outer_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await outer_task
    inner_cancelled_at_once = inner.cancelled()
    result = await inner
    return [outer_task.cancelled(), inner_cancelled_at_once, result]


@program
async def shield_under_wait_for_timeout_keeps_inner_running() -> Any:
    inner = asyncio.create_task(asyncio.sleep(0.02, result="survived"))
    try:
        await asyncio.wait_for(asyncio.shield(inner), timeout=0.004)
        first = "no timeout"
    except TimeoutError:
        first = "timeout"
    done_then = inner.done()
    return [first, done_then, await inner]


@program
async def shield_propagates_inner_exception() -> Any:
    async def bad() -> None:
        await asyncio.sleep(0.001)
        raise AppError("shielded failure")

    try:
        await asyncio.shield(bad())
    except AppError as exc:
        return _exc(exc)
    return "no error"


# ------------------------------------------------------------------------- gather


@program
async def gather_preserves_argument_order() -> Any:
    async def after(delay: float, value: str) -> str:
        await asyncio.sleep(delay)
        return value

    return await asyncio.gather(after(0.03, "first"), after(0.01, "second"), after(0.02, "third"))


@program
async def gather_return_exceptions_collects_errors_in_place() -> Any:
    async def ok(v: int) -> int:
        await asyncio.sleep(0.001 * v)
        return v

    async def fail(msg: str) -> None:
        await asyncio.sleep(0.002)
        raise ValueError(msg)

    results = await asyncio.gather(
        ok(1), fail("bad one"), ok(3), fail("bad two"), return_exceptions=True
    )
    return [_exc(r) if isinstance(r, BaseException) else r for r in results]


@program
async def gather_propagates_first_exception_without_cancelling_others() -> Any:
    async def fail() -> None:
        await asyncio.sleep(0.005)
        raise AppError("gather failure")

    slow = asyncio.create_task(asyncio.sleep(0.02, result="slow finished"))
    try:
        await asyncio.gather(fail(), slow)
    except AppError as exc:
        error = _exc(exc)
    slow_done_at_error = slow.done()
    return [error, slow_done_at_error, await slow]


@program
async def gather_cancelled_cancels_its_children() -> Any:
    children = [asyncio.create_task(asyncio.sleep(0.05)) for _ in range(3)]
    gathered = asyncio.gather(*children)
    await asyncio.sleep(0.005)
    cancel_returned = gathered.cancel()
    try:
        await gathered
        outcome = "finished"
    except asyncio.CancelledError:
        outcome = "cancelled"
    # the gather may finish as soon as its first child does: wait for the rest
    await asyncio.gather(*children, return_exceptions=True)
    return [cancel_returned, outcome, gathered.cancelled(), [c.cancelled() for c in children]]


@program
async def gather_child_cancelled_with_return_exceptions() -> Any:
    victim = asyncio.create_task(asyncio.sleep(0.05))
    other = asyncio.create_task(asyncio.sleep(0.01, result="other"))
    asyncio.get_running_loop().call_later(0.002, victim.cancel)
    results = await asyncio.gather(victim, other, return_exceptions=True)
    return [type(results[0]).__name__, results[1]]


@program
async def gather_child_cancelled_without_return_exceptions_raises() -> Any:
    victim = asyncio.create_task(asyncio.sleep(0.05))
    asyncio.get_running_loop().call_later(0.002, victim.cancel)
    gathered = asyncio.gather(victim, asyncio.sleep(0.01))
    try:
        await gathered
        outcome = "finished"
    except asyncio.CancelledError:
        outcome = "cancelled"
    await asyncio.sleep(0.02)  # let the other child finish on its own
    return [outcome, gathered.cancelled(), gathered.done()]


@program
async def gather_of_nothing_returns_empty_list() -> Any:
    return await asyncio.gather()


@program
async def gather_deduplicates_the_same_awaitable() -> Any:
    task = asyncio.create_task(asyncio.sleep(0.002, result="shared"))
    return await asyncio.gather(task, task, task)


# ------------------------------------------------------------------- as_completed


@program
async def as_completed_yields_every_result() -> Any:
    async def after(delay: float, value: int) -> int:
        await asyncio.sleep(delay)
        return value

    results = []
    for fut in asyncio.as_completed(
        [after(0.003, 3), after(0.001, 1), after(0.002, 2), after(0.0, 0)]
    ):
        results.append(await fut)
    return sorted(results)


@program
async def as_completed_follows_distinct_deadlines() -> Any:
    async def after(delay: float, value: str) -> str:
        await asyncio.sleep(delay)
        return value

    order = []
    for fut in asyncio.as_completed([after(0.03, "slow"), after(0.01, "fast"), after(0.02, "mid")]):
        order.append(await fut)
    return order


@program
async def as_completed_timeout_raises_timeout_error() -> Any:
    tasks = [asyncio.create_task(asyncio.sleep(0.05)) for _ in range(2)]
    got = []
    try:
        for fut in asyncio.as_completed(tasks, timeout=0.005):
            got.append(await fut)
    except TimeoutError as exc:
        error = type(exc).__name__
    cancelled = await _cancel_and_wait(*tasks)
    return [error, got, cancelled]


@program
async def as_completed_surfaces_exceptions() -> Any:
    async def fail() -> None:
        await asyncio.sleep(0.001)
        raise AppError("as_completed failure")

    outcomes = []
    for fut in asyncio.as_completed([fail(), asyncio.sleep(0.002, result="ok")]):
        try:
            outcomes.append(["ok", await fut])
        except AppError as exc:
            outcomes.append(_exc(exc))
    return sorted(outcomes)


# ------------------------------------------------------------------- asyncio.wait


@program
async def wait_first_completed_returns_the_fastest() -> Any:
    fast = asyncio.create_task(asyncio.sleep(0.005, result="fast"), name="fast")
    slow = asyncio.create_task(asyncio.sleep(0.05, result="slow"), name="slow")
    done, pending = await asyncio.wait({fast, slow}, return_when=asyncio.FIRST_COMPLETED)
    names = [sorted(t.get_name() for t in done), sorted(t.get_name() for t in pending)]
    await _cancel_and_wait(*pending)
    return [names, [t.result() for t in done]]


@program
async def wait_all_completed_returns_everything() -> Any:
    tasks = [asyncio.create_task(asyncio.sleep(0.001 * i, result=i)) for i in range(5)]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.ALL_COMPLETED)
    return [sorted(t.result() for t in done), len(pending)]


@program
async def wait_first_exception_stops_at_the_failure() -> Any:
    async def fail() -> None:
        await asyncio.sleep(0.005)
        raise AppError("first exception")

    failing = asyncio.create_task(fail(), name="failing")
    quick = asyncio.create_task(asyncio.sleep(0.001, result="quick"), name="quick")
    slow = asyncio.create_task(asyncio.sleep(0.05), name="slow")
    done, pending = await asyncio.wait([failing, quick, slow], return_when=asyncio.FIRST_EXCEPTION)
    names = [sorted(t.get_name() for t in done), sorted(t.get_name() for t in pending)]
    error = _exc(failing.exception()) if failing.exception() else None  # type: ignore[arg-type]
    await _cancel_and_wait(*pending)
    return [names, error]


@program
async def wait_first_exception_without_failure_waits_for_all() -> Any:
    tasks = [asyncio.create_task(asyncio.sleep(0.001 * i, result=i)) for i in range(3)]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    return [sorted(t.result() for t in done), len(pending)]


@program
async def wait_timeout_returns_pending_without_cancelling() -> Any:
    tasks = [asyncio.create_task(asyncio.sleep(0.05)) for _ in range(2)]
    done, pending = await asyncio.wait(tasks, timeout=0.005)
    states = [len(done), len(pending), any(t.cancelled() for t in tasks)]
    await _cancel_and_wait(*tasks)
    return states


@program
async def wait_rejects_empty_sets_and_bare_coroutines() -> Any:
    errors = []
    try:
        await asyncio.wait([])
    except ValueError as exc:
        errors.append(_exc(exc))
    coro = asyncio.sleep(0)
    try:
        await asyncio.wait([coro])  # type: ignore[list-item]
    except TypeError as exc:
        errors.append(type(exc).__name__)
    finally:
        coro.close()
    fut = asyncio.get_running_loop().create_future()
    try:
        await asyncio.wait([fut], return_when="SOMETIMES")
    except ValueError as exc:
        errors.append(type(exc).__name__)
    fut.cancel()
    return errors


# ---------------------------------------------------------------------- TaskGroup


@program
async def taskgroup_collects_child_results() -> Any:
    async def child(i: int) -> int:
        await asyncio.sleep(0.001 * (5 - i))
        return i * i

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(child(i)) for i in range(5)]
    return [t.result() for t in tasks]


@program
async def taskgroup_child_error_raises_exception_group() -> Any:
    async def fail() -> None:
        await asyncio.sleep(0.005)
        raise AppError("child failed")

    async with asyncio.TaskGroup() as tg:
        tg.create_task(fail())
        tg.create_task(asyncio.sleep(0.05))
    return "not reached"


@program
async def taskgroup_child_error_cancels_siblings() -> Any:
    sibling_saw: list[str] = []

    async def fail() -> None:
        await asyncio.sleep(0.005)
        raise AppError("child failed")

    async def sibling() -> None:
        try:
            await asyncio.sleep(0.05)
            sibling_saw.append("finished")
        except asyncio.CancelledError:
            sibling_saw.append("cancelled")
            raise

    try:
        async with asyncio.TaskGroup() as tg:
            sib = tg.create_task(sibling())
            tg.create_task(fail())
    except* AppError as group:
        leaves = [_exc(e) for e in group.exceptions]
    return {"leaves": leaves, "sibling_saw": sibling_saw, "sibling_cancelled": sib.cancelled()}


@program
async def taskgroup_collects_errors_raised_while_cancelling() -> Any:
    async def fail() -> None:
        await asyncio.sleep(0.005)
        raise ValueError("first")

    async def cleanup_fails() -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            raise KeyError("during cleanup") from None

    async with asyncio.TaskGroup() as tg:
        tg.create_task(fail())
        tg.create_task(cleanup_fails())
    return "not reached"


@program
async def taskgroup_errors_at_distinct_times_are_all_collected() -> Any:
    async def fail_after(delay: float, exc: Exception) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            # raised whether the sleep ends or is cancelled: both errors always land
            raise exc

    async with asyncio.TaskGroup() as tg:
        tg.create_task(fail_after(0.002, ValueError("early")))
        tg.create_task(fail_after(0.05, TypeError("late")))
    return "not reached"


@program
async def nested_taskgroups_nest_exception_groups() -> Any:
    async def fail() -> None:
        await asyncio.sleep(0.002)
        raise AppError("inner child")

    async def inner_group() -> None:
        async with asyncio.TaskGroup() as inner:
            inner.create_task(fail())
            inner.create_task(asyncio.sleep(0.05))

    async with asyncio.TaskGroup() as outer:
        outer.create_task(inner_group())
        outer.create_task(asyncio.sleep(0.05))
    return "not reached"


@program
async def taskgroup_error_in_body_cancels_children() -> Any:
    child_saw: list[str] = []

    async def child() -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            child_saw.append("cancelled")
            raise

    try:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(child())
            await asyncio.sleep(0.002)
            raise AppError("body failed")
    except* AppError as group:
        leaves = [_exc(e) for e in group.exceptions]
    return {"leaves": leaves, "child_saw": child_saw, "child_cancelled": task.cancelled()}


@program
async def taskgroup_cancelled_from_outside_raises_cancelled_error() -> Any:
    children: list[asyncio.Task[Any]] = []

    async def owner() -> None:
        async with asyncio.TaskGroup() as tg:
            children.append(tg.create_task(asyncio.sleep(0.05)))
            children.append(tg.create_task(asyncio.sleep(0.05)))

    task = asyncio.create_task(owner())
    await asyncio.sleep(0.005)
    task.cancel()
    try:
        await task
        outcome = "finished"
    except asyncio.CancelledError:
        outcome = "cancelled"
    return [outcome, task.cancelled(), [c.cancelled() for c in children]]


@program
async def taskgroup_create_task_after_exit_raises() -> Any:
    async with asyncio.TaskGroup() as tg:
        tg.create_task(asyncio.sleep(0.001))
    coro = asyncio.sleep(0)
    try:
        tg.create_task(coro)
    except RuntimeError as exc:
        return type(exc).__name__
    finally:
        coro.close()
    return "no error"


# ------------------------------------------------------------ Task cancellation


@program
async def cancelled_task_raises_cancelled_error_when_awaited() -> Any:
    task = asyncio.create_task(asyncio.sleep(0.05))
    await asyncio.sleep(0.002)
    returned = task.cancel()
    try:
        await task
        outcome = "finished"
    except asyncio.CancelledError:
        outcome = "cancelled"
    try:
        task.result()
    except asyncio.CancelledError as exc:
        result_error = type(exc).__name__
    return [returned, outcome, task.cancelled(), task.done(), result_error]


@program
async def cancel_message_reaches_the_task() -> Any:
    seen: list[Any] = []

    async def victim() -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError as exc:
            seen.append(list(exc.args))
            raise

    task = asyncio.create_task(victim())
    await asyncio.sleep(0.002)
    task.cancel(msg="stop now")
    try:
        await task
    except asyncio.CancelledError as exc:
        outer = list(exc.args)
    return {"inside": seen, "outer": outer}


@program
async def task_that_swallows_cancellation_returns_a_value() -> Any:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            assert me is not None
            return f"cleaned up (cancelling={me.cancelling()})"
        return "finished"

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.002)
    task.cancel()
    result = await task
    return [result, task.cancelled()]


@program
async def cancelling_and_uncancel_track_requests() -> Any:
    counts: list[int] = []

    async def victim() -> int:
        me = asyncio.current_task()
        assert me is not None
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            counts.append(me.cancelling())
            counts.append(me.uncancel())
            counts.append(me.cancelling())
        await asyncio.sleep(0.002)  # uncancelled: may keep awaiting
        return 7

    task = asyncio.create_task(victim())
    await asyncio.sleep(0.002)
    task.cancel()
    task.cancel()
    value = await task
    return [counts, value, task.cancelled()]


@program
async def cancel_on_a_done_task_returns_false() -> Any:
    task = asyncio.create_task(asyncio.sleep(0, result="done"))
    await task
    first = task.cancel()
    pending = asyncio.create_task(asyncio.sleep(0.05))
    second = [pending.cancel(), pending.cancel()]
    with contextlib.suppress(asyncio.CancelledError):
        await pending
    return [first, task.result(), second, pending.cancel()]


@program
async def task_cancelled_before_it_starts_never_runs() -> Any:
    ran: list[str] = []

    async def body() -> None:
        ran.append("ran")

    task = asyncio.create_task(body())
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return [ran, task.cancelled()]


@program
async def cancelled_error_is_not_an_exception() -> Any:
    caught = []

    async def victim() -> None:
        try:
            try:
                await asyncio.sleep(0.05)
            except Exception:
                caught.append("Exception")
        except BaseException as exc:
            caught.append(type(exc).__name__)
            raise

    task = asyncio.create_task(victim())
    await asyncio.sleep(0.002)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return [caught, issubclass(asyncio.CancelledError, Exception)]


@program
async def cancelling_a_task_cancels_the_future_it_awaits() -> Any:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    async def waiter() -> None:
        await fut

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0.002)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return [fut.cancelled(), task.cancelled()]


@program
async def cancellation_propagates_through_awaited_subtask() -> Any:
    inner_saw: list[str] = []

    async def inner() -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            inner_saw.append("inner cancelled")
            raise

    inner_task: list[asyncio.Task[None]] = []

    async def outer() -> None:
        t = asyncio.create_task(inner())
        inner_task.append(t)
        await t

    task = asyncio.create_task(outer())
    await asyncio.sleep(0.002)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return [inner_saw, task.cancelled(), inner_task[0].cancelled()]


# ------------------------------------------------------------------------ Futures


@program
async def future_result_and_exception_state_errors() -> Any:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    errors = []
    for probe in (fut.result, fut.exception):
        try:
            probe()
        except asyncio.InvalidStateError as exc:
            errors.append(_exc(exc))
    fut.set_result(42)
    try:
        fut.set_result(43)
    except asyncio.InvalidStateError as exc:
        errors.append(type(exc).__name__)
    try:
        fut.set_exception(ValueError("late"))
    except asyncio.InvalidStateError as exc:
        errors.append(type(exc).__name__)
    return [errors, fut.done(), fut.result(), fut.exception(), await fut]


@program
async def future_set_exception_is_raised_by_result() -> Any:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    fut.set_exception(AppError("stored"))
    stored = _exc(fut.exception())  # type: ignore[arg-type]
    try:
        await fut
    except AppError as exc:
        awaited = _exc(exc)
    bad = loop.create_future()
    try:
        bad.set_exception(StopIteration())
    except TypeError:
        stop_iteration = "TypeError"
    bad.cancel()
    return [stored, awaited, stop_iteration]


@program
async def future_done_callbacks_all_run_after_completion() -> Any:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[str] = loop.create_future()
    all_ran = loop.create_future()
    calls: list[tuple[str, str]] = []

    def make_callback(tag: str) -> Callable[[asyncio.Future[str]], None]:
        def callback(f: asyncio.Future[str]) -> None:
            calls.append((tag, f.result()))
            if len(calls) == 3:
                all_ran.set_result(None)

        return callback

    for tag in ("a", "b", "c"):
        fut.add_done_callback(make_callback(tag))
    fut.set_result("value")
    synchronous = len(calls)  # callbacks are scheduled, never called by set_result
    await all_ran
    return [synchronous, sorted(calls)]


@program
async def future_remove_done_callback_counts_and_prevents_calls() -> Any:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[int] = loop.create_future()
    calls: list[str] = []
    kept_ran = loop.create_future()

    def removed(_: asyncio.Future[int]) -> None:
        calls.append("removed")

    def kept(_: asyncio.Future[int]) -> None:
        calls.append("kept")
        kept_ran.set_result(None)

    fut.add_done_callback(removed)
    fut.add_done_callback(kept)
    fut.add_done_callback(removed)
    n_removed = fut.remove_done_callback(removed)
    n_again = fut.remove_done_callback(removed)
    fut.set_result(1)
    await kept_ran
    await asyncio.sleep(0.002)
    return [n_removed, n_again, calls]


@program
async def future_callback_added_after_done_is_scheduled() -> Any:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[str] = loop.create_future()
    fut.set_result("early")
    called = loop.create_future()
    fut.add_done_callback(lambda f: called.set_result(f.result()))
    synchronous = called.done()
    return [synchronous, await called]


@program
async def future_cancel_semantics() -> Any:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    first = fut.cancel(msg="why")
    second = fut.cancel()
    try:
        fut.result()
    except asyncio.CancelledError as exc:
        message = list(exc.args)
    try:
        fut.set_result(1)
    except asyncio.InvalidStateError:
        set_after = "InvalidStateError"
    return [first, second, fut.cancelled(), fut.done(), message, set_after]


@program
async def future_resolved_by_call_soon_call_later_call_at() -> Any:
    loop = asyncio.get_running_loop()
    soon, later, at = (loop.create_future() for _ in range(3))
    loop.call_soon(soon.set_result, "soon")
    loop.call_later(0.01, later.set_result, "later")
    loop.call_at(loop.time() + 0.005, at.set_result, "at")
    return await asyncio.gather(soon, later, at)


@program
async def timer_callbacks_fire_in_deadline_order() -> Any:
    loop = asyncio.get_running_loop()
    order: list[str] = []
    done = loop.create_future()

    def record(name: str) -> None:
        order.append(name)
        if len(order) == 3:
            done.set_result(None)

    loop.call_later(0.03, record, "third")
    loop.call_at(loop.time() + 0.01, record, "first")
    loop.call_later(0.02, record, "second")
    await done
    return order


@program
async def cancelled_handles_never_run() -> Any:
    loop = asyncio.get_running_loop()
    ran: list[str] = []
    soon = loop.call_soon(ran.append, "soon")
    later = loop.call_later(0.002, ran.append, "later")
    at = loop.call_at(loop.time() + 0.003, ran.append, "at")
    for handle in (soon, later, at):
        handle.cancel()
    await asyncio.sleep(0.01)
    return [ran, soon.cancelled(), later.cancelled(), at.cancelled()]


@program
async def timer_handle_reports_its_deadline() -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 0.01
    handle = loop.call_at(deadline, lambda: None)
    same = handle.when() == deadline
    handle.cancel()
    return [same, handle.cancelled()]


@program
async def ensure_future_wraps_coroutines_and_passes_futures() -> Any:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    passed = asyncio.ensure_future(fut) is fut
    task = asyncio.ensure_future(asyncio.sleep(0.001, result="wrapped"))
    fut.set_result("future")
    return [passed, isinstance(task, asyncio.Task), await task, await fut, asyncio.isfuture(fut)]


# ------------------------------------------------------------------ contextvars

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


@program
async def contextvar_changes_in_child_task_stay_in_child() -> Any:
    request_id.set("parent")

    async def child() -> str:
        before = request_id.get()
        request_id.set("child")
        await asyncio.sleep(0.001)
        return f"{before}->{request_id.get()}"

    child_view = await asyncio.create_task(child())
    return [child_view, request_id.get()]


@program
async def contextvar_is_copied_when_the_task_is_created() -> Any:
    request_id.set("at creation")

    async def child() -> str:
        return request_id.get()

    task = asyncio.create_task(child())
    request_id.set("after creation")
    return [await task, request_id.get()]


@program
async def contextvar_each_gathered_child_keeps_its_own_value() -> Any:
    async def child(i: int) -> tuple[int, str]:
        request_id.set(f"req-{i}")
        await asyncio.sleep(0.001 * (i % 3))
        await asyncio.sleep(0)
        return (i, request_id.get())

    results = await asyncio.gather(*(child(i) for i in range(6)))
    return [results, request_id.get()]


@program
async def context_run_is_isolated_from_the_caller() -> Any:
    request_id.set("outer")
    ctx = contextvars.copy_context()
    ctx.run(request_id.set, "inside ctx")
    return [request_id.get(), ctx[request_id], ctx.run(request_id.get)]


@program
async def create_task_with_explicit_context_shares_that_context() -> Any:
    ctx = contextvars.copy_context()
    ctx.run(request_id.set, "explicit")

    async def child() -> str:
        seen = request_id.get()
        request_id.set("changed by child")
        return seen

    seen = await asyncio.create_task(child(), context=ctx)
    return [seen, ctx[request_id], request_id.get()]


@program
async def call_soon_runs_in_the_given_context() -> Any:
    loop = asyncio.get_running_loop()
    ctx = contextvars.copy_context()
    ctx.run(request_id.set, "for callback")
    result = loop.create_future()
    loop.call_soon(lambda: result.set_result(request_id.get()), context=ctx)
    default = loop.create_future()
    request_id.set("current")
    loop.call_soon(lambda: default.set_result(request_id.get()))
    return [await result, await default]


@program
async def contextvar_reset_restores_previous_value() -> Any:
    token_a = request_id.set("a")
    token_b = request_id.set("b")
    values = [request_id.get()]
    request_id.reset(token_b)
    values.append(request_id.get())
    request_id.reset(token_a)
    values.append(request_id.get())
    return values


# --------------------------------------------- async generators / context managers


@program
async def async_generator_yields_across_sleeps() -> Any:
    async def ticker(n: int) -> Any:
        for i in range(n):
            await asyncio.sleep(0.001)
            yield i * 2

    return [x async for x in ticker(5)]


@program
async def async_generator_aclose_runs_finally() -> Any:
    log: list[str] = []

    async def gen() -> Any:
        try:
            yield 1
            await asyncio.sleep(0.001)
            yield 2
        finally:
            await asyncio.sleep(0.001)
            log.append("finally")

    agen = gen()
    first = await agen.__anext__()
    await agen.aclose()
    try:
        await agen.__anext__()
    except StopAsyncIteration:
        log.append("exhausted")
    return [first, log]


@program
async def async_generator_athrow_is_handled_inside() -> Any:
    async def gen() -> Any:
        while True:
            try:
                yield "normal"
            except ValueError as exc:
                await asyncio.sleep(0.001)
                yield f"recovered from {exc}"

    agen = gen()
    values = [await agen.__anext__()]
    values.append(await agen.athrow(ValueError("boom")))
    values.append(await agen.__anext__())
    await agen.aclose()
    return values


@program
async def async_generator_athrow_unhandled_propagates() -> Any:
    async def gen() -> Any:
        yield 1
        yield 2

    agen = gen()
    await agen.__anext__()
    try:
        await agen.athrow(AppError("thrown in"))
    except AppError as exc:
        return _exc(exc)
    return "no error"


@program
async def aclosing_closes_generator_on_early_break() -> Any:
    log: list[str] = []

    async def gen() -> Any:
        try:
            for i in range(10):
                await asyncio.sleep(0.001)
                yield i
        finally:
            log.append("closed")

    taken = []
    async with contextlib.aclosing(gen()) as agen:
        async for item in agen:
            taken.append(item)
            if item == 2:
                break
    return [taken, log]


@program
async def async_context_manager_runs_enter_and_exit_in_order() -> Any:
    log: list[str] = []

    @contextlib.asynccontextmanager
    async def resource(name: str) -> Any:
        await asyncio.sleep(0.001)
        log.append(f"enter {name}")
        try:
            yield name.upper()
        finally:
            await asyncio.sleep(0.001)
            log.append(f"exit {name}")

    async with resource("a") as a, resource("b") as b:
        log.append(f"body {a}{b}")
    return log


@program
async def async_context_manager_can_suppress_an_exception() -> Any:
    class Suppressor:
        def __init__(self) -> None:
            self.seen: list[str] = []

        async def __aenter__(self) -> Suppressor:
            await asyncio.sleep(0.001)
            return self

        async def __aexit__(self, et: Any, exc: Any, tb: Any) -> bool:
            await asyncio.sleep(0.001)
            self.seen.append(type(exc).__name__)
            return isinstance(exc, KeyError)

    cm = Suppressor()
    async with cm:
        raise KeyError("suppressed")
    try:
        async with cm:
            raise AppError("not suppressed")
    except AppError as exc:
        escaped = _exc(exc)
    return [cm.seen, escaped]


@program
async def async_exit_stack_unwinds_in_reverse() -> Any:
    log: list[str] = []

    async def closer(name: str) -> None:
        await asyncio.sleep(0.001)
        log.append(name)

    async with contextlib.AsyncExitStack() as stack:
        for name in ("first", "second", "third"):
            stack.push_async_callback(closer, name)
    return log


# ------------------------------------------------------- executor / eager / tasks


@program
async def run_in_executor_returns_function_result() -> Any:
    loop = asyncio.get_running_loop()
    value = await loop.run_in_executor(None, pow, 2, 10)
    try:
        await loop.run_in_executor(None, int, "not a number")
    except ValueError as exc:
        error = _exc(exc)
    return [value, error]


@program
async def eager_task_factory_finishes_synchronous_tasks_at_creation() -> Any:
    loop = asyncio.get_running_loop()
    log: list[str] = []

    async def sync_body() -> str:
        log.append("sync body ran")
        return "eager result"

    async def async_body() -> str:
        log.append("async body started")
        await asyncio.sleep(0.001)
        log.append("async body resumed")
        return "lazy result"

    previous = loop.get_task_factory()
    loop.set_task_factory(asyncio.eager_task_factory)
    try:
        eager = asyncio.create_task(sync_body())
        eager_done = eager.done()
        log.append("after first create_task")
        started = asyncio.create_task(async_body())
        started_done = started.done()
        log.append("after second create_task")
        result = [eager_done, eager.result(), started_done, await started]
    finally:
        loop.set_task_factory(previous)
    return [result, log]


@program
async def eager_task_exception_is_stored_on_the_task() -> Any:
    loop = asyncio.get_running_loop()

    async def boom() -> None:
        raise AppError("eager failure")

    previous = loop.get_task_factory()
    loop.set_task_factory(asyncio.eager_task_factory)
    try:
        task = asyncio.create_task(boom())
        done = task.done()
        try:
            await task
        except AppError as exc:
            error = _exc(exc)
    finally:
        loop.set_task_factory(previous)
    return [done, error]


@program
async def current_task_and_all_tasks_are_consistent() -> Any:
    main = asyncio.current_task()
    assert main is not None
    seen_inside: list[bool] = []

    async def child() -> None:
        me = asyncio.current_task()
        seen_inside.append(me is not main and me in asyncio.all_tasks())
        await asyncio.sleep(0.005)

    base = len(asyncio.all_tasks())
    children = [asyncio.create_task(child()) for _ in range(3)]
    during = len(asyncio.all_tasks())
    await asyncio.gather(*children)
    after = len(asyncio.all_tasks())
    return {
        "main_in_all_tasks": main in asyncio.all_tasks(),
        "added_while_running": during - base,
        "left_after": after - base,
        "children_saw_themselves": seen_inside,
    }


@program
async def task_names_are_what_the_program_set() -> Any:
    names: list[str] = []

    async def worker() -> None:
        me = asyncio.current_task()
        assert me is not None
        names.append(me.get_name())

    first = asyncio.create_task(worker(), name="worker-1")
    second = asyncio.create_task(worker(), name="worker-2")
    second.set_name("renamed-2")
    await asyncio.gather(first, second)
    return [sorted(names), first.get_name(), second.get_name()]


@program
async def task_introspection_of_a_finished_task() -> Any:
    async def coro() -> str:
        await asyncio.sleep(0.001)
        return "result"

    task = asyncio.create_task(coro())
    pending_done = task.done()
    await task
    return [pending_done, task.done(), task.result(), task.exception(), task.get_coro().__name__]  # type: ignore[union-attr]


# --------------------------------------------------------------------- exceptions


@program
async def custom_exception_escapes_nested_tasks() -> Any:
    async def level3() -> None:
        await asyncio.sleep(0.001)
        raise AppError("deep failure")

    async def level2() -> None:
        await asyncio.create_task(level3())

    async def level1() -> None:
        await asyncio.gather(level2(), asyncio.sleep(0))

    await asyncio.create_task(level1())


@program
async def exception_cause_survives_the_task_boundary() -> Any:
    async def failing() -> None:
        await asyncio.sleep(0.001)
        try:
            {}["key"]
        except KeyError as exc:
            raise AppError("wrapped") from exc

    try:
        await asyncio.create_task(failing())
    except AppError as exc:
        cause = exc.__cause__
        return [_exc(exc), type(cause).__name__, str(cause)]
    return "no error"


@program
async def main_raising_after_sleep_reports_the_exception() -> Any:
    await asyncio.sleep(0.002)
    raise LookupError("raised by main")


@program
async def main_returning_none_is_a_result() -> Any:
    await asyncio.sleep(0)


@program
async def coroutine_raising_stop_iteration_becomes_runtime_error() -> Any:
    async def leaky() -> None:
        await asyncio.sleep(0.001)
        raise StopIteration("leaked")

    try:
        await asyncio.create_task(leaky())
    except RuntimeError as exc:
        return [_exc(exc), type(exc.__cause__).__name__]
    return "no error"


@program
async def system_exit_in_a_task_escapes_the_loop() -> Any:
    async def quitter() -> None:
        await asyncio.sleep(0.001)
        raise SystemExit("bye")

    task = asyncio.create_task(quitter())
    task.add_done_callback(lambda t: t.exception())  # mark it retrieved: no GC warning
    await asyncio.sleep(0.01)
    return ["not reached", task.done()]


# ------------------------------------------------------------- loop odds and ends


@program
async def exception_in_callback_goes_to_the_loop_exception_handler() -> Any:
    loop = asyncio.get_running_loop()
    seen = loop.create_future()

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not seen.done():
            seen.set_result([_exc(exc) if exc else None, "message" in context])

    def bad_callback() -> None:
        raise AppError("callback failed")

    previous = loop.get_exception_handler()
    loop.set_exception_handler(handler)
    try:
        loop.call_soon(bad_callback)
        reported = await seen
        handler_installed = loop.get_exception_handler() is handler
    finally:
        loop.set_exception_handler(previous)
    return [reported, handler_installed]


@program
async def current_task_is_none_inside_a_plain_callback() -> Any:
    loop = asyncio.get_running_loop()
    seen = loop.create_future()
    loop.call_soon(lambda: seen.set_result(asyncio.current_task() is None))
    inside_task = asyncio.current_task() is not None
    return [await seen, inside_task]


@program
async def running_loop_introspection() -> Any:
    loop = asyncio.get_running_loop()
    return [
        asyncio.get_event_loop() is loop,
        loop.is_running(),
        loop.is_closed(),
        isinstance(loop, asyncio.AbstractEventLoop),
    ]


@program
async def nested_run_until_complete_raises_runtime_error() -> Any:
    loop = asyncio.get_running_loop()
    coro = asyncio.sleep(0)
    try:
        loop.run_until_complete(coro)
        outcome: Any = "ran"
    except RuntimeError as exc:
        outcome = type(exc).__name__
    finally:
        coro.close()
    return [outcome, loop.is_running()]


@program
async def negative_delays_act_like_zero() -> Any:
    loop = asyncio.get_running_loop()
    value = await asyncio.sleep(-1, result="negative sleep")
    fired = loop.create_future()
    loop.call_later(-5, fired.set_result, "negative call_later")
    return [value, await fired]


@program
async def timeout_context_cannot_be_entered_twice() -> Any:
    cm = asyncio.timeout(0.05)
    async with cm:
        await asyncio.sleep(0)
    try:
        async with cm:
            pass
    except RuntimeError as exc:
        return [type(exc).__name__, cm.expired()]
    return "no error"


@program
async def wait_for_returns_value_when_inner_swallows_the_cancel() -> Any:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            return "swallowed"
        return "finished"

    try:
        return ["returned", await asyncio.wait_for(stubborn(), timeout=0.005)]
    except TimeoutError:
        return ["timeout"]


@program
async def queue_get_with_timeout_keeps_the_item_for_later() -> Any:
    queue: asyncio.Queue[str] = asyncio.Queue()
    try:
        await asyncio.wait_for(queue.get(), timeout=0.005)
        first: Any = "got"
    except TimeoutError:
        first = "timeout"
    queue.put_nowait("later")
    second = await asyncio.wait_for(queue.get(), timeout=0.05)
    return [first, second, queue.empty()]


@program
async def event_waiter_cancelled_does_not_block_others() -> Any:
    event = asyncio.Event()
    doomed = asyncio.create_task(event.wait())
    survivor = asyncio.create_task(event.wait())
    await asyncio.sleep(0.002)
    doomed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await doomed
    event.set()
    return [doomed.cancelled(), await survivor]


@program
async def condition_wait_for_true_predicate_does_not_wait() -> Any:
    cond = asyncio.Condition()
    async with cond:
        result = await cond.wait_for(lambda: "already true")
    return [result, cond.locked()]


@program
async def loop_create_task_accepts_a_name() -> Any:
    loop = asyncio.get_running_loop()
    task = loop.create_task(asyncio.sleep(0.001, result="named"), name="via-loop")
    return [task.get_name(), await task]


# ============================================================ FIFO-only programs
# Their results depend on the order in which ready callbacks run; stock asyncio runs
# them first-in first-out, and so must SimLoop's FIFO schedule.


@fifo_program
async def fifo_call_soon_runs_callbacks_in_order() -> Any:
    loop = asyncio.get_running_loop()
    order: list[int] = []
    done = loop.create_future()
    for i in range(5):
        loop.call_soon(order.append, i)
    loop.call_soon(done.set_result, None)
    await done
    return order


@fifo_program
async def fifo_done_callbacks_run_in_registration_order() -> Any:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    order: list[str] = []
    for tag in "abcd":
        fut.add_done_callback(lambda _f, tag=tag: order.append(tag))
    fut.set_result(None)
    await asyncio.sleep(0.002)
    return order


@fifo_program
async def fifo_zero_sleep_ping_pong_interleaves() -> Any:
    trace: list[str] = []

    async def player(name: str) -> None:
        for i in range(3):
            trace.append(f"{name}{i}")
            await asyncio.sleep(0)

    await asyncio.gather(player("a"), player("b"))
    return trace


@fifo_program
async def fifo_tasks_start_in_creation_order() -> Any:
    order: list[int] = []

    async def child(i: int) -> None:
        order.append(i)

    tasks = [asyncio.create_task(child(i)) for i in range(5)]
    await asyncio.gather(*tasks)
    return order


@fifo_program
async def fifo_lock_is_handed_over_in_arrival_order() -> Any:
    lock = asyncio.Lock()
    order: list[int] = []

    async def worker(i: int) -> None:
        async with lock:
            order.append(i)
            await asyncio.sleep(0)

    await asyncio.gather(*(worker(i) for i in range(5)))
    return order


@fifo_program
async def fifo_event_waiters_wake_in_wait_order() -> Any:
    event = asyncio.Event()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await event.wait()
        order.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(4)]
    await asyncio.sleep(0)
    event.set()
    await asyncio.gather(*tasks)
    return order


@fifo_program
async def fifo_queue_getters_are_served_in_order() -> Any:
    queue: asyncio.Queue[int] = asyncio.Queue()
    served: list[tuple[int, int]] = []

    async def getter(i: int) -> None:
        served.append((i, await queue.get()))

    tasks = [asyncio.create_task(getter(i)) for i in range(3)]
    await asyncio.sleep(0)
    for item in (10, 20, 30):
        queue.put_nowait(item)
    await asyncio.gather(*tasks)
    return served


@fifo_program
async def fifo_as_completed_ties_follow_creation_order() -> Any:
    async def immediate(v: int) -> int:
        return v

    tasks = [asyncio.create_task(immediate(i)) for i in range(4)]
    return [await f for f in asyncio.as_completed(tasks)]


@fifo_program
async def fifo_taskgroup_children_interleave_by_steps() -> Any:
    trace: list[str] = []

    async def child(name: str) -> None:
        trace.append(f"{name} start")
        await asyncio.sleep(0)
        trace.append(f"{name} end")

    async with asyncio.TaskGroup() as tg:
        tg.create_task(child("x"))
        tg.create_task(child("y"))
        trace.append("body done")
    return trace


# ========================================================= programs for asyncio.Runner
# Each takes the loop factory (None for the stock loop) and drives a Runner itself.

RUNNER_PROGRAMS: dict[str, Callable[[Any], Any]] = {}


def runner_program(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    assert fn.__name__ not in RUNNER_PROGRAMS, fn.__name__
    RUNNER_PROGRAMS[fn.__name__] = fn
    return fn


runner_var: contextvars.ContextVar[str] = contextvars.ContextVar("runner_var", default="unset")


@runner_program
def runner_reuses_one_loop_and_context_across_runs(loop_factory: Any) -> Any:
    async def first() -> str:
        runner_var.set("set in first run")
        await asyncio.sleep(0.001)
        return "first"

    async def second() -> list[Any]:
        await asyncio.sleep(0.001)
        return ["second", runner_var.get()]

    async def loop_id() -> int:
        return id(asyncio.get_running_loop())

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        a = runner.run(first())
        ida = runner.run(loop_id())
        b = runner.run(second())
        idb = runner.run(loop_id())
        same_loop = ida == idb == id(runner.get_loop())
        closed_inside = runner.get_loop().is_closed()
    return [a, b, same_loop, closed_inside, runner_var.get()]


@runner_program
def runner_run_propagates_exceptions_and_keeps_going(loop_factory: Any) -> Any:
    async def fail() -> None:
        await asyncio.sleep(0.001)
        raise AppError("from runner")

    async def ok() -> str:
        await asyncio.sleep(0.001)
        return "still usable"

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        try:
            runner.run(fail())
            error: Any = "no error"
        except AppError as exc:
            error = _exc(exc)
        after = runner.run(ok())
    return [error, after]


@runner_program
def runner_closes_the_loop_and_cancels_leftover_tasks(loop_factory: Any) -> Any:
    leftover_saw: list[str] = []

    async def leftover() -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            leftover_saw.append("cancelled at shutdown")
            raise

    leftovers: list[asyncio.Task[None]] = []

    async def spawn() -> str:
        leftovers.append(asyncio.create_task(leftover()))
        await asyncio.sleep(0.001)
        return "spawned"

    runner = asyncio.Runner(loop_factory=loop_factory)
    result = runner.run(spawn())
    loop = runner.get_loop()
    runner.close()
    return [result, leftover_saw, loop.is_closed()]


@runner_program
def runner_asyncgen_finalised_at_shutdown(loop_factory: Any) -> Any:
    log: list[str] = []

    async def gen() -> Any:
        try:
            yield 1
            yield 2
        finally:
            log.append("finalised")

    keep: list[Any] = []

    async def start() -> int:
        agen = gen()
        keep.append(agen)  # kept alive: only shutdown_asyncgens() can close it
        return await agen.__anext__()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        first = runner.run(start())
    return [first, log]
