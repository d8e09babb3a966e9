"""``simloom soak --cluster``: a Dask distributed cluster (a ``LocalCluster`` of two
worker processes started here) runs the chunks; every seed in 0..N-1 is in the
final ledger exactly once, also when a worker process dies in the middle of a chunk."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dask
import pytest
from distributed import LocalCluster
from simloom import _soak
from simloom.errors import SimloomUsageError

PROGRAMS = """
import asyncio
import os

import simloom


async def passing():
    async def worker(n):
        for _ in range(n):
            await asyncio.sleep(0)
    await asyncio.gather(worker(2), worker(3), worker(1))


# Its marker is on the real disk, shared by the workers (files=False).
@simloom.test(files=False)
async def kills_its_worker_once():
    # The first universe run while the marker is missing kills its worker process.
    marker = os.environ["SOAK_KILL_MARKER"]
    if not os.path.exists(marker):
        with open(marker, "w") as handle:
            handle.write("killed")
        os._exit(7)
    await passing()
"""


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    (tmp_path / "programs.py").write_text(PROGRAMS)
    # The worker processes inherit the marker's name.
    monkeypatch.setenv("SOAK_KILL_MARKER", str(tmp_path / "killed"))
    # Dask would retry a task whose worker died by itself; with no retries the
    # task fails (KilledWorker) and the soak must hand the chunk out again.
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
        ) as local,
    ):
        yield local


def counts(result: _soak.SoakResult) -> Counter[int]:
    seen: Counter[int] = Counter()
    for chunk in result.chunks:
        seen.update(range(chunk.start, chunk.stop))
    return seen


def soak_on(cluster: LocalCluster, tmp_path: Path, name: str, universes: int) -> _soak.SoakResult:
    return _soak.soak(
        _soak.SoakPlan(
            # An @simloom.test program is named FILE.py::TEST (its own options).
            target=f"{tmp_path / 'programs.py'}{'::' if name == 'kills_its_worker_once' else ':'}{name}",
            test_id=f"programs.py:{name}",
            universes=universes,
            chunk=20,
            cluster=cluster.scheduler_address,
            checkpoint=tmp_path / "soak.json",
        )
    )


def test_a_dask_cluster_runs_every_seed_exactly_once(cluster: LocalCluster, tmp_path: Path) -> None:
    result = soak_on(cluster, tmp_path, "passing", 400)
    seen = counts(result)
    assert sorted(seen) == list(range(400)) and set(seen.values()) == {1}
    assert result.ledger.intervals() == [(0, 400)]
    assert len({chunk.worker for chunk in result.chunks}) == 2  # both workers ran chunks


def test_a_chunk_whose_dask_worker_died_is_run_again_and_no_seed_twice(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    result = soak_on(cluster, tmp_path, "kills_its_worker_once", 300)
    assert (tmp_path / "killed").read_text() == "killed"  # a worker did die
    assert result.retried >= 1
    assert any(chunk.attempt == 2 for chunk in result.chunks)
    seen = counts(result)
    assert sorted(seen) == list(range(300)) and set(seen.values()) == {1}


def test_soak_command_on_a_cluster(
    cluster: LocalCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from simloom import cli

    monkeypatch.chdir(tmp_path)
    status = cli.main(
        [
            "soak",
            "programs.py:passing",
            "--universes",
            "100",
            "--cluster",
            cluster.scheduler_address,
        ]
    )
    out = capsys.readouterr().out
    assert status == cli.OK, out
    assert f"100 universe(s) (seeds 0..99) on the cluster at {cluster.scheduler_address}" in out
    # Only the mix's PCT universes without eager starts count (1 seed in 12).
    counted = re.search(r"PCT guarantee after (\d+) passing PCT universe\(s\)", out)
    assert counted is not None, out
    assert 1 <= int(counted.group(1)) <= 9


def test_a_target_the_cluster_cannot_load_is_named(cluster: LocalCluster, tmp_path: Path) -> None:
    # The coordinator loads it; the workers' copy is gone (another machine's disk).
    (tmp_path / "gone.py").write_text(PROGRAMS)
    plan = _soak.SoakPlan(
        target=f"{tmp_path / 'gone.py'}:passing",
        test_id="gone.py:passing",
        universes=40,
        cluster=cluster.scheduler_address,
        checkpoint=tmp_path / "soak.json",
    )
    original = _soak.load_exploration
    exploration = original(plan.target, plan.test_id, scheduler=None, cancellations=False)
    (tmp_path / "gone.py").unlink()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_soak, "load_exploration", lambda *args, **kwargs: exploration)
        with pytest.raises(SimloomUsageError, match=r"on the cluster's worker: .*no such file"):
            _soak.soak(plan)
