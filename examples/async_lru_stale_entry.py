"""A real bug in async-lru 2.4.0, found with simloom: a stale execution evicts the
current one, so a duplicate execution starts.

``@alru_cache`` promises one execution per key at a time: callers that arrive while
it runs join it. ``cache_invalidate(key)`` drops the entry at once and lets its
execution finish on its own (the next call starts a fresh one). But every execution
carries a done-callback that, when the execution fails or is cancelled, pops
*whatever entry the key has now* (``self.__cache.pop(key, None)``), without checking
that it is still its own. So if an invalidated execution fails after a fresh one
started, it evicts the fresh one, and the next caller starts a third execution
while the second is still running: two executions of one key in flight, against a
backend the cache exists to protect.

The stock loop runs it in the one order that always shows it (the invalidated
execution fails while the fresh one waits); simloom found it from the property alone
(``tests/test_async_lru_bug.py``: a reader, a refresher that invalidates and a
backend that sometimes fails; the shrunk schedule is the order below).

Run it on the stock loop:   python examples/async_lru_stale_entry.py
Written up in docs/found-bugs.md.
"""

from __future__ import annotations

import asyncio

from async_lru import alru_cache


async def settle() -> None:
    """Let every ready task run until it waits (a few loop iterations)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def main() -> int:
    """How many executions of ``load("k")`` the calls below start (expected 2)."""
    started: list[asyncio.Event] = []

    @alru_cache
    async def load(key: str) -> int:
        number = len(started) + 1
        finish = asyncio.Event()
        started.append(finish)
        await finish.wait()
        if number == 1:
            raise ConnectionError("the backend dropped the first request")
        return number

    first = asyncio.ensure_future(load("k"))  # execution 1
    await settle()
    load.cache_invalidate("k")  # stale now: execution 1 runs on, on its own
    second = asyncio.ensure_future(load("k"))  # execution 2: the key's entry
    await settle()
    started[0].set()  # execution 1 fails; its done-callback pops execution 2's entry
    await asyncio.gather(first, return_exceptions=True)
    third = asyncio.ensure_future(load("k"))  # must join execution 2 ...
    await settle()
    executions = len(started)  # ... but async-lru 2.4.0 starts execution 3
    for finish in started:
        finish.set()
    await settle()
    for finish in started:  # an execution that started meanwhile
        finish.set()
    await asyncio.gather(second, third)
    return executions


if __name__ == "__main__":
    count = asyncio.run(main())
    verdict = "a duplicate execution (the bug)" if count > 2 else "as documented"
    print(f"stock asyncio loop: {count} executions of load('k'), expected 2: {verdict}")
