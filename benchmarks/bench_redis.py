"""Redis: an unmodified ``redis.asyncio`` client against the stand-in vs a real
redis-server over loopback TCP.

One exchange: a client connects, runs ``ROUNDS`` SET/GET round trips (each checked)
and closes. Contenders, in the same run (round-robin, best of N):

* ``simloom``  -- ``simloom.run(exchange)`` with ``world.redis("cache")`` (the
  stand-in on a simulated host; set-up, run, teardown and digest included);
* ``real``     -- ``asyncio.run(exchange())`` on the stock loop against a real
  redis-server started by this script on a free loopback port
  (``--save '' --appendonly no``).

Goal (issue 14): a round trip in-sim costs less than one over real loopback, so the
printed ratio ``real / simloom`` (per round trip) is above 1.

    python benchmarks/bench_redis.py [--rounds 500] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

import redis.asyncio as aioredis
import simloom


async def _exchange(r: aioredis.Redis, rounds: int) -> None:
    for i in range(rounds):
        await r.set(f"k{i % 16}", i)
        if await r.get(f"k{i % 16}") != str(i).encode():
            raise AssertionError("wrong reply")
    await r.aclose()


def simulated(rounds: int) -> float:
    async def main(world: Any) -> None:
        world.redis("cache", appendfsync="no")
        await asyncio.sleep(0.001)
        await _exchange(aioredis.Redis(host="cache", port=6379), rounds)

    started = time.perf_counter()
    simloom.run(main).raise_error()
    return time.perf_counter() - started


def real(rounds: int, port: int) -> float:
    started = time.perf_counter()
    asyncio.run(_exchange(aioredis.Redis(host="127.0.0.1", port=port), rounds))
    return time.perf_counter() - started


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    server = os.environ.get("SIMLOOM_REDIS_SERVER") or shutil.which("redis-server")
    if server is None:
        sys.exit("bench_redis: redis-server is not installed (make redis)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tempfile.mkdtemp(),
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit("bench_redis: redis-server did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    process, port = start_server()
    try:
        best = {"simloom": float("inf"), "real": float("inf")}
        for _ in range(options.repeat):
            best["simloom"] = min(best["simloom"], simulated(options.rounds))
            best["real"] = min(best["real"], real(options.rounds, port))
    finally:
        process.terminate()
        process.wait(timeout=10)
    per = {name: seconds / (2 * options.rounds) * 1e6 for name, seconds in best.items()}
    for name in ("simloom", "real"):
        print(f"{name:8s} {per[name]:8.1f} us per round trip  ({best[name] * 1000:.1f} ms)")
    print(f"ratio real/simloom: {per['real'] / per['simloom']:.2f}x (goal > 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
