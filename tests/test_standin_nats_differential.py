"""The NATS stand-in against a real nats-server, started by these tests on a
loopback port (``make nats`` installs it from the OS packages).

The same raw protocol script runs against both, over plain sockets: fixed scripts
(the corners of the parser, the error texts, the order nats-server picks the
subscription a ``503`` goes to) compare byte for byte, and Hypothesis generates
sequences of operations over two connections whose deliveries, ``+OK``\\ s and
errors must agree. After every operation each connection is synchronised with a
``PING``/``PONG`` round trip, so what each connection received is attributed to the
operation that caused it.

What the real server leaves to chance is compared loosely: the order of the
messages one publish delivers to several subscriptions of one connection (Go map
order) as a set; which member of a queue group gets a message (random there, a
tape choice here) not at all, queue deliveries being compared as a multiset per
operation; and which of a connection's subscriptions to the same pattern a
``503`` goes to (Go map order again) by its pattern.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import simloom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# ----------------------------------------------------------- real servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_server_binary() -> str:
    found = os.environ.get("SIMLOOM_NATS_SERVER") or shutil.which("nats-server")
    if found is None and os.access("/usr/sbin/nats-server", os.X_OK):
        found = "/usr/sbin/nats-server"  # Debian's package, off a non-root PATH
    if found is None:
        pytest.fail(
            "nats-server is not installed: `make nats` (scripts/bootstrap.sh nats) "
            "installs it from the OS packages"
        )
    return found


class RealServers:
    """nats-server processes on loopback ports, one per authentication setup,
    started on first use and stopped with the module."""

    def __init__(self) -> None:
        self.binary = nats_server_binary()
        self.processes: dict[tuple[tuple[str, str], ...], tuple[subprocess.Popen[bytes], int]] = {}

    def port(self, **auth: str) -> int:
        key = tuple(sorted(auth.items()))
        if key not in self.processes:
            port = _free_port()
            arguments = [self.binary, "-a", "127.0.0.1", "-p", str(port)]
            if "user" in auth:
                arguments += ["--user", auth["user"], "--pass", auth["password"]]
            if "token" in auth:
                arguments += ["--auth", auth["token"]]
            process = subprocess.Popen(
                arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        process.kill()
                        pytest.fail(f"nats-server did not start: {arguments}")
                    time.sleep(0.05)
            self.processes[key] = (process, port)
        return self.processes[key][1]

    def stop(self) -> None:
        for process, _ in self.processes.values():
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def real_nats() -> Iterator[RealServers]:
    servers = RealServers()
    try:
        yield servers
    finally:
        servers.stop()


# ---------------------------------------------------------- the driver

READ_TIMEOUT = 2.0


async def read_item(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """One thing the server sent: a control line, or a message with its payload,
    or ("EOF",) when the server closed."""
    try:
        line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
    except ConnectionResetError:
        return ("EOF",)
    except TimeoutError:
        return ("TIMEOUT",)
    if not line:
        return ("EOF",)
    if line.startswith((b"MSG ", b"HMSG ")):
        size = int(line.split()[-1])
        try:
            payload = await asyncio.wait_for(reader.readexactly(size + 2), READ_TIMEOUT)
        except (asyncio.IncompleteReadError, ConnectionResetError, TimeoutError):
            return ("TRUNCATED", line)
        return ("MSG", line.rstrip(b"\r\n"), payload)
    return ("LINE", line)


async def until_pong(reader: asyncio.StreamReader) -> list[tuple[Any, ...]]:
    """Everything the server sends before the PONG of a synchronising PING (or its
    end of file)."""
    items = []
    while True:
        item = await read_item(reader)
        if item == ("LINE", b"PONG\r\n"):
            return items
        items.append(item)
        if item[0] in ("EOF", "TIMEOUT", "TRUNCATED"):
            return items


async def drive(host: str, port: int, script: list[tuple[int, bytes]], connections: int) -> Any:
    """Open ``connections`` raw connections, send each ``(connection, bytes)`` of
    ``script`` with a ``PING`` after it, and return, per step and connection, what
    arrived before that connection's ``PONG``; then the INFO of the first."""
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]
    info = json.loads((await streams[0][0].readline())[5:])
    for reader, _ in streams[1:]:
        await reader.readline()
    open_ = [True] * connections
    steps = []
    for target, data in script:
        received: list[list[tuple[Any, ...]]] = [[] for _ in range(connections)]
        order = [target] + [n for n in range(connections) if n != target]
        for index in order:
            if not open_[index]:
                continue
            reader, writer = streams[index]
            writer.write((data if index == target else b"") + b"PING\r\n")
            received[index] = await until_pong(reader)
            if received[index] and received[index][-1][0] in ("EOF", "TIMEOUT", "TRUNCATED"):
                open_[index] = False
        steps.append(received)
    for _, writer in streams:
        writer.close()
    return steps, info


def run_real(real_nats: RealServers, script: list[tuple[int, bytes]], **auth: str) -> Any:
    port = real_nats.port(**auth)
    return asyncio.run(drive("127.0.0.1", port, script, connections=2))


def run_standin(script: list[tuple[int, bytes]], seed: int = 0, **auth: str) -> Any:
    async def main(world: Any) -> Any:
        world.nats("bus", **auth)
        await asyncio.sleep(0.001)
        return await drive("bus", 4222, script, connections=2)

    result = simloom.run(main, seed=seed)
    result.raise_error()
    return result.value


# ------------------------------------------------------- fixed scripts

QUIET = b'CONNECT {"verbose":false}\r\n'
HEADERS = b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'

SCRIPTS: dict[str, list[tuple[int, bytes]]] = {
    "verbose by default": [(0, b"CONNECT {}\r\n"), (0, b"SUB a 1\r\nPUB a 2\r\nhi\r\n")],
    "lower-case operations": [
        (0, QUIET + b"sub a 1\r\npub a 1\r\nx\r\nunsub 1\r\npub a 1\r\ny\r\n")
    ],
    "text after PING is ignored": [(0, QUIET + b"PINGX\r\nPONGY\r\n+OKAY\r\n")],
    "an empty line": [(0, QUIET + b"\r\n")],
    "a leading space": [(0, QUIET + b" PUB a 0\r\n\r\n")],
    "PUB without a space": [(0, QUIET + b"PUB\r\n")],
    "PUB with four arguments": [(0, QUIET + b"PUB a b c d\r\n")],
    "PUB with a bad size": [(0, QUIET + b"PUB a x\r\n")],
    "PUB with ten digits": [(0, QUIET + b"SUB a 1\r\nPUB a 0000000001\r\nx\r\n")],
    "the size is echoed": [(0, QUIET + b"SUB a 1\r\nPUB a 000000001\r\nx\r\n")],
    "a payload without its CRLF": [(0, QUIET + b"PUB a 1\r\nxy\r\n")],
    "a payload ending in LF alone": [(0, QUIET + b"PUB a 1\r\nx\n")],
    "a control line ending in LF alone": [(0, QUIET + b"SUB a 1\nPUB a 1\nx\r\n")],
    "the maximum payload": [(0, QUIET + b"PUB a 1048577\r\n")],
    "the maximum control line": [(0, QUIET + b"SUB " + b"a" * 4097 + b" 1\r\n")],
    "just under the maximum control line": [(0, QUIET + b"SUB " + b"a" * 4094 + b" 1\r\n")],
    "invalid subjects": [(0, QUIET + b"SUB a..b 1\r\nSUB a.>.b 2\r\nSUB >x 3\r\nSUB a* 4\r\n")],
    "pedantic publish subjects": [
        (0, b'CONNECT {"verbose":false}\r\nSUB a.* 1\r\nPUB a.* 1\r\nx\r\nPUB a..b 1\r\ny\r\n')
    ],
    "not pedantic": [
        (0, b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB a.* 1\r\nPUB a.* 1\r\nx\r\n')
    ],
    "empty tokens reach nobody": [(0, QUIET + b"SUB > 1\r\nPUB a..b 1\r\nx\r\nPUB .a 1\r\nx\r\n")],
    "SUB argument counts": [(0, QUIET + b"SUB a 1 x\r\nSUB a\r\n")],
    "UNSUB argument counts": [(0, QUIET + b"UNSUB 1 2 3\r\n")],
    "UNSUB with a bad maximum": [(0, QUIET + b"SUB a 1\r\nUNSUB 1 x\r\nPUB a 1\r\nx\r\n")],
    "UNSUB with a maximum already reached": [
        (0, QUIET + b"SUB a 1\r\nPUB a 1\r\nx\r\nUNSUB 1 1\r\nPUB a 1\r\ny\r\n")
    ],
    "a repeated sid": [(0, QUIET + b"SUB a 1\r\nSUB b 1\r\nPUB b 1\r\nx\r\nPUB a 1\r\ny\r\n")],
    "clients may send INFO and +OK": [(0, QUIET + b"INFO {}\r\n+OK\r\n")],
    "a bad INFO": [(0, QUIET + b"INFO x\r\n")],
    "an empty INFO": [(0, QUIET + b"INFO\r\n")],
    "INFO without a space": [(0, QUIET + b"INFO{}\r\n")],
    "INFOX": [(0, QUIET + b"INFOX {}\r\n")],
    "a client -ERR": [(0, QUIET + b"-ERR 'x'\r\n")],
    "-ERR without a space": [(0, QUIET + b"-ERR\r\n")],
    "operations cut short": [(0, QUIET + b"INF\r\n")],
    "+O": [(0, QUIET + b"+O\r\n")],
    "CONNEC": [(0, QUIET + b"CONNEC\r\n")],
    "MSG from a client": [(0, QUIET + b"MSG a 1 1\r\nx\r\n")],
    "CONNECT without a space": [(0, b'CONNECT{"verbose":false}\r\n')],
    "CONNECT with bad JSON": [(0, b"CONNECT {\r\n")],
    "CONNECT with a wrong type": [(0, b'CONNECT {"verbose":"yes"}\r\n')],
    "CONNECT with a string for a number": [(0, b'CONNECT {"protocol":"1"}\r\n')],
    "CONNECT with a bad protocol": [(0, b'CONNECT {"protocol":2}\r\n')],
    "no responders without headers": [(0, b'CONNECT {"no_responders":true}\r\n')],
    "HPUB without headers": [(0, QUIET + b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n")],
    "HPUB": [(0, HEADERS + b"SUB a 1\r\nHPUB a r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n")],
    "HPUB with an empty header block": [(0, HEADERS + b"SUB a 1\r\nHPUB a 0 0\r\n\r\n")],
    "HPUB with headers larger than the total": [(0, HEADERS + b"HPUB a 12 10\r\n")],
    "headers stripped for a client without them": [
        (1, QUIET + b"SUB h 1\r\n"),
        (0, HEADERS + b"HPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
    ],
    "no echo": [(0, b'CONNECT {"verbose":false,"echo":false}\r\nSUB a 1\r\nPUB a 1\r\nx\r\n')],
    "no echo in a queue group": [
        (1, QUIET + b"SUB a q 9\r\n"),
        (0, b'CONNECT {"verbose":false,"echo":false}\r\nSUB a q 1\r\n'),
        (0, b"PUB a 1\r\nx\r\nPUB a 1\r\ny\r\nPUB a 1\r\nz\r\n"),
    ],
    "no responders": [(0, HEADERS + b"SUB r.> 5\r\nPUB q r.x 2\r\nhi\r\n")],
    "no responders, the first in sublist order": [
        (0, HEADERS + b"SUB r.x 6\r\nSUB r.* 5\r\nSUB r.> 4\r\nPUB q r.x 0\r\n\r\n"),
        (0, b"UNSUB 4\r\nPUB q r.x 0\r\n\r\n"),
        (0, b"UNSUB 6\r\nPUB q r.x 0\r\n\r\n"),
    ],
    "no responders, deeper": [
        (0, HEADERS + b"SUB *.b.* 1\r\nSUB a.*.c 2\r\nSUB *.*.c 3\r\nPUB q a.b.c 0\r\n\r\n"),
        (0, b"UNSUB 3\r\nPUB q a.b.c 0\r\n\r\n"),
    ],
    "no responders skips queue subscriptions": [
        (0, HEADERS + b"SUB r q 1\r\nSUB r 2\r\nPUB q r 0\r\n\r\n")
    ],
    "no responders after the last of a maximum": [
        (0, HEADERS + b"SUB r 2\r\nSUB a 1\r\nUNSUB 1 1\r\nPUB a r 1\r\nx\r\nPUB a r 1\r\ny\r\n")
    ],
    "no responders to a requester with echo off": [
        (0, b'CONNECT {"verbose":false,"echo":false,"headers":true,"no_responders":true}\r\n'),
        (0, b"SUB a 1\r\nSUB r 2\r\nPUB a r 1\r\nx\r\n"),
    ],
    "a second CONNECT turns headers off": [
        (0, HEADERS + b"SUB a 1\r\n"),
        (0, QUIET + b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
    ],
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_script_gets_the_same_bytes_from_the_standin_and_nats_server(
    real_nats: RealServers, name: str
) -> None:
    script = SCRIPTS[name]
    assert run_standin(script)[0] == run_real(real_nats, script)[0]


AUTH_SCRIPTS = {
    "good credentials": [(0, b'CONNECT {"verbose":false,"user":"u","pass":"p"}\r\nSUB a 1\r\n')],
    "a wrong password": [(0, b'CONNECT {"verbose":false,"user":"u","pass":"x"}\r\n')],
    "no credentials": [(0, b'CONNECT {"verbose":false}\r\n')],
    "an operation before CONNECT": [(0, b"SUB a 1\r\n")],
    "PING before CONNECT": [(0, b"")],
}


@pytest.mark.parametrize("name", sorted(AUTH_SCRIPTS))
def test_authentication_gets_the_same_answers(real_nats: RealServers, name: str) -> None:
    script = AUTH_SCRIPTS[name]
    auth = {"user": "u", "password": "p"}
    assert run_standin(script, **auth)[0] == run_real(real_nats, script, **auth)[0]


def test_a_token_is_checked_like_nats_server_checks_it(real_nats: RealServers) -> None:
    for connect in (b'{"auth_token":"t0k"}', b'{"auth_token":"no"}', b'{"user":"t0k"}'):
        script = [(0, b"CONNECT " + connect + b"\r\n")]
        assert run_standin(script, token="t0k")[0] == run_real(real_nats, script, token="t0k")[0]


def test_info_announces_what_nats_server_announces(real_nats: RealServers) -> None:
    script = [(0, b"CONNECT {}\r\n")]
    for auth in ({}, {"token": "t0k"}):
        standin = run_standin(script, **auth)[1]
        real = run_real(real_nats, script, **auth)[1]
        # Which server, where, and built with what differ; the rest is the same.
        assert set(standin) == set(real)
        for key in ("server_id", "server_name", "go", "host", "port", "client_id", "client_ip"):
            standin.pop(key)
            real.pop(key)
        assert standin == real


# ------------------------------------------------- generated operations

# Few subjects, so that subscriptions and publications meet often.
PUBLISH_SUBJECTS = st.sampled_from(["a.b", "a", "a.b", "a.b.c", "r.1", "a.*", "a..b"])
PATTERNS = st.sampled_from(["a.b", "a.*", ">", "a", "a.>", "*.b", "*", "r.*", "a..b"])
REPLIES = st.none() | st.sampled_from(["r.1", "r.2"])
PAYLOADS = st.sampled_from([b"", b"x", b"hello", b"a b", b"line\r\nbreak"])
HEADER_BLOCKS = st.sampled_from([b"NATS/1.0\r\n\r\n", b"NATS/1.0\r\nK: v\r\n\r\n"])
PLAIN_SIDS = st.sampled_from(["1", "2", "3"])
QUEUES = st.sampled_from(["g1", "g2"])
CONNECTIONS = st.integers(0, 1)
BAD_LINES = st.sampled_from(
    [b"FOO\r\n", b"PUB a\r\n", b"SUB\r\n", b"PUB a 2000000\r\n", b"UNSUB 1 2 3\r\n", b"\r\n"]
)


@st.composite
def connects(draw: Any) -> bytes:
    options = {
        "verbose": draw(st.booleans()),
        "pedantic": draw(st.booleans()),
        "echo": draw(st.booleans()),
        # Mostly with headers: an HPUB without them ends the connection.
        "headers": draw(st.integers(0, 4)) > 0,
    }
    options["no_responders"] = options["headers"] and draw(st.booleans())
    return b"CONNECT " + json.dumps(options).encode() + b"\r\n"


@st.composite
def subs(draw: Any) -> bytes:
    pattern = draw(PATTERNS)
    if draw(st.booleans()):
        return f"SUB {pattern} {draw(PLAIN_SIDS)}\r\n".encode()
    queue = draw(QUEUES)
    # A queue subscription's sid starts with its group, so that the comparison
    # can tell its deliveries (whose member is chance) from the others.
    return f"SUB {pattern} {queue} {queue}s{draw(st.integers(0, 2))}\r\n".encode()


@st.composite
def unsubs(draw: Any) -> bytes:
    if draw(st.booleans()):
        # A maximum only on plain subscriptions: which queue member reaches its
        # maximum first would be chance, and would change what follows.
        return f"UNSUB {draw(PLAIN_SIDS)} {draw(st.integers(0, 3))}\r\n".encode()
    sid = draw(PLAIN_SIDS | QUEUES.map(lambda q: q + "s0"))
    return f"UNSUB {sid}\r\n".encode()


@st.composite
def pubs(draw: Any) -> bytes:
    subject, reply, payload = draw(PUBLISH_SUBJECTS), draw(REPLIES), draw(PAYLOADS)
    head = subject.encode() + (b" " + reply.encode() if reply else b"")
    if draw(st.booleans()):
        return b"PUB %s %d\r\n%s\r\n" % (head, len(payload), payload)
    block = draw(HEADER_BLOCKS)
    return b"HPUB %s %d %d\r\n%s%s\r\n" % (
        head,
        len(block),
        len(block) + len(payload),
        block,
        payload,
    )


# Weighted by repetition: mostly subscriptions and publications; a line that ends
# the connection is rare, so that most scripts have something left to compare.
KINDS = {"sub": subs(), "pub": pubs(), "unsub": unsubs(), "connect": connects(), "bad": BAD_LINES}
OPERATIONS = st.tuples(
    CONNECTIONS,
    st.sampled_from(["pub"] * 8 + ["sub"] * 6 + ["unsub"] * 2 + ["connect"] * 2 + ["bad"]).flatmap(
        KINDS.__getitem__
    ),
)
START = b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'
SCRIPTS_GENERATED = st.lists(OPERATIONS, min_size=1, max_size=16).map(
    lambda ops: [(0, START), (1, START), *ops]
)


def normalised(steps: list[list[list[tuple[Any, ...]]]], script: list[tuple[int, bytes]]) -> Any:
    """Per step: per connection, what arrived with each run of messages sorted and
    queue-group deliveries taken out; and those deliveries, as one sorted list.

    A ``503`` names its subscription by subject pattern, not sid: among several
    subscriptions of one connection to the same pattern, which one nats-server
    lists first is Go map order (the patterns are followed through the script's
    SUBs and UNSUBs, the same way for both servers)."""
    patterns: list[dict[bytes, bytes]] = [{} for _ in steps[0]] if steps else []
    out = []
    for (target, data), received in zip(script, steps, strict=True):
        words = data.split()
        if data.startswith(b"SUB ") and words[-1] not in patterns[target]:
            if b"-ERR 'Invalid Subject'\r\n" not in [
                i[-1] for i in received[target] if i[0] == "LINE"
            ]:
                patterns[target][words[-1]] = words[1]
        elif data.startswith(b"UNSUB ") and len(words) == 2:
            patterns[target].pop(words[1], None)
        queue_deliveries = []
        per_connection = []
        for connection, items in enumerate(received):
            kept: list[Any] = []
            run: list[Any] = []
            for item in items:
                if item[0] == "MSG":
                    words = item[1].split()
                    sid = words[2]
                    if sid.startswith(b"g"):
                        # Which member: chance (and with it whether the message
                        # comes with its headers, when the members' connections
                        # differ). Which group, subject, reply and payload: not.
                        body = item[2][:-2]
                        if words[0] == b"HMSG":
                            body = body[int(words[-2]) :]
                            words = words[:-1]
                        queue_deliveries.append((sid[:2], *words[1:2], *words[3:-1], body))
                        continue
                    if item[2].startswith(b"NATS/1.0 503"):
                        words[2] = patterns[connection].get(sid, sid)
                        item = ("503", b" ".join(words), item[2])
                    run.append(item)
                    continue
                kept += sorted(run)
                run = []
                kept.append(item)
            kept += sorted(run)
            per_connection.append(kept)
        out.append((per_connection, sorted(queue_deliveries)))
    return out


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=SCRIPTS_GENERATED, seed=st.integers(0, 2**16))
def test_generated_operations_get_the_same_answers_from_the_standin_and_nats_server(
    real_nats: RealServers, script: list[tuple[int, bytes]], seed: int
) -> None:
    expected = normalised(run_real(real_nats, script)[0], script)
    assert normalised(run_standin(script, seed=seed)[0], script) == expected
