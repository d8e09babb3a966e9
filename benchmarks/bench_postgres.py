"""Postgres: an unmodified ``asyncpg`` client against the stand-in vs a real
PostgreSQL over loopback TCP.

Two exchanges, each ``ROUNDS`` queries on one connection (connect and close
included): ``SELECT $1::int``, and an insert then a select by primary key.
Contenders, in the same run (round-robin, best of N):

* ``simloom``  -- ``simloom.run(exchange)`` with ``world.postgres("db")`` (the
  stand-in on a simulated host, SQL on DuckDB; set-up, run, teardown included);
* ``real``     -- ``asyncio.run(exchange())`` on the stock loop against a real
  PostgreSQL started by this script (initdb in a temporary directory, as
  ``nobody`` when run as root, ``fsync=off``) on a free loopback port.

Goal (issue 14): a query in-sim costs less than one over real loopback, so the
printed ratio ``real / simloom`` (per query) is above 1.

    python benchmarks/bench_postgres.py [--rounds 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import simloom


async def _select(con: asyncpg.Connection, rounds: int) -> None:
    for i in range(rounds):
        if await con.fetchval("SELECT $1::int", i) != i:
            raise AssertionError("wrong reply")


async def _insert_select(con: asyncpg.Connection, rounds: int) -> None:
    await con.execute("DROP TABLE IF EXISTS bench")
    await con.execute("CREATE TABLE bench (id int PRIMARY KEY, v text)")
    for i in range(rounds // 2):
        await con.execute("INSERT INTO bench VALUES ($1, $2)", i, "value")
        if await con.fetchval("SELECT v FROM bench WHERE id = $1", i) != "value":
            raise AssertionError("wrong reply")


EXCHANGES = {"select $1::int": _select, "insert+select by pk": _insert_select}


def simulated(exchange: Any, rounds: int) -> float:
    async def main(world: Any) -> None:
        world.postgres("db")
        await asyncio.sleep(0.001)
        con = await asyncpg.connect(host="db", user="postgres")
        await exchange(con, rounds)
        await con.close()

    started = time.perf_counter()
    simloom.run(main).raise_error()
    return time.perf_counter() - started


def real(exchange: Any, rounds: int, port: int) -> float:
    async def main() -> None:
        con = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres")
        await exchange(con, rounds)
        await con.close()

    started = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started


def start_server() -> tuple[subprocess.Popen[bytes], int, Path]:
    candidates = [os.environ.get("SIMLOOM_POSTGRES_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    binaries = next((Path(c) for c in candidates if c and (Path(c) / "initdb").exists()), None)
    if binaries is None:
        sys.exit("bench_postgres: PostgreSQL is not installed (make postgres)")
    directory = Path(tempfile.mkdtemp(prefix="simloom-bench-postgres-"))
    user = None
    if os.geteuid() == 0:
        user = "nobody"
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    data = directory / "data"
    subprocess.run(
        [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"],
        check=True,
        stdout=subprocess.DEVNULL,
        user=user,
        cwd=directory,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    process = subprocess.Popen(
        [
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(directory),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=user,
        cwd=directory,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            time.sleep(0.3)
            return process, port, directory
        except OSError:
            time.sleep(0.05)
    process.kill()
    sys.exit("bench_postgres: postgres did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    process, port, directory = start_server()
    try:
        for label, exchange in EXCHANGES.items():
            best = {"simloom": float("inf"), "real": float("inf")}
            for _ in range(options.repeat):
                best["simloom"] = min(best["simloom"], simulated(exchange, options.rounds))
                best["real"] = min(best["real"], real(exchange, options.rounds, port))
            per = {name: seconds / options.rounds * 1e6 for name, seconds in best.items()}
            print(f"{label}:")
            for name in ("simloom", "real"):
                print(f"  {name:8s} {per[name]:8.1f} us per query  ({best[name] * 1000:.1f} ms)")
            print(f"  ratio real/simloom: {per['real'] / per['simloom']:.2f}x (goal > 1)")
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
