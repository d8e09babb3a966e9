"""Racy-but-legal asyncio programs for the determinism torture (tests/test_torture.py).

Every program in ``PROGRAMS`` is an ``async def`` that takes no arguments. Unlike the
parity programs, the value a program returns *may* depend on the interleaving: which
consumer got which item, whether a timeout or a completion due at the same virtual
instant won, which task a cancellation hit. The torture only asks that the same seed
gives the same everything (value, event log, digest), and that the recorded tape
replays it exactly.

Rules the programs follow, so that their only source of variation is simloom's choices:

* delays and injected faults come from ``simloom.draw`` / ``simloom.sometimes`` (the
  tape drives them too) and from the schedule; never from ``random``, wall time,
  ``id()`` or the iteration order of a set of tasks (sets are sorted by task name
  before anything is done with their members);
* no module-level mutable state: every run starts from scratch;
* they are legal under *every* schedule: no deadlock, no unhandled exception; the
  failures they inject are caught and summarised in the returned value, which is
  built from plain data (ints, strings, tuples, lists, dicts);
* they check their own invariants (no item lost, a lock really excludes...) with
  ``assert``, so a semantic slip of the loop shows up as an error.

``PROGRAMS`` keeps registration order, which the torture uses to spread seeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import simloom

Program = Callable[[], Awaitable[Any]]

PROGRAMS: dict[str, Program] = {}


def program(fn: Program) -> Program:
    """Register a torture program under its function name."""
    assert fn.__name__ not in PROGRAMS, fn.__name__
    PROGRAMS[fn.__name__] = fn
    return fn


def delay(label: str = "delay", bound: int = 5, unit: float = 0.01) -> float:
    """A tape-driven sleep length: ``draw(label, bound) * unit`` seconds."""
    return simloom.draw(label, bound) * unit


def describe(result: object) -> Any:
    """Plain-data summary of a value or exception (exception groups as sorted leaves)."""
    if isinstance(result, BaseExceptionGroup):
        return [type(result).__name__, result.message, sorted(map(repr, result.exceptions))]
    if isinstance(result, BaseException):
        return [type(result).__name__, str(result)]
    return result


def task_outcome(task: asyncio.Future[Any]) -> Any:
    """Plain-data outcome of a finished task (retrieving its exception, if any)."""
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return describe(exc) if exc is not None else task.result()


def by_name(tasks: object) -> list[asyncio.Task[Any]]:
    """Tasks sorted by name: a deterministic order for a set of tasks."""
    return sorted(tasks, key=lambda t: t.get_name())  # type: ignore[attr-defined]


# ------------------------------------------------------------ bounded queue pipeline


@program
async def queue_pipeline() -> Any:
    """Producers and consumers over a bounded queue, both sides with timeouts."""
    queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=3)
    received: list[tuple[int, int]] = []
    put_timeouts = 0
    get_timeouts = 0

    async def producer(p: int) -> None:
        nonlocal put_timeouts
        for i in range(10):
            await asyncio.sleep(delay("produce", 4, 0.005))
            while True:
                try:
                    await asyncio.wait_for(queue.put(p * 100 + i), 0.01)
                    break
                except TimeoutError:
                    put_timeouts += 1

    async def consumer(c: int) -> None:
        nonlocal get_timeouts
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), 0.02)
            except TimeoutError:
                get_timeouts += 1
                continue
            if item is None:
                return
            received.append((c, item))
            await asyncio.sleep(delay("consume", 4, 0.005))

    producers = [asyncio.create_task(producer(p), name=f"producer-{p}") for p in range(3)]
    consumers = [asyncio.create_task(consumer(c), name=f"consumer-{c}") for c in range(2)]
    await asyncio.gather(*producers)
    for _ in consumers:
        await queue.put(None)
    await asyncio.gather(*consumers)
    items = sorted(item for _, item in received)
    assert items == sorted(p * 100 + i for p in range(3) for i in range(10)), items
    return {"received": received, "put_timeouts": put_timeouts, "get_timeouts": get_timeouts}


# ------------------------------------------------------------------ lock + condition


@program
async def lock_and_condition() -> Any:
    """Workers contending on a Lock (read-sleep-write) and on a Condition
    (wait_for with a timeout, notify and notify_all)."""
    lock = asyncio.Lock()
    cond = asyncio.Condition()
    balance = 0
    inside = 0
    stock = 0
    total = 18
    taken: list[tuple[int, int]] = []
    timeouts = 0

    async def depositor(i: int) -> None:
        nonlocal balance, inside
        for _ in range(4):
            async with lock:
                inside += 1
                assert inside == 1, "two tasks inside the lock"
                seen = balance
                await asyncio.sleep(delay("critical", 3, 0.002))
                balance = seen + i + 1
                inside -= 1
            await asyncio.sleep(0)

    async def supplier(s: int) -> None:
        nonlocal stock
        for _ in range(total // 3):
            await asyncio.sleep(delay("supply", 5, 0.004))
            async with cond:
                stock += 1
                if simloom.sometimes("notify_all", 30):
                    cond.notify_all()
                else:
                    cond.notify()

    def can_take() -> bool:
        return stock > 0 or len(taken) >= total

    async def taker(t: int) -> None:
        nonlocal stock, timeouts
        while True:
            try:
                async with asyncio.timeout(0.015):
                    async with cond:
                        await cond.wait_for(can_take)
                        if len(taken) >= total:
                            cond.notify_all()
                            return
                        stock -= 1
                        taken.append((t, len(taken)))
                        if len(taken) >= total:
                            cond.notify_all()
            except TimeoutError:
                timeouts += 1

    tasks = [asyncio.create_task(depositor(i), name=f"depositor-{i}") for i in range(3)]
    tasks += [asyncio.create_task(supplier(s), name=f"supplier-{s}") for s in range(3)]
    tasks += [asyncio.create_task(taker(t), name=f"taker-{t}") for t in range(3)]
    await asyncio.gather(*tasks)
    assert balance == 4 * (1 + 2 + 3), balance
    assert stock == 0 and len(taken) == total, (stock, taken)
    return {"taken_by": [t for t, _ in taken], "timeouts": timeouts, "balance": balance}


# ----------------------------------------------------------- semaphore-limited fan-out


@program
async def semaphore_fanout() -> Any:
    """A Semaphore-limited fan-out with tape-driven delays and injected failures, then a
    BoundedSemaphore wave whose acquisitions time out."""
    sem = asyncio.Semaphore(3)
    active = 0
    peak = 0
    order: list[int] = []

    async def job(i: int) -> int:
        nonlocal active, peak
        async with sem:
            active += 1
            peak = max(peak, active)
            try:
                await asyncio.sleep(delay("job", 5, 0.01))
                if simloom.sometimes("fail", 20):
                    raise RuntimeError(f"job {i} failed")
                await asyncio.sleep(0)
                order.append(i)
                return i * i
            finally:
                active -= 1

    results = await asyncio.gather(*(job(i) for i in range(16)), return_exceptions=True)
    assert peak <= 3 and active == 0, (peak, active)

    bounded = asyncio.BoundedSemaphore(2)
    acquired: list[int] = []
    gave_up: list[int] = []

    async def impatient(i: int) -> None:
        try:
            await asyncio.wait_for(bounded.acquire(), 0.01 * (1 + i % 3))
        except TimeoutError:
            gave_up.append(i)
            return
        try:
            acquired.append(i)
            await asyncio.sleep(delay("hold", 4, 0.01))
        finally:
            bounded.release()

    await asyncio.gather(*(impatient(i) for i in range(10)))
    assert not bounded.locked()
    return {
        "results": [describe(r) for r in results],
        "order": order,
        "peak": peak,
        "acquired": acquired,
        "gave_up": gave_up,
    }


# ------------------------------------------------------------------ cancellation storm


@program
async def cancellation_storm() -> Any:
    """Tasks cancelled at tape-chosen moments (some clean up with an await first), a
    task cancelled before it starts, and shielded work whose callers are cancelled."""
    log: list[Any] = []

    async def worker(i: int) -> tuple[str, int, int]:
        ticks = 0
        try:
            while ticks < 6:
                await asyncio.sleep(0.001 + delay("tick", 4, 0.004))
                ticks += 1
            return ("done", i, ticks)
        except asyncio.CancelledError:
            log.append(("cancelled", i, ticks))
            if i % 3 == 0:
                await asyncio.sleep(0)
                log.append(("cleaned", i))
            raise

    async def precious(i: int) -> int:
        await asyncio.sleep(delay("precious", 5, 0.005))
        log.append(("precious", i))
        return i

    async def caller(inner: asyncio.Task[int]) -> int:
        return await asyncio.shield(inner)

    workers = [asyncio.create_task(worker(i), name=f"worker-{i}") for i in range(10)]
    stillborn = asyncio.create_task(worker(99), name="stillborn")
    stillborn.cancel()
    inners = [asyncio.create_task(precious(i), name=f"precious-{i}") for i in range(3)]
    callers = [asyncio.create_task(caller(t), name=f"caller-{i}") for i, t in enumerate(inners)]
    for rnd in range(7):
        await asyncio.sleep(delay("storm", 3, 0.004))
        victim = workers[simloom.draw("victim", len(workers))]
        victim.cancel(msg=f"storm round {rnd}")
        if rnd < len(callers) and simloom.sometimes("cancel_caller", 50):
            callers[rnd].cancel()
    outcomes = await asyncio.gather(stillborn, *workers, *callers, return_exceptions=True)
    inner_values = await asyncio.gather(*inners)
    assert inner_values == [0, 1, 2]
    return {"outcomes": [describe(o) for o in outcomes], "log": log}


# -------------------------------------------------------- TaskGroup with failing child


@program
async def taskgroup_failure() -> Any:
    """TaskGroups whose children fail (one deterministically, others by injection):
    siblings are cancelled, the ExceptionGroup is caught and summarised."""
    summary: list[Any] = []

    async def child(rnd: int, i: int, finished: list[int], cancelled: list[int]) -> int:
        try:
            for _ in range(3):
                await asyncio.sleep(delay("child", 4, 0.005))
            if (rnd == 0 and i == 2) or simloom.sometimes("child_fail", 15):
                raise ValueError(f"child {i} failed in round {rnd}")
            finished.append(i)
            return i
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    for rnd in range(4):
        finished: list[int] = []
        cancelled: list[int] = []
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(child(rnd, i, finished, cancelled), name=f"child-{rnd}-{i}")
                    for i in range(5)
                ]
                await asyncio.sleep(delay("body", 3, 0.005))
                tasks.append(tg.create_task(child(rnd, 9, finished, cancelled), name="late"))
            summary.append(("ok", rnd, [t.result() for t in tasks], finished))
        except* ValueError as group:
            errors = sorted(str(e) for e in group.exceptions)
            summary.append(("failed", rnd, errors, finished, sorted(cancelled)))
    return summary


# ---------------------------------------------------------------- async generators


async def ticker(name: str, n: int, log: list[str]) -> AsyncIterator[str]:
    """Yields ``n`` values with a sleep before each; cleans up with an await."""
    try:
        for i in range(n):
            await asyncio.sleep(delay("gen", 3, 0.003))
            yield f"{name}{i}"
    finally:
        await asyncio.sleep(0)
        log.append(f"{name}-closed")


async def heartbeat(log: list[str]) -> AsyncIterator[str]:
    """Beats every millisecond or so, forever; cleans up with an await."""
    beat = 0
    try:
        while True:
            await asyncio.sleep(0.001 + delay("beat", 2, 0.001))
            beat += 1
            yield f"beat{beat}"
    finally:
        await asyncio.sleep(0)
        log.append("heartbeat-closed")


async def accumulator(log: list[str]) -> AsyncIterator[int]:
    """A generator driven by ``asend`` and ``athrow``."""
    total = 0
    try:
        while True:
            try:
                received = yield total
            except ValueError as exc:
                log.append(f"acc-threw:{exc}")
                total = -total
                continue
            await asyncio.sleep(delay("acc", 2, 0.002))
            total += received or 0
    finally:
        log.append("acc-closed")


@program
async def async_generators() -> Any:
    """Async generators consumed partly and closed (explicitly, by ``aclosing``, by
    dropping the last reference), driven by asend/athrow, and one left suspended in a
    task that is still running when main returns (closed by teardown)."""
    log: list[str] = []
    seen: list[str] = []

    async def explicit_close() -> None:
        gen = ticker("a", 10, log)
        async for value in gen:
            seen.append(value)
            if value == "a3":
                break
        await gen.aclose()

    async def with_aclosing() -> None:
        async with contextlib.aclosing(ticker("b", 10, log)) as gen:
            async for value in gen:
                seen.append(value)
                if value == "b" + str(1 + simloom.draw("b_stop", 4)):
                    break

    async def exhaust() -> None:
        async for value in ticker("c", 4, log):
            seen.append(value)

    async def abandon() -> None:
        gen = ticker("d", 10, log)
        async for value in gen:
            seen.append(value)
            if value == "d1":
                break
        del gen  # the finalizer hook schedules its aclose()
        await asyncio.sleep(0.004)

    async def drive_accumulator() -> list[int]:
        acc = accumulator(log)
        totals = [await acc.asend(None)]
        for x in range(1, 6):
            totals.append(await acc.asend(x))
            if x == 3:
                totals.append(await acc.athrow(ValueError("flip")))
        await acc.aclose()
        return totals

    async def forever() -> None:
        async for value in heartbeat(log):
            seen.append(value)

    leftover = asyncio.create_task(forever(), name="leftover")
    results = await asyncio.gather(
        explicit_close(), with_aclosing(), exhaust(), abandon(), drive_accumulator()
    )
    assert not leftover.done()
    for name in "abcd":
        assert f"{name}-closed" in log, (name, log)
    return {"seen": seen, "log": list(log), "totals": results[-1]}


# ------------------------------------------------------------------ run_in_executor


def crunch(x: int) -> int:
    """A pure CPU-bound job."""
    return int(hashlib.sha256(str(x).encode()).hexdigest()[:8], 16) % 1000


def flaky(x: int) -> int:
    """A job that fails on some inputs."""
    if x % 4 == 3:
        raise ValueError(f"bad input {x}")
    return x * 2


@program
async def executor_mix() -> Any:
    """run_in_executor jobs (pure, failing, recording side effects, cancelled before
    they run) interleaved with tasks and sleeps."""
    loop = asyncio.get_running_loop()
    order: list[Any] = []

    async def task(i: int) -> tuple[int, int, Any]:
        await asyncio.sleep(delay("exec", 3, 0.003))
        a = await loop.run_in_executor(None, crunch, i)
        order.append(("crunched", i))
        try:
            b: Any = await loop.run_in_executor(None, flaky, i)
        except ValueError as exc:
            b = str(exc)
        await loop.run_in_executor(None, order.append, ("side-effect", i))
        return (i, a, b)

    background = [loop.run_in_executor(None, functools.partial(crunch, 1000 + i)) for i in range(4)]
    doomed = loop.run_in_executor(None, order.append, "never")
    doomed.cancel()
    results = await asyncio.gather(*(task(i) for i in range(12)), *background)
    await asyncio.sleep(0)
    assert doomed.cancelled() and "never" not in order
    return {"results": results, "order": order}


# --------------------------------------------------------- same-instant timeout races


def settle(fut: asyncio.Future[Any], value: Any) -> None:
    """Resolve ``fut`` unless a timeout already cancelled it."""
    if not fut.done():
        fut.set_result(value)


@program
async def same_instant_timeouts() -> Any:
    """Timeouts and completions due at the same virtual instant: which one wins is a
    scheduling choice."""
    loop = asyncio.get_running_loop()
    outcomes: list[Any] = []
    for rnd in range(8):
        fut = loop.create_future()
        loop.call_later(1.0, settle, fut, rnd)
        try:
            outcomes.append(("wait_for", rnd, await asyncio.wait_for(fut, 1.0)))
        except TimeoutError:
            outcomes.append(("wait_for", rnd, "timeout"))

        try:
            async with asyncio.timeout(0.5):
                await asyncio.sleep(0.5)
            outcomes.append(("timeout", rnd, "slept"))
        except TimeoutError:
            outcomes.append(("timeout", rnd, "timeout"))

        sleeper = asyncio.create_task(asyncio.sleep(0.25, result=rnd), name=f"sleeper-{rnd}")
        try:
            async with asyncio.timeout_at(loop.time() + 0.25):
                outcomes.append(("timeout_at", rnd, await asyncio.shield(sleeper)))
        except TimeoutError:
            outcomes.append(("timeout_at", rnd, "timeout", await sleeper))

        racers = [
            asyncio.create_task(asyncio.sleep(0.1, result=name), name=f"{name}-{rnd}")
            for name in ("left", "right", "middle")
        ]
        done, pending = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        for task in by_name(pending):
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        outcomes.append(("first", rnd, [t.get_name() for t in by_name(done)]))
    return outcomes


# --------------------------------------------------------------- Event / Barrier


@program
async def event_barrier() -> Any:
    """Parties released by an Event meet at a Barrier for several phases; a second
    barrier that can never fill is abandoned by timeouts and aborted."""
    start = asyncio.Event()
    barrier = asyncio.Barrier(4)
    log: list[tuple[int, int, int]] = []

    async def party(i: int) -> int:
        await start.wait()
        for phase in range(5):
            await asyncio.sleep(delay("phase", 4, 0.004))
            index = await barrier.wait()
            log.append((phase, i, index))
        return i

    never = asyncio.Event()

    async def watcher() -> str:
        try:
            async with asyncio.timeout(0.01):
                await never.wait()
        except TimeoutError:
            return "timed out"
        return "set"

    parties = [asyncio.create_task(party(i), name=f"party-{i}") for i in range(4)]
    watch = asyncio.create_task(watcher(), name="watcher")
    await asyncio.sleep(delay("start", 3, 0.004))
    start.set()
    await asyncio.gather(*parties)
    assert sorted(index for phase, _, index in log if phase == 0) == [0, 1, 2, 3]

    short = asyncio.Barrier(4)

    async def straggler(i: int) -> str:
        try:
            async with asyncio.timeout(0.01 * (1 + i % 2)):
                await short.wait()
        except TimeoutError:
            await short.abort()
            return "aborted"
        except asyncio.BrokenBarrierError:
            return "broken"
        return "passed"

    stragglers = await asyncio.gather(*(straggler(i) for i in range(3)))
    assert short.broken
    return {"log": log, "watcher": await watch, "stragglers": stragglers}


# ------------------------------------------------------ gather / wait / as_completed


@program
async def gather_mixed() -> Any:
    """Nested gathers with return_exceptions (failing and self-cancelling leaves), a
    gather cancelled from outside, as_completed and asyncio.wait."""

    async def leaf(i: int) -> int:
        await asyncio.sleep(delay("leaf", 4, 0.004))
        if simloom.sometimes("leaf_fail", 25):
            raise KeyError(i)
        if i % 7 == 6:
            raise asyncio.CancelledError(f"leaf {i} gave up")
        return i

    async def branch(b: int) -> list[Any]:
        results = await asyncio.gather(
            *(leaf(b * 10 + i) for i in range(4)), return_exceptions=True
        )
        return [describe(r) for r in results]

    outer = asyncio.gather(*(branch(b) for b in range(4)), return_exceptions=True)

    victim = asyncio.gather(*(leaf(100 + i) for i in range(3)))

    async def canceller() -> None:
        await asyncio.sleep(delay("cancel_at", 4, 0.004))
        victim.cancel()

    canceller_task = asyncio.create_task(canceller(), name="canceller")
    try:
        victim_outcome: Any = await victim
    except (asyncio.CancelledError, KeyError) as exc:
        victim_outcome = describe(exc)
    await canceller_task

    racers = [asyncio.create_task(leaf(200 + i), name=f"racer-{i}") for i in range(4)]
    arrivals: list[Any] = []
    for next_done in asyncio.as_completed(racers):
        try:
            arrivals.append(await next_done)
        except (KeyError, asyncio.CancelledError) as exc:
            arrivals.append(describe(exc))

    waiters = [asyncio.create_task(leaf(300 + i), name=f"waiter-{i}") for i in range(4)]
    done, pending = await asyncio.wait(waiters, timeout=0.008)
    for task in by_name(pending):
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    in_time = [(t.get_name(), task_outcome(t)) for t in by_name(done)]

    return {
        "outer": [describe(r) for r in await outer],
        "victim": victim_outcome,
        "arrivals": arrivals,
        "in_time": in_time,
    }


# ------------------------------------------------------------- lost-update races


@program
async def racy_counters() -> Any:
    """Unsynchronised read-await-write on shared state (lost updates), context
    variables per task, and futures handed between tasks in a ping-pong."""
    shared = {"counter": 0}
    who = contextvars.ContextVar("who", default="main")
    trail: list[str] = []

    async def bump(name: str) -> int:
        who.set(name)
        for _ in range(8):
            seen = shared["counter"]
            await asyncio.sleep(0)
            if simloom.sometimes("slow_write", 10):
                await asyncio.sleep(0.001)
            shared["counter"] = seen + 1
            trail.append(who.get())
        return shared["counter"]

    finals = await asyncio.gather(*(bump(f"b{i}") for i in range(4)))

    loop = asyncio.get_running_loop()
    volleys: list[int] = []

    async def player(me: int, inbox: asyncio.Queue[asyncio.Future[int]]) -> None:
        for _ in range(4):
            fut = await inbox.get()
            volleys.append(me)
            await asyncio.sleep(delay("volley", 2, 0.001))
            fut.set_result(me)

    inboxes: list[asyncio.Queue[asyncio.Future[int]]] = [asyncio.Queue() for _ in range(2)]
    players = [asyncio.create_task(player(i, inboxes[i]), name=f"player-{i}") for i in range(2)]
    returns = []
    for k in range(8):
        fut: asyncio.Future[int] = loop.create_future()
        inboxes[k % 2].put_nowait(fut)
        if k % 2:
            returns.append(await fut)
    await asyncio.gather(*players)
    assert 8 <= shared["counter"] <= 32 and who.get() == "main"
    return {"counter": shared["counter"], "finals": finals, "trail": trail, "volleys": volleys}


# ------------------------------------------------------- threads in lockstep


@program
async def threads_contending() -> Any:
    """Four threads contend on a lock and a queue.Queue, sleep (virtual time) and call
    back into the loop; a consumer thread drains the queue; the loop sets an Event one
    of them waits on. Every switch point is a tape choice: the interleaving varies with
    the seed and replays exactly."""
    import queue
    import threading
    import time

    loop = asyncio.get_running_loop()
    lock = threading.Lock()
    items: queue.Queue[tuple[int, int]] = queue.Queue(maxsize=2)
    go = threading.Event()
    log: list[Any] = []
    pauses = [[delay("pause", 3, 0.001) for _ in range(5)] for _ in range(4)]

    async def echo(value: Any) -> Any:
        await asyncio.sleep(0)
        return value

    def producer(n: int) -> None:
        if n == 0:
            go.wait()
        for i in range(5):
            with lock:
                log.append(("lock", n, i))
            time.sleep(pauses[n][i])
            items.put((n, i))
        log.append(asyncio.run_coroutine_threadsafe(echo(("echo", n)), loop).result())

    def consumer() -> list[tuple[int, int]]:
        return [items.get() for _ in range(20)]

    threads = [threading.Thread(target=producer, args=(n,), name=f"p{n}") for n in range(4)]
    for thread in threads:
        thread.start()
    drained = asyncio.ensure_future(asyncio.to_thread(consumer))
    await asyncio.sleep(delay("go", 4, 0.002))
    go.set()
    got = await drained
    await asyncio.to_thread(lambda: [t.join() for t in threads])
    return log, got


# ------------------------------------------------------------------ worlds
#
# Programs over the simulated world with faults: every fault is a tape choice, so a
# seed fixes latency draws, losses, partitions, crashes and torn writes as well as
# the schedule. Each catches the failures it provokes and returns what it saw.

WORLD_PROGRAMS: dict[str, Callable[..., Awaitable[Any]]] = {}


def world_program(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    assert fn.__name__ not in WORLD_PROGRAMS, fn.__name__
    WORLD_PROGRAMS[fn.__name__] = fn
    return fn


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()
    except ConnectionResetError:
        pass


def _serve(port: int) -> Callable[[], Awaitable[None]]:
    async def serve() -> None:
        server = await asyncio.start_server(_echo, None, port)
        await server.serve_forever()

    return serve


@world_program
async def echo_cluster_with_network_faults(world: Any) -> Any:
    nodes = [world.host(f"n{i}") for i in range(3)]
    for node in nodes:
        node.spawn(_serve(7000))
    world.net.set_latency(0.0005, 0.02)
    world.net.set_loss(15)
    await world.sleep(0.01)
    seen: list[Any] = []

    async def client(i: int) -> None:
        for attempt in range(2):
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(f"n{i}", 7000), 1)
                writer.write(f"{i}:{attempt};".encode() * 3)
                writer.write_eof()
                seen.append((i, attempt, await asyncio.wait_for(reader.read(), 2)))
                writer.close()
            except (OSError, TimeoutError) as exc:
                seen.append((i, attempt, type(exc).__name__))

    async def faults() -> None:
        await asyncio.sleep(delay("partition_at", 5, 0.005))
        if simloom.sometimes("partition", 40):
            world.net.partition(nodes[0], [*nodes[1:], world.main])
        await asyncio.sleep(delay("heal_at", 5, 0.05))
        world.net.heal()
        if simloom.sometimes("reset", 30):
            world.net.reset_connections(world.main, nodes[1])

    await asyncio.gather(faults(), *(client(i) for i in range(3)))
    return sorted(seen, key=repr)


@world_program
async def crash_restart_with_disk(world: Any) -> Any:
    node = world.host("store")
    boots: list[Any] = []

    async def service() -> None:
        disk = node.disk
        state = disk.read_bytes("state") if disk.exists("state") else b""
        boots.append(state)
        with disk.open("state", "a") as log:
            for n in range(3):
                log.write(f"{len(boots)}.{n};".encode())
                if simloom.sometimes("fsync", 50):
                    log.fsync()
                await asyncio.sleep(0.01)
        disk.fsync_dir()
        await _serve(7000)()

    node.spawn(service)
    await world.sleep(delay("crash_at", 5, 0.01))
    node.crash()
    node.restart()
    await world.sleep(0.1)
    try:
        reader, writer = await asyncio.open_connection("store", 7000)
        writer.write(b"up?")
        writer.write_eof()
        boots.append(await reader.read())
    except OSError as exc:
        boots.append(type(exc).__name__)
    return boots


@world_program
async def datagrams_with_faults(world: Any) -> Any:
    loop = asyncio.get_running_loop()
    world.net.set_datagram_loss(20)
    world.net.set_datagram_duplication(20)
    world.net.set_datagram_reorder(20)
    received: list[bytes] = []

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            received.append(data)

    async def listen() -> None:
        await loop.create_datagram_endpoint(Sink, local_addr=("0.0.0.0", 5000))
        await asyncio.Event().wait()

    world.host("sink").spawn(listen)
    await world.sleep(0.01)
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("sink", 5000)
    )
    for n in range(8):
        transport.sendto(str(n).encode())
        await asyncio.sleep(delay("gap", 3, 0.001))
    await world.sleep(0.5)
    transport.close()
    return received
