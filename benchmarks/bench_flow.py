"""Flow control: 1 GB through one simulated connection with ``drain()``, vs real loopback.

One push: a server reads everything a client writes over one connection; the client
writes ``TOTAL`` bytes in 64 KiB writes, awaiting ``writer.drain()`` after each, then
closes. Contenders, in the same run, each push in a fresh child process (so that each
one's peak resident memory is its own):

* ``simloom`` -- ``simloom.run(push)``: server on the simulated host ``sink``, client
  on ``main``, an unshaped network; the connection's window (256 KiB), the writer's
  64 KiB high-water mark and the reader's StreamReader limit bound what is in memory.
* ``stock``   -- ``asyncio.run(push())`` on the stock selector loop over a real
  loopback TCP socket pair (127.0.0.1, an ephemeral port).

Figures: throughput (MB/s of wall time; best of up to 3 children) and peak RSS above
the child's baseline (its peak after importing everything and a 1 MB warm-up push;
the worst child).

Goal (from issue 9): memory is bounded by the buffers, not by the traffic: the
simulated 1 GB push peaks at most 64 MB above baseline.

    python benchmarks/bench_flow.py [--quick] [--json out.json]
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from typing import Any

import simloom
from _common import Report, parse_args, print_header, print_table
from simloom.world import World

TOTAL = 1 << 30
QUICK_TOTAL = 1 << 27
CHUNK = 64 * 1024
PORT = 7000
GOAL_MB = 64


async def serve_and_push(host: str, total: int, spawn: Any = None) -> int:
    """Start the reading server (through ``spawn`` on a simulated host, or here), push
    ``total`` bytes to it with ``drain()``, and return how many bytes it read."""
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    listening = asyncio.Event()
    ports: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count = 0
        while data := await reader.read(1 << 20):
            count += len(data)
        done.set_result(count)
        writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, None if spawn else "127.0.0.1", PORT)
        ports.append(server.sockets[0].getsockname()[1])
        listening.set()
        await asyncio.Future()

    server_task = spawn(serve) if spawn else asyncio.ensure_future(serve())
    await listening.wait()
    _, writer = await asyncio.open_connection(host, ports[0])
    chunk = b"\xab" * CHUNK
    for _ in range(total // CHUNK):
        writer.write(chunk)
        await writer.drain()
    writer.close()
    count = await done
    if not spawn:
        server_task.cancel()
    return count


def simulated(total: int) -> int:
    async def push(world: World) -> int:
        return await serve_and_push("sink", total, world.host("sink").spawn)

    result = simloom.run(push)
    result.raise_error()
    return int(result.value)


def stock(total: int) -> int:
    return asyncio.run(serve_and_push("127.0.0.1", total))


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def child(contender: str, total: int) -> None:
    """Run one push in this process and print its figures as JSON."""
    run = simulated if contender == "simloom" else stock
    run(1 << 20)  # warm-up: imports, first connection
    baseline = peak_rss_bytes()
    start = time.perf_counter()
    count = run(total)
    seconds = time.perf_counter() - start
    assert count == total, f"{contender}: read {count} of {total} bytes"
    print(json.dumps({"seconds": seconds, "rss_above_baseline": peak_rss_bytes() - baseline}))


def measure(contender: str, total: int, repeat: int) -> dict[str, float]:
    """Best time and worst peak over ``repeat`` fresh children."""
    runs = []
    for _ in range(repeat):
        output = subprocess.run(
            [sys.executable, __file__, "--child", contender, str(total)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        runs.append(json.loads(output.strip().splitlines()[-1]))
    return {
        "seconds": min(run["seconds"] for run in runs),
        "rss_above_baseline": max(run["rss_above_baseline"] for run in runs),
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    total = QUICK_TOTAL if args.quick else TOTAL
    args.repeat = min(args.repeat, 3)  # a push is long enough; keep the run short
    args.warmup = 1  # each child's 1 MB push
    title = f"bench_flow: {total >> 20} MB through one connection, {CHUNK >> 10} KiB writes"
    print_header(title, args)
    report = Report("flow", title)
    figures = {name: measure(name, total, args.repeat) for name in ("simloom", "stock")}
    rows = []
    for name, seen in figures.items():
        rate = total / seen["seconds"] / 1e6
        rss = seen["rss_above_baseline"] / 1e6
        rows.append([name, f"{seen['seconds']:.2f}", f"{rate:,.0f}", f"{rss:.1f}"])
        report.measure("push", name, rate, "MB/s")
        report.measure("peak RSS above baseline", name, rss, "MB")
    print_table(["runner", "seconds", "MB/s", "peak RSS above baseline (MB)"], rows)
    print()
    ratio = figures["stock"]["seconds"] / figures["simloom"]["seconds"]
    report.note(f"simloom throughput is {ratio:.2f}x stock loopback's")
    print(f"simloom throughput is {ratio:.2f}x stock loopback's")
    rss_mb = figures["simloom"]["rss_above_baseline"] / 1e6
    report.goal(
        f"simloom: peak RSS above baseline <= {GOAL_MB} MB for the whole push",
        f"{rss_mb:.1f} MB",
        rss_mb <= GOAL_MB,
    )
    report.print_goals()
    report.write_json(args.json)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
