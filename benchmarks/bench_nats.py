"""NATS: unmodified ``nats-py`` clients against the stand-in vs a real nats-server
over loopback TCP.

Two exchanges, each on two connections (a service or subscriber, and a client):

* ``request``: ``ROUNDS`` request/reply round trips (``nc.request`` to a service
  that answers in its callback), each reply checked;
* ``pubsub``: ``ROUNDS`` messages, each published and awaited by the subscriber's
  callback before the next one: one message from publish to delivery.

Contenders, measured round-robin (best of N after a warm-up):

* ``simloom``  -- ``simloom.run(exchange)`` with ``world.nats("bus")`` (the stand-in
  on a simulated host; set-up, connects, run, teardown and digest included);
* ``real``     -- ``asyncio.run(exchange())`` on the stock loop against a real
  nats-server started by this script on a free loopback port.

Goal (issue 14): a round trip in-sim costs less than one over real loopback, so the
printed ratio ``real / simloom`` (per round trip or message) is above 1.

    python benchmarks/bench_nats.py [--rounds 500] [--repeat 5] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import nats.errors
import simloom
from _common import Report, fmt_ratio, interleaved_best, parse_args, print_header, print_table

ROUNDS = 500
QUICK_ROUNDS = 100


async def request_reply(url: str, rounds: int) -> None:
    service = await nats.connect(url)
    client = await nats.connect(url)

    async def answer(msg: Any) -> None:
        await msg.respond(msg.data)

    await service.subscribe("svc", cb=answer)
    await service.flush()
    # nats-py's flush() can overtake the SUB it follows (tests/test_standin_nats.py
    # finds that race): until the service is there, a request has no responders.
    while True:
        try:
            await client.request("svc", b"ready", timeout=5)
            break
        except nats.errors.NoRespondersError:
            await asyncio.sleep(0.01)
    for i in range(rounds):
        payload = b"%d" % i
        if (await client.request("svc", payload, timeout=5)).data != payload:
            raise AssertionError("wrong reply")
    await client.close()
    await service.close()


async def publish_subscribe(url: str, rounds: int) -> None:
    subscriber = await nats.connect(url)
    publisher = await nats.connect(url)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_message(msg: Any) -> None:
        received.put_nowait(msg.data)

    await subscriber.subscribe("events", cb=on_message)
    await subscriber.flush()
    # nats-py's flush() can overtake the SUB it follows (tests/test_standin_nats.py
    # finds that race): publish a probe until one arrives, then start.
    while True:
        await publisher.publish("events", b"ready")
        try:
            await asyncio.wait_for(received.get(), 0.05)
            break
        except TimeoutError:
            pass
    while not received.empty():
        received.get_nowait()
    for i in range(rounds):
        payload = b"%d" % i
        await publisher.publish("events", payload)
        if await asyncio.wait_for(received.get(), 5) != payload:
            raise AssertionError("wrong message")
    await publisher.close()
    await subscriber.close()


EXCHANGES: dict[str, Callable[[str, int], Awaitable[None]]] = {
    "request": request_reply,
    "pubsub": publish_subscribe,
}


Exchange = Callable[[str, int], Awaitable[None]]


def simulated(exchange: Exchange, rounds: int) -> float:
    async def main(world: Any) -> None:
        server = world.nats("bus")
        await asyncio.sleep(0.001)
        await exchange(server.url, rounds)

    started = time.perf_counter()
    simloom.run(main).raise_error()
    return time.perf_counter() - started


def real(exchange: Exchange, rounds: int, port: int) -> float:
    async def main() -> None:
        await exchange(f"nats://127.0.0.1:{port}", rounds)

    started = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    server = os.environ.get("SIMLOOM_NATS_SERVER") or shutil.which("nats-server")
    if server is None and os.access("/usr/sbin/nats-server", os.X_OK):
        server = "/usr/sbin/nats-server"  # Debian's package, off a non-root PATH
    if server is None:
        sys.exit("bench_nats: nats-server is not installed (make nats)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    process = subprocess.Popen(
        [server, "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit("bench_nats: nats-server did not start")


def main() -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rounds", type=int, help=f"per exchange (default {ROUNDS})")

    args = parse_args(__doc__.splitlines()[0], extra)
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    title = f"bench_nats: nats-py against the stand-in vs nats-server, {rounds} per exchange"
    print_header(title, args)
    report = Report("nats", title)
    process, port = start_server()
    try:
        contenders: dict[str, Callable[[], float]] = {}
        for name, exchange in EXCHANGES.items():
            contenders[f"{name} simloom"] = lambda e=exchange: simulated(e, rounds)
            contenders[f"{name} real"] = lambda e=exchange: real(e, rounds, port)
        best = interleaved_best(contenders, repeat=args.repeat, warmup=args.warmup)
    finally:
        process.terminate()
        process.wait(timeout=10)
    rows = []
    for name in EXCHANGES:
        unit = "round trip" if name == "request" else "message"
        per = {c: best[f"{name} {c}"] / rounds * 1e6 for c in ("simloom", "real")}
        ratio = per["real"] / per["simloom"]
        for contender in ("simloom", "real"):
            rows.append([f"{name} ({unit})", contender, f"{per[contender]:.1f}"])
            report.measure(
                f"{name}: one {unit}",
                contender,
                per[contender],
                "us",
                f"real/simloom {fmt_ratio(ratio)}" if contender == "simloom" else "",
            )
        report.goal(
            f"a NATS {unit} ({name}) costs less in-sim than over real loopback",
            f"{per['simloom']:.1f} vs {per['real']:.1f} us ({fmt_ratio(ratio)})",
            ratio > 1,
        )
    print_table(["exchange", "contender", "us each"], rows)
    report.print_goals()
    report.write_json(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
