"""The hash seed: simloom knows whether PYTHONHASHSEED is pinned, says so where a
replay in another process depends on it, pins it by re-executing the process, and
gives every process it starts a pinned one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import simloom
from simloom import _hashseed

pytest_plugins = ["pytester"]

REPORT = """
import json, os, sys
import simloom
from simloom import _hashseed
simloom.pin_hashseed({seed})
print(json.dumps([_hashseed.current_hashseed(), os.environ.get("PYTHONHASHSEED"),
                  hash("simloom"), sys.argv[1:]]))
"""


def run_python(
    code: str, *args: str, hashseed: str | None, flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    if hashseed is not None:
        environment["PYTHONHASHSEED"] = hashseed
    return subprocess.run(
        [sys.executable, *flags, "-c", code, *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def seen(code: str, *args: str, hashseed: str | None) -> list[object]:
    proc = run_python(code, *args, hashseed=hashseed)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("variable", "expected"), [("0", 0), ("7", 7), ("random", None), (None, None)]
)
def test_the_hash_seed_is_read_from_the_environment_the_process_started_with(
    variable: str | None, expected: int | None
) -> None:
    code = "from simloom import _hashseed; print(_hashseed.current_hashseed())"
    assert run_python(code, hashseed=variable).stdout.strip() == str(expected)


def test_pin_hashseed_re_executes_an_unpinned_process_with_its_arguments() -> None:
    first = seen(REPORT.format(seed=""), "a", "b c", hashseed=None)
    second = seen(REPORT.format(seed=""), "a", "b c", hashseed="random")
    assert first[:2] == [0, "0"]
    assert first == second  # same hashes in both processes, same arguments
    assert first[3] == ["a", "b c"]


def test_pin_hashseed_keeps_an_already_pinned_seed_or_switches_to_the_one_asked_for() -> None:
    assert seen(REPORT.format(seed=""), hashseed="5")[:2] == [5, "5"]
    assert seen(REPORT.format(seed="9"), hashseed="5")[:2] == [9, "9"]


def test_pin_hashseed_refuses_an_interpreter_that_ignores_the_environment() -> None:
    proc = run_python(REPORT.format(seed=""), hashseed=None, flags=("-E",))
    assert proc.returncode != 0
    assert "ignores PYTHONHASHSEED" in proc.stderr


@pytest.mark.parametrize("seed", [-1, 2**32, True, "0"])
def test_pin_hashseed_validates_the_seed(seed: object) -> None:
    with pytest.raises(simloom.SimloomUsageError, match="hash seed must be an integer"):
        simloom.pin_hashseed(seed)  # type: ignore[arg-type]


def test_processes_simloom_starts_get_a_pinned_seed() -> None:
    environment = _hashseed.pinned_environment({"PATH": "/bin"})
    assert environment == {"PATH": "/bin", "PYTHONHASHSEED": str(_hashseed.current_hashseed() or 0)}
    assert _hashseed.pinned_environment({}, seed=3) == {"PYTHONHASHSEED": "3"}


def test_reports_say_whether_the_seed_is_pinned() -> None:
    pinned = "from simloom import _hashseed; print(_hashseed.describe_hashseed())"
    assert run_python(pinned, hashseed="0").stdout.startswith("PYTHONHASHSEED=0 (pinned")
    unpinned = run_python(pinned, hashseed=None).stdout
    assert unpinned.startswith("random (PYTHONHASHSEED not pinned")
    assert "--simloom-pin-hashseed" in unpinned


FAILING_TEST = """
import asyncio
import os

import simloom


@simloom.test(runs=50)
async def test_names_in_set_order():
    print("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED"))
    order = []

    async def visit(name):
        await asyncio.sleep(0)
        order.append(name)

    await asyncio.gather(*(visit(n) for n in {"alpha", "beta", "gamma", "delta"}))
    assert len(order) == 5, order
"""


def pytest_in(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str, hashseed: str | None
) -> pytest.RunResult:
    """Run pytest in a fresh process whose PYTHONHASHSEED is ``hashseed``."""
    if hashseed is None:
        monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    else:
        monkeypatch.setenv("PYTHONHASHSEED", hashseed)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_the_pytest_header_and_failure_report_say_whether_the_seed_is_pinned(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pytester.path / "test_names.py").write_text(FAILING_TEST)
    unpinned = pytest_in(pytester, monkeypatch, hashseed=None)
    unpinned.assert_outcomes(failed=1)
    text = unpinned.stdout.str()
    assert "simloom: hash seed random (PYTHONHASHSEED not pinned" in text
    assert "  hash seed: random (PYTHONHASHSEED not pinned" in text
    assert all(
        json.loads(path.read_text())["hashseed"] is None
        for path in Path(pytester.path, ".sim", "failures").glob("*.tape.json")
    )
    shutil.rmtree(pytester.path / ".sim")
    pinned = pytest_in(pytester, monkeypatch, hashseed="3")
    assert "simloom: hash seed PYTHONHASHSEED=3 (pinned" in pinned.stdout.str()
    artifact = next(Path(pytester.path, ".sim", "failures").glob("*.tape.json"))
    assert json.loads(artifact.read_text())["hashseed"] == 3


def test_the_pytest_option_re_executes_pytest_with_the_seed_pinned(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pytester.path / "test_names.py").write_text(FAILING_TEST)
    result = pytest_in(pytester, monkeypatch, "--simloom-pin-hashseed", "-s", hashseed=None)
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "PYTHONHASHSEED 0" in text
    assert "simloom: hash seed PYTHONHASHSEED=0 (pinned" in text
    assert text.count("test session starts") == 1


HASH_ORDER_TEST = """
import asyncio

import simloom


@simloom.test(runs=1, scheduler="fifo")
async def test_first_name():
    first = next(iter({{"a", "bb", "ccc", "dddd", "eeeee", "ffffff"}}))
    await asyncio.sleep(len(first))
    assert first != {failing!r}
"""


def first_name_under(hashseed: str) -> str:
    code = 'print(next(iter({"a", "bb", "ccc", "dddd", "eeeee", "ffffff"})))'
    return run_python(code, hashseed=hashseed).stdout.strip()


def test_a_saved_failure_that_depends_on_the_hash_seed_says_so_when_replayed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = first_name_under("1")
    other = next(s for s in map(str, range(2, 50)) if first_name_under(s) != recorded)
    (pytester.path / "test_order.py").write_text(HASH_ORDER_TEST.format(failing=recorded))
    pytest_in(pytester, monkeypatch, hashseed="1").assert_outcomes(failed=1)
    artifact = next(Path(pytester.path, ".sim", "failures").glob("*seed0.tape.json"))
    replayed = pytest_in(pytester, monkeypatch, f"--simloom-tape={artifact}", hashseed=other)
    replayed.assert_outcomes(passed=1)
    summary = replayed.stdout.str()
    assert "the replay is not the recorded universe" in summary
    assert (
        f"recorded with hash seed PYTHONHASHSEED=1, replayed with PYTHONHASHSEED={other}" in summary
    )
