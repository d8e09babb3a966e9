"""The determinism boundary: inside a universe with ``boundary=True`` the stdlib
clocks read virtual time, randomness comes from the tape, blocking I/O is an
escape; outside, and in other threads, everything is real; and ``simloom.boundary()``
lists exactly what the patches and the loop do.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import monotonic as monotonic_bound_at_import
from typing import Any

import boundary_programs
import escape_probes
import hostfs_probes
import pytest
import simloom
from hypothesis import given, register_random, settings
from hypothesis import strategies as st
from simloom import _boundary, _hashseed, _patches
from simloom._lockstep import start_outside_the_universe

EPOCH = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
EPOCH_SECONDS = EPOCH.timestamp()
TESTS_DIR = str(Path(__file__).resolve().parent)


def in_universe(main: Callable[[], Awaitable[Any]], seed: int = 0, **options: Any) -> Any:
    """Run ``main`` in a universe with the boundary; return its value or raise."""
    result = simloom.run(main, seed=seed, boundary=True, **options)
    result.raise_error()
    return result.value


def real_now_is(value: float) -> bool:
    return abs(value - time.time()) < 60


# ------------------------------------------------------------------ clocks


def test_the_wall_clock_starts_at_the_epoch_and_follows_virtual_time() -> None:
    async def main() -> tuple[float, int, float, int]:
        start, start_ns = time.time(), time.time_ns()
        await asyncio.sleep(1.5)
        return start, start_ns, time.time(), time.time_ns()

    start, start_ns, later, later_ns = in_universe(main)
    assert start == EPOCH_SECONDS
    assert start_ns == int(EPOCH_SECONDS) * 10**9
    assert later == EPOCH_SECONDS + 1.5
    assert later_ns == start_ns + 1_500_000_000


def test_monotonic_clocks_are_loop_time_even_when_bound_before_the_universe() -> None:
    async def main() -> list[tuple[float, ...]]:
        loop = asyncio.get_running_loop()
        readings = []
        for delay in (0, 0.25, 3):
            await asyncio.sleep(delay)
            readings.append(
                (
                    loop.time(),
                    time.monotonic(),
                    monotonic_bound_at_import(),
                    time.perf_counter(),
                    time.monotonic_ns() / 1e9,
                    time.perf_counter_ns() / 1e9,
                )
            )
        return readings

    for reading in in_universe(main):
        assert len(set(reading)) == 1, reading
    assert [r[0] for r in in_universe(main)] == [0.0, 0.25, 3.25]


def test_calendar_functions_without_a_time_read_the_wall_clock() -> None:
    async def main() -> dict[str, object]:
        await asyncio.sleep(61)
        return {
            "localtime": time.localtime(),
            "gmtime": time.gmtime(),
            "ctime": time.ctime(),
            "asctime": time.asctime(),
            "strftime": time.strftime("%Y-%m-%d %H:%M:%S"),
            "gmtime(0)": time.gmtime(0),
        }

    wall = EPOCH_SECONDS + 61
    seen = in_universe(main)
    assert seen["localtime"] == time.localtime(wall)
    assert seen["gmtime"] == time.gmtime(wall)
    assert seen["ctime"] == time.ctime(wall)
    assert seen["asctime"] == time.asctime(time.localtime(wall))
    assert seen["strftime"] == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall))
    assert seen["gmtime(0)"] == time.gmtime(0)  # an explicit time is left alone


@pytest.mark.skipif(not hasattr(time, "clock_gettime"), reason="POSIX clocks")
def test_clock_gettime_reads_the_virtual_clocks_and_leaves_cpu_clocks_real() -> None:
    async def main() -> tuple[float, int, float, float]:
        await asyncio.sleep(2)
        return (
            time.clock_gettime(time.CLOCK_REALTIME),
            time.clock_gettime_ns(time.CLOCK_MONOTONIC),
            time.clock_gettime(time.CLOCK_MONOTONIC),
            time.clock_gettime(time.CLOCK_PROCESS_CPUTIME_ID),
        )

    realtime, monotonic_ns, monotonic, cpu = in_universe(main)
    assert realtime == EPOCH_SECONDS + 2
    assert monotonic_ns == 2_000_000_000
    assert monotonic == 2.0
    assert 0 < cpu == pytest.approx(time.process_time(), abs=30)


class Stamp(datetime.datetime):
    """A datetime subclass, to check that now() keeps the class it is called on."""


def test_datetime_now_and_today_read_the_wall_clock() -> None:
    async def main() -> dict[str, Any]:
        await asyncio.sleep(2.000_5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            utcnow = datetime.datetime.utcnow()
        return {
            "now(UTC)": datetime.datetime.now(datetime.UTC),
            "now(tz=+2)": datetime.datetime.now(tz=datetime.timezone(datetime.timedelta(hours=2))),
            "now()": datetime.datetime.now(),
            "utcnow": utcnow,
            "utcnow warnings": [str(w.message) for w in caught if w.category is DeprecationWarning],
            "date.today": datetime.date.today(),
            "datetime.today": datetime.datetime.today(),
            "Stamp.now": Stamp.now(datetime.UTC),
        }

    seen = in_universe(main)
    expected = EPOCH + datetime.timedelta(seconds=2, microseconds=500)
    assert seen["now(UTC)"] == expected
    assert seen["now(tz=+2)"] == expected
    assert seen["now(tz=+2)"].utcoffset() == datetime.timedelta(hours=2)
    local = datetime.datetime.fromtimestamp(EPOCH_SECONDS + 2) + datetime.timedelta(
        microseconds=500
    )
    assert seen["now()"] == local
    assert seen["utcnow"] == expected.replace(tzinfo=None)
    assert len(seen["utcnow warnings"]) == 1
    assert "utcnow() is deprecated" in seen["utcnow warnings"][0]
    assert seen["date.today"] == local.date()
    assert seen["datetime.today"] == local
    assert type(seen["Stamp.now"]) is Stamp
    assert seen["Stamp.now"] == expected


@pytest.mark.parametrize(
    "epoch",
    [datetime.datetime(2030, 6, 1, 12, tzinfo=datetime.UTC), 1_900_000_000, 1_900_000_000.25],
)
def test_the_wall_clock_epoch_is_configurable(epoch: datetime.datetime | float) -> None:
    async def main() -> float:
        return time.time()

    expected = epoch.timestamp() if isinstance(epoch, datetime.datetime) else epoch
    assert in_universe(main, wall_clock_epoch=epoch) == expected


@pytest.mark.parametrize(
    ("epoch", "message"),
    [
        (datetime.datetime(2030, 1, 1), "timezone-aware"),
        (-1, "non-negative"),
        (float("nan"), "non-negative"),
        (True, "non-negative"),
        ("2030-01-01", "non-negative"),
    ],
)
def test_a_bad_wall_clock_epoch_is_refused_up_front(epoch: object, message: str) -> None:
    async def main() -> None:
        pass

    with pytest.raises(simloom.SimloomUsageError, match=message):
        simloom.run(main, boundary=True, wall_clock_epoch=epoch)  # type: ignore[arg-type]
    with pytest.raises(simloom.SimloomUsageError, match="wall_clock_epoch"):
        simloom.test(wall_clock_epoch=epoch)(main)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [1, None, "yes"])
def test_boundary_must_be_a_bool(value: object) -> None:
    async def main() -> None:
        pass

    with pytest.raises(simloom.SimloomUsageError, match="boundary must be True or False"):
        simloom.run(main, boundary=value)  # type: ignore[arg-type]


# ------------------------------------------------------------ on, off, restored


async def read_wall_clock() -> float:
    return time.time()


def test_the_boundary_is_on_by_default_everywhere_unless_turned_off() -> None:
    assert simloom.run(read_wall_clock).value == EPOCH_SECONDS
    assert real_now_is(simloom.run(read_wall_clock, boundary=False).value)
    tape = simloom.run(read_wall_clock).tape
    assert simloom.replay(read_wall_clock, tape).value == EPOCH_SECONDS
    assert real_now_is(simloom.replay(read_wall_clock, tape, boundary=False).value)
    assert asyncio.run(read_wall_clock(), loop_factory=simloom.SimLoop) == EPOCH_SECONDS
    assert real_now_is(
        asyncio.run(read_wall_clock(), loop_factory=lambda: simloom.SimLoop(boundary=False))
    )
    assert real_now_is(time.time())


def test_the_boundary_is_on_by_default_under_simloom_test() -> None:
    seen: list[float] = []

    @simloom.test(runs=3)
    async def test_reads_the_clock() -> None:
        seen.append(time.time())

    test_reads_the_clock()  # 3 universes, and pct:auto's probe run
    assert len(seen) >= 3 and set(seen) == {EPOCH_SECONDS}

    real: list[float] = []

    @simloom.test(runs=2, boundary=False)
    async def test_reads_the_real_clock() -> None:
        real.append(time.time())

    test_reads_the_real_clock()
    assert real and all(real_now_is(t) for t in real)


def test_the_boundary_is_on_by_default_under_universes() -> None:
    seen: list[float] = []

    @settings(max_examples=5, database=None)
    @given(st.integers(0, 3), simloom.universes())
    def check(n: int, universe: simloom.Universe) -> None:
        async def main() -> None:
            await asyncio.sleep(n)
            seen.append(time.time() - n)

        universe.run(main)

    check()
    assert seen and set(seen) == {EPOCH_SECONDS}


def test_everything_is_restored_after_a_universe_that_fails() -> None:
    async def main() -> None:
        raise ValueError("boom")

    result = simloom.run(main, boundary=True)
    assert isinstance(result.error, ValueError)
    assert _boundary._builtin_redirects().active() == []
    assert real_now_is(time.time())


def test_everything_is_restored_after_an_interrupted_universe() -> None:
    async def main() -> None:
        random.random()
        raise KeyboardInterrupt

    state = random.getstate()
    with pytest.raises(KeyboardInterrupt):
        simloom.run(main, boundary=True)
    assert _boundary._builtin_redirects().active() == []
    assert random.getstate() == state
    assert real_now_is(time.time())


def test_the_builtins_are_redirected_only_while_a_universe_runs() -> None:
    redirects = _boundary._builtin_redirects()
    seen: list[list[str]] = []

    async def main() -> None:
        seen.append(redirects.active())

    assert redirects.active() == []
    in_universe(main)
    assert redirects.active() == []
    assert seen[0] == redirects.names


def test_other_threads_keep_the_real_clock_during_a_universe() -> None:
    readings: list[float] = []

    def read() -> None:
        readings.append(time.time())
        readings.append(datetime.datetime.now(datetime.UTC).timestamp())

    async def main() -> float:
        thread = threading.Thread(target=read)
        start_outside_the_universe(thread)  # not a lockstep thread of the universe
        while thread.is_alive():  # join() of a live thread is an escape
            time.sleep(0)  # allowed: blocks nothing
        thread.join()
        return time.time()

    assert in_universe(main) == EPOCH_SECONDS
    assert len(readings) == 2 and all(real_now_is(r) for r in readings)


class partial:
    """A callback whose label lookup runs Python code while the loop is busy
    scheduling it (as a finaliser or a garbage-collector callback can)."""

    def __init__(self, seen: list[float]) -> None:
        self.seen = seen

    @property
    def func(self) -> Callable[[], None]:
        self.seen.append(time.monotonic())
        return print

    def __call__(self) -> None:
        pass


def test_code_running_while_the_loop_is_busy_reads_the_virtual_clock() -> None:
    seen: list[float] = []

    async def main() -> None:
        await asyncio.sleep(2)
        asyncio.get_running_loop().call_soon(partial(seen))
        await asyncio.sleep(0)

    in_universe(main)
    assert seen == [2.0]


def test_choice_sources_run_outside_the_universe() -> None:
    # Hypothesis answers the universe's decisions; its own calls to the clock must
    # see the real clock (the loop is busy deciding), or shrinking breaks.
    @settings(max_examples=20, database=None)
    @given(simloom.universes())
    def check(universe: simloom.Universe) -> None:
        async def main() -> None:
            async def tick() -> None:
                for _ in range(3):
                    await asyncio.sleep(0)
                    time.perf_counter()

            await asyncio.gather(tick(), tick(), tick())

        universe.run(main)

    check()


# ------------------------------------------------------------------ randomness


def test_the_same_seed_gives_the_same_randomness_and_another_seed_other_randomness() -> None:
    first = simloom.run(boundary_programs.decides_with_the_real_world, seed=5, boundary=True)
    again = simloom.run(boundary_programs.decides_with_the_real_world, seed=5, boundary=True)
    other = simloom.run(boundary_programs.decides_with_the_real_world, seed=6, boundary=True)
    first.raise_error()
    assert again.value == first.value and again.digest == first.digest
    assert other.value != first.value and other.digest != first.digest


def test_a_tape_replays_the_randomness() -> None:
    program = boundary_programs.decides_with_the_real_world
    first = simloom.run(program, seed=9, boundary=True)
    replayed = simloom.replay(program, first.tape, boundary=True, strict=True)
    assert replayed.value == first.value
    assert replayed.digest == first.digest


def test_the_random_seed_is_one_choice_drawn_at_the_first_use_of_randomness() -> None:
    result = simloom.run(boundary_programs.decides_with_the_real_world, seed=1, boundary=True)
    seeds = [e for e in result.event_log if e.kind == "decision" and e.label == "world.random_seed"]
    assert len(seeds) == 1
    assert seeds[0].bound == 2**32


def test_a_universe_that_never_touches_randomness_draws_no_seed() -> None:
    program = boundary_programs.never_touches_randomness
    for seed in range(5):
        with_boundary = simloom.run(program, seed=seed, boundary=True)
        without = simloom.run(program, seed=seed)
        assert with_boundary.tape == without.tape
        assert with_boundary.decisions == without.decisions
        assert with_boundary.digest == without.digest


def test_the_canonical_random_seed_is_zero() -> None:
    result = simloom.run(
        boundary_programs.decides_with_the_real_world, scheduler="fifo", boundary=True
    )
    assert len(result.tape) == 0  # world.random_seed = 0: nothing deviates


def test_the_global_random_state_is_restored_after_the_universe() -> None:
    async def main() -> list[float]:
        return [random.random() for _ in range(3)]

    random.seed(1234)
    expected_next = random.Random(1234).random()
    inside = in_universe(main)
    assert random.random() == expected_next
    assert inside == in_universe(main)


def test_explicitly_seeded_generators_are_left_alone() -> None:
    async def main() -> tuple[float, float]:
        random.seed(42)
        return random.random(), random.Random(42).random()

    assert in_universe(main) == (random.Random(42).random(), random.Random(42).random())


def test_unseeded_generators_are_seeded_from_the_tape() -> None:
    async def main() -> list[float]:
        first, second = random.Random(), random.Random()
        random.seed()
        return [first.random(), second.random(), random.random()]

    values = in_universe(main, seed=3)
    assert len(set(values)) == 3
    assert values == in_universe(main, seed=3)
    assert values != in_universe(main, seed=4)


def test_os_urandom_secrets_systemrandom_and_uuid4_replay() -> None:
    async def main() -> list[object]:
        return [
            os.urandom(8),
            secrets.token_hex(8),
            secrets.randbelow(10**9),
            random.SystemRandom().random(),
            uuid.uuid4(),
            os.getrandom(4) if hasattr(os, "getrandom") else None,
        ]

    values = in_universe(main, seed=11)
    assert values == in_universe(main, seed=11)
    assert values != in_universe(main, seed=12)
    assert values[4].version == 4


def test_uuid1_uses_the_wall_clock_and_a_fixed_node() -> None:
    async def main() -> list[uuid.UUID]:
        first = uuid.uuid1()
        await asyncio.sleep(3)
        return [first, uuid.uuid1(), uuid.uuid1()]

    first, later, last = in_universe(main)
    assert (first.version, first.node) == (1, _boundary.UUID1_NODE)
    assert first.time == int(EPOCH_SECONDS * 10**7) + 0x01B21DD213814000
    assert later.time == first.time + 3 * 10**7
    assert last.time == later.time + 1  # unique within 100 ns, as uuid1 promises
    assert [first, later, last] == in_universe(main)


class RegisteredRandom(random.Random):
    """A library's global generator, registered with Hypothesis."""


REGISTERED = RegisteredRandom(7)
register_random(REGISTERED)


def test_generators_registered_with_hypothesis_are_seeded_from_the_tape() -> None:
    async def main() -> float:
        return REGISTERED.random()

    state = REGISTERED.getstate()
    value = in_universe(main, seed=1)
    assert REGISTERED.getstate() == state
    assert value == in_universe(main, seed=1)
    assert value != in_universe(main, seed=2)


# --------------------------------------------------------------------- escapes


def escapes(api: str, action: Callable[[], object]) -> Callable[[], None]:
    """A probe: calling ``action`` in a universe raises EscapedSimulationError
    naming ``api``."""

    async def main() -> None:
        with pytest.raises(simloom.EscapedSimulationError) as caught:
            action()
        assert str(caught.value).startswith(f"{api}(): "), str(caught.value)
        assert "simulated world" in str(caught.value)

    return lambda: in_universe(main)


def reverse_dns_of_the_world(
    api: str, look_up: Callable[[str], object], answer: Callable[[str, str], object]
) -> Callable[[], None]:
    """A probe: in a universe the reverse lookup answers from the world's names
    (a host's name, ``localhost`` for loopback), never from real DNS; with
    ``world=False`` it is an escape naming ``api``."""

    def probe() -> None:
        async def main(world: simloom.World) -> list[object]:
            db = world.host("db")
            return [look_up("127.0.0.1"), look_up(db.address), answer("db", db.address)]

        local, db, expected = in_universe(main)
        assert local == answer("localhost", "127.0.0.1")
        assert db == expected

        async def without_a_world() -> None:
            with pytest.raises(simloom.EscapedSimulationError) as caught:
                look_up("127.0.0.1")
            assert str(caught.value).startswith(f"{api}(): "), str(caught.value)

        in_universe(without_a_world, world=False)

    return probe


def replays_by_seed(read: Callable[[], object]) -> Callable[[], None]:
    """A probe: ``read()`` in a universe gives the same value for the same seed and
    another for another seed."""

    def probe() -> None:
        async def main() -> object:
            return read()

        first = in_universe(main, seed=1)
        assert in_universe(main, seed=1) == first
        assert in_universe(main, seed=2) != first

    return probe


def reads_after_a_second(read: Callable[[], object], expected: object) -> Callable[[], None]:
    """A probe: one virtual second into a universe, ``read()`` is ``expected``."""

    async def main() -> object:
        await asyncio.sleep(1)
        return read()

    def probe() -> None:
        assert in_universe(main) == expected

    return probe


def nonblocking_pair() -> tuple[socket.socket, socket.socket]:
    # Non-blocking, so that a missing patch fails fast instead of hanging.
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    return left, right


def socket_probe(method: str, *args: Any) -> Callable[[], None]:
    api = "socket.socket.accept" if method == "accept" else f"socket.socket.{method}"

    def probe() -> None:
        # Made outside the universe: binding and listening are escapes too. (A
        # listener made outside would be adopted: a sync fixture's server.)
        sock = nonblocking_pair()[0]
        with sock:
            escapes(api, lambda: getattr(sock, method)(*args))()

    return probe


def tls_over_a_simulated_socket() -> None:
    """A probe: ``wrap_socket`` on a simulated socket runs TLS through it (the
    handshake's records cross the simulated network: a server that answers with
    plain bytes fails it); on a real socket it is the real method."""
    import ssl

    async def main() -> str:
        async def not_tls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(not_tls, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def client() -> str:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                try:
                    ssl.create_default_context().wrap_socket(sock, server_hostname="x.test")
                except ssl.SSLError as error:
                    return type(error).__name__
            return "no error"

        try:
            return await asyncio.to_thread(client)
        finally:
            server.close()

    assert in_universe(main) == "SSLError"


def bound_socket_probe(method: str, *args: Any) -> Callable[[], None]:
    def probe() -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))  # outside the universe: a real socket
        with sock:
            escapes(f"socket.socket.{method}", lambda: getattr(sock, method)(*args))()

    return probe


def fork_and_exit_the_child() -> None:
    if os.fork() == 0:  # pragma: no cover - only if the patch is missing
        os._exit(0)


def time_sleep_blocks_the_universe_in_virtual_time() -> None:
    async def main() -> tuple[float, list[str], list[str]]:
        loop = asyncio.get_running_loop()
        time.sleep(0)
        with pytest.raises(ValueError):
            time.sleep(-1)
        fired: list[str] = []
        loop.call_later(0.5, fired.append, "timer")
        started = time.monotonic()
        time.sleep(2.5)  # the loop is blocked: nothing runs, the clock moves on
        during = list(fired)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return time.monotonic() - started, during, fired

    wall = time.perf_counter()
    assert in_universe(main) == (2.5, [], ["timer"])
    assert time.perf_counter() - wall < 2.0  # virtual seconds, not real ones


def as_completed_goes_in_argument_order() -> None:
    async def job(i: int) -> int:
        await asyncio.sleep(0)
        return i

    async def main() -> list[int]:
        return [await f for f in asyncio.as_completed([job(i) for i in range(8)])]

    assert in_universe(main, scheduler="fifo") == list(range(8))


def lock_acquire_remembers_its_holder() -> None:
    async def main() -> list[object]:
        lock = asyncio.Lock()
        seen: list[object] = []

        async def holder() -> None:
            async with lock:
                seen.append(_patches.lock_holder(lock) is asyncio.current_task())
                await asyncio.sleep(0)
            seen.append(_patches.lock_holder(lock))

        await asyncio.create_task(holder())
        return seen

    assert in_universe(main) == [True, None]


def semaphore_acquire_remembers_its_holders() -> None:
    async def main() -> list[object]:
        sem = asyncio.Semaphore(2)
        await sem.acquire()
        seen: list[object] = [_patches.semaphore_holders(sem) == [asyncio.current_task()]]
        sem.release()
        seen.append(_patches.semaphore_holders(sem))
        return seen

    assert in_universe(main) == [True, []]


def numeric_hosts_need_no_dns() -> None:
    async def main() -> None:
        assert socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        assert socket.gethostbyname("127.0.0.1") == "127.0.0.1"

    in_universe(main)
    escapes("socket.getaddrinfo", lambda: socket.getaddrinfo("localhost", 80))()


def uuid1_is_of_the_wall_clock() -> None:
    async def main() -> uuid.UUID:
        await asyncio.sleep(1)
        return uuid.uuid1()

    made = in_universe(main)
    assert made.time == int(EPOCH_SECONDS + 1) * 10**7 + 0x01B21DD213814000
    assert made.node == _boundary.UUID1_NODE


WALL = EPOCH_SECONDS + 1

#: A behaviour probe for every stdlib row of the table that simloom patches or
#: turns into an escape: each runs universes and checks what the row promises.
PROBES: dict[str, Callable[[], None]] = {
    "time.time": reads_after_a_second(time.time, WALL),
    "time.time_ns": reads_after_a_second(time.time_ns, int(WALL) * 10**9),
    "time.monotonic": reads_after_a_second(time.monotonic, 1.0),
    "time.monotonic_ns": reads_after_a_second(time.monotonic_ns, 10**9),
    "time.perf_counter": reads_after_a_second(time.perf_counter, 1.0),
    "time.perf_counter_ns": reads_after_a_second(time.perf_counter_ns, 10**9),
    "time.localtime": reads_after_a_second(time.localtime, time.localtime(WALL)),
    "time.gmtime": reads_after_a_second(time.gmtime, time.gmtime(WALL)),
    "time.ctime": reads_after_a_second(time.ctime, time.ctime(WALL)),
    "time.asctime": reads_after_a_second(time.asctime, time.asctime(time.localtime(WALL))),
    "time.strftime": reads_after_a_second(
        lambda: time.strftime("%c"), time.strftime("%c", time.localtime(WALL))
    ),
    "time.clock_gettime": reads_after_a_second(
        lambda: (
            time.clock_gettime(time.CLOCK_REALTIME),
            time.clock_gettime_ns(time.CLOCK_MONOTONIC),
        ),
        (WALL, 10**9),
    ),
    "datetime.datetime.now": reads_after_a_second(
        lambda: datetime.datetime.now(datetime.UTC), EPOCH + datetime.timedelta(seconds=1)
    ),
    "datetime.datetime.utcnow": reads_after_a_second(
        lambda: datetime.datetime.now(datetime.UTC).replace(tzinfo=None),
        (EPOCH + datetime.timedelta(seconds=1)).replace(tzinfo=None),
    ),
    "datetime.date.today": reads_after_a_second(
        datetime.date.today, datetime.date.fromtimestamp(WALL)
    ),
    "time.sleep": time_sleep_blocks_the_universe_in_virtual_time,
    "random": replays_by_seed(lambda: random.random()),
    "random.Random": replays_by_seed(lambda: (random.Random().random(), random.seed())),
    "hypothesis.register_random": replays_by_seed(lambda: REGISTERED.random()),
    "os.urandom": replays_by_seed(lambda: os.urandom(8)),
    "os.getrandom": replays_by_seed(lambda: os.getrandom(8)),
    "random.SystemRandom": replays_by_seed(lambda: random.SystemRandom().random()),
    "secrets": replays_by_seed(lambda: secrets.token_hex(8)),
    "uuid.uuid4": replays_by_seed(uuid.uuid4),
    "uuid.uuid1": uuid1_is_of_the_wall_clock,
    "asyncio.as_completed": as_completed_goes_in_argument_order,
    "asyncio.Lock.acquire": lock_acquire_remembers_its_holder,
    "asyncio.Semaphore.acquire": semaphore_acquire_remembers_its_holders,
    # A socket made in the universe connects on the simulated network (a blocking
    # connect waits in virtual time); one bound outside it is a real socket.
    "socket.socket.connect": bound_socket_probe("connect", ("127.0.0.1", 9)),
    "socket.socket.connect_ex": bound_socket_probe("connect_ex", ("127.0.0.1", 9)),
    "socket.socket.accept": socket_probe("accept"),
    "ssl.SSLContext.wrap_socket": tls_over_a_simulated_socket,
    "socket.socket.send": socket_probe("send", b"x"),
    "socket.socket.sendall": socket_probe("sendall", b"x"),
    "socket.socket.sendto": socket_probe("sendto", b"x", ("127.0.0.1", 9)),
    "socket.socket.sendmsg": socket_probe("sendmsg", [b"x"]),
    "socket.socket.recv": socket_probe("recv", 1),
    "socket.socket.recv_into": socket_probe("recv_into", bytearray(1)),
    "socket.socket.recvfrom": socket_probe("recvfrom", 1),
    "socket.socket.recvfrom_into": socket_probe("recvfrom_into", bytearray(1)),
    "socket.socket.recvmsg": socket_probe("recvmsg", 1),
    "socket.socket.recvmsg_into": socket_probe("recvmsg_into", [bytearray(1)]),
    "socket.create_connection": escapes(
        "socket.getaddrinfo", lambda: socket.create_connection(("localhost", 9))
    ),
    "socket.getaddrinfo": numeric_hosts_need_no_dns,
    "socket.gethostbyname": escapes(
        "socket.gethostbyname", lambda: socket.gethostbyname("localhost")
    ),
    "socket.gethostbyname_ex": escapes(
        "socket.gethostbyname_ex", lambda: socket.gethostbyname_ex("localhost")
    ),
    "socket.gethostbyaddr": reverse_dns_of_the_world(
        "socket.gethostbyaddr",
        lambda host: socket.gethostbyaddr(host),
        lambda name, ip: (name, [], [ip]),
    ),
    "socket.getnameinfo": reverse_dns_of_the_world(
        "socket.getnameinfo",
        lambda host: socket.getnameinfo((host, 80), 0),
        lambda name, ip: (name, "80"),
    ),
    "subprocess.Popen": escapes("subprocess.Popen", lambda: subprocess.run(["true"], check=False)),
    "os.system": escapes("os.system", lambda: os.system("true")),
    "os.posix_spawn": escapes(
        "os.posix_spawn", lambda: os.posix_spawn("/bin/true", ["true"], os.environ)
    ),
    "os.fork": escapes("os.fork", fork_and_exit_the_child),
    **escape_probes.PROBES,
    **hostfs_probes.PROBES,
}


def stdlib_rows() -> set[str]:
    return {
        entry.api
        for entry in simloom.boundary()
        if entry.treatment in ("patched", "escape") and not entry.api.startswith("loop.")
    }


def test_every_patched_or_escaping_stdlib_api_has_a_behaviour_probe() -> None:
    assert set(PROBES) == stdlib_rows()


@pytest.mark.parametrize("api", sorted(PROBES))
def test_the_table_row_holds_in_a_universe(api: str) -> None:
    if api in ("os.getrandom", "os.posix_spawn", "os.fork", "os.forkpty") and not hasattr(
        os, api[3:]
    ):
        pytest.skip(f"{api} does not exist on this platform")
    PROBES[api]()


@pytest.mark.parametrize(
    "attempt",
    [
        lambda: time.sleep(0.001),
        lambda: socket.gethostbyname("localhost"),
        lambda: subprocess.run(["true"], check=False),
    ],
)
def test_escapes_are_only_escapes_inside_a_universe(attempt: Callable[[], object]) -> None:
    attempt()  # outside: the real thing


def test_a_world_can_answer_an_escape_instead() -> None:
    async def main() -> object:
        loop = asyncio.get_running_loop()
        _boundary.simulate(loop, "socket.gethostbyname", lambda module, name: f"10.0.0.{len(name)}")
        return socket.gethostbyname("db")

    assert in_universe(main) == "10.0.0.2"

    async def elsewhere() -> object:
        return socket.gethostbyname("db")

    with pytest.raises(simloom.EscapedSimulationError):
        in_universe(elsewhere)


def test_only_escapes_of_the_table_can_be_simulated() -> None:
    async def main() -> None:
        _boundary.simulate(asyncio.get_running_loop(), "time.time", lambda module: 0.0)

    with pytest.raises(simloom.SimloomUsageError, match="not an escape"):
        in_universe(main)


# --------------------------------------------------------------------- the table

AREAS = {
    "scheduling",
    "clock",
    "randomness",
    "network",
    "dns",
    "processes",
    "signals",
    "threads",
    "files",
    "hashing",
    "identity",
}


def test_the_table_is_machine_readable() -> None:
    table = simloom.boundary()
    assert all(isinstance(entry, simloom.BoundaryEntry) for entry in table)
    rows = json.loads(json.dumps([entry._asdict() for entry in table]))
    assert {tuple(row) for row in rows} == {("api", "area", "treatment", "how")}
    assert len({entry.api for entry in table}) == len(table), "an api is listed twice"
    assert {entry.treatment for entry in table} == set(_boundary.TREATMENTS)
    assert {entry.area for entry in table} <= AREAS
    assert all(entry.how for entry in table)


def test_the_table_documents_the_known_gaps() -> None:
    documented = {e.api for e in simloom.boundary() if e.treatment == "documented"}
    for gap in ("blocking C-extension I/O", "hash(str), hash(bytes)", "id()"):
        assert gap in documented
    # Threads started in a universe run in lockstep now (tests/test_threads_lockstep.py).
    assert "threading.Thread" not in documented
    assert {e.api: e.treatment for e in simloom.boundary()}["threading.Thread"] == "simulated"


def test_every_redirected_builtin_exists_here_and_belongs_to_a_row() -> None:
    found = {target for target, _, _ in _boundary.redirected_builtins()}
    declared = {target for row in _boundary._ROWS for target, _ in row.redirects}
    platform_specific = {
        "os.getrandom",
        "os.posix_spawn",
        "os.posix_spawnp",
        "os.fork",
        "os.forkpty",
        "_thread._ThreadHandle.join",  # 3.13 (3.12 joins through a lock)
    }
    assert declared - found <= platform_specific
    assert _boundary._builtin_redirects().names == [
        target for target, _, _ in _boundary.redirected_builtins()
    ]


def dummy_call(loop: simloom.SimLoop, name: str) -> bool:
    """Call ``loop.<name>`` with ``None`` for each required argument; True if it
    raised EscapedSimulationError (also when awaited, for coroutines)."""
    method = getattr(loop, name)
    required = [
        p
        for p in inspect.signature(method).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    try:
        result = method(*[None] * len(required))
        if inspect.iscoroutine(result):
            loop.run_until_complete(result)
    except simloom.EscapedSimulationError:
        return True
    except BaseException:
        return False
    return False


PUBLIC_LOOP_METHODS = sorted(
    name
    for name in dir(asyncio.AbstractEventLoop)
    if not name.startswith("_") and callable(getattr(asyncio.AbstractEventLoop, name))
)


def test_the_loop_escapes_are_exactly_the_tables() -> None:
    escaping = set()
    for name in PUBLIC_LOOP_METHODS:
        loop = simloom.SimLoop()
        try:
            if dummy_call(loop, name):
                escaping.add(f"loop.{name}")
        finally:
            if not loop.is_running():
                loop.close()
    declared = {
        e.api
        for e in simloom.boundary()
        if e.treatment == "escape"
        and e.api.startswith("loop.")
        and e.api != "loop.call_soon_threadsafe"
    }
    assert escaping == declared


def test_call_soon_threadsafe_from_another_thread_is_the_tables_escape() -> None:
    (entry,) = [e for e in simloom.boundary() if e.api == "loop.call_soon_threadsafe"]
    assert entry.treatment == "escape"
    loop = simloom.SimLoop()
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            loop.call_soon_threadsafe(print)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    loop.close()
    assert len(errors) == 1 and isinstance(errors[0], simloom.EscapedSimulationError)


# ----------------------------------------------------------- fresh processes

CHILD = """
import json, sys
sys.path.insert(0, {tests_dir!r})
import simloom
import boundary_programs
import escape_probes
ballast = [tuple(range(i % 40)) for i in range(int(sys.argv[2]))]
for seed in json.loads(sys.argv[1]):
    program = boundary_programs.decides_with_the_real_world
    result = simloom.run(program, seed=seed, boundary=True)
    replayed = simloom.replay(program, result.tape, boundary=True)
    print(json.dumps([seed, result.digest, replayed.digest, repr(result.value)]))
"""


def child_runs(seeds: list[int], ballast: int) -> list[list[Any]]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(tests_dir=TESTS_DIR), json.dumps(seeds), str(ballast)],
        env=_hashseed.pinned_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_a_program_deciding_with_clocks_and_randomness_replays_in_a_fresh_process() -> None:
    """Acceptance: time.time(), datetime.now(), a pre-bound monotonic, random,
    uuid4, uuid1 and os.urandom all feed the schedule, and a fresh interpreter
    (hash seed pinned) gives the same digests as this one."""
    seeds = [0, 1, 2, 17, 1000]
    here = []
    for seed in seeds:
        result = simloom.run(
            boundary_programs.decides_with_the_real_world, seed=seed, boundary=True
        )
        result.raise_error()
        here.append([seed, result.digest, result.digest, repr(result.value)])
    assert child_runs(seeds, ballast=0) == here
    assert child_runs(seeds, ballast=4000) == here


def test_without_the_boundary_the_same_program_does_not_replay() -> None:
    # The acceptance program is not vacuous: its decisions really use the sources.
    digests = {
        simloom.run(boundary_programs.decides_with_the_real_world, seed=0, boundary=False).digest
        for _ in range(3)
    }
    assert len(digests) > 1


AIOHTTP_CHILD = """
import json, sys
sys.path.insert(0, {tests_dir!r})
import simloom
import boundary_programs
import escape_probes
for seed in json.loads(sys.argv[1]):
    result = simloom.run(boundary_programs.aiohttp_exchange_with_date_headers, seed=seed,
                         boundary=True)
    print(json.dumps([seed, result.digest, repr(result.value), repr(result.error)]))
"""


def test_an_aiohttp_exchange_with_date_headers_replays_in_a_fresh_process() -> None:
    """Acceptance: aiohttp stamps a Date header (and the handler a wall-clock time and
    a uuid4) into every response; with the boundary, a fresh interpreter (hash seed
    pinned) sees the same responses and the same digest, and replay agrees."""
    seeds = [0, 5, 11]
    here = []
    for seed in seeds:
        program = boundary_programs.aiohttp_exchange_with_date_headers
        result = simloom.run(program, seed=seed, boundary=True)
        result.raise_error()
        replayed = simloom.replay(program, result.tape, boundary=True)
        assert replayed.digest == result.digest
        assert replayed.value == result.value
        here.append([seed, result.digest, repr(result.value), repr(None)])
        # the Date header comes from the virtual wall clock (epoch 2025-01-01)
        assert all(date.startswith("Wed, 01 Jan 2025 00:0") for date, _ in result.value)
    proc = subprocess.run(
        [sys.executable, "-c", AIOHTTP_CHILD.format(tests_dir=TESTS_DIR), json.dumps(seeds)],
        env=_hashseed.pinned_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == here
