"""``@simloom.test`` under pytest-xdist (``-n 2``): each test explores its own
universes in a worker process, the failure report is the serial run's, and the
controller's simloom summary names every test with its universes (they come back
on the test reports)."""

from __future__ import annotations

import re
import shutil
import textwrap

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import asyncio
import simloom


@simloom.test(runs=30)
async def test_passes():
    await asyncio.sleep(0)


@simloom.test(runs=40)
async def test_reaches_its_label():
    simloom.sometimes("reached", 100)
    await asyncio.sleep(0)


@simloom.test(runs=25, scheduler="random")
async def test_served_out_of_order():
    order = []

    async def arrive(name):
        order.append(name)

    await asyncio.gather(arrive("first"), arrive("second"))
    assert order == ["first", "second"], f"served out of order: {order}"


@simloom.test(runs=35, scheduler="fifo")
async def test_fifo_passes():
    await asyncio.gather(asyncio.sleep(0), asyncio.sleep(0.1))
"""


def summary(text: str) -> dict[str, str]:
    """Test name -> its line in the simloom summary."""
    section = text.split("= simloom =", 1)[1]
    return {
        match.group(1): match.group(2)
        for match in re.finditer(r"test_many\.py::(\w+): (.*)", section)
    }


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "simloom", *args)


def test_simloom_tests_under_xdist_report_what_a_serial_run_does(
    pytester: pytest.Pytester,
) -> None:
    pytester.path.joinpath("test_many.py").write_text(textwrap.dedent(TESTS))
    serial = run(pytester, "--simloom-runs=20")
    # A fresh database for the parallel run, so both find the failure by exploring.
    shutil.rmtree(pytester.path / ".hypothesis", ignore_errors=True)
    parallel = run(pytester, "-n", "2", "-v", "--simloom-runs=20")
    text = parallel.stdout.str()
    assert "INTERNALERROR" not in text and "Traceback" not in parallel.stderr.str()
    parallel.assert_outcomes(passed=3, failed=1)
    serial.assert_outcomes(passed=3, failed=1)
    # Both worker processes ran tests.
    assert "[gw0]" in text and "[gw1]" in text
    lines = summary(text)
    assert lines == summary(serial.stdout.str())
    assert lines["test_passes"] == "20 universes, passed"
    assert lines["test_reaches_its_label"] == "20 universes, passed; coverage: reached=20"
    assert lines["test_fifo_passes"] == "20 universes, passed"
    assert lines["test_served_out_of_order"].endswith("universes, failed")
    assert "simloom found a failing universe in test_served_out_of_order" in text
    assert "served out of order: ['second', 'first']" in text


def test_each_test_counts_its_own_universes_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("test_many.py").write_text(textwrap.dedent(TESTS))
    result = run(pytester, "-n", "2", "-k", "not out_of_order")
    result.assert_outcomes(passed=3)
    lines = summary(result.stdout.str())
    assert lines == {
        "test_passes": "30 universes, passed",
        "test_reaches_its_label": "40 universes, passed; coverage: reached=40",
        "test_fifo_passes": "35 universes, passed",
    }
