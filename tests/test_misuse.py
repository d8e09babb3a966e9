"""Misused APIs get a SimloomUsageError (or the named tape error) that names the
argument and its valid range: never a bare OverflowError or TypeError from the
engine, never a silently accepted odd value."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import simloom
from simloom import SimloomUsageError


async def _main() -> None:
    await asyncio.sleep(0)


def _run(**options: Any) -> Callable[[], object]:
    return lambda: simloom.run(_main, **options)


@pytest.mark.parametrize(
    ("call", "names"),
    [
        pytest.param(
            _run(scheduler="pct:d=" + "9" * 30), ["depth (d)", "[1, 1000]"], id="pct-huge-depth"
        ),
        pytest.param(
            _run(scheduler="pct:k=" + "9" * 30), ["horizon (k)", "[1, "], id="pct-huge-horizon"
        ),
        pytest.param(_run(scheduler="pct:d=0"), ["depth (d)"], id="pct-zero-depth"),
        pytest.param(
            _run(livelock_steps=2**70), ["livelock_steps", "2**64 - 1"], id="livelock-huge"
        ),
        pytest.param(_run(livelock_steps=True), ["livelock_steps", "bool"], id="livelock-bool"),
        pytest.param(_run(livelock_steps=0), ["livelock_steps", "[1, "], id="livelock-zero"),
        pytest.param(_run(seed=-1), ["seed", "[0, "], id="seed-negative"),
        pytest.param(_run(seed=2**64), ["seed"], id="seed-huge"),
        pytest.param(_run(seed=1.5), ["seed", "float"], id="seed-float"),
        pytest.param(_run(world="no"), ["world", "True or False"], id="world-string"),
        pytest.param(_run(check_determinism=1), ["check_determinism"], id="check-int"),
        pytest.param(
            _run(boundary=True, wall_clock_epoch=1e300),
            ["wall_clock_epoch", "9999"],
            id="epoch-huge",
        ),
        pytest.param(
            lambda: simloom.replay(_main, simloom.Tape(), strict="yes"),
            ["strict", "True or False"],
            id="replay-strict-string",
        ),
        pytest.param(
            lambda: simloom.replay(_main, simloom.Tape(), livelock_steps=-5),
            ["livelock_steps"],
            id="replay-livelock",
        ),
        pytest.param(lambda: simloom.SimLoop(strict="yes"), ["strict"], id="simloop-strict"),
        pytest.param(
            lambda: simloom.SimLoop(livelock_steps=2**64), ["livelock_steps"], id="simloop-livelock"
        ),
        pytest.param(
            lambda: simloom.test(require_coverage=5), ["require_coverage"], id="coverage-int"
        ),
        pytest.param(
            lambda: simloom.test(require_coverage=[""]), ["require_coverage"], id="coverage-empty"
        ),
        pytest.param(lambda: simloom.test(runs=True), ["runs", "bool"], id="runs-bool"),
        pytest.param(lambda: simloom.test(runs=2**70), ["runs"], id="runs-huge"),
        pytest.param(lambda: simloom.test(scheduler=5), ["scheduler"], id="test-scheduler-int"),
        pytest.param(
            lambda: simloom.test(livelock_steps=True), ["livelock_steps"], id="test-livelock"
        ),
        pytest.param(lambda: simloom.test(world="x"), ["world"], id="test-world"),
        pytest.param(
            lambda: simloom.universes(livelock_steps=True),
            ["livelock_steps"],
            id="universes-livelock",
        ),
        pytest.param(lambda: simloom.universes(world=1), ["world"], id="universes-world"),
        pytest.param(
            lambda: simloom.universes(scheduler="pct:d=99999"), ["depth"], id="universes-pct"
        ),
    ],
)
def test_a_misused_argument_is_a_usage_error_naming_it(
    call: Callable[[], object], names: list[str]
) -> None:
    with pytest.raises(SimloomUsageError) as raised:
        call()
    for name in names:
        assert name in str(raised.value)


def test_the_decorator_factory_validates_before_it_gets_the_function() -> None:
    # ``@simloom.test(runs=-1)`` used to fail only when applied, far from the typo.
    with pytest.raises(SimloomUsageError, match="runs"):
        simloom.test(runs=-1)


def test_cbor_tape_with_trailing_bytes_is_a_corrupt_tape() -> None:
    data = simloom.Tape([(3, 1)]).dumps("cbor")
    assert simloom.Tape.loads(data) == simloom.Tape([(3, 1)])
    with pytest.raises(simloom.CorruptTapeError, match="trailing"):
        simloom.Tape.loads(data + b"\x00")
    with pytest.raises(simloom.CorruptTapeError, match="trailing"):
        simloom.Tape.loads(data + data)


def test_json_tape_with_trailing_text_is_rejected() -> None:
    text = simloom.Tape([(3, 1)]).dumps("json")
    with pytest.raises(simloom.TapeError):
        simloom.Tape.loads(text + b"{}")


def _world_after_its_universe() -> simloom.World:
    kept: list[simloom.World] = []

    async def main(world: simloom.World) -> None:
        world.host("n1")
        kept.append(world)

    assert simloom.run(main).ok
    return kept[0]


@pytest.mark.parametrize(
    "use",
    [
        pytest.param(lambda world: world.host("n2"), id="host"),
        pytest.param(lambda world: world.host("n1").crash(), id="crash"),
        pytest.param(lambda world: world.net.partition("main", "n1"), id="partition"),
        pytest.param(lambda world: world.net.heal(), id="heal"),
        pytest.param(lambda world: world.net.set_latency(0.1), id="latency"),
        pytest.param(lambda world: world.register_name("db", "n1"), id="register-name"),
        pytest.param(lambda world: world.host("n1").spawn(_main), id="spawn"),
    ],
)
def test_a_world_whose_universe_ended_refuses_changes(use: Callable[[Any], object]) -> None:
    world = _world_after_its_universe()
    with pytest.raises(SimloomUsageError, match="universe has ended"):
        use(world)


def test_a_finished_world_can_still_be_read() -> None:
    world = _world_after_its_universe()
    assert list(world.hosts) == ["main", "n1"]
    assert "n1" in repr(world)
