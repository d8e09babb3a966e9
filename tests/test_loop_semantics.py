"""asyncio semantics of SimLoop that CPython's own test suite checks: each test here
runs the same program on the stock loop and on SimLoop, or states what the stock
loop does."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import sys
from collections.abc import Callable
from typing import Any

import pytest
import simloom

_name: contextvars.ContextVar[str] = contextvars.ContextVar("name", default="outside")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
BOTH_LOOPS = pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, simloom.SimLoop], ids=["stock", "simloop"]
)


def _handler_sees(loop_factory: LoopFactory, failing: str) -> list[str]:
    seen: list[str] = []

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        seen.append(_name.get())

    def callback() -> None:
        _name.set("in the callback")
        raise ZeroDivisionError

    async def task() -> None:
        _name.set("in the task")
        raise ZeroDivisionError

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(handler)
        if failing == "callback":
            asyncio.get_running_loop().call_soon(callback)
        else:
            asyncio.get_running_loop().create_task(task())  # never awaited, then collected
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(main(), loop_factory=loop_factory)
    return seen


@BOTH_LOOPS
def test_exception_handler_runs_in_the_context_of_the_failing_callback(
    loop_factory: LoopFactory,
) -> None:
    assert _handler_sees(loop_factory, "callback") == ["in the callback"]


@BOTH_LOOPS
def test_exception_handler_runs_in_the_context_of_the_failing_task(
    loop_factory: LoopFactory,
) -> None:
    assert _handler_sees(loop_factory, "task") == ["in the task"]


def _order_after_main_finishes(loop_factory: LoopFactory) -> list[str]:
    """What runs after run_until_complete's future is done: on the stock loop the
    current iteration and the one with the stop callback still run."""
    order: list[str] = []
    loop = loop_factory()
    try:
        result = loop.create_future()

        async def first() -> asyncio.Future[None]:
            order.append("first")
            return result

        async def second() -> None:
            order.append("second")
            result.set_result(None)
            loop.call_soon(order.append, "scheduled by second")

        one = loop.create_task(first())
        two = loop.create_task(second())
        loop.run_until_complete(one)
        order.append(f"second done: {two.done()}")
    finally:
        loop.close()
    return order


@BOTH_LOOPS
def test_run_until_complete_finishes_the_iteration_after_the_main_future(
    loop_factory: LoopFactory,
) -> None:
    assert _order_after_main_finishes(loop_factory) == [
        "first",
        "second",
        "scheduled by second",
        "second done: True",
    ]


def _order_around_stop(loop_factory: LoopFactory) -> list[str]:
    order: list[str] = []
    loop = loop_factory()
    try:

        def stopper() -> None:
            order.append("stopper")
            loop.stop()
            loop.call_soon(order.append, "next iteration")

        loop.call_soon(stopper)
        loop.call_soon(order.append, "same iteration")
        loop.run_forever()
        order.append("stopped")
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    return order


@BOTH_LOOPS
def test_stop_runs_the_rest_of_the_current_iteration(loop_factory: LoopFactory) -> None:
    assert _order_around_stop(loop_factory) == [
        "stopper",
        "same iteration",
        "stopped",
        "next iteration",
    ]


def test_a_failure_stops_the_run_at_once() -> None:
    ran: list[str] = []
    loop = simloom.SimLoop()
    try:
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(ran.append, "same iteration, after the failure")
        sleeper = loop.create_task(asyncio.sleep(1))
        with pytest.raises(simloom.UnhandledExceptionError):
            loop.run_until_complete(sleeper)
        assert ran == []
        sleeper.cancel()
        loop.run_until_complete(asyncio.gather(sleeper, return_exceptions=True))
    finally:
        loop.close()


@BOTH_LOOPS
def test_debug_mode_tracks_coroutine_origins_while_the_loop_runs(
    loop_factory: LoopFactory,
) -> None:
    async def depth() -> int:
        return sys.get_coroutine_origin_tracking_depth()

    before = sys.get_coroutine_origin_tracking_depth()
    assert asyncio.run(depth(), debug=True, loop_factory=loop_factory) > 0
    assert sys.get_coroutine_origin_tracking_depth() == before


def test_a_task_factory_may_return_a_task_like_object() -> None:
    class Wrapper:
        def __init__(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> None:
            self._task = asyncio.Task(coro, loop=loop, **kwargs)

        def __getattr__(self, name: str) -> Any:
            if name in ("get_name", "set_name"):
                raise AttributeError(name)
            return getattr(self._task, name)

    loop = simloom.SimLoop()
    try:
        loop.set_task_factory(Wrapper)
        wrapper = loop.create_task(asyncio.sleep(0, "done"))
        assert isinstance(wrapper, Wrapper)
        assert loop.run_until_complete(wrapper._task) == "done"
    finally:
        loop.close()


def test_an_exception_between_runs_is_logged_as_on_the_stock_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = simloom.SimLoop()
    try:
        future = loop.create_future()
        future.set_exception(RuntimeError("boom"))
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            del future  # collected outside any run: nothing to fail
        assert "Future exception was never retrieved" in caplog.text
        assert loop.run_until_complete(asyncio.sleep(0, "next run unaffected")) == (
            "next run unaffected"
        )
    finally:
        loop.close()


@BOTH_LOOPS
@pytest.mark.parametrize("escaping", [SystemExit, KeyboardInterrupt])
def test_an_unreferenced_task_raising_system_exit_ends_asyncio_run_with_it(
    loop_factory: LoopFactory, escaping: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    # Task.__step re-raises SystemExit and KeyboardInterrupt out of the loop; the
    # task's "exception was never retrieved" when it is collected is only logged,
    # and must not replace what propagates.
    async def main() -> None:
        async def boom() -> None:
            await asyncio.sleep(0.5)
            raise escaping(3)

        asyncio.get_running_loop().create_task(boom())
        await asyncio.sleep(1)

    with caplog.at_level(logging.CRITICAL, logger="asyncio"):
        with pytest.raises(escaping):
            asyncio.run(main(), loop_factory=loop_factory)
        gc.collect()  # the task's "never retrieved" log, while it is silenced


# ------------------------------------------------ the stock loop's exception handling


def test_simloop_is_a_base_event_loop_whose_call_exception_handler_is_asyncios() -> None:
    # asyncio asks loops not to override call_exception_handler; code (and CPython's
    # own tests) patch BaseEventLoop's to watch what a loop reports.
    from unittest import mock

    assert issubclass(simloom.SimLoop, asyncio.BaseEventLoop)
    with mock.patch("asyncio.base_events.BaseEventLoop.call_exception_handler") as reported:

        def fail() -> None:
            raise ZeroDivisionError

        async def main() -> None:
            asyncio.get_running_loop().call_soon(fail)
            await asyncio.sleep(0)

        asyncio.run(main(), loop_factory=simloom.SimLoop)
    (call,) = reported.call_args_list
    assert isinstance(call.args[-1]["exception"], ZeroDivisionError)


def test_a_custom_handler_that_delegates_to_the_default_fails_the_universe() -> None:
    handled: list[str] = []

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), KeyError):
            handled.append("KeyError")
            return
        loop.default_exception_handler(context)

    def fail(error: type[Exception]) -> None:
        raise error("from a callback")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(handler)
        loop.call_soon(fail, KeyError)
        await asyncio.sleep(0)
        loop.call_soon(fail, ZeroDivisionError)
        await asyncio.sleep(1)

    result = simloom.run(main)
    assert handled == ["KeyError"]
    assert isinstance(result.error, simloom.UnhandledExceptionError)
    assert "ZeroDivisionError: from a callback" in str(result.error)


# --------------------------------------------------- time passes while callbacks run


@BOTH_LOOPS
def test_a_task_polling_a_flag_that_a_timer_sets_gets_there(loop_factory: LoopFactory) -> None:
    async def main() -> int:
        flag: list[bool] = []
        asyncio.get_running_loop().call_later(0.1, flag.append, True)
        polls = 0
        while not flag:
            polls += 1
            await asyncio.sleep(0)
        return polls

    assert asyncio.run(main(), loop_factory=loop_factory) > 0


def test_a_busy_stretch_moves_the_clock_to_the_next_timer_and_not_further() -> None:
    async def main() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        loop.call_later(0.25, lambda: fired.append(loop.time()))
        polls = 0
        while not fired:
            polls += 1
            await asyncio.sleep(0)
        return polls, fired[0]

    result = simloom.run(main, livelock_steps=1000)
    result.raise_error()
    polls, fired_at = result.value
    assert fired_at == 0.25
    assert 1000 <= polls <= 1002  # the whole stretch ran at virtual time 0 first


def test_a_spin_beside_a_periodic_timer_ends_with_the_step_budget() -> None:
    async def ticker() -> None:
        while True:
            await asyncio.sleep(1)

    async def spinner() -> None:
        while True:
            await asyncio.sleep(0)

    async def main() -> None:
        ticking = asyncio.create_task(ticker(), name="ticker")
        await asyncio.create_task(spinner(), name="spinner")
        await ticking

    result = simloom.run(main, livelock_steps=1000, max_steps=20_000)
    assert isinstance(result.error, simloom.SimStepBudgetError), repr(result.error)
    assert "spinner" in str(result.error) and "ticker" in str(result.error)


def test_an_unclosed_loop_warns_when_collected_and_a_misused_constructor_does_not() -> None:
    unraisable: list[object] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        caught = _collect_warnings()
    finally:
        sys.unraisablehook = hook
    assert unraisable == []
    unclosed = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert [str(w.message).split(" <")[0] for w in unclosed] == ["unclosed event loop"]


def _collect_warnings() -> list[Any]:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop = simloom.SimLoop()
        del loop
        gc.collect()
        with pytest.raises(simloom.SimloomUsageError):
            simloom.SimLoop(livelock_steps=True)  # type: ignore[arg-type]
        gc.collect()
        closed = simloom.SimLoop()
        closed.close()
        del closed
        gc.collect()
    return caught


def test_a_closed_loop_is_freed_by_one_collection() -> None:
    # Its finalizer (the unclosed-loop warning) must not keep its cycle alive.
    # (Counted, not watched through a weakref: a collection clears weakrefs before
    # it runs finalizers, even when it then keeps the objects.)
    def loops() -> int:
        gc.collect()
        return sum(1 for obj in gc.get_objects() if isinstance(obj, simloom.SimLoop))

    before = loops()
    loop = simloom.SimLoop()
    loop.run_until_complete(asyncio.sleep(1))
    loop.close()
    del loop
    assert loops() == before
