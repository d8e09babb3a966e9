"""Soaks shared through a real Redis server (started here on a free loopback port,
no persistence, stopped after the module): two soak processes split one seed
sequence with no seed lost or repeated, and a failure a soak saves in a
``RedisExampleDatabase`` replays first in a developer's next pytest run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from simloom import _soak
from simloom._soak_redis import SharedSeeds
from simloom.errors import SimloomUsageError

pytest_plugins = ["pytester"]


def redis_server_binary() -> str:
    binary = os.environ.get("SIMLOOM_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make redis` (or set SIMLOOM_REDIS_SERVER)")
    return binary


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("redis")
    port = free_port()
    server = subprocess.Popen(
        [
            redis_server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(500):  # until it answers (or it exited)
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if server.poll() is not None:
                    pytest.fail(f"redis-server exited with status {server.returncode}")
                time.sleep(0.01)
        else:
            pytest.fail("redis-server did not answer")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        server.terminate()
        server.wait()


@pytest.fixture
def fresh(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return redis_url


PROGRAMS = """
import asyncio


async def passing():
    # Long enough (~1 ms) that both processes are up before the seeds run out.
    async def worker(n):
        for _ in range(n):
            await asyncio.sleep(0)
    await asyncio.gather(*(worker(40) for _ in range(6)))
"""


def test_two_soak_processes_share_the_seeds_and_none_runs_twice(fresh: str, tmp_path: Path) -> None:
    (tmp_path / "programs.py").write_text(PROGRAMS)
    command = [
        sys.executable,
        "-m",
        "simloom",
        "soak",
        "programs.py:passing",
        "--universes",
        "1000",
        "--chunk",
        "20",
        "--share",
        fresh,
        "--database",
        "none",
    ]
    processes = [
        subprocess.Popen(
            [*command, "--checkpoint", f"process{index}.json"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(2)
    ]
    outputs = [process.communicate() for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, out + err
    counts: Counter[int] = Counter()
    for index in range(2):
        checkpoint = json.loads((tmp_path / f"process{index}.json").read_text())
        for start, stop in checkpoint["seeds_run"]:
            counts.update(range(start, stop))
    assert sorted(counts) == list(range(1000)) and set(counts.values()) == {1}
    assert all(json.loads((tmp_path / f"process{i}.json").read_text())["universes"] for i in (0, 1))
    # Redis's record agrees: 50 chunks, each run once.
    done = redis.Redis.from_url(fresh).hgetall("simloom:soak:programs.py:passing|default:done")
    assert sorted(int(chunk) for chunk in done) == list(range(50))
    assert "1000 universe(s) in all (seeds 0..999)" in outputs[-1][0]


def test_a_claim_of_a_dead_process_is_handed_out_again(fresh: str) -> None:
    dead = SharedSeeds(fresh, "claims", chunk=10, universes=30, owner="dead", lease=0.0)
    claim = dead.claim(wait=False)
    assert claim is not None and claim.chunk == 0
    # The dead process never finishes chunk 0; its lease (0 s) has run out.
    alive = SharedSeeds(fresh, "claims", chunk=10, universes=30, owner="alive")
    claims = [alive.claim(wait=True) for _ in range(3)]
    assert [(c.chunk, c.attempt) for c in claims if c is not None] == [(0, 2), (1, 1), (2, 1)]
    for c in claims:
        assert c is not None
        assert alive.finish(c.chunk, "alive")
    assert not dead.finish(0, "dead")  # late: recorded once already
    assert alive.claim(wait=True) is None
    assert alive.ledger_intervals() == [(0, 10), (10, 20), (20, 30)]


def test_a_shared_soak_refuses_another_chunk_size(fresh: str) -> None:
    SharedSeeds(fresh, "sizes", chunk=10, universes=None, owner="one")
    with pytest.raises(SimloomUsageError, match="give --chunk 10"):
        SharedSeeds(fresh, "sizes", chunk=20, universes=None, owner="two")


TEST_FILE = """
import asyncio
import simloom


@simloom.test(runs=20, scheduler="fifo")
async def test_first_come_first_served():
    order = []

    async def arrive(name):
        order.append(name)

    await asyncio.gather(arrive("first"), arrive("second"))
    assert order == ["first", "second"], f"served out of order: {order}"
"""

CONFTEST = """
import redis
from hypothesis import settings
from hypothesis.extra.redis import RedisExampleDatabase

settings.register_profile("fleet", database=RedisExampleDatabase(redis.Redis.from_url({url!r})))
settings.load_profile("fleet")
"""


def test_a_failure_saved_in_redis_by_a_soak_replays_first_in_the_next_pytest(
    fresh: str, pytester: pytest.Pytester
) -> None:
    pytester.path.joinpath("conftest.py").write_text(CONFTEST.format(url=fresh))
    pytester.path.joinpath("test_served.py").write_text(textwrap.dedent(TEST_FILE))
    before = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "simloom")
    assert before.ret == 0, before.stdout.str()  # FIFO never serves out of order

    result = _soak.soak(
        _soak.SoakPlan(
            target=f"{pytester.path / 'test_served.py'}::test_first_come_first_served",
            test_id="test_served.py::test_first_come_first_served",
            universes=40,
            scheduler="random",
            checkpoint=pytester.path / "soak.json",
            database=fresh,
        )
    )
    assert result.failures and result.saved >= 1
    assert redis.Redis.from_url(fresh).keys("hypothesis-example:*")

    after = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "simloom")
    text = after.stdout.str()
    assert after.ret == 1, text
    assert "a failure saved in the example database, replayed" in text
    assert "served out of order: ['second', 'first']" in text
