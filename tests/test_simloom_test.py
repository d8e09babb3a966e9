"""``@simloom.test`` and the pytest plugin, end to end.

Each test writes a small test module into a ``pytester`` directory and runs pytest
on it in a subprocess (the plugin keeps module-level state, so every session gets a
fresh interpreter), then reads what a user would read: the failure report, the
terminal summary, the artifacts in ``.sim/failures/``.

The racy program is the check-then-act race of ``examples/bank_race.py``: two
withdrawals of 70 from an account holding 100. It passes under FIFO (the stock
loop's order) and fails when one withdrawal checks the balance before the other
one has debited it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import simloom
from simloom import SimloomUsageError

pytest_plugins = ["pytester"]

BANK = """
import asyncio

import simloom


class Account:
    def __init__(self, balance):
        self.balance = balance

    async def withdraw(self, amount):
        if self.balance < amount:  # check ...
            return False
        await self.log(f"withdraw {amount}")  # ... a scheduling point ...
        self.balance -= amount  # ... act
        return True

    async def log(self, line):
        await asyncio.sleep(0)


async def alice_and_bob_withdraw():
    account = Account(100)

    async def alice():
        await account.withdraw(70)

    async def bob():
        await asyncio.sleep(0)  # signs in first: two scheduling points
        await asyncio.sleep(0)
        await account.withdraw(70)

    await asyncio.gather(alice(), bob())
    return account


@simloom.test
async def test_never_overdrawn():
    account = await alice_and_bob_withdraw()
    assert account.balance >= 0, f"overdrawn: balance is {account.balance}"
"""

NODE = "test_bank.py::test_never_overdrawn"
ERROR = "AssertionError: overdrawn: balance is -40"
INTERNAL_FRAMES = (
    "simloom/_api.py",
    "simloom/loop.py",
    "simloom/testing.py",
    "simloom/_explore.py",
    "simloom/_shrink.py",
)


# ------------------------------------------------------------------ helpers


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def write(pytester: pytest.Pytester, name: str, source: str) -> Path:
    path = pytester.path / name
    path.write_text(textwrap.dedent(source))
    return path


def bank(pytester: pytest.Pytester) -> None:
    write(pytester, "test_bank.py", BANK)


def out(result: pytest.RunResult) -> str:
    return result.stdout.str()


def reported_seed(text: str) -> int:
    match = re.search(r"seed: (\d+) ", text)
    assert match, text
    return int(match.group(1))


def minimal_schedule(text: str) -> list[str]:
    """The decision lines of the report's minimal schedule."""
    return re.findall(r"decision #\d+: \S+ = \d+ \(of \d+\)", text)


def replay_command_tape(text: str) -> str:
    match = re.search(r"replay it: pytest \S+ --simloom-tape=(\S+)", text)
    assert match, text
    return match.group(1)


def summary_line(text: str, node: str) -> str:
    section = text.split("simloom ====", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith(node + ":")]
    assert len(lines) == 1, section
    return lines[0]


def universes_in_summary(text: str, node: str) -> int:
    match = re.search(r": (\d+) universes", summary_line(text, node))
    assert match
    return int(match.group(1))


@dataclass
class Session:
    directory: Path
    text: str
    ret: int


def run_session(directory: Path, *args: str) -> Session:
    """Run pytest in a subprocess in ``directory`` (for module-scoped fixtures,
    where ``pytester`` is not available)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PY_COLORS"] = "0"
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return Session(directory, completed.stdout + completed.stderr, completed.returncode)


OTHER = """
@simloom.test(runs=5)
async def test_other():
    await asyncio.sleep(0)
"""


@pytest.fixture(scope="module")
def explored(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """One pytest session over the bank race (plus a quiet test), shared read-only
    by the tests below; a test that runs pytest again copies it first."""
    directory = tmp_path_factory.mktemp("explored")
    (directory / "test_bank.py").write_text(BANK + textwrap.dedent(OTHER))
    return run_session(directory, "--tb=long")


def continue_from(pytester: pytest.Pytester, session: Session) -> str:
    """Carry on in ``pytester``'s directory from where ``session`` left off (its
    test file, example database and artifacts); return the session's output."""
    shutil.copytree(session.directory, pytester.path, dirs_exist_ok=True)
    return session.text


# ------------------------------------------------------------------ the failure report


def test_a_race_that_passes_under_fifo_fails_with_a_report(explored: Session) -> None:
    text = explored.text
    assert explored.ret == pytest.ExitCode.TESTS_FAILED
    assert "1 failed, 1 passed" in text

    assert "simloom found a failing universe in test_never_overdrawn" in text
    seed = reported_seed(text)
    assert f"re-run: pytest '{NODE}' --simloom-seed={seed}" in text
    assert ERROR in text
    assert re.search(
        r"shrunk: \d+ draws → \d+, schedule deviations \d+ → \d+ \(\d+ candidate runs", text
    )
    assert "minimal schedule: FIFO everywhere except:" in text
    assert "decision #" in text
    tape = f".sim/failures/test_bank.test_never_overdrawn-seed{seed}.tape.json"
    events = f".sim/failures/test_bank.test_never_overdrawn-seed{seed}.events.jsonl"
    assert f"replay it: pytest '{NODE}' --simloom-tape={tape}" in text
    assert f"artifacts: {tape}, {events}" in text


def test_the_traceback_is_the_users_code_without_simloom_frames(explored: Session) -> None:
    text = explored.text
    assert '>       assert account.balance >= 0, f"overdrawn: balance is {account.balance}"' in text
    assert "test_bank.py:" in text
    for internal in INTERNAL_FRAMES:
        assert internal not in text


def test_the_shallow_race_shrinks_to_at_most_two_deviations(explored: Session) -> None:
    text = explored.text
    match = re.search(r"schedule deviations (\d+) → (\d+)", text)
    assert match, text
    before, after = int(match.group(1)), int(match.group(2))
    assert after <= 2
    assert after <= before
    assert len(minimal_schedule(text)) == after


def test_no_shrink_reports_the_universe_as_found(pytester: pytest.Pytester) -> None:
    bank(pytester)
    result = run(pytester, "--simloom-no-shrink")
    result.assert_outcomes(failed=1)
    text = out(result)
    assert "simloom found a failing universe" in text
    assert ERROR in text
    assert "shrunk:" not in text
    seed = reported_seed(text)
    # the schedule is the found one: the same as replaying its seed
    unshrunk = simloom.run(_bank_main(), seed=seed, scheduler=_scheduler_of(text))
    assert len(minimal_schedule(text)) == unshrunk.deviations


def test_shrinking_drops_deviations_the_failure_does_not_need(
    pytester: pytest.Pytester,
) -> None:
    # Only the injected fault matters: no scheduling deviation is needed to fail.
    write(
        pytester,
        "test_fault.py",
        """
        import asyncio

        import simloom


        @simloom.test
        async def test_fetch_all():
            async def fetch(n):
                await asyncio.sleep(0.01 * n)
                if simloom.sometimes("fault", 10):
                    raise ConnectionError(f"fetch {n}: injected fault")

            await asyncio.gather(fetch(1), fetch(2), fetch(3))
        """,
    )
    text = out(run(pytester))
    assert "ConnectionError: fetch" in text
    schedule = minimal_schedule(text)
    assert len(schedule) == 1, schedule
    assert "sometimes:fault = 1 (of 2)" in schedule[0]


# ------------------------------------------------------------------ artifacts


def test_artifacts_are_a_tape_an_event_log_and_a_timeline(explored: Session) -> None:
    text = explored.text
    seed = reported_seed(text)
    directory = explored.directory / ".sim" / "failures"
    tape_path = directory / f"test_bank.test_never_overdrawn-seed{seed}.tape.json"
    events_path = directory / f"test_bank.test_never_overdrawn-seed{seed}.events.jsonl"
    timeline_path = directory / f"test_bank.test_never_overdrawn-seed{seed}.timeline.html"
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [tape_path.name, events_path.name, timeline_path.name]
    )  # and no temporary files left behind
    assert f"{timeline_path.name}" in text
    assert '"format":"simloom.timeline"' in timeline_path.read_text(encoding="utf-8").replace(
        " ", ""
    )

    tape = simloom.Tape.load(tape_path)
    document = json.loads(tape_path.read_text())
    assert document["test"] == NODE
    assert document["seed"] == seed
    assert document["scheduler"] == simloom.testing.scheduler_for_seed(seed)
    assert document["python"] == ".".join(map(str, sys.version_info[:3]))
    assert document["error"].startswith(ERROR)
    # the tape is the minimal universe: replaying it fails the same way
    replayed = simloom.replay(_bank_main(), tape, strict=True)
    assert replayed.error is not None
    assert str(replayed.error).startswith("overdrawn: balance is -40")
    assert replayed.digest == document["digest"]

    lines = events_path.read_text().splitlines()
    assert lines
    events = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) and {"kind", "t_ns"} <= e.keys() for e in events)
    assert any(e["kind"] == "step" and e.get("label") for e in events)
    decisions = [e for e in events if e["kind"] == "decision"]
    assert [d["decision"] for d in decisions] == list(range(len(decisions)))
    assert all(d["label"] == "sched.pick" for d in decisions)
    assert sum(1 for d in decisions if d["value"]) == len(tape.deviations)


def test_artifacts_of_same_named_tests_in_different_modules_do_not_collide(
    pytester: pytest.Pytester,
) -> None:
    write(pytester, "test_a.py", BANK)
    write(pytester, "test_b.py", BANK)
    run(pytester).assert_outcomes(failed=2)
    tapes = list((pytester.path / ".sim" / "failures").glob("*.tape.json"))
    owners = sorted(json.loads(p.read_text())["test"] for p in tapes)
    assert owners == ["test_a.py::test_never_overdrawn", "test_b.py::test_never_overdrawn"]


# ------------------------------------------------------------------ re-running


def test_the_seed_command_reproduces_the_failure(
    pytester: pytest.Pytester, explored: Session
) -> None:
    first = continue_from(pytester, explored)
    seed = reported_seed(first)

    again = run(pytester, NODE, f"--simloom-seed={seed}")
    again.assert_outcomes(failed=1)
    text = out(again)
    assert f"seed {seed} replayed" in text
    assert ERROR in text
    assert universes_in_summary(text, NODE) == 1


def test_the_tape_command_replays_the_shrunk_failure(
    pytester: pytest.Pytester, explored: Session
) -> None:
    first = continue_from(pytester, explored)
    shrunk = minimal_schedule(first)

    again = run(pytester, NODE, f"--simloom-tape={replay_command_tape(first)}")
    again.assert_outcomes(failed=1)
    text = out(again)
    assert ERROR in text
    assert minimal_schedule(text) == shrunk
    assert universes_in_summary(text, NODE) == 1


def test_re_running_a_seed_keeps_the_shrunk_artifact(
    pytester: pytest.Pytester, explored: Session
) -> None:
    first = continue_from(pytester, explored)
    tape_path = pytester.path / replay_command_tape(first)
    shrunk = simloom.Tape.load(tape_path).deviations

    run(pytester, NODE, f"--simloom-seed={reported_seed(first)}").assert_outcomes(failed=1)

    # the replay command printed by the first run still replays the minimal universe
    assert simloom.Tape.load(tape_path).deviations == shrunk


def test_a_tape_is_replayed_only_in_the_test_it_belongs_to(
    pytester: pytest.Pytester, explored: Session
) -> None:
    first = continue_from(pytester, explored)
    tape = replay_command_tape(first)

    # only the other test selected: refused, naming both tests
    refused = run(pytester, "test_bank.py::test_other", f"--simloom-tape={tape}")
    assert refused.ret != 0
    text = out(refused)
    assert NODE in text
    assert "test_bank.py::test_other" in text

    # both selected: the tape's test replays it, the other one is skipped
    both = run(pytester, "-rs", f"--simloom-tape={tape}")
    both.assert_outcomes(failed=1, skipped=1)
    text = out(both)
    assert ERROR in text
    assert f"--simloom-tape belongs to {NODE}" in text


def test_the_summary_does_not_call_a_refused_test_passed(
    pytester: pytest.Pytester, explored: Session
) -> None:
    first = continue_from(pytester, explored)
    refused = run(
        pytester, "test_bank.py::test_other", f"--simloom-tape={replay_command_tape(first)}"
    )
    refused.assert_outcomes(failed=1)
    assert ", passed" not in summary_line(out(refused), "test_bank.py::test_other")


# ------------------------------------------------------------------ the example database


def test_a_saved_failure_replays_first_in_the_next_session(
    pytester: pytest.Pytester, explored: Session
) -> None:
    continue_from(pytester, explored)
    assert (pytester.path / ".hypothesis").is_dir()

    # FIFO exploration cannot find this race: failing now proves the replay
    second = run(pytester, NODE, "--simloom-scheduler=fifo")
    second.assert_outcomes(failed=1)
    text = out(second)
    assert "saved in the example database" in text
    assert ERROR in text
    assert universes_in_summary(text, NODE) <= 3

    fixed = BANK.replace(
        "        if self.balance < amount:  # check ...\n            return False\n"
        '        await self.log(f"withdraw {amount}")  # ... a scheduling point ...\n'
        "        self.balance -= amount  # ... act\n",
        '        await self.log(f"withdraw {amount}")\n'
        "        if self.balance < amount:  # check and act with no await between\n"
        "            return False\n"
        "        self.balance -= amount\n",
    )
    assert fixed != BANK
    write(pytester, "test_bank.py", fixed)
    third = run(pytester, NODE, "--simloom-runs=50")
    third.assert_outcomes(passed=1)
    assert universes_in_summary(out(third), NODE) == 50


def test_under_hypothesis_ci_profile_failures_are_found_shrunk_and_replayable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CI=1 makes Hypothesis load its ``ci`` profile: no example database,
    # derandomized. The failure is still found and shrunk, and its artifact replays.
    bank(pytester)
    monkeypatch.setenv("CI", "1")
    first = run(pytester, NODE)
    first.assert_outcomes(failed=1)
    text = out(first)
    assert "simloom found a failing universe in test_never_overdrawn" in text
    assert re.search(r"schedule deviations \d+ → [12]\b", text), text
    assert not (pytester.path / ".hypothesis").exists()
    tape = replay_command_tape(text)
    assert (pytester.path / tape).is_file()
    replayed = run(pytester, NODE, f"--simloom-tape={tape}")
    replayed.assert_outcomes(failed=1)
    assert ERROR in out(replayed)


# ------------------------------------------------------------------ options
#
# A bad option is refused in pytest_configure, before simloom's state is touched,
# so these sessions run in-process.


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--simloom-seed=-1"], "--simloom-seed"),
        (["--simloom-runs=0"], "--simloom-runs"),
        (["--simloom-scheduler=lottery"], "--simloom-scheduler"),
        (["--simloom-tape=missing.json"], "--simloom-tape"),
        (["--simloom-tape=garbage.json"], "--simloom-tape"),
        (["--simloom-seed=1", "--simloom-tape=tape.json"], "--simloom-seed"),
    ],
)
def test_bad_options_are_usage_errors_naming_the_option(
    pytester: pytest.Pytester, args: list[str], option: str
) -> None:
    bank(pytester)
    (pytester.path / "garbage.json").write_text("this is not a tape\n")
    simloom.Tape([(0, 1)]).dump(pytester.path / "tape.json")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = result.stderr.str()
    assert option in errors
    if len(args) == 2:  # seed and tape together
        assert "--simloom-tape" in errors
    assert "simloom found" not in out(result)


# ------------------------------------------------------------------ passing tests, coverage


def test_a_passing_exploration_states_pct_s_guarantee(pytester: pytest.Pytester) -> None:
    write(
        pytester,
        "test_pct.py",
        """
        import asyncio

        import simloom


        @simloom.test(runs=120)
        async def test_three_workers():
            async def worker():
                for _ in range(3):
                    await asyncio.sleep(0)

            await asyncio.gather(worker(), worker(), worker())


        @simloom.test(runs=30, scheduler="pct:eager=1")
        async def test_only_eager():
            await asyncio.gather(asyncio.sleep(0), asyncio.sleep(0))
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=2)
    text = out(result)
    section = text.split("simloom ====", 1)[1]
    lines = section.splitlines()
    at = lines.index(summary_line(text, "test_pct.py::test_three_workers"))
    guarantee = lines[at + 1].strip()
    # Only the mix's PCT universes without eager starts count (1 seed in 12).
    counted = re.match(
        r"PCT guarantee after (\d+) passing PCT universe\(s\), with at most", guarantee
    )
    assert counted is not None, section
    assert 1 <= int(counted.group(1)) <= 10
    assert "a bug of depth 1: p >= " in guarantee and "depth 3:" in guarantee
    # Eager universes are not what the theorem is about: no guarantee is claimed.
    at = lines.index(summary_line(text, "test_pct.py::test_only_eager"))
    assert at + 1 == len(lines) or "PCT guarantee" not in lines[at + 1], section


def test_the_summary_reports_universes_and_coverage(pytester: pytest.Pytester) -> None:
    write(
        pytester,
        "test_cov.py",
        """
        import asyncio

        import simloom


        @simloom.test(runs=40)
        async def test_counted():
            await asyncio.sleep(0)
            simloom.reached("hit")
            if simloom.sometimes("coin", 50):
                await asyncio.sleep(0)


        @simloom.test(runs=10, require_coverage=["never"])
        async def test_requires_never():
            await asyncio.sleep(0)
            if simloom.sometimes("never", 0):
                pass


        @simloom.test(runs=10, require_coverage=["hit"])
        async def test_requires_hit():
            await asyncio.sleep(0)
            simloom.reached("hit")
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    text = out(result)

    counted = summary_line(text, "test_cov.py::test_counted")
    assert counted.startswith("test_cov.py::test_counted: 40 universes, passed; coverage: ")
    coverage = dict(
        (k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", counted.split("coverage: ")[1])
    )
    assert coverage["hit"] == 40
    assert 0 < coverage["coin"] < 40

    assert "CoverageNotReachedError: no universe of 10 reached 'never'" in text
    assert summary_line(text, "test_cov.py::test_requires_never").startswith(
        "test_cov.py::test_requires_never: 10 universes, failed"
    )
    assert summary_line(text, "test_cov.py::test_requires_hit") == (
        "test_cov.py::test_requires_hit: 10 universes, passed; coverage: hit=10"
    )


# ------------------------------------------------------------------ a pytest test like any other


PYTEST_LIKE = """
import asyncio

import pytest
import simloom


@pytest.fixture
def greeting():
    return "hello"


@simloom.test(runs=12)
async def test_fixtures_are_injected(tmp_path, greeting):
    assert greeting == "hello"
    assert tmp_path.is_dir()
    await asyncio.sleep(0)


@pytest.mark.parametrize("withdrawal", [30, 70])
@simloom.test(runs=200)
async def test_parametrized(withdrawal):
    balance = 100

    async def withdraw():
        nonlocal balance
        if balance >= withdrawal:
            await asyncio.sleep(0)
            balance -= withdrawal

    async def later():
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await withdraw()

    await asyncio.gather(withdraw(), later())
    assert balance >= 0, f"overdrawn: balance is {balance}"


@pytest.mark.slow
@simloom.test(runs=7)
async def test_marked():
    await asyncio.sleep(0)
"""


def test_fixtures_parametrize_marks_and_runs(pytester: pytest.Pytester) -> None:
    write(pytester, "test_like.py", PYTEST_LIKE)
    pytester.makeini("[pytest]\nmarkers =\n    slow: a slow test\n")
    result = run(pytester)
    result.assert_outcomes(passed=3, failed=1)
    text = out(result)
    assert "test_like.py::test_fixtures_are_injected: 12 universes, passed" in text
    # each parameter is explored on its own
    assert "test_like.py::test_parametrized[30]: 200 universes, passed" in text
    assert ", failed" in summary_line(text, "test_like.py::test_parametrized[70]")
    assert "FAILED test_like.py::test_parametrized[70]" in text
    assert "re-run: pytest 'test_like.py::test_parametrized[70]' --simloom-seed=" in text
    assert "test_like.py::test_marked: 7 universes, passed" in text
    # the artifacts of a parametrized test name the parameter
    names = [p.name for p in (pytester.path / ".sim" / "failures").iterdir()]
    assert len(names) == 3, names  # tape, event log, timeline
    assert all(re.fullmatch(r"test_like.test_parametrized.70.?-seed\d+\..+", n) for n in names), (
        names
    )


def test_marks_are_kept_and_the_runs_option_overrides_runs(pytester: pytest.Pytester) -> None:
    write(pytester, "test_like.py", PYTEST_LIKE)
    pytester.makeini("[pytest]\nmarkers =\n    slow: a slow test\n")
    # test_marked carries both its own mark and the simloom mark
    result = run(pytester, "-m", "slow and simloom", "--simloom-runs=3")
    result.assert_outcomes(passed=1, deselected=3)
    assert "test_like.py::test_marked: 3 universes, passed" in out(result)


SETTINGS = (
    BANK.replace("import simloom\n", "import simloom\nfrom hypothesis import Phase, settings\n", 1)
    + """

@settings(max_examples=37)
@simloom.test
async def test_max_examples():
    await asyncio.sleep(0)


@simloom.test(runs=5)
@settings(max_examples=37)
async def test_runs_beats_max_examples():
    await asyncio.sleep(0)


@settings(database=None)
@simloom.test
async def test_no_database():
    account = await alice_and_bob_withdraw()
    assert account.balance >= 0, f"no database: balance is {account.balance}"


@settings(phases=[Phase.explicit])
@simloom.test
async def test_no_generate():
    account = await alice_and_bob_withdraw()
    assert account.balance >= 0, f"no generate: balance is {account.balance}"
"""
)


@pytest.fixture(scope="module")
def with_settings(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """One session over tests that carry a Hypothesis ``@settings``."""
    directory = tmp_path_factory.mktemp("settings")
    (directory / "test_settings.py").write_text(SETTINGS)
    return run_session(directory, "-k", "not overdrawn")


def report_of(text: str, test: str) -> str:
    """The failure section of one test."""
    match = re.search(rf"_+ {re.escape(test)} _+\n(.*?)(?=\n_{{3,}} |\n=+ )", text, re.S)
    assert match, text
    return match.group(1)


def test_hypothesis_max_examples_sets_the_number_of_universes(with_settings: Session) -> None:
    text = with_settings.text
    assert "test_settings.py::test_max_examples: 37 universes, passed" in text
    assert "test_settings.py::test_runs_beats_max_examples: 5 universes, passed" in text


def test_without_a_database_failures_are_still_shrunk(with_settings: Session) -> None:
    report = report_of(with_settings.text, "test_no_database")
    assert "AssertionError: no database: balance is -40" in report
    assert re.search(r"schedule deviations \d+ → [012] ", report), report


def test_without_the_generate_phase_nothing_is_explored(with_settings: Session) -> None:
    text = with_settings.text
    assert "test_settings.py::test_no_generate: 0 universes, passed" in text


# ------------------------------------------------------------------ misuse


def test_decorating_a_plain_function_is_a_usage_error() -> None:
    def test_sync() -> None:
        pass

    with pytest.raises(SimloomUsageError, match="async def"):
        simloom.test(test_sync)
    with pytest.raises(SimloomUsageError, match="async def"):
        simloom.test(runs=10)(test_sync)


@pytest.mark.parametrize("runs", [0, -1, True, 2.5])
def test_runs_must_be_a_positive_integer(runs: object) -> None:
    async def test_something() -> None:
        pass

    with pytest.raises(SimloomUsageError, match="runs"):
        simloom.test(runs=runs)(test_something)  # type: ignore[arg-type]


def test_an_unknown_scheduler_is_refused_naming_the_valid_ones() -> None:
    async def test_something() -> None:
        pass

    with pytest.raises(SimloomUsageError) as info:
        simloom.test(scheduler="lottery")(test_something)
    message = str(info.value)
    assert "lottery" in message
    for name in ("'fifo'", "'random'", "'pct'", "'pct:auto'", "'mixed'"):
        assert name in message


# ------------------------------------------------------------------ schedulers

SCHEDULERS = ["mixed", "random", "pct", "pct:auto", "fifo"]


def test_every_scheduler_runs_and_tells_the_schedule_from_fifo(pytester: pytest.Pytester) -> None:
    source = BANK
    for name in SCHEDULERS:
        test = "test_" + name.replace(":", "_")
        source += textwrap.dedent(
            f"""

            @simloom.test(runs=300, scheduler={name!r})
            async def {test}():
                account = await alice_and_bob_withdraw()
                assert account.balance >= 0, f"{name}: balance is {{account.balance}}"
            """
        )
    write(pytester, "test_bank.py", source)
    result = run(pytester, "-k", "not overdrawn")
    result.assert_outcomes(passed=1, failed=4)
    text = out(result)
    # FIFO is the stock loop's order: the race never shows
    assert "test_bank.py::test_fifo: 300 universes, passed" in text
    for name in SCHEDULERS[:-1]:
        report = report_of(text, "test_" + name.replace(":", "_"))
        assert f"AssertionError: {name}: balance is -40" in report
        if name != "mixed":
            assert f"(scheduler {name};" in report
        # whichever strategy found it, the schedule is told from FIFO
        assert "minimal schedule: FIFO everywhere except:" in report
        assert 1 <= len(minimal_schedule(report)) <= 2, report


def test_the_scheduler_option_overrides_the_decorator(pytester: pytest.Pytester) -> None:
    write(
        pytester,
        "test_bank.py",
        BANK.replace("@simloom.test\n", '@simloom.test(runs=300, scheduler="fifo")\n'),
    )
    result = run(pytester, "--simloom-scheduler=pct")
    result.assert_outcomes(failed=1)
    text = out(result)
    assert "(scheduler pct;" in text
    assert "minimal schedule: FIFO everywhere except:" in text
    assert 1 <= len(minimal_schedule(text)) <= 2


# ------------------------------------------------------------------ in-process helpers


def _bank_main():  # type: ignore[no-untyped-def]
    """The pytester module's program, for replaying its artifacts here."""
    namespace: dict[str, object] = {}
    exec(compile(BANK, "test_bank.py", "exec"), namespace)
    alice_and_bob_withdraw = namespace["alice_and_bob_withdraw"]

    async def main() -> None:
        account = await alice_and_bob_withdraw()  # type: ignore[operator]
        assert account.balance >= 0, f"overdrawn: balance is {account.balance}"

    return main


def _scheduler_of(text: str) -> str:
    match = re.search(r"\(scheduler (\S+);", text)
    assert match, text
    return match.group(1)
