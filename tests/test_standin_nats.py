"""The NATS stand-in (``world.nats``): unmodified ``nats-py`` against it (connect and
authenticate, publish/subscribe, wildcards, queue groups, request/reply, headers,
unsubscribe after N, drain, flush, no responders), the host's faults (a crash and
restart, a partition), the protocol's error texts over a raw connection, and
determinism (the same seed gives the same universe; the queue member is a tape
choice). The comparison with a real nats-server is in
``test_standin_nats_differential.py``.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import nats
import pytest
import simloom
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError, NoServersError
from simloom import SimloomUsageError
from simloom.standins.nats import QUEUE_CHOICE_LABEL
from test_torture import fingerprint


def run(main: Any, seed: int = 0, **options: Any) -> Any:
    result = simloom.run(main, seed=seed, **options)
    result.raise_error()
    return result.value


async def bus(world: Any, **options: Any) -> Any:
    """A stand-in on host "bus", listening once this returns."""
    server = world.nats("bus", **options)
    await asyncio.sleep(0.001)
    return server


async def connect(server: Any, **options: Any) -> Any:
    return await nats.connect(server.url, **options)


# ------------------------------------------------------------ client usage


def test_publish_and_subscribe_with_a_callback_and_with_an_iterator() -> None:
    async def main(world: Any) -> tuple[list[Any], list[Any], int, int]:
        server = await bus(world)
        publisher = await connect(server)
        subscriber = await connect(server)
        by_callback: list[Any] = []

        async def handler(msg: Any) -> None:
            by_callback.append((msg.subject, msg.data))

        await subscriber.subscribe("orders", cb=handler)
        iterated = await subscriber.subscribe("orders")
        await subscriber.flush()
        for n in range(3):
            await publisher.publish("orders", b"order-%d" % n)
        await publisher.flush()
        by_iterator = []
        async for msg in iterated.messages:
            by_iterator.append((msg.subject, msg.data))
            if len(by_iterator) == 3:
                break
        await world.until(lambda: len(by_callback) == 3, timeout=5)
        counts = (server.connections, server.subscriptions)
        await publisher.close()
        await subscriber.close()
        return by_callback, by_iterator, *counts

    expected = [("orders", b"order-%d" % n) for n in range(3)]
    assert run(main) == (expected, expected, 2, 2)


def test_wildcards_match_one_token_or_the_rest() -> None:
    async def main(world: Any) -> dict[str, list[str]]:
        server = await bus(world)
        nc = await connect(server)
        seen: dict[str, list[str]] = collections.defaultdict(list)
        for pattern in ("a.*", "a.>", "a.*.c", ">", "a.b"):

            async def handler(msg: Any, pattern: str = pattern) -> None:
                seen[pattern].append(msg.subject)

            await nc.subscribe(pattern, cb=handler)
        for subject in ("a", "a.b", "a.b.c", "a.x.c.d", "b"):
            await nc.publish(subject, b"")
        await nc.flush()
        await world.until(lambda: len(seen[">"]) == 5, timeout=5)
        await nc.close()
        return dict(seen)

    assert run(main) == {
        "a.*": ["a.b"],
        "a.>": ["a.b", "a.b.c", "a.x.c.d"],
        "a.*.c": ["a.b.c"],
        ">": ["a", "a.b", "a.b.c", "a.x.c.d", "b"],
        "a.b": ["a.b"],
    }


def test_request_reply_and_no_responders() -> None:
    async def main(world: Any) -> tuple[bytes, str, bool]:
        server = await bus(world)
        service = await connect(server)
        client = await connect(server)

        async def echo(msg: Any) -> None:
            await msg.respond(b"echo:" + msg.data)

        await service.subscribe("echo", cb=echo)
        await service.flush()
        reply = await client.request("echo", b"hi", timeout=1)
        with pytest.raises(NoRespondersError):
            await client.request("nobody.home", b"hi", timeout=1)
        # Old-style requests (an inbox per request) get the 503 too.
        old_style = False
        try:
            await client.request("nobody.home", b"hi", timeout=1, old_style=True)
        except NoRespondersError:
            old_style = True
        await service.close()
        await client.close()
        return reply.data, reply.subject[: len("_INBOX.")], old_style

    assert run(main) == (b"echo:hi", "_INBOX.", True)


def test_headers_travel_with_the_message_and_a_client_without_them_gets_the_payload() -> None:
    async def main(world: Any) -> tuple[Any, Any, bytes]:
        server = await bus(world)
        nc = await connect(server)
        sub = await nc.subscribe("h")
        await nc.publish("h", b"body", headers={"Trace-Id": "42", "Kind": "test"})
        msg = await sub.next_msg(timeout=1)
        # A raw client that did not announce headers in CONNECT gets MSG, no HMSG.
        reader, writer = await asyncio.open_connection("bus", 4222)
        await reader.readline()  # INFO
        writer.write(b'CONNECT {"verbose":false}\r\nSUB h 1\r\nPING\r\n')
        assert await reader.readline() == b"PONG\r\n"
        await nc.publish("h", b"plain", headers={"X": "1"})
        await nc.flush()
        raw = await reader.readline() + await reader.readline()
        writer.close()
        await nc.close()
        return msg.headers, msg.data, raw

    assert run(main) == ({"Trace-Id": "42", "Kind": "test"}, b"body", b"MSG h 1 5\r\nplain\r\n")


def test_unsubscribe_after_n_messages() -> None:
    async def main(world: Any) -> tuple[list[bytes], list[bytes], int]:
        server = await bus(world)
        nc = await connect(server)
        limited = await nc.subscribe("n", max_msgs=2)
        late = await nc.subscribe("m")
        await late.unsubscribe(limit=3)
        for n in range(5):
            await nc.publish("n", b"%d" % n)
            await nc.publish("m", b"%d" % n)
        await nc.flush()
        first = [(await limited.next_msg(timeout=1)).data for _ in range(2)]
        later = [(await late.next_msg(timeout=1)).data for _ in range(3)]
        await nc.flush()
        remaining = server.subscriptions
        await nc.close()
        return first, later, remaining

    # ``max_msgs`` is counted by nats-py alone (its subscription stays on the server,
    # as on nats-server); ``unsubscribe(limit=3)`` sends ``UNSUB <sid> 3`` and the
    # server drops that subscription after the third message.
    assert run(main) == ([b"0", b"1"], [b"0", b"1", b"2"], 1)


def test_drain_handles_what_arrived_then_closes() -> None:
    async def main(world: Any) -> tuple[list[bytes], bool, int]:
        server = await bus(world)
        publisher = await connect(server)
        consumer = await connect(server)
        handled: list[bytes] = []

        async def slow(msg: Any) -> None:
            await asyncio.sleep(0.1)
            handled.append(msg.data)

        await consumer.subscribe("work", cb=slow)
        await consumer.flush()
        for n in range(5):
            await publisher.publish("work", b"%d" % n)
        await publisher.flush()
        await consumer.flush()  # all five have reached the consumer
        await consumer.drain()
        await world.until(lambda: server.connections == 1, timeout=5)
        await publisher.close()
        return handled, consumer.is_closed, server.connections

    assert run(main) == ([b"0", b"1", b"2", b"3", b"4"], True, 1)


def test_flush_is_a_round_trip_after_which_the_server_has_the_subscription() -> None:
    async def main(world: Any) -> list[int]:
        server = await bus(world)
        nc = await connect(server)
        counts = []
        for n in range(3):
            await nc.subscribe(f"s{n}")
            await nc.flush()
            counts.append(server.subscriptions)
        await nc.close()
        return counts

    assert run(main) == [1, 2, 3]


# --------------------------------------------------------- authentication


def test_user_and_password_authentication() -> None:
    async def main(world: Any) -> tuple[bool, str, str, str]:
        server = await bus(world, user="app", password="secret")
        nc = await connect(server, user="app", password="secret")
        ok = nc.is_connected
        await nc.close()
        errors = []
        for options in ({"user": "app", "password": "wrong"}, {}):
            with pytest.raises(NatsError) as caught:
                await connect(server, allow_reconnect=False, **options)
            errors.append(str(caught.value))
        with pytest.raises(NoServersError) as no_servers:
            await nats.connect(
                "nats://app:wrong@bus:4222", max_reconnect_attempts=1, reconnect_time_wait=0.1
            )
        return ok, *errors, str(no_servers.value)

    assert run(main) == (
        True,
        "nats: 'Authorization Violation'",
        "nats: 'Authorization Violation'",
        "nats: no servers available for connection",
    )


def test_token_authentication() -> None:
    async def main(world: Any) -> tuple[bool, str]:
        server = await bus(world, token="s3cr3t")
        nc = await connect(server, token="s3cr3t")
        ok = nc.is_connected
        await nc.close()
        with pytest.raises(NatsError) as caught:
            await connect(server, token="guess", allow_reconnect=False)
        return ok, str(caught.value)

    assert run(main) == (True, "nats: 'Authorization Violation'")


def test_bad_options_are_named_errors() -> None:
    async def main(world: Any) -> None:
        with pytest.raises(SimloomUsageError, match="port"):
            world.nats("bus", port=0)
        with pytest.raises(SimloomUsageError, match="user and password go together"):
            world.nats("bus", user="app")
        with pytest.raises(SimloomUsageError, match="either a token or a user"):
            world.nats("bus", user="app", password="p", token="t")
        with pytest.raises(SimloomUsageError, match="token must be a non-empty string"):
            world.nats("bus", token="")

    run(main)


# -------------------------------------------------- the protocol, raw


async def raw_session(world: Any, data: bytes, *, options: dict[str, Any] | None = None) -> bytes:
    """Send ``data`` on a raw connection; everything the server answers until it
    closes (or a virtual second passes), without the INFO line."""
    await bus(world, **(options or {}))
    reader, writer = await asyncio.open_connection("bus", 4222)
    info = await reader.readline()
    assert info.startswith(b"INFO {")
    writer.write(data)
    out = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 1.0):
            out += chunk
        out += b"<EOF>"
    except TimeoutError:
        pass
    writer.close()
    return out


@pytest.mark.parametrize(
    ("data", "answer"),
    [
        (b"PING\r\n", b"PONG\r\n"),
        (b"CONNECT {}\r\nPING\r\n", b"+OK\r\nPONG\r\n"),  # verbose until CONNECT says
        (b'CONNECT {"verbose":false}\r\nFOO\r\n', b"-ERR 'Unknown Protocol Operation'\r\n<EOF>"),
        (
            b'CONNECT {"verbose":false}\r\nPUB a 2000000\r\n',
            b"-ERR 'Maximum Payload Violation'\r\n<EOF>",
        ),
        (
            b'CONNECT {"verbose":false}\r\nSUB a..b 1\r\nPING\r\n',
            b"-ERR 'Invalid Subject'\r\nPONG\r\n",
        ),
        (
            b'CONNECT {"verbose":false}\r\nSUB a 1\r\nPUB a.* 1\r\nx\r\nPING\r\n',
            b"-ERR 'Invalid Publish Subject'\r\nPONG\r\n",  # pedantic by default
        ),
        (
            b'CONNECT {"verbose":false}\r\nSUB a 1\r\nPUB a r 2\r\nhi\r\nPING\r\n',
            b"MSG a 1 r 2\r\nhi\r\nPONG\r\n",
        ),
        (
            b'CONNECT {"verbose":false}\r\nSUB a q 1\r\nSUB a q 2\r\nUNSUB 2\r\n'
            b"PUB a 1\r\nx\r\nPING\r\n",
            b"MSG a 1 1\r\nx\r\nPONG\r\n",
        ),
        (
            b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'
            b"SUB r.* 7\r\nPUB q r.1 0\r\n\r\nPING\r\n",
            b"HMSG r.1 7 16 16\r\nNATS/1.0 503\r\n\r\n\r\nPONG\r\n",
        ),
        (
            b'CONNECT {"no_responders":true}\r\n',
            b"-ERR 'no responders requires headers support'\r\n<EOF>",
        ),
        (b'CONNECT {"protocol":2}\r\n', b"-ERR 'invalid client protocol'\r\n<EOF>"),
        (b"SUB " + b"a" * 5000 + b" 1\r\n", b"-ERR 'maximum control line exceeded'\r\n<EOF>"),
        (
            b'CONNECT {"verbose":false}\r\nPUB a 1\r\nxy\r\n',
            b"-ERR 'Unknown Protocol Operation'\r\n<EOF>",
        ),
        (b'CONNECT {"verbose":false}\r\nPUB a\r\n', b"<EOF>"),  # bad arguments: closed, no -ERR
    ],
)
def test_protocol_answers_and_errors_have_nats_server_texts(data: bytes, answer: bytes) -> None:
    async def main(world: Any) -> bytes:
        return await raw_session(world, data)

    assert run(main) == answer


def test_without_credentials_only_connect_is_accepted_and_silence_times_out() -> None:
    async def main(world: Any) -> tuple[bytes, bytes]:
        early = await raw_session(world, b"PING\r\n", options={"user": "u", "password": "p"})
        reader, writer = await asyncio.open_connection("bus", 4222)
        await reader.readline()
        started = asyncio.get_running_loop().time()
        silent = await reader.read(1000) + await reader.read(1000)
        elapsed = asyncio.get_running_loop().time() - started
        writer.close()
        assert 2.0 <= elapsed < 2.1, elapsed
        return early, silent

    assert run(main) == (
        b"-ERR 'Authorization Violation'\r\n<EOF>",
        b"-ERR 'Authentication Timeout'\r\n",
    )


# ----------------------------------------------------------- queue groups


def queue_universe(messages: int = 30, members: int = 3) -> Any:
    """``members`` subscribers in queue group "workers" (and one plain subscriber);
    returns which member got each message, and what the plain subscriber got."""

    async def main(world: Any) -> tuple[list[int], int]:
        server = await bus(world)
        got: list[tuple[int, bytes]] = []
        plain: list[bytes] = []
        clients = []
        for member in range(members):
            nc = await connect(server)

            async def handler(msg: Any, member: int = member) -> None:
                got.append((member, msg.data))

            await nc.subscribe("jobs", queue="workers", cb=handler)
            await nc.flush()
            clients.append(nc)
        watcher = await connect(server)

        async def watch(msg: Any) -> None:
            plain.append(msg.data)

        await watcher.subscribe("jobs", cb=watch)
        await watcher.flush()
        producer = await connect(server)
        for n in range(messages):
            await producer.publish("jobs", b"%03d" % n)
        await producer.flush()
        await world.until(lambda: len(got) == messages and len(plain) == messages, timeout=5)
        for nc in [*clients, watcher, producer]:
            await nc.close()
        by_message = dict((data, member) for member, data in got)
        # Each message went to exactly one member of the group.
        assert sorted(by_message) == [b"%03d" % n for n in range(messages)]
        return [by_message[b"%03d" % n] for n in range(messages)], len(plain)

    return main


def test_a_queue_group_gives_each_message_to_one_member_chosen_on_the_tape() -> None:
    main = queue_universe()
    first = simloom.run(main, seed=7)
    first.raise_error()
    members, plain = first.value
    assert plain == 30  # a plain subscriber beside the group gets every message
    assert len(set(members)) == 3, members  # spread over the members
    # Same seed, same spread; another seed, another spread.
    assert simloom.run(main, seed=7).value == first.value
    spreads = {tuple(simloom.run(main, seed=seed).value[0]) for seed in range(8)}
    assert len(spreads) >= 6
    # The choice is a tape decision: replaying the tape replays the spread, and
    # the canonical (all-zero) tape gives every message to the oldest member.
    replayed = simloom.replay(main, first.tape, strict=True)
    assert replayed.value == first.value
    canonical = simloom.replay(main, simloom.Tape.from_draws([0]))
    assert canonical.value == ([0] * 30, 30)
    assert QUEUE_CHOICE_LABEL in {event.label for event in first.event_log if event.label}


@pytest.fixture
def artifacts_in_tmp(tmp_path: Any) -> Any:
    from simloom import testing

    previous = testing._options
    testing.configure(testing.Options(artifact_dir=tmp_path / "failures"))
    yield
    testing.configure(previous)


def test_a_bug_in_one_queue_member_is_found_and_shrunk_to_that_one_choice(
    artifacts_in_tmp: None,
) -> None:
    """Worker 1 swallows a "poison" message; only a universe where the queue
    gives it that message fails, and the shrunk schedule is that one choice."""
    import re

    from hypothesis import settings
    from hypothesis.database import InMemoryExampleDatabase

    async def body(world: Any) -> None:
        server = await bus(world)
        nc = await connect(server)
        handled: list[bytes] = []
        for member in range(2):

            async def work(msg: Any, member: int = member) -> None:
                if member == 1 and msg.data == b"poison":
                    return  # the bug
                handled.append(msg.data)

            await nc.subscribe("jobs", queue="workers", cb=work)
        await nc.flush()
        for data in (b"a", b"poison", b"b"):
            await nc.publish("jobs", data)
        await nc.flush()
        await asyncio.sleep(0.5)
        await nc.close()
        assert b"poison" in handled

    decorated = settings(database=InMemoryExampleDatabase())(simloom.test(runs=200)(body))
    with pytest.raises(AssertionError) as caught:
        decorated()
    report = next(n for n in caught.value.__notes__ if "simloom found" in n)
    assert re.search(r"schedule deviations \d+ → 1\b", report), report
    assert f"{QUEUE_CHOICE_LABEL} = 1 (of 2)" in report, report


def test_the_same_seed_gives_the_same_universe_and_its_tape_replays_it() -> None:
    main = queue_universe(messages=12)
    for seed in range(4):
        for scheduler in ("random", "pct"):
            first = simloom.run(main, seed=seed, scheduler=scheduler)
            again = simloom.run(main, seed=seed, scheduler=scheduler)
            assert fingerprint(again) == fingerprint(first), (seed, scheduler)
            replayed = simloom.replay(main, first.tape, strict=True)
            assert not replayed.misaligned
            assert replayed.digest == first.digest
            assert replayed.value == first.value


# ------------------------------------------------------------------ faults


def test_a_client_reconnects_and_resubscribes_after_the_host_restarts() -> None:
    async def main(world: Any) -> tuple[list[bytes], list[str], int]:
        server = await bus(world)
        events: list[str] = []

        async def disconnected() -> None:
            events.append("disconnected")

        async def reconnected() -> None:
            events.append("reconnected")

        nc = await connect(
            server,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            reconnect_time_wait=0.5,
        )
        sub = await nc.subscribe("t")
        await nc.publish("t", b"before")
        got = [(await sub.next_msg(timeout=1)).data]
        world.hosts["bus"].crash()
        await asyncio.sleep(3)
        assert server.connections == 0 or not world.hosts["bus"].alive
        world.hosts["bus"].restart()
        await world.until(lambda: nc.is_connected and server.subscriptions == 1, timeout=30)
        await nc.publish("t", b"after")
        got.append((await sub.next_msg(timeout=1)).data)
        connections = server.connections
        await nc.close()
        return got, events[:2], connections

    for seed in range(3):
        assert run(main, seed=seed) == ([b"before", b"after"], ["disconnected", "reconnected"], 1)


def test_a_partition_makes_the_client_see_a_stale_connection_and_reconnect_after_it_heals() -> None:
    async def main(world: Any) -> tuple[list[str], list[bytes]]:
        server = await bus(world)
        events: list[str] = []

        async def disconnected() -> None:
            events.append("disconnected")

        async def reconnected() -> None:
            events.append("reconnected")

        nc = await connect(
            server,
            ping_interval=1,
            max_outstanding_pings=2,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            reconnect_time_wait=0.5,
        )
        sub = await nc.subscribe("t")
        await nc.flush()
        world.net.partition("main", "bus")
        await asyncio.sleep(10)
        stale = list(events)
        world.net.heal()
        await world.until(lambda: nc.is_connected and server.subscriptions >= 1, timeout=60)
        await nc.publish("t", b"healed")
        got = [(await sub.next_msg(timeout=1)).data]
        await nc.close()
        return stale + events[len(stale) : len(stale) + 1], got

    assert run(main) == (["disconnected", "reconnected"], [b"healed"])


def test_the_server_closes_a_connection_that_stops_answering_pings() -> None:
    async def main(world: Any) -> tuple[bytes, float]:
        await bus(world)
        reader, writer = await asyncio.open_connection("bus", 4222)
        await reader.readline()
        writer.write(b'CONNECT {"verbose":false}\r\n')
        started = asyncio.get_running_loop().time()
        out = b""
        while chunk := await reader.read(1000):
            out += chunk
        elapsed = asyncio.get_running_loop().time() - started
        writer.close()
        return out, round(elapsed)

    # Checks every two virtual minutes: the first interval saw CONNECT (activity, no
    # PING), the next two send a PING each, the fourth finds two unanswered.
    assert run(main) == (b"PING\r\nPING\r\n-ERR 'Stale Connection'\r\n", 480)


# --------------------------------------------- a race in nats-py, found


def test_simloom_finds_the_nats_py_race_where_flush_overtakes_a_subscribe() -> None:
    """nats-py queues ``SUB`` for its flusher task but writes flush()'s ``PING``
    straight to the socket, so the ``PONG`` can come back before the server has the
    subscription: a message published right after is lost. (Against a real
    nats-server on loopback it happens about once in forty runs.) The default
    schedule finds it within 200 seeds, and its tape replays it."""

    async def main(world: Any) -> tuple[int, int, int]:
        server = await bus(world)
        subscriber = await connect(server)
        publisher = await connect(server)
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_message(msg: Any) -> None:
            received.put_nowait(msg.data)

        await subscriber.subscribe("events", cb=on_message)
        await subscriber.flush()
        await publisher.publish("events", b"0")
        await publisher.flush()
        try:
            await asyncio.wait_for(received.get(), 2)
        except TimeoutError:
            # The server had the message and, by now, the subscription: the
            # message came first and went to nobody.
            return server.messages_in, server.messages_out, server.subscriptions
        finally:
            await publisher.close()
            await subscriber.close()
        return server.messages_in, server.messages_out, -1

    outcomes = {seed: simloom.run(main, seed=seed) for seed in range(200)}
    lost = [seed for seed, result in outcomes.items() if result.value[2] != -1]
    assert lost, "the race was not found in 200 seeds"
    assert all(outcomes[seed].value == (1, 0, 1) for seed in lost)
    assert len(lost) < 20  # a rare schedule, not the usual one
    first = outcomes[lost[0]]
    assert simloom.replay(main, first.tape, strict=True).value == (1, 0, 1)
