"""The Redis stand-in (``world.redis``): unmodified ``redis.asyncio`` against it,
its durability under each ``appendfsync`` policy across crash universes, and a
differential test against a real redis-server started by the test on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import simloom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.exceptions import ResponseError, WatchError
from simloom import SimloomUsageError


def run(main: Any, seed: int = 0, **options: Any) -> Any:
    result = simloom.run(main, seed=seed, **options)
    result.raise_error()
    return result.value


async def client(world: Any, **options: Any) -> aioredis.Redis:
    if "cache" not in world.hosts:
        world.redis("cache", **options)
    await asyncio.sleep(0.001)  # let it start listening
    return aioredis.Redis(host="cache", port=6379)


# ------------------------------------------------------------ client usage


def test_strings_expiry_and_types_through_redis_asyncio() -> None:
    async def main(world: Any) -> list[Any]:
        r = await client(world)
        out: list[Any] = [await r.ping()]
        out += [await r.set("a", "1"), await r.incr("a"), await r.incrby("a", 5), await r.get("a")]
        out += [await r.set("n", "x", nx=True), await r.set("n", "y", nx=True), await r.get("n")]
        await r.set("t", "x", ex=5)
        out.append(await r.ttl("t"))
        await asyncio.sleep(6)  # virtual time: the key expires
        out += [await r.get("t"), await r.exists("t")]
        await r.hset("h", mapping={"f": "v", "g": "w"})
        out += [await r.hgetall("h"), await r.hincrby("h", "c", 3), await r.type("h")]
        await r.rpush("l", 1, 2, 3)
        await r.lpush("l", 0)
        out += [await r.lrange("l", 0, -1), await r.lpop("l"), await r.llen("l")]
        await r.sadd("s", "x", "y", "x")
        out += [sorted(await r.smembers("s")), await r.sismember("s", "y")]
        await r.zadd("z", {"a": 1.5, "b": 0.5})
        out += [await r.zrange("z", 0, -1, withscores=True), await r.zscore("z", "a")]
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await r.get("h")
        with pytest.raises(ResponseError, match="not an integer"):
            await r.incr("n")
        out.append(sorted([k async for k in r.scan_iter(match="*", count=2)]))
        await r.aclose()
        return out

    assert run(main) == [
        True,
        True,
        2,
        7,
        b"7",
        True,
        None,
        b"x",
        5,
        None,
        0,
        {b"f": b"v", b"g": b"w"},
        3,
        b"hash",
        [b"0", b"1", b"2", b"3"],
        b"0",
        3,
        [b"x", b"y"],
        1,
        [(b"b", 0.5), (b"a", 1.5)],
        1.5,
        [b"a", b"h", b"l", b"n", b"s", b"z"],
    ]


def test_resp3_pipelines_transactions_watch_and_pubsub() -> None:
    async def main(world: Any) -> list[Any]:
        world.redis("cache")
        await asyncio.sleep(0.001)
        r = aioredis.Redis(host="cache", port=6379, protocol=3)
        other = aioredis.Redis(host="cache", port=6379)
        out: list[Any] = []
        async with r.pipeline(transaction=True) as pipe:
            pipe.set("k", "v").incr("n").get("k")
            out.append(await pipe.execute())
        # WATCH: a write by another client between WATCH and EXEC aborts it.
        async with r.pipeline(transaction=True) as pipe:
            await pipe.watch("n")
            await other.incr("n")
            pipe.multi()
            pipe.incr("n")
            with pytest.raises(WatchError):
                await pipe.execute()
        out.append(await r.get("n"))
        pubsub = other.pubsub()
        await pubsub.subscribe("news")
        out.append((await pubsub.get_message(timeout=1))["type"])
        out.append(await r.publish("news", "hi"))
        message = await pubsub.get_message(timeout=1)
        out.append((message["channel"], message["data"]))
        out.append(await r.hgetall("missing"))
        await pubsub.aclose()
        await r.aclose()
        await other.aclose()
        return out

    assert run(main) == [[True, 1, b"v"], b"2", "subscribe", 1, (b"news", b"hi"), {}]


def test_a_connection_pool_of_many_tasks_interleaves_commands_atomically() -> None:
    async def main(world: Any) -> bytes:
        r = await client(world)

        async def bump() -> None:
            for _ in range(10):
                await r.incr("counter")

        await asyncio.gather(*(bump() for _ in range(5)))
        value = await r.get("counter")
        await r.aclose()
        return value

    for seed in range(20):
        assert run(main, seed=seed, scheduler="random") == b"50"


def test_a_lost_update_between_get_and_set_is_found() -> None:
    """A read-modify-write without WATCH loses increments under some schedule."""

    async def main(world: Any) -> None:
        r = await client(world)

        async def bump() -> None:
            value = int(await r.get("c") or 0)
            await r.set("c", value + 1)

        await asyncio.gather(bump(), bump())
        assert await r.get("c") == b"2"
        await r.aclose()

    failures = sum(
        simloom.run(main, seed=seed, scheduler="random").error is not None for seed in range(50)
    )
    assert failures > 0


def test_bad_options_are_named_errors() -> None:
    async def main(world: Any) -> None:
        with pytest.raises(SimloomUsageError, match="appendfsync"):
            world.redis("cache", appendfsync="sometimes")
        with pytest.raises(SimloomUsageError, match="port"):
            world.redis("cache", port=0)

    run(main)


def test_unknown_commands_and_arity_are_redis_errors() -> None:
    async def main(world: Any) -> None:
        r = await client(world)
        with pytest.raises(ResponseError, match="unknown command 'NOPE'"):
            await r.execute_command("NOPE", "x")
        with pytest.raises(ResponseError, match="wrong number of arguments for 'get'"):
            await r.execute_command("GET")
        await r.aclose()

    run(main)


# -------------------------------------------------------------- durability


def durability_universe(policy: str, writes: int = 20) -> Any:
    """A client writes ``k0..``, each acknowledged; at a tape-chosen moment the
    host loses power; after a restart, what survived is returned with what had
    been acknowledged (and when)."""

    async def main(world: Any) -> tuple[list[int], list[tuple[int, float]], float]:
        world.redis("cache", appendfsync=policy)
        host = world.hosts["cache"]
        await asyncio.sleep(0.001)
        r = aioredis.Redis(host="cache", port=6379, retry=None)
        acked: list[tuple[int, float]] = []
        loop = asyncio.get_running_loop()
        crash_after = simloom.draw("crash_after", writes)

        for i in range(writes):
            await r.set(f"k{i}", i)
            acked.append((i, loop.time()))
            if i == crash_after:
                break
            await asyncio.sleep(0.3)
        crashed_at = loop.time()
        host.crash()
        with contextlib.suppress(Exception):
            await r.aclose()
        host.restart()
        await asyncio.sleep(0.001)
        fresh = aioredis.Redis(host="cache", port=6379)
        present = [i for i in range(writes) if await fresh.get(f"k{i}") is not None]
        await fresh.aclose()
        return present, acked, crashed_at

    return main


@pytest.mark.parametrize("policy", ["always", "everysec", "no"])
def test_what_survives_a_crash_is_what_the_policy_promises(policy: str) -> None:
    universes = 1000
    lost_any = False
    for seed in range(universes):
        present, acked, crashed_at = run(durability_universe(policy), seed=seed)
        # Nothing that was never written appears, and what survives is a prefix
        # (the file is replayed in order; a torn tail is dropped).
        assert present == list(range(len(present))), (seed, present)
        assert len(present) <= len(acked)
        if policy == "always":
            # Every acknowledged write was fsynced before its reply.
            assert len(present) == len(acked), (seed, present, acked)
        elif policy == "everysec":
            # At most the last second's writes (before the crash) are lost.
            for i, at in acked:
                if at <= crashed_at - 2.0:
                    assert i in present, (seed, i, at, crashed_at, present)
        lost_any |= len(present) < len(acked)
    # Under everysec and no, some crash loses acknowledged writes.
    assert lost_any == (policy != "always")


def test_without_appendonly_a_crash_loses_everything() -> None:
    async def main(world: Any) -> Any:
        world.redis("cache", appendonly=False, appendfsync="always")
        await asyncio.sleep(0.001)
        r = aioredis.Redis(host="cache", port=6379, retry=None)
        await r.set("k", "v")
        world.hosts["cache"].crash()
        with contextlib.suppress(Exception):
            await r.aclose()
        world.hosts["cache"].restart()
        await asyncio.sleep(0.001)
        fresh = aioredis.Redis(host="cache", port=6379)
        value = await fresh.get("k")
        await fresh.aclose()
        return value

    assert run(main) is None


def test_a_transaction_is_all_or_nothing_across_a_crash() -> None:
    async def main(world: Any) -> tuple[Any, Any]:
        world.redis("cache", appendfsync="no")
        host = world.hosts["cache"]
        await asyncio.sleep(0.001)
        r = aioredis.Redis(host="cache", port=6379, retry=None)
        async with r.pipeline(transaction=True) as pipe:
            pipe.set("a", "1").set("b", "2").set("c", "3")
            await pipe.execute()
        host.crash()
        with contextlib.suppress(Exception):
            await r.aclose()
        host.restart()
        await asyncio.sleep(0.001)
        fresh = aioredis.Redis(host="cache", port=6379)
        values = (await fresh.mget("a", "b", "c"), await fresh.dbsize())
        await fresh.aclose()
        return values

    seen = set()
    for seed in range(300):
        values, size = run(main, seed=seed, scheduler="random")
        assert values in ([None, None, None], [b"1", b"2", b"3"]), (seed, values)
        seen.add(size)
    assert seen == {0, 3}  # some crashes kept it, some lost it; never a part


# ------------------------------------------------- differential: a real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def real_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server = os.environ.get("SIMLOOM_REDIS_SERVER") or shutil.which("redis-server")
    if server is None:
        pytest.fail(
            "redis-server is not installed: `make redis` (scripts/bootstrap.sh redis) "
            "installs it from the OS packages"
        )
    port = _free_port()
    directory: Path = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


KEYS = st.sampled_from(["a", "b", "c"])
VALUES = st.sampled_from(["1", "2", "x", "-3", "10"])
COMMANDS = st.one_of(
    st.tuples(st.just("SET"), KEYS, VALUES),
    st.tuples(st.just("GET"), KEYS),
    st.tuples(st.just("DEL"), KEYS),
    st.tuples(st.just("EXISTS"), KEYS, KEYS),
    st.tuples(st.just("INCR"), KEYS),
    st.tuples(st.just("INCRBY"), KEYS, VALUES),
    st.tuples(st.just("APPEND"), KEYS, VALUES),
    st.tuples(st.just("STRLEN"), KEYS),
    st.tuples(st.just("TYPE"), KEYS),
    st.tuples(st.just("HSET"), KEYS, VALUES, VALUES),
    st.tuples(st.just("HGET"), KEYS, VALUES),
    st.tuples(st.just("HDEL"), KEYS, VALUES),
    st.tuples(st.just("HLEN"), KEYS),
    st.tuples(st.just("RPUSH"), KEYS, VALUES),
    st.tuples(st.just("LPUSH"), KEYS, VALUES),
    st.tuples(st.just("LPOP"), KEYS),
    st.tuples(st.just("LRANGE"), KEYS, st.just("0"), st.just("-1")),
    st.tuples(st.just("LLEN"), KEYS),
    st.tuples(st.just("SADD"), KEYS, VALUES),
    st.tuples(st.just("SREM"), KEYS, VALUES),
    st.tuples(st.just("SCARD"), KEYS),
    st.tuples(st.just("SISMEMBER"), KEYS, VALUES),
    st.tuples(st.just("ZADD"), KEYS, VALUES, VALUES),
    st.tuples(st.just("ZSCORE"), KEYS, VALUES),
    st.tuples(st.just("ZCARD"), KEYS),
    st.tuples(st.just("ZRANGE"), KEYS, st.just("0"), st.just("-1"), st.just("WITHSCORES")),
    st.tuples(st.just("MGET"), KEYS, KEYS),
    st.tuples(st.just("GETDEL"), KEYS),
    st.tuples(st.just("SETNX"), KEYS, VALUES),
    st.tuples(st.just("DBSIZE")),
)


async def _replies(r: aioredis.Redis, commands: list[tuple[str, ...]]) -> list[Any]:
    out: list[Any] = []
    for command in commands:
        try:
            reply = await r.execute_command(*command)
        except ResponseError as error:
            # The error's kind (its first word) and message.
            reply = ("error", str(error))
        if isinstance(reply, set):
            reply = sorted(reply)
        out.append(reply)
    return out


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(COMMANDS, max_size=25))
def test_replies_and_errors_match_a_real_redis_server(
    real_redis: int, commands: list[tuple[str, ...]]
) -> None:
    async def against_real() -> list[Any]:
        r = aioredis.Redis(host="127.0.0.1", port=real_redis)
        await r.flushall()
        try:
            return await _replies(r, commands)
        finally:
            await r.aclose()

    async def against_standin(world: Any) -> list[Any]:
        r = await client(world)
        try:
            return await _replies(r, commands)
        finally:
            await r.aclose()

    expected = asyncio.run(against_real())
    assert run(against_standin) == expected
