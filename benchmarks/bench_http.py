"""HTTP: an unmodified aiohttp server and httpx client, simulated vs real loopback TCP.

One exchange: an aiohttp server (``web.AppRunner`` + ``web.TCPSite``) starts, an
``httpx.AsyncClient`` sends it ``REQUESTS`` requests over one keep-alive connection
(alternately ``GET /hello/<i>`` and ``POST /echo`` with a small JSON body, every
response checked), then the client and the server shut down. Contenders, in the same
run (round-robin, best of N, each sample a batch of whole exchanges):

* ``simloom``        -- ``simloom.run(exchange, seed=s)``: the server spawned on the
  simulated host ``api``, the client on ``main``, an unshaped network (set-up, run,
  deterministic teardown, digest).
* ``simloom faults`` -- the same with 20% segment loss and 1-30 ms latency
  (retransmissions and latency cost virtual time, not wall time).
* ``stock``          -- ``asyncio.run(exchange())`` on the stock selector loop, server
  and client in one loop over real loopback TCP (127.0.0.1, an ephemeral port).

The client gets one SSL context made before timing (``verify=``): httpx otherwise
loads the CA bundle for every client (~25 ms), which this exchange never uses.

Goals: the simulated exchange is faster than the real one (the world issue), and at
least 1.5x faster (issue 9).

``--profile`` runs a batch of each under cProfile and splits the time by component
(simloom's Python, its Rust core, aiohttp, httpx, anyio, asyncio, system calls...).

    python benchmarks/bench_http.py [--repeat 5] [--quick] [--profile] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import ssl
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import simloom
from _common import (
    Report,
    fmt_ratio,
    interleaved_best,
    now,
    parse_args,
    print_header,
    print_table,
)
from aiohttp import web
from simloom.world import World

REQUESTS = 50
BATCH = 5  # exchanges per timing sample
QUICK_BATCH = 2
PROFILE_BATCH = 10
API_PORT = 8080
#: Issue 9: the simulated exchange at least this many times faster than loopback TCP.
SPEEDUP_GOAL = 1.5

#: Made once: httpx would load the CA bundle for every client (plain HTTP never uses it).
CLIENT_SSL_CONTEXT = ssl.create_default_context()


# ---------------------------------------------------------------- the exchange


def api_app() -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.match_info['name']}")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"echo": await request.json()})

    app = web.Application()
    app.router.add_get("/hello/{name}", hello)
    app.router.add_post("/echo", echo)
    return app


async def start_server(host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the aiohttp server; return its runner and the port it listens on."""
    runner = web.AppRunner(api_app())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None and server.sockets
    return runner, server.sockets[0].getsockname()[1]


async def requests(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, verify=CLIENT_SSL_CONTEXT) as client:
        for i in range(REQUESTS):
            if i % 2:
                response = await client.post("/echo", json={"i": i, "tags": ["a", "b"]})
                assert response.json() == {"echo": {"i": i, "tags": ["a", "b"]}}
            else:
                response = await client.get(f"/hello/{i}")
                assert response.text == f"hello {i}"


async def simulated_exchange(world: World) -> None:
    listening = asyncio.Event()

    async def serve() -> None:
        runner, _ = await start_server("0.0.0.0", API_PORT)
        listening.set()
        try:
            await asyncio.Future()  # serve until the universe ends
        finally:
            await runner.cleanup()

    world.host("api").spawn(serve)
    await listening.wait()
    await requests(f"http://api:{API_PORT}")


async def simulated_exchange_with_faults(world: World) -> None:
    world.net.set_latency(0.001, 0.030)
    world.net.set_loss(20)
    await simulated_exchange(world)


async def real_exchange() -> None:
    runner, port = await start_server("127.0.0.1", 0)
    try:
        await requests(f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------- measuring


class Simulated:
    """Batches of universes, a fresh seed each (every universe is checked)."""

    def __init__(self, main: Callable[[World], Any]) -> None:
        self.main = main
        self.next_seed = 0

    def batch(self, size: int) -> float:
        t0 = now()
        for _ in range(size):
            simloom.run(self.main, seed=self.next_seed).raise_error()
            self.next_seed += 1
        return now() - t0


def describe_universes(main: Callable[[World], Any], seeds: range) -> str:
    """Virtual time, steps and lost segments per universe (untimed)."""
    results = [simloom.run(main, seed=seed) for seed in seeds]
    lost = sum(
        1
        for result in results
        for event in result.event_log
        if event.kind == "decision" and event.label == "net.loss" and event.value
    )
    count = len(results)
    return (
        f"{sum(r.virtual_time for r in results) / count:.3f} virtual s, "
        f"{sum(r.steps for r in results) / count:.0f} steps, "
        f"{lost / count:.1f} lost segments per exchange (mean of seeds "
        f"{seeds.start}..{seeds.stop - 1})"
    )


def real_batch(size: int) -> float:
    t0 = now()
    for _ in range(size):
        asyncio.run(real_exchange())
    return now() - t0


# -------------------------------------------------------------------- profile


def component(filename: str, function: str) -> str:
    """Which part of the stack a profiled function belongs to."""
    if "simloom._core" in function:
        return "simloom Rust core (LoopCore steps, NetCore)"
    if "/simloom/" in filename:
        return "simloom Python: " + filename.rsplit("/", 1)[-1]
    if "site-packages/" in filename:
        package = filename.split("site-packages/", 1)[1].split("/", 1)[0]
        if package in ("httpx", "httpcore", "h11"):
            return "httpx (httpx, httpcore, h11)"
        if package in ("aiohttp", "multidict", "yarl", "propcache", "aiosignal", "frozenlist"):
            return "aiohttp (and multidict, yarl)"
        return package
    if "importlib" in filename or "posix.stat" in function:
        return "imports (httpcore imports sniffio per request)"
    if "/asyncio/" in filename:
        return "asyncio stdlib (tasks, futures, loop)"
    if "_socket.socket" in function or "epoll" in function or "select" in function:
        return "system calls (socket, epoll)"
    return "other (stdlib, builtins)"


def profile(run: Callable[[], object], label: str) -> Counter[str]:
    profiler = cProfile.Profile()
    profiler.enable()
    run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    shares: Counter[str] = Counter()
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        shares[component(filename, function)] += row[2]  # own time
    print(f"profiled {label}: {sum(shares.values()) * 1e3 / PROFILE_BATCH:.1f} ms/exchange")
    return shares


def print_profile() -> None:
    simulated = Simulated(simulated_exchange)
    simulated.batch(2)  # warm-up: imports, caches
    real_batch(2)
    sim = profile(lambda: simulated.batch(PROFILE_BATCH), "simloom")
    stock = profile(lambda: real_batch(PROFILE_BATCH), "stock")
    print()
    names = sorted(set(sim) | set(stock), key=lambda n: -(sim[n] + stock[n]))
    rows = []
    sim_total, stock_total = sum(sim.values()), sum(stock.values())
    for name in names:
        rows.append(
            [
                name,
                f"{sim[name] * 1e3 / PROFILE_BATCH:.2f}",
                f"{100 * sim[name] / sim_total:.1f}%",
                f"{stock[name] * 1e3 / PROFILE_BATCH:.2f}",
                f"{100 * stock[name] / stock_total:.1f}%",
            ]
        )
    print_table(["own time (cProfile)", "simloom ms", "share", "stock ms", "share"], rows)
    print()


# ------------------------------------------------------------------------ main


def main() -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--profile", action="store_true", help="split the time by component (cProfile)"
        )

    args = parse_args(__doc__.splitlines()[0], extra)
    batch = QUICK_BATCH if args.quick else BATCH
    title = f"bench_http: aiohttp server + httpx client, {REQUESTS} requests per exchange"
    print_header(title, args)
    report = Report("http", title)
    if args.profile:
        print_profile()

    clean = Simulated(simulated_exchange)
    faulty = Simulated(simulated_exchange_with_faults)
    contenders: dict[str, Callable[[], float]] = {
        "simloom": lambda: clean.batch(batch),
        "simloom faults": lambda: faulty.batch(batch),
        "stock": lambda: real_batch(batch),
    }
    best = interleaved_best(contenders, repeat=args.repeat, warmup=args.warmup)
    per_exchange = {name: seconds / batch for name, seconds in best.items()}
    stock = per_exchange["stock"]

    rows = []
    for name, seconds in per_exchange.items():
        speedup = stock / seconds
        rows.append(
            [
                name,
                f"{seconds * 1e3:.2f}",
                f"{seconds * 1e6 / REQUESTS:.0f}",
                fmt_ratio(speedup),
            ]
        )
        report.measure(
            "exchange", name, seconds * 1e3, "ms", f"{fmt_ratio(speedup)} faster than stock"
        )
    print(f"batch: {batch} exchanges per sample, {REQUESTS} requests per exchange")
    print()
    print_table(["runner", "ms/exchange", "us/request", "stock time / time"], rows)
    print()
    for name, main_function in (
        ("simloom", simulated_exchange),
        ("simloom faults", simulated_exchange_with_faults),
    ):
        note = f"{name}: {describe_universes(main_function, range(20))}"
        print(note)
        report.note(note)

    for name in ("simloom", "simloom faults"):
        seconds = per_exchange[name]
        report.goal(
            f"{name}: the simulated exchange is faster than the real one",
            f"{seconds * 1e3:.1f} ms vs {stock * 1e3:.1f} ms ({fmt_ratio(stock / seconds)})",
            seconds < stock,
        )
    for name in ("simloom", "simloom faults"):
        seconds = per_exchange[name]
        report.goal(
            f"{name}: the simulated exchange is >= {SPEEDUP_GOAL}x faster than the real one",
            f"{fmt_ratio(stock / seconds)}",
            stock / seconds >= SPEEDUP_GOAL,
        )
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    main()
