"""The determinism boundary: what a universe does wherever a program reaches for the
real world, and the per-universe patches behind the stdlib part of it.

:func:`boundary` is the table of every real-world API simloom knows about and its
treatment in a universe: ``simulated`` (simloom's own model answers: the scheduler,
the virtual clock), ``patched`` (the stdlib API reads the virtual clock or the
tape), ``escape`` (:class:`~simloom.EscapedSimulationError` at the call site) or
``documented`` (outside the simulation; docs/determinism.md says what to do).

:func:`enter_universe` plans the ``patched`` and ``escape`` rows that live in the
stdlib for one universe into the universe's ``_core.Restoration``, which installs
them and restores them when it ends, however it ends. The C
builtins are redirected in place (``_core.BuiltinRedirects``), so a name bound
before the universe (``from time import monotonic``), a default argument or an
attribute reaches the patch too. A handler answers only in the thread running the
universe; every other call goes to the original. An escape reached through a stdlib
wrapper (``pty.fork`` → ``os.forkpty``, ``queue.Queue.get`` → a lock's
``acquire``) is named after the wrapper the program called, read from the frames
between the program and the builtin.

The wall clock is ``wall_clock_epoch`` plus virtual time, skewed per host once the
world sets bounds (``world.set_clock_skew``, ``_skew.py``); the monotonic clocks are
``loop.time()``, never skewed. Randomness comes from one tape choice, ``world.random_seed``, drawn
the first time the universe touches a random source, so a program that never does
keeps the tape, decisions and digest it had without the boundary. From that seed:
the global ``random`` instance and ``random.Random`` instances registered with
``hypothesis.register_random`` are reseeded on first use (and their states restored
afterwards), unseeded ``random.Random()`` instances and ``random.seed()`` draw their
seeds, and ``os.urandom``/``os.getrandom`` (so ``secrets``, ``SystemRandom``,
``uuid4``) and ``uuid1`` read streams derived from it.

A world (the simulated network) can answer an ``escape`` row instead of raising,
per universe, with :func:`simulate`.

Owns: the boundary table and the stdlib patches. Must not: decide choices (it asks
the loop for ``world.random_seed``), patch anything the table does not list (a test
holds the two together), or implement the loop's own escape methods (``loop.py``
does; the table lists them).
"""

from __future__ import annotations

import _thread
import asyncio.selector_events
import datetime as _datetime
import functools
import hashlib
import inspect
import math
import random
import sys
import threading as _threading
import time
import types
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, Protocol

from . import _core, _hostfs
from .errors import ESCAPE_HINT as _ESCAPE_HINT
from .errors import EscapedSimulationError, SimloomUsageError
from .errors import raise_escaped as _raise_escaped

if TYPE_CHECKING:
    from ._skew import ClockSkew
    from .loop import SimLoop

__all__ = [
    "DEFAULT_WALL_CLOCK_EPOCH",
    "RANDOM_SEED_BOUND",
    "RANDOM_SEED_LABEL",
    "BoundaryEntry",
    "Settings",
    "boundary",
    "enter_universe",
    "machinery",
    "settings",
    "simulate",
]

#: Wall-clock time at virtual time zero, unless a run says otherwise.
DEFAULT_WALL_CLOCK_EPOCH = _datetime.datetime(2025, 1, 1, tzinfo=_datetime.UTC)
#: The tape choice every random source of a universe is seeded from; canonical 0.
RANDOM_SEED_LABEL = "world.random_seed"
RANDOM_SEED_BOUND = 2**32
#: uuid1's node in a universe: a random-looking 48-bit number with the multicast
#: bit set, as RFC 4122 prescribes for nodes that are not a hardware address.
UUID1_NODE = 0x5E_1A_00_5E_ED_01 | (1 << 40)
_UUID_EPOCH_OFFSET = 0x01B21DD213814000  # 100-ns intervals from 1582-10-15 to 1970-01-01


class BoundaryEntry(NamedTuple):
    """One row of :func:`boundary`: a real-world ``api``, the ``area`` it belongs to
    (``scheduling``, ``clock``, ``randomness``, ``network``, ``dns``, ``processes``,
    ``signals``, ``threads``, ``files``, ``hashing``, ``identity``), its
    ``treatment`` in a universe (``simulated``, ``patched``, ``escape`` or
    ``documented``) and ``how``, in words."""

    api: str
    area: str
    treatment: str
    how: str


TREATMENTS = ("simulated", "patched", "escape", "documented")


@dataclass(frozen=True)
class Settings:
    """How a universe's boundary is set up: the wall clock at virtual time zero."""

    epoch_ns: int


#: The latest wall-clock epoch a universe can start at: the last second a
#: ``datetime`` can show (a later one would make ``datetime.now()`` overflow).
_LATEST_EPOCH_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z


def _epoch_ns(wall_clock_epoch: object) -> int:
    epoch_ns = _epoch_ns_unchecked(wall_clock_epoch)
    if not 0 <= epoch_ns <= _LATEST_EPOCH_SECONDS * 1_000_000_000:
        raise SimloomUsageError(
            "wall_clock_epoch must lie between 1970-01-01 and 9999-12-31 (Unix seconds "
            f"in [0, {_LATEST_EPOCH_SECONDS}]), got {wall_clock_epoch!r}"
        )
    return epoch_ns


def _epoch_ns_unchecked(wall_clock_epoch: object) -> int:
    if isinstance(wall_clock_epoch, _datetime.datetime):
        if wall_clock_epoch.utcoffset() is None:
            raise SimloomUsageError(
                "wall_clock_epoch must be a timezone-aware datetime (e.g. "
                "datetime(2025, 1, 1, tzinfo=timezone.utc)), got a naive one: "
                f"{wall_clock_epoch!r}"
            )
        since_unix = wall_clock_epoch - _datetime.datetime(1970, 1, 1, tzinfo=_datetime.UTC)
        return since_unix // _datetime.timedelta(microseconds=1) * 1000
    if (
        isinstance(wall_clock_epoch, int | float)
        and not isinstance(wall_clock_epoch, bool)
        and math.isfinite(wall_clock_epoch)
        and wall_clock_epoch >= 0
    ):
        return round(wall_clock_epoch * 1_000_000) * 1000
    raise SimloomUsageError(
        "wall_clock_epoch must be a timezone-aware datetime or non-negative Unix "
        f"seconds, got {wall_clock_epoch!r}"
    )


@functools.lru_cache(maxsize=64)
def _settings_for(wall_clock_epoch: object) -> Settings:
    return Settings(_epoch_ns(wall_clock_epoch))


def settings(boundary: object, wall_clock_epoch: object) -> Settings | None:
    """Validate a run's ``boundary=`` and ``wall_clock_epoch=``; ``None`` when the
    boundary is off. (Cached: an exploration asks once per universe.)"""
    if not isinstance(boundary, bool):
        raise SimloomUsageError(f"boundary must be True or False, got {boundary!r}")
    try:
        cached = _settings_for(wall_clock_epoch)
    except TypeError:  # unhashable: not an epoch either
        cached = Settings(_epoch_ns(wall_clock_epoch))
    return cached if boundary else None


# ---------------------------------------------------------------- the universe


class _EntropyStream:
    """Deterministic bytes: BLAKE2b over a counter, keyed by the universe's seed."""

    __slots__ = ("buffer", "counter", "key")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.counter = 0
        self.buffer = b""

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            block = hashlib.blake2b(self.counter.to_bytes(8, "little"), key=self.key)
            self.buffer += block.digest()
            self.counter += 1
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


class _Universe:
    """The boundary's state for one running universe."""

    __slots__ = (
        "_random_seed",
        "_registered",
        "_streams",
        "_uuid_module_state",
        "clock",
        "epoch_ns",
        "loop",
        "randoms_seen",
        "resumed_states",
        "saved_states",
        "simulated",
        "skew",
        "tempfile_names",
        "unseeded_randoms",
        "uuid1_last_timestamp",
    )

    def __init__(self, loop: SimLoop, settings: Settings) -> None:
        self.loop = loop
        #: The virtual clock, readable even while the loop is busy (a finaliser or
        #: a collector callback run in the middle of scheduling reads it too).
        self.clock = loop._clock_view()
        self.epoch_ns = settings.epoch_ns
        self._random_seed: int | None = None
        #: Byte streams by purpose (``os.urandom``, ``ssl.RAND_bytes``), made on
        #: first use.
        self._streams: dict[str, _EntropyStream] = {}
        #: ``random.Random`` instances seen in this universe, by id (kept alive so
        #: an id is never reused for another instance).
        self.randoms_seen: dict[int, random.Random] = {}
        #: Instances whose state is put back when the universe ends.
        self.saved_states: list[tuple[Any, object]] = []
        self._registered: dict[int, int] | None = None
        self.unseeded_randoms = 0
        self.uuid1_last_timestamp = 0
        #: Escape APIs a world answers in this universe (see :func:`simulate`).
        self.simulated: dict[str, Callable[..., object]] = {}
        self._uuid_module_state: tuple[Any, object] | None = None
        #: A managed generator's state inside the universe when it was last left,
        #: by id (``leave`` fills it, the next first use takes it).
        self.resumed_states: dict[int, Any] = {}
        #: Per-host wall-clock skew, once the world turns it on (``_skew``).
        self.skew: ClockSkew | None = None
        #: tempfile's name generator before the universe, when files are simulated.
        self.tempfile_names: tuple[Any, object] | None = None

    # -- time

    def wall_ns(self) -> int:
        """The wall clock of the code running now: the epoch plus virtual time, and
        the running host's skew if the world set one."""
        if self.skew is None:
            return self.epoch_ns + self.clock.now_ns()
        return self.skew.wall_ns(self.epoch_ns, self.clock.now_ns())

    def wall_seconds(self) -> int:
        return self.wall_ns() // 1_000_000_000

    # -- randomness

    def random_seed(self) -> int:
        """The tape choice every random source is derived from (drawn once, at the
        first use of randomness in the universe)."""
        if self._random_seed is None:
            self._random_seed = int(self.loop._choose(RANDOM_SEED_LABEL, RANDOM_SEED_BOUND))
        return self._random_seed

    def derive(self, purpose: str, index: int = 0) -> int:
        """A 64-bit seed for one source, independent of the others' use."""
        text = f"{self.random_seed()}:{purpose}:{index}".encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")

    def entropy(self, purpose: str, size: int) -> bytes:
        """``size`` bytes of the stream for ``purpose``, derived from the tape: each
        source has its own stream, so one source's use does not shift another's."""
        stream = self._streams.get(purpose)
        if stream is None:
            stream = self._streams[purpose] = _EntropyStream(
                self.derive(purpose).to_bytes(8, "little")
            )
        return stream.read(size)

    def urandom(self, size: int) -> bytes:
        return self.entropy("urandom", size)

    def registered_randoms(self) -> dict[int, int]:
        """``id(instance) → registration key`` of the ``random.Random`` instances
        registered with ``hypothesis.register_random``."""
        if self._registered is None:
            self._registered = {
                id(instance): key
                for key, instance in _registered_randoms()
                if isinstance(instance, random.Random)
            }
        return self._registered

    def managed_seed_purpose(self, instance: random.Random) -> str | None:
        """How a managed instance's seed is derived, or ``None`` if simloom leaves
        the instance alone (explicitly seeded, or private to some library)."""
        if instance is _GLOBAL_RANDOM:
            return "random"
        key = self.registered_randoms().get(id(instance))
        return None if key is None else f"registered:{key}"

    def first_use(self, instance: random.Random, reseed: bool) -> None:
        """Note ``instance``; a managed one has its state saved for the end of the
        universe and, if ``reseed``, is seeded from the tape."""
        self.randoms_seen[id(instance)] = instance
        purpose = self.managed_seed_purpose(instance)
        if purpose is None:
            return
        self.saved_states.append((instance, _RANDOM_GETSTATE(instance)))
        resumed = self.resumed_states.pop(id(instance), None)
        if resumed is not None:
            _RANDOM_SETSTATE(instance, resumed)
        elif reseed:
            _RANDOM_SEED(instance, self.derive(purpose))

    # -- entering and leaving

    def plan(self, guard: _core.Restoration) -> None:
        """Add entering this universe in this thread to ``guard`` (a
        ``_core.Restoration``, which installs and undoes everything a universe
        changes at C level, so no interrupt can leave half of it behind): the
        thread's entry in the registry, the builtin redirects (process-wide while
        any universe uses them), and :meth:`enter`/:meth:`leave` for uuid1's and the
        reseeded generators' states."""
        guard.claim(_active, _get_ident(), self, "a universe is already running in this thread")
        guard.redirects(_builtin_redirects())
        guard.call(self.enter, self.leave)

    def enter(self) -> None:
        uuid = sys.modules.get("uuid")
        last_timestamp = getattr(uuid, "_last_timestamp", None)
        if last_timestamp is not None:
            # uuid1's pure-Python path keeps the last timestamp process-wide.
            self._uuid_module_state = (uuid, last_timestamp)
            setattr(uuid, "_last_timestamp", None)  # noqa: B010 - private, untyped
        for instance in _other_registered_randoms():
            # Random-likes simloom cannot watch (numpy's global generator): what
            # Hypothesis does with them, seeded to 0 for the universe and restored.
            self.saved_states.append((instance, instance.getstate()))
            instance.seed(0)
        tempfile = sys.modules.get("tempfile")
        if tempfile is not None and getattr(self.loop, "_files_enabled", False):
            # Temporary names on a host's disk come from the universe's tape: a
            # fresh generator (seeded on first use, see _random_seed), not the
            # process's, whose state earlier universes moved on.
            self.tempfile_names = (tempfile, getattr(tempfile, "_name_sequence", None))
            setattr(tempfile, "_name_sequence", None)  # noqa: B010 - private, untyped

    def leave(self) -> None:
        """Put back every state the universe changed. Safe to run again (an
        interrupt makes the guard retry it) and after a partial :meth:`enter`.
        A universe entered again (a ``SimLoop`` run more than once) goes on from
        where its generators were, not from their seeds."""
        failures: list[BaseException] = []
        for instance, state in reversed(self.saved_states):
            try:
                if isinstance(instance, random.Random):
                    if id(instance) not in self.resumed_states:
                        self.resumed_states[id(instance)] = _RANDOM_GETSTATE(instance)
                    _RANDOM_SETSTATE(instance, state)
                else:
                    instance.setstate(state)
            except Exception as exc:  # pragma: no cover - a broken Random-like
                failures.append(exc)
        self.saved_states.clear()
        self.randoms_seen.clear()
        if self.tempfile_names is not None:
            tempfile, names = self.tempfile_names
            setattr(tempfile, "_name_sequence", names)  # noqa: B010
            self.tempfile_names = None
        uuid = sys.modules.get("uuid")
        if self._uuid_module_state is not None:
            uuid, last = self._uuid_module_state
            setattr(uuid, "_last_timestamp", last)  # noqa: B010
        elif getattr(uuid, "_last_timestamp", None) is not None:
            setattr(uuid, "_last_timestamp", None)  # noqa: B010 - set in the universe
        if failures:  # pragma: no cover
            raise failures[0]


_get_ident = _thread.get_ident
#: The universe running in each thread (thread id → universe).
_active: dict[int, _Universe] = {}
_hostfs.universes = _active  # the file handlers ask it which universe runs
_redirects: _core.BuiltinRedirects | None = None

_GLOBAL_RANDOM: random.Random = random._inst
_C_RANDOM = random.Random.__mro__[1]  # _random.Random, the C base class
_C_RANDOM_SEED: Callable[..., object] = _C_RANDOM.__dict__["seed"]
# random.Random's own (Python) methods: they keep gauss_next with the state.
_RANDOM_SEED = random.Random.seed
_RANDOM_GETSTATE = random.Random.getstate
_RANDOM_SETSTATE = random.Random.setstate


_compat_module: types.ModuleType | None = None


def _hypothesis_compat() -> types.ModuleType | None:
    """``simloom._hypothesis_compat`` once Hypothesis's generator registry exists
    (before that, nobody can have registered a generator: no import needed)."""
    global _compat_module
    if _compat_module is None and "hypothesis.internal.entropy" in sys.modules:
        from . import _hypothesis_compat as _compat

        _compat_module = _compat
    return _compat_module


def _registered_randoms() -> list[tuple[int, object]]:
    """``(key, generator)`` registered with ``hypothesis.register_random``."""
    compat = _hypothesis_compat()
    return [] if compat is None else compat.registered_randoms()


#: The registry's version (see ``_compat.random_registry_version``) when the
#: generators below were listed: registered Random-likes that are not
#: ``random.Random`` (numpy's global generator), as weak references.
_other_randoms_version: object = None
_other_randoms: list[Any] = []


def _other_registered_randoms() -> list[Any]:
    """Registered generators simloom cannot watch for first use (numpy's): listed
    again only when the registry changed, so a universe pays nothing for them
    unless there are some."""
    global _other_randoms_version, _other_randoms
    compat = _hypothesis_compat()
    if compat is None:
        return []
    version = compat.random_registry_version()
    if version != _other_randoms_version:
        _other_randoms = [
            weakref.ref(instance)
            for _, instance in compat.registered_randoms()
            if not isinstance(instance, random.Random) and instance is not random
        ]
        _other_randoms_version = version
    return [instance for ref in _other_randoms if (instance := ref()) is not None]


def enter_universe(
    guard: _core.Restoration, loop: SimLoop, settings: Settings | None
) -> _Universe | None:
    """Add the boundary of the universe about to run on ``loop`` in this thread to
    ``guard`` (nothing when ``settings`` is ``None``).

    The builtins are redirected process-wide while any universe uses them and act
    only in the threads running one; leaving the guard restores every builtin,
    every random state the universe reseeded and uuid1's state, however the
    universe ends, an interrupt included.
    """
    if settings is None:
        return None
    universe = _Universe(loop, settings)
    universe.plan(guard)
    return universe


def machinery[Method: Callable[..., Any]](method: Method) -> Method:
    """Decorate a method simloom's own machinery runs inside a universe (a choice
    source answering a decision, for instance Hypothesis's draws) so that the
    builtins it calls are the real ones: it is not the program, and the loop is busy
    deciding while it runs."""

    @functools.wraps(method)
    def outside_the_universe(*args: Any, **kwargs: Any) -> Any:
        thread = _get_ident()
        universe = _active.pop(thread, None)
        try:
            return method(*args, **kwargs)
        finally:
            if universe is not None:
                _active[thread] = universe

    return outside_the_universe  # type: ignore[return-value]


def simulate(loop: SimLoop, api: str, implementation: Callable[..., object]) -> None:
    """In the universe running on ``loop``, answer the ``escape`` row ``api`` (for
    instance ``socket.getaddrinfo``) with ``implementation``, called with the same
    arguments as the builtin (the receiver first), instead of raising. For the
    simulated world; the table's treatment of ``api`` should say so."""
    if api not in _ESCAPE_APIS:
        raise SimloomUsageError(f"{api!r} is not an escape the boundary patches")
    universe = universe_of(loop)
    if universe is None:
        raise SimloomUsageError("no universe with the boundary is running on this loop")
    universe.simulated[api] = implementation


def universe_of(loop: SimLoop) -> _Universe | None:
    """The boundary's state of the universe running on ``loop`` (None: the boundary
    is off, or nothing runs there)."""
    for universe in _active.values():
        if universe.loop is loop:
            return universe
    return None


# ----------------------------------------------------------------- handlers
#
# Each handler is called with the builtin's receiver (module, class or instance)
# and its arguments, and returns the result, or NotImplemented for "run the
# original": always outside a universe, and for arguments it leaves alone.


class LockstepParty(Protocol):
    """A lockstep thread's switch points (``_lockstep``), as the boundary's handlers
    call them in that thread; each returns the builtin's result or NotImplemented."""

    def acquire(self, lock: Any, timeout: object, caller: types.FrameType) -> object: ...

    def join(self, handle: Any, timeout: object, caller: types.FrameType) -> object: ...

    def sleep(self, seconds: float) -> object: ...

    def wait_descriptors(
        self,
        receiver: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        seconds: float | None,
    ) -> object: ...

    def queue_get(self, items: Any, timeout: float | None) -> object: ...


#: The lockstep threads of every universe (thread id → its switch points), kept by
#: ``_lockstep`` while each runs its turns.
lockstep_parties: dict[int, LockstepParty] = {}
#: ``_lockstep.nudge`` (registered by it): the universe's thread did something a
#: parked lockstep thread may be waiting for (a put on a queue, a loop's wake-up
#: byte): the threads look again after the current step.
threads_nudged: Callable[[Any], None] | None = None
#: ``_lockstep.loop_thread_waits`` (registered by it): the universe's own thread
#: about to wait for another thread gives the lockstep threads their turns first.
loop_thread_waits: Callable[[Callable[[], bool]], bool] | None = None


def _here() -> _Universe | None:
    return _active.get(_get_ident())


def _wall_time(receiver: object) -> object:
    universe = _active.get(_get_ident())
    if universe is None:
        return NotImplemented
    # Whole seconds plus the fraction: as exact as a float allows (dividing the
    # nanoseconds, a 61-bit integer, would round first).
    seconds, nanoseconds = divmod(universe.wall_ns(), 1_000_000_000)
    return seconds + nanoseconds / 1e9


def _wall_time_ns(receiver: object) -> object:
    universe = _active.get(_get_ident())
    return NotImplemented if universe is None else universe.wall_ns()


def _monotonic(receiver: object) -> object:
    universe = _active.get(_get_ident())
    return NotImplemented if universe is None else universe.clock.time()


def _monotonic_ns(receiver: object) -> object:
    universe = _active.get(_get_ident())
    return NotImplemented if universe is None else universe.clock.now_ns()


def _now_for(function: Callable[..., object]) -> Callable[..., object]:
    """``localtime``/``gmtime``/``ctime`` with no time given: of the wall clock."""

    def handler(receiver: object, *args: object) -> object:
        universe = _here()
        if universe is None or (args and args[0] is not None):
            return NotImplemented
        return function(universe.wall_seconds())

    return handler


def _asctime(receiver: object, *args: object) -> object:
    universe = _here()
    if universe is None or args:
        return NotImplemented
    return time.asctime(time.localtime(universe.wall_seconds()))


def _strftime(receiver: object, *args: object) -> object:
    universe = _here()
    if universe is None or len(args) != 1:
        return NotImplemented
    return time.strftime(args[0], time.localtime(universe.wall_seconds()))  # type: ignore[arg-type]


_WALL_CLOCK_IDS = {getattr(time, "CLOCK_REALTIME", None)} - {None}
_MONOTONIC_CLOCK_IDS = {
    getattr(time, name, None)
    for name in ("CLOCK_MONOTONIC", "CLOCK_MONOTONIC_RAW", "CLOCK_BOOTTIME", "CLOCK_UPTIME")
} - {None}


def _clock_gettime(nanoseconds: bool) -> Callable[..., object]:
    def handler(receiver: object, *args: object) -> object:
        universe = _here()
        if universe is None or len(args) != 1:
            return NotImplemented
        if args[0] in _WALL_CLOCK_IDS:
            now_ns = universe.wall_ns()
        elif args[0] in _MONOTONIC_CLOCK_IDS:
            now_ns = universe.clock.now_ns()
        else:
            return NotImplemented  # CPU-time clocks stay real (documented)
        if nanoseconds:
            return now_ns
        whole, fraction = divmod(now_ns, 1_000_000_000)
        return whole + fraction / 1e9

    return handler


def _split_wall(universe: _Universe) -> tuple[int, _datetime.timedelta]:
    seconds, nanoseconds = divmod(universe.wall_ns(), 1_000_000_000)
    return seconds, _datetime.timedelta(microseconds=nanoseconds // 1000)


def _datetime_now(cls: Any, tz: Any = None) -> object:
    universe = _here()
    if universe is None:
        return NotImplemented
    seconds, fraction = _split_wall(universe)
    return cls.fromtimestamp(seconds, tz) + fraction


_UTCNOW_DEPRECATION = (
    "datetime.datetime.utcnow() is deprecated and scheduled for removal in a future "
    "version. Use timezone-aware objects to represent datetimes in UTC: "
    "datetime.datetime.now(datetime.UTC)."
)


def _datetime_utcnow(cls: Any) -> object:
    universe = _here()
    if universe is None:
        return NotImplemented
    # As the original does (stacklevel 2: the caller; the trampoline has no frame).
    warnings.warn(_UTCNOW_DEPRECATION, DeprecationWarning, stacklevel=2)
    seconds, fraction = _split_wall(universe)
    utc = cls.fromtimestamp(seconds, _datetime.UTC)
    return utc.replace(tzinfo=None) + fraction


def _random_use(instance: random.Random, *args: object) -> object:
    """``random()``, ``getrandbits()``, ``getstate()``, ``setstate()`` of any
    ``random.Random``: the first use of a managed one in a universe seeds it."""
    universe = _active.get(_get_ident())
    if universe is not None and id(instance) not in universe.randoms_seen:
        universe.first_use(instance, reseed=True)
    return NotImplemented


def _random_seed(instance: random.Random, *args: object) -> object:
    """``seed()`` of any ``random.Random`` (``Random()`` calls it): with no seed,
    from the tape instead of the operating system."""
    universe = _here()
    if universe is None:
        return NotImplemented
    if id(instance) not in universe.randoms_seen:
        universe.first_use(instance, reseed=False)
    if args and args[0] is not None:
        return NotImplemented
    universe.unseeded_randoms += 1
    _C_RANDOM_SEED(instance, universe.derive("Random()", universe.unseeded_randoms))
    return None


def _urandom(receiver: object, size: object, *rest: object, **options: object) -> object:
    universe = _here()
    if universe is None or not isinstance(size, int) or size < 0:
        return NotImplemented
    return universe.urandom(size)


def _uuid_generate_time(receiver: object) -> object:
    """``_uuid.generate_time_safe()``, behind ``uuid.uuid1()``: a version-1 UUID of
    the wall clock, a clock sequence from the tape and :data:`UUID1_NODE`."""
    universe = _here()
    if universe is None:
        return NotImplemented
    import uuid

    timestamp = universe.wall_ns() // 100 + _UUID_EPOCH_OFFSET
    timestamp = max(timestamp, universe.uuid1_last_timestamp + 1)
    universe.uuid1_last_timestamp = timestamp
    clock_seq = universe.derive("uuid1.clock_seq") & 0x3FFF
    fields = (
        timestamp & 0xFFFFFFFF,
        (timestamp >> 32) & 0xFFFF,
        (timestamp >> 48) & 0x0FFF,
        (clock_seq >> 8) & 0x3F,
        clock_seq & 0xFF,
        UUID1_NODE,
    )
    return uuid.UUID(fields=fields, version=1).bytes, None


def _escape(api: str, what: str) -> Callable[..., object]:
    """A handler raising :class:`EscapedSimulationError` for ``api`` in a universe
    (unless a world answers it, see :func:`simulate`)."""

    def handler(receiver: object, *args: object, **kwargs: object) -> object:
        universe = _here()
        if universe is None:
            return NotImplemented
        simulated = universe.simulated.get(api)
        if simulated is not None:
            return simulated(receiver, *args, **kwargs)
        raise EscapedSimulationError(f"{api}(): {what} ({_ESCAPE_HINT}).")

    handler.__qualname__ = f"escape[{api}]"
    return handler


def _descriptor_wait(receiver: object, *args: object, **kwargs: object) -> object:
    """``epoll.poll`` and ``select.select``: a lockstep thread's wait is
    a switch point (:meth:`simloom._lockstep._Party.wait_descriptors`); a wait that
    does not block (timeout 0) or any other thread's is the real call."""
    party = lockstep_parties.get(_get_ident())
    if party is None:
        return NotImplemented
    if receiver is None or isinstance(receiver, types.ModuleType):  # select.select(r, w, x[, t])
        if len(args) < 3 or len(args) > 4 or kwargs:
            return NotImplemented
        timeout: object = args[3] if len(args) == 4 else None
    else:  # epoll.poll(timeout=None, maxevents=-1), in seconds
        if len(args) > 2 or not kwargs.keys() <= {"timeout", "maxevents"}:
            return NotImplemented
        timeout = args[0] if args else kwargs.get("timeout")
    if timeout is None:
        seconds = None
    elif isinstance(timeout, int | float) and not isinstance(timeout, bool):
        if timeout == 0:
            return NotImplemented
        seconds = None if timeout < 0 else float(timeout)
    else:
        return NotImplemented  # the original says what is wrong with it
    return party.wait_descriptors(receiver, args, kwargs, seconds)


def _sleep(receiver: object, seconds: object) -> object:
    universe = _here()
    if (party := lockstep_parties.get(_get_ident())) is not None:
        try:
            if not seconds > 0:  # type: ignore[operator]
                return NotImplemented
        except TypeError:
            return NotImplemented
        return party.sleep(float(seconds))  # type: ignore[arg-type]
    try:
        blocks = universe is not None and seconds > 0  # type: ignore[operator]
    except TypeError:
        return NotImplemented  # the original says what is wrong with the argument
    if not blocks:
        return NotImplemented  # time.sleep(0) blocks nothing
    assert universe is not None
    # The loop's thread blocks, so the whole universe does: on a real loop nothing
    # else runs meanwhile and its clock runs on. Here the virtual clock moves on by
    # the duration, and timers that fell due meanwhile run after the current step.
    universe.loop._blocking_sleep(float(seconds))  # type: ignore[arg-type]
    return None


def _is_numeric_host(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _dns(api: str, what: str, host_argument: int | None) -> Callable[..., object]:
    """A DNS escape; numeric hosts (no lookup happens) go through."""
    escape = _escape(api, what)

    def handler(receiver: object, *args: object, **kwargs: object) -> object:
        if _here() is None:
            return NotImplemented
        if host_argument is not None and args and _is_numeric_host(args[host_argument]):
            return NotImplemented
        return escape(receiver, *args, **kwargs)

    return handler


def _reverse_dns(api: str, answer: str) -> Callable[..., object]:
    """Reverse DNS in a universe: answered from the world's names
    (``simloom.net.<answer>``); an escape when the universe has no world."""
    escape = _escape(api, "it resolves an address with real DNS")

    def handler(receiver: object, *args: object, **kwargs: object) -> object:
        universe = _here()
        if universe is None:
            return NotImplemented
        world = universe.loop._get_world()
        if world is None or kwargs:
            return escape(receiver, *args, **kwargs)
        from . import net

        return getattr(net, answer)(world, *args)

    return handler


def _ssl_rand_bytes(receiver: object, size: object) -> object:
    """``ssl.RAND_bytes(n)``: its own stream derived from the tape."""
    universe = _here()
    if universe is None or not isinstance(size, int) or size < 0:
        return NotImplemented  # the original says what is wrong with the argument
    return universe.entropy("ssl.RAND_bytes", size)


# -- escapes named after the API the program called
#
# Some escapes are reached through stdlib wrappers: ``pty.fork`` ends in
# ``os.forkpty``, ``os.spawnv`` in ``os.fork``, ``queue.Queue.get`` in a lock's
# ``acquire``. The message names the outermost wrapper the program called, read
# from the Python frames between the program and the builtin (a builtin has none of
# its own, so the handler's caller is the wrapper, or the program).


def _frame_module(frame: types.FrameType) -> str:
    name = frame.f_globals.get("__name__")
    return name if isinstance(name, str) else ""


def _outermost(frame: types.FrameType | None, modules: dict[str, str]) -> str | None:
    """``public.module.qualname`` of the outermost of the consecutive frames, from
    ``frame`` outwards, that belong to ``modules`` (module → public name)."""
    outermost = None
    while frame is not None and (public := modules.get(_frame_module(frame))) is not None:
        outermost = f"{public}.{frame.f_code.co_qualname}"
        frame = frame.f_back
    return outermost


_PROCESS_WRAPPERS = {"os": "os", "pty": "pty"}


def _process_escape(api: str, what: str) -> Callable[..., object]:
    """An escape of ``os``'s process functions, named after the wrapper the program
    called (``pty.fork``, ``os.spawnv``, ``os.execvp``) when there is one."""
    default = _escape(api, what)

    def handler(receiver: object, *args: object, **kwargs: object) -> object:
        universe = _here()
        if universe is None:
            return NotImplemented
        if api in universe.simulated:
            return default(receiver, *args, **kwargs)
        called = _outermost(sys._getframe(1), _PROCESS_WRAPPERS) or api
        raise EscapedSimulationError(f"{called}(): {what} ({_ESCAPE_HINT}).")

    handler.__qualname__ = f"escape[{api}]"
    return handler


def _signal_escape(api: str, what: str) -> Callable[..., object]:
    """A signal escape that leaves simloom's own code alone (masking or deferring
    Ctrl-C around its own bookkeeping is not the program reaching for signals)."""
    escape = _escape(api, what)

    def handler(receiver: object, *args: object, **kwargs: object) -> object:
        if _here() is None:
            return NotImplemented
        caller: types.FrameType | None = sys._getframe(1)
        while caller is not None and _frame_module(caller) == "signal":
            caller = caller.f_back  # signal.py's wrappers (signal.signal, pthread_sigmask)
        if caller is not None and _frame_module(caller).partition(".")[0] == "simloom":
            return NotImplemented
        return escape(receiver, *args, **kwargs)

    handler.__qualname__ = f"escape[{api}]"
    return handler


# -- waiting for another thread
#
# A universe runs on one thread; nothing another thread does is part of it. A wait
# for another thread from that thread blocks the universe for real time (and
# forever when the other thread is waiting on the loop: run_coroutine_threadsafe's
# future). Every blocking wait of threading, queue and concurrent.futures ends in a
# C builtin: a lock's acquire (Condition.wait acquires a fresh "waiter" lock that
# notify() releases, and Event, Semaphore, Barrier, Queue and Future wait through
# Condition.wait), Thread.join (its lock on 3.12, _thread._ThreadHandle.join on
# 3.13) or queue.SimpleQueue.get. Their handlers try the non-blocking form first,
# so a wait that would return at once (an Event already set, a free lock, a
# finished thread, a non-empty queue, timeout 0) stays allowed; only a wait that
# would block raises. Not every blocking acquire is a wait for another thread,
# though: these pass through to the real call:
#
# - the primitives' internal mutexes (``with self._cond:`` inside Event.set),
#   held only for a few instructions;
# - the stdlib's own locks (logging's handler lock, importlib's module locks);
# - waits simloom's own code makes (the executor's worker threads, the watchdog),
#   and anything run under :func:`machinery`;
# - Thread.start's wait for the new thread to start running.

_THREAD_MODULES = {
    "threading": "threading",
    "queue": "queue",
    "concurrent.futures._base": "concurrent.futures",
    "concurrent.futures.thread": "concurrent.futures",
}
#: Frames whose lock acquire is a wait for another thread, not a mutex.
_WAITING_CODE = frozenset(
    function.__code__
    for function in (
        _threading.Condition.wait,
        getattr(_threading.Thread, "_wait_for_tstate_lock", None),  # 3.12
    )
    if function is not None
)
#: Modules of tools that wrap the lock methods in Python (blockbuster, as anyio's
#: suite runs it): their frame stands between the primitive and the builtin and is
#: looked through.
_TRANSPARENT_WRAPPERS = frozenset({"blockbuster.blockbuster"})


def _past_wrappers(frame: types.FrameType | None) -> types.FrameType | None:
    """``frame``, or the first frame below it that is not a transparent wrapper's."""
    while frame is not None and _frame_module(frame) in _TRANSPARENT_WRAPPERS:
        frame = frame.f_back
    return frame


#: simloom's own wrappers of waiting primitives (``_lockstep``'s parking versions of
#: ``Future.result`` and friends, registered by it): on the universe's thread they
#: call the original, whose wait is still the program's.
transparent_code: set[types.CodeType] = set()

#: Waits that end as soon as another thread gets going.
_BRIEF_WAIT_CODE = frozenset({_threading.Thread.start.__code__})


def _own_or_stdlib(module: str) -> bool:
    """True for simloom's own modules and the standard library's."""
    top = module.partition(".")[0]
    return top == "simloom" or top in sys.stdlib_module_names


def _waiting_api(caller: types.FrameType | None, direct: str, waits: bool) -> str | None:
    """The API a blocking wait of the thread running the universe was called
    through, or ``None`` when the wait is not the program's (see above). ``caller``
    is the frame that called the builtin; ``direct`` names the builtin when the
    program called it itself; ``waits`` says whether the builtin waits for another
    thread even when a stdlib primitive calls it (a Thread.join, a queue), rather
    than only when the caller is a wait (Condition.wait's waiter lock)."""
    caller = _past_wrappers(caller)
    if caller is None:
        return direct
    module = _frame_module(caller)
    if module not in _THREAD_MODULES:
        return None if _own_or_stdlib(module) else direct
    if not waits and caller.f_code not in _WAITING_CODE:
        return None  # a primitive's internal mutex
    frame: types.FrameType | None = caller
    outermost = direct
    while frame is not None and (public := _THREAD_MODULES.get(_frame_module(frame))):
        if frame.f_code in _BRIEF_WAIT_CODE:
            return None
        outermost = f"{public}.{frame.f_code.co_qualname}"
        frame = frame.f_back
        while frame is not None and frame.f_code in transparent_code:
            frame = frame.f_back
    if frame is not None and _own_or_stdlib(_frame_module(frame)):
        return None
    return outermost


_WAIT_WHAT = (
    "it blocks the thread running the universe until another thread acts, for real "
    "time or forever; in a coroutine, await an asyncio primitive or "
    "asyncio.wrap_future(...)"
)


def _wait_escape(api: str) -> EscapedSimulationError:
    return EscapedSimulationError(f"{api}(): {_WAIT_WHAT} ({_ESCAPE_HINT}).")


def _blocks(blocking: object, timeout: object) -> bool | None:
    """Whether ``acquire(blocking, timeout)`` may wait; ``None`` for arguments the
    original refuses (it says what is wrong with them)."""
    if not isinstance(timeout, int | float) or isinstance(timeout, bool):
        return None
    if math.isnan(timeout) or (timeout < 0 and timeout != -1):
        return None
    if not blocking:
        return None if timeout != -1 else False
    return timeout != 0


_NON_BLOCKING = (False,)


def _lock_acquire(api: str) -> Callable[..., object]:
    """``acquire()`` and ``__enter__`` of ``_thread.lock`` / ``_thread.RLock``."""

    def handler(lock: Any, *args: object, **kwargs: object) -> object:
        # Hot (every acquire in the process while a universe runs): the common
        # cases first, without a call.
        if args == _NON_BLOCKING and not kwargs:
            return NotImplemented  # acquire(False), the try below among them
        thread = _get_ident()
        if _active.get(thread) is None and thread not in lockstep_parties:
            return NotImplemented
        blocking: object = True
        timeout: object = -1
        if args or kwargs:
            if len(args) > 2 or not kwargs.keys() <= {"blocking", "timeout"}:
                return NotImplemented
            blocking = args[0] if args else kwargs.get("blocking", True)
            timeout = args[1] if len(args) > 1 else kwargs.get("timeout", -1)
            if not _blocks(blocking, timeout):
                return NotImplemented
        # A free lock (or an RLock this thread holds) is left to the original
        # acquire, in C, which takes it at once. The handler never takes the lock
        # itself: a KeyboardInterrupt (a signal is handled right after any call
        # returns) between a trial acquire and the return would leave it held with
        # no ``with`` block to release it.
        if not _held_elsewhere(lock):
            return NotImplemented
        if thread in lockstep_parties:
            # A lockstep thread (``_lockstep``): a switch point, not an escape.
            return lockstep_parties[thread].acquire(lock, timeout, sys._getframe(1))
        return _contended(api, sys._getframe(1), lock)

    handler.__qualname__ = f"escape[{api}]"
    return handler


_RLOCK_TYPE = _thread.RLock


def _held_elsewhere(lock: Any) -> bool:
    """Whether acquiring ``lock`` would wait for another thread, read without
    taking it (``_thread.RLock`` has no ``locked()``: its repr says)."""
    if type(lock) is _RLOCK_TYPE:
        return not lock._is_owned() and repr(lock).startswith("<locked")  # type: ignore[attr-defined]
    return bool(lock.locked())


def _contended(api: str, caller: types.FrameType, lock: Any) -> object:
    """A blocking acquire of a lock another thread holds, from the universe's
    thread: the lockstep threads run until it is free (one of them holds it), or
    an escape when it is the program's wait for another thread."""
    called = _waiting_api(caller, api, waits=False)
    if called is None:
        return NotImplemented
    if loop_thread_waits is not None and loop_thread_waits(lambda: not _held_elsewhere(lock)):
        return NotImplemented  # free now: the original acquire takes it at once
    error = _wait_escape(called)
    waiter = _past_wrappers(caller)
    if waiter is not None and waiter.f_code is _TSTATE_WAIT_CODE:
        # 3.12's Thread.join: an exception out of this acquire would make
        # _wait_for_tstate_lock release the running thread's tstate lock and mark
        # it stopped (its bpo-45274 guard), so the thread would outlive the
        # universe unseen. The acquire fails instead (as a timeout), and
        # :func:`thread_join` raises the escape once the join returns.
        deferred_join_escapes[_get_ident()] = error
        return False
    raise error


#: 3.12: ``threading.Thread._wait_for_tstate_lock`` (Thread.join waits in it).
_TSTATE_WAIT_CODE = getattr(
    getattr(_threading.Thread, "_wait_for_tstate_lock", None), "__code__", None
)
#: Escapes of Thread.join calls (by thread), raised by :func:`thread_join`.
deferred_join_escapes: dict[int, BaseException] = {}


def thread_join(thread: Any, timeout: float | None = None) -> None:
    """``threading.Thread.join`` while a universe runs (3.12): the original, then the
    escape its wait deferred (see :func:`_contended`)."""
    try:
        _original_thread_join(thread, timeout)
    finally:
        error = deferred_join_escapes.pop(_get_ident(), None)
        if error is not None:
            raise error


_original_thread_join = _threading.Thread.join
transparent_code.add(thread_join.__code__)


def _simple_queue_get(items: Any, *args: object, **kwargs: object) -> object:
    """``_queue.SimpleQueue.get(block=True, timeout=None)``: a blocking get on an
    empty queue is a lockstep thread's switch point, or the universe's thread's wait
    for the threads (an escape when they cannot put an item)."""
    thread = _get_ident()
    party = lockstep_parties.get(thread)
    if party is None and _active.get(thread) is None:
        return NotImplemented
    if len(args) > 2 or not kwargs.keys() <= {"block", "timeout"}:
        return NotImplemented
    block = args[0] if args else kwargs.get("block", True)
    timeout = args[1] if len(args) > 1 else kwargs.get("timeout")
    if not block or not items.empty():
        return NotImplemented  # the real get returns (or raises Empty) at once
    if timeout is not None:
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout < 0:
            return NotImplemented  # the original says what is wrong with it
        if timeout == 0:
            return NotImplemented
    if party is not None:
        return party.queue_get(items, None if timeout is None else float(timeout))
    called = _waiting_api(sys._getframe(1), "queue.SimpleQueue.get", waits=True)
    if called is None:
        return NotImplemented
    if loop_thread_waits is not None and loop_thread_waits(lambda: not items.empty()):
        return NotImplemented  # an item is there now
    raise _wait_escape(called)


def _simple_queue_put(items: Any, *args: object, **kwargs: object) -> object:
    """``_queue.SimpleQueue.put``: from the universe's thread, the lockstep threads
    look again after the step (:data:`threads_nudged`)."""
    universe = _active.get(_get_ident())
    if universe is not None and threads_nudged is not None:
        threads_nudged(universe.loop)
    return NotImplemented


def _thread_handle_join(handle: Any, *args: object, **kwargs: object) -> object:
    """``_thread._ThreadHandle.join(timeout=None)`` (Thread.join on 3.13)."""
    party = lockstep_parties.get(_get_ident())
    if (_here() is None and party is None) or len(args) > 1 or not set(kwargs) <= {"timeout"}:
        return NotImplemented
    timeout = args[0] if args else kwargs.get("timeout")
    if timeout is not None:
        if not isinstance(timeout, int | float) or isinstance(timeout, bool):
            return NotImplemented
        if timeout <= 0:
            return NotImplemented  # no wait
    if handle.is_done():
        return NotImplemented
    if party is not None:
        return party.join(handle, timeout, sys._getframe(1))
    called = _waiting_api(sys._getframe(1), "threading.Thread.join", waits=True)
    if called is None:
        return NotImplemented
    if loop_thread_waits is not None and loop_thread_waits(handle.is_done):
        return NotImplemented  # the thread has ended: the original join returns
    raise _wait_escape(called)


# ------------------------------------------------------------------- the table


Handler = Callable[..., object]


@dataclass(frozen=True)
class _Row:
    """A table row and, for the stdlib rows simloom patches, what it redirects:
    pairs of a C builtin's dotted path (``module.function`` or
    ``module.Class.method``) and its handler."""

    entry: BoundaryEntry
    redirects: tuple[tuple[str, Handler], ...] = ()


def _row(
    api: str,
    area: str,
    treatment: str,
    how: str,
    targets: tuple[str, ...] = (),
    handler: Handler | None = None,
) -> _Row:
    redirects = tuple((target, handler) for target in targets) if handler else ()
    return _Row(BoundaryEntry(api, area, treatment, how), redirects)


def _loop_simulated(name: str, area: str, what: str) -> _Row:
    return _row(
        f"loop.{name}",
        area,
        "simulated",
        f"on the simulated network: {what} (docs/world.md); an escape with world=False",
    )


#: The loop methods that are always escapes, written once: ``SimLoop``'s methods
#: raise from here (:func:`refuse_loop_call`) and the boundary table lists them from
#: here. name -> (area, what the call would do to the real world).
LOOP_ESCAPES: dict[str, tuple[str, str]] = {
    "sendfile": ("network", "it sends a real file over a transport"),
    "sock_recvfrom": ("network", "it reads from a real socket"),
    "sock_recvfrom_into": ("network", "it reads from a real socket"),
    "sock_sendto": ("network", "it writes to a real socket"),
    "sock_sendfile": ("network", "it sends a real file over a real socket"),
    "subprocess_exec": ("processes", "it starts a real process"),
    "subprocess_shell": ("processes", "it starts a real process"),
    "connect_read_pipe": ("processes", "it reads from a real pipe"),
    "connect_write_pipe": ("processes", "it writes to a real pipe"),
    "add_signal_handler": ("signals", "it installs a real signal handler"),
    "remove_signal_handler": ("signals", "it removes a real signal handler"),
    "add_reader": ("files", "it watches a real file descriptor"),
    "remove_reader": ("files", "it watches a real file descriptor"),
    "add_writer": ("files", "it watches a real file descriptor"),
    "remove_writer": ("files", "it watches a real file descriptor"),
}

#: The loop's socket methods that a world simulates on a socket of its network
#: (simloom._sim_socket) and that are escapes on any other socket.
SOCKET_LOOP_CALLS: dict[str, str] = {
    "connect_accepted_socket": "it wraps a real socket",
    "sock_recv": "it reads from a real socket",
    "sock_recv_into": "it reads from a real socket",
    "sock_sendall": "it writes to a real socket",
    "sock_accept": "it accepts on a real socket",
}

#: How a program usually reaches a loop escape, when not by calling it directly.
_LOOP_ESCAPE_CALLERS = {
    "subprocess_exec": "asyncio.create_subprocess_exec()",
    "subprocess_shell": "asyncio.create_subprocess_shell()",
}


def refuse_loop_call(name: str) -> NoReturn:
    """Raise the :class:`EscapedSimulationError` of ``loop.<name>()`` (one of
    :data:`LOOP_ESCAPES`)."""
    what = SOCKET_LOOP_CALLS[name] if name in SOCKET_LOOP_CALLS else LOOP_ESCAPES[name][1]
    caller = _LOOP_ESCAPE_CALLERS.get(name)
    _raise_escaped(f"loop.{name}()" + (f" / {caller}" if caller else ""), what)


def _loop_escapes(area: str) -> list[_Row]:
    return [
        _row(f"loop.{name}", area, "escape", f"EscapedSimulationError at the call: {what}")
        for name, (row_area, what) in LOOP_ESCAPES.items()
        if row_area == area
    ]


_SOCKET_METHOD_ESCAPES = {
    "recvmsg_into": "it reads from a real socket",
}


#: The ``_socket.socket`` methods a world simulates (see :mod:`simloom._sim_socket`):
#: name -> what the call would do to the real world (None: nothing, the real
#: method runs on a socket the simulated network does not know).
_SIMULATED_SOCKET_METHODS: dict[str, str | None] = {
    "bind": "it binds a real socket to a real address",
    "listen": "it listens on a real socket",
    "_accept": "it accepts on a real socket",
    "connect": "it connects a real socket",
    "connect_ex": "it connects a real socket",
    "send": "it writes to a real socket",
    "sendall": "it writes to a real socket",
    "recv": "it reads from a real socket",
    "recv_into": "it reads from a real socket",
    # Simulated on Unix sockets (simloom._sim_unix); escapes on any other.
    "sendto": "it writes to a real socket",
    "sendmsg": "it writes to a real socket",
    "recvfrom": "it reads from a real socket",
    "recvfrom_into": "it reads from a real socket",
    "recvmsg": "it reads from a real socket",
    "getsockname": None,
    "getpeername": None,
    "shutdown": None,
    "close": None,
}

_sim_socket_module: types.ModuleType | None = None


def _simulated_socket(api: str, name: str, what: str | None) -> Callable[..., object]:
    """A handler for ``_socket.socket.<name>``: in a universe with a world the
    simulated network answers (:mod:`simloom._sim_socket`); otherwise, or on a
    socket it does not know, the escape (``what``) or the real method (None)."""
    escape = _escape(api, what) if what is not None else None

    def handler(receiver: object, *args: object, **kwargs: object) -> object:
        global _sim_socket_module
        universe = _here()
        if universe is None:
            return NotImplemented
        world = universe.loop._get_world() if api not in universe.simulated else None
        if world is not None:
            if _sim_socket_module is None:
                from . import _sim_socket

                _sim_socket_module = _sim_socket
            result = _sim_socket_module.call(name, world, receiver, *args, **kwargs)
            if result is not NotImplemented:
                return result
        if escape is None:
            return NotImplemented
        if _self_pipe_use(sys._getframe(1)):
            if name == "send" and threads_nudged is not None:
                # The universe's thread woke a thread's own loop: the threads look
                # again once the byte is written.
                threads_nudged(universe.loop)
            return NotImplemented
        return escape(receiver, *args, **kwargs)

    handler.__qualname__ = f"simulated_socket[{api}]"
    return handler


def _socketpair(receiver: object, *args: object) -> object:
    """``_socket.socketpair``: in a universe with a world, two connected simulated
    Unix sockets (simloom._sim_unix); otherwise the real pair."""
    universe = _here()
    world = universe.loop._get_world() if universe is not None else None
    if world is None or _for_a_selector_loop(sys._getframe(1)):
        return NotImplemented
    from . import _sim_socket

    return _sim_socket.socketpair(world, *args)


#: A stock selector loop's own use of its self-pipe (a second loop run in a lockstep
#: thread, such as anyio's blocking portal): ``call_soon_threadsafe`` writes the
#: wake-up byte, the loop reads it. The pipe is real (see
#: :func:`_for_a_selector_loop`) and only the universe's threads use it, so the
#: bytes never leave the process: not an escape.
_SELF_PIPE_CODE = frozenset(
    {
        getattr(asyncio.selector_events.BaseSelectorEventLoop, name).__code__
        for name in ("_write_to_self", "_read_from_self")
    }
)


def _self_pipe_use(caller: types.FrameType | None) -> bool:
    """Whether a socket call is a stock selector loop's use of its self-pipe
    (looking through a wrapper such as blockbuster's)."""
    caller = _past_wrappers(caller)
    return caller is not None and caller.f_code in _SELF_PIPE_CODE


def _for_a_selector_loop(frame: types.FrameType | None) -> bool:
    """Whether ``socket.socketpair()`` is a stock selector loop's self-pipe (a
    second loop run in a lockstep thread): it must stay real, as its selector
    watches it for real."""
    for _ in range(3):
        if frame is None:
            return False
        if frame.f_code.co_name == "_make_self_pipe":
            return True
        frame = frame.f_back
    return False


def _ssl_wrap_socket(
    receiver: object,
    sock: object,
    server_side: object = False,
    server_hostname: object = None,
    *,
    owner: object = None,
    session: object = None,
) -> object:
    """``SSLContext.wrap_socket`` (``_ssl._SSLContext._wrap_socket``) on a simulated
    socket: OpenSSL would read and write its real descriptor, which is never
    connected, so it works over memory BIOs instead, its records carried by the
    simulated socket (:mod:`simloom._sim_tls`)."""
    universe = _here()
    world = universe.loop._get_world() if universe is not None else None
    if world is None:
        return NotImplemented
    import socket

    from . import _sim_socket, _sim_tls

    if not _sim_socket.known(world, sock):
        return NotImplemented
    if not isinstance(sock, socket.socket) or not (
        server_hostname is None or isinstance(server_hostname, str)
    ):
        return NotImplemented  # the original says what is wrong with the arguments
    return _sim_tls.SimulatedTLS(receiver, sock, bool(server_side), server_hostname, owner, session)


def _socket_api(name: str) -> str:
    return "socket.socket.accept" if name == "_accept" else f"socket.socket.{name}"


def _socket_method_row(name: str, what: str) -> _Row:
    api = _socket_api(name)
    return _row(
        api,
        "network",
        "escape",
        f"EscapedSimulationError at the call: {what} (blocking I/O on a real socket, "
        "from code under test or a library such as requests)",
        (f"_socket.socket.{name}",),
        _escape(api, what),
    )


def _simulated_socket_row(name: str, what: str | None) -> _Row:
    api = _socket_api(name)
    fallback = (
        f"EscapedSimulationError ({what}) with world=False, on a socket made outside "
        "the universe, or where the call would block the loop's thread"
        if what is not None
        else "the real method on a socket the simulated network does not know"
    )
    return _row(
        api,
        "network",
        "patched",
        "on the simulated network when the universe has a world (a socket.socket is "
        f"a simulated socket: simloom._sim_socket); {fallback}",
        (f"_socket.socket.{name}",),
        _simulated_socket(api, name, what),
    )


#: ``signal`` functions that change or use the process's real signal state.
_SIGNAL_ESCAPES = {
    "signal": "it installs a real signal handler, which would outlive the universe "
    "(signal.getsignal, read-only, is allowed)",
    "setitimer": "it arms a real interval timer",
    "alarm": "it arms a real alarm",
    "pthread_kill": "it sends a real signal",
    "raise_signal": "it sends a real signal",
    "set_wakeup_fd": "it changes where the process reports real signals",
    "siginterrupt": "it changes how real signals interrupt system calls",
    "pthread_sigmask": "it changes the real thread's signal mask",
    "pause": "it blocks the thread until a real signal arrives",
    "sigwait": "it blocks the thread until a real signal arrives",
    "sigwaitinfo": "it blocks the thread until a real signal arrives",
    "sigtimedwait": "it blocks the thread until a real signal arrives",
}

_SIGNAL_ROWS = tuple(
    _row(
        f"signal.{name}",
        "signals",
        "escape",
        f"EscapedSimulationError at the call: {what}",
        (f"_signal.{name}",),
        _signal_escape(f"signal.{name}", what),
    )
    for name, what in _SIGNAL_ESCAPES.items()
)

#: Waits for another thread, through a lock's acquire (see _waiting_api).
_THREAD_WAITS = {
    "threading.Event.wait": "unless the event is set",
    "threading.Condition.wait": "(and wait_for) unless the timeout is 0",
    "threading.Semaphore.acquire": "(BoundedSemaphore too) unless a slot is free",
    "threading.Barrier.wait": "unless this thread is the last to arrive",
    "queue.Queue.get": "(LifoQueue, PriorityQueue too) unless an item is there",
    "queue.Queue.put": "unless there is room",
    "queue.Queue.join": "unless every item is done",
    "concurrent.futures.Future.result": "(and exception) unless the future is done: "
    "asyncio.run_coroutine_threadsafe(...).result() in the loop's thread would never return",
    "concurrent.futures.wait": "(and as_completed) unless the futures are done",
}

_THREAD_ROWS = (
    _Row(
        BoundaryEntry(
            "threading.Lock.acquire",
            "threads",
            "escape",
            "in the thread running the universe, a lock a lockstep thread holds: the "
            "lockstep threads run (the loop blocked meanwhile) until it is free; "
            "EscapedSimulationError when they cannot free it and the call would wait "
            "(blocking, a positive timeout, `with lock:`); a free lock or "
            "blocking=False / timeout=0 is allowed, and so are the stdlib's own locks "
            "(logging's)",
        ),
        (
            ("_thread.LockType.acquire", _lock_acquire("threading.Lock.acquire")),
            ("_thread.LockType.__enter__", _lock_acquire("threading.Lock.acquire")),
        ),
    ),
    _Row(
        BoundaryEntry(
            "threading.RLock.acquire",
            "threads",
            "escape",
            "as threading.Lock.acquire, when another thread holds it (re-entering "
            "the thread's own RLock is allowed)",
        ),
        (
            ("_thread.RLock.acquire", _lock_acquire("threading.RLock.acquire")),
            ("_thread.RLock.__enter__", _lock_acquire("threading.RLock.acquire")),
        ),
    ),
    *(
        _row(
            api,
            "threads",
            "escape",
            f"EscapedSimulationError in the thread running the universe when it would "
            f"wait for another thread, {when}; through the waiting lock's acquire",
        )
        for api, when in _THREAD_WAITS.items()
    ),
    _row(
        "queue.SimpleQueue.get",
        "threads",
        "escape",
        "in a lockstep thread, a wait on an empty queue is a switch point (it parks "
        "until an item is there, the timeout in virtual time), so the workers of a "
        "concurrent.futures.ThreadPoolExecutor the program makes wait for work; in the "
        "thread running the universe, the lockstep threads run until an item is "
        "there, EscapedSimulationError when they cannot put one",
        ("_queue.SimpleQueue.get",),
        _simple_queue_get,
    ),
    _row(
        "queue.SimpleQueue.put",
        "threads",
        "patched",
        "from the thread running the universe, onto a queue a lockstep thread waits "
        "on: the threads look again after the step (so the waiting worker takes it "
        "before the loop next idles)",
        ("_queue.SimpleQueue.put", "_queue.SimpleQueue.put_nowait"),
        _simple_queue_put,
    ),
    _row(
        "threading.Thread.join",
        "threads",
        "escape",
        "in the thread running the universe, a lockstep thread: the lockstep threads "
        "run (the loop blocked meanwhile, their sleeps passing in virtual time) until it "
        "ends; EscapedSimulationError when it cannot end without the loop (it waits on "
        "it) or is not the universe's, unless the timeout is 0 (Thread.start, which "
        "waits for the new thread to run, is allowed)",
        ("_thread._ThreadHandle.join",),  # 3.13; 3.12 joins through the lock
        _thread_handle_join,
    ),
)


def _files_row(api: str, treatment: str, how: str, *targets: str) -> _Row:
    """A row of file I/O on the host's disk (simloom._hostfs handles its builtins)."""
    return _Row(
        BoundaryEntry(api, "files", treatment, how),
        tuple((target, _hostfs.HANDLERS[target]) for target in targets),
    )


_ON_THE_DISK = (
    "the program's call acts on the running host's simulated disk (with a world and "
    "files=True; docs/files.md says which calls are the program's)"
)

_FILE_ROWS: tuple[_Row, ...] = (
    _files_row(
        "open",
        "patched",
        f"builtins.open and io.open: {_ON_THE_DISK}; text and buffering as the stock "
        "open(), fileno() a simulated descriptor",
        "_io.open",
    ),
    _files_row(
        "os.open",
        "patched",
        f"{_ON_THE_DISK}; returns a simulated descriptor (from 2**30), directories too; "
        "/dev, /proc and /sys are EscapedSimulationError",
        "os.open",
    ),
    _files_row(
        "os.read",
        "patched",
        "on a simulated descriptor, the host's disk (os.write, os.close, os.lseek, "
        "os.fstat, os.ftruncate and os.sendfile between two simulated descriptors "
        "too); a real descriptor (stdout, a file opened outside) stays real",
        "os.read",
        "os.write",
        "os.close",
        "os.lseek",
        "os.fstat",
        "os.ftruncate",
        "os.sendfile",
    ),
    _files_row(
        "os.fsync",
        "patched",
        "on a simulated descriptor, the disk's fsync: the file's data (and the "
        "directory entries up to its latest) survive a crash; on a directory's "
        "descriptor, its entries (os.fdatasync likewise)",
        "os.fsync",
        "os.fdatasync",
    ),
    _files_row(
        "os.stat",
        "patched",
        f"{_ON_THE_DISK} (os.lstat, os.access, os.readlink, os.listxattr too; "
        "os.path.exists, isfile, isdir, getsize through them)",
        "os.stat",
        "os.lstat",
        "os.access",
        "os.readlink",
        "os.listxattr",
    ),
    _files_row(
        "os.listdir",
        "patched",
        f"{_ON_THE_DISK}, sorted by name (os.scandir too, so os.walk and glob)",
        "os.listdir",
        "os.scandir",
    ),
    _files_row(
        "os.mkdir",
        "patched",
        f"{_ON_THE_DISK}: a directory entry, pending until fsynced (os.rmdir, "
        "os.makedirs, os.removedirs too)",
        "os.mkdir",
        "os.rmdir",
    ),
    _files_row(
        "os.remove",
        "patched",
        f"{_ON_THE_DISK}: a pending delete (os.unlink too)",
        "os.remove",
        "os.unlink",
    ),
    _files_row(
        "os.rename",
        "patched",
        f"{_ON_THE_DISK}: a pending rename, replacing the target (os.replace too); "
        "EscapedSimulationError between a host and the real disk",
        "os.rename",
        "os.replace",
    ),
    _files_row("os.truncate", "patched", _ON_THE_DISK, "os.truncate"),
    _files_row(
        "os.getcwd",
        "patched",
        "the running host's working directory, / at every start (os.getcwdb and os.chdir too)",
        "os.getcwd",
        "os.getcwdb",
        "os.chdir",
    ),
    _files_row(
        "os.utime",
        "patched",
        f"{_ON_THE_DISK}: times and modes kept in memory for stat, lost on a crash (os.chmod too)",
        "os.utime",
        "os.chmod",
    ),
    _files_row(
        "os.link",
        "escape",
        "EscapedSimulationError for a path of the host: the simulated disk has no links "
        "(os.symlink too)",
        "os.link",
        "os.symlink",
    ),
    _files_row(
        "os.mkfifo",
        "escape",
        "EscapedSimulationError for a path of the host: no named pipes or device nodes "
        "(os.mknod too, but for a socket's name: a simulated Unix socket's bind makes "
        "one in the host's tree)",
        "os.mkfifo",
        "os.mknod",
    ),
    _files_row(
        "os.chown",
        "escape",
        "EscapedSimulationError for a path of the host: the disk has no owners (os.lchown too)",
        "os.chown",
        "os.lchown",
    ),
    _files_row(
        "os.getxattr",
        "escape",
        "EscapedSimulationError for a path of the host: no extended attributes "
        "(os.setxattr, os.removexattr too; os.listxattr says ENOTSUP)",
        "os.getxattr",
        "os.setxattr",
        "os.removexattr",
    ),
    _files_row(
        "os.statvfs",
        "escape",
        "EscapedSimulationError for a path of the host (so shutil.disk_usage): its "
        "space is the disk's capacity",
        "os.statvfs",
    ),
    _files_row(
        "sqlite3.connect",
        "escape",
        "EscapedSimulationError for a database file of a host: SQLite opens and writes "
        "it in C, on the real disk (':memory:' is allowed)",
        "_sqlite3.connect",
    ),
    _row(
        "pathlib.Path",
        "files",
        "patched",
        "through open and the os rows: read_text, write_bytes, open, exists, mkdir, "
        "iterdir, glob, unlink, rename, stat... on the running host's disk",
    ),
    _row(
        "shutil",
        "files",
        "patched",
        "through open and the os rows: copyfile (its sendfile fast path between "
        "simulated files), copy, copy2, copytree, move, rmtree (with directory "
        "descriptors)",
    ),
    _row(
        "tempfile",
        "files",
        "patched",
        "through os.open and os.mkdir: temporary files and directories on the running "
        "host's disk, under tempfile.gettempdir() (there in every host), with names "
        "drawn from the tape",
    ),
    _row(
        "aiofiles",
        "files",
        "patched",
        "through open and the os rows, in lockstep executor threads that run on the "
        "host that started them",
    ),
    _row(
        "io.FileIO",
        "files",
        "documented",
        "constructed directly from a path (not through open()) it opens a real file: "
        "its constructor is a type slot simloom cannot redirect; use open()",
    ),
    _row(
        "mmap.mmap",
        "files",
        "documented",
        "a simulated file has no OS descriptor: mmap.mmap(f.fileno()) fails with "
        "OSError(EBADF), it never maps a real file",
    ),
    _row(
        "C-extension file I/O",
        "files",
        "documented",
        "extensions that open files in C (dbm, lmdb, h5py, ssl's load_verify_locations) "
        "read and write the real disk; sqlite3.connect is caught, the others are not",
    ),
)

_ROWS: tuple[_Row, ...] = (
    # -- scheduling: the loop itself
    _row(
        "loop.call_soon",
        "scheduling",
        "simulated",
        "which ready callback runs next is a tape decision (sched.pick)",
    ),
    _row(
        "loop.call_later",
        "scheduling",
        "simulated",
        "timers on the virtual clock; equal deadlines are a tape decision (timer.order)",
    ),
    _row("loop.call_at", "scheduling", "simulated", "as loop.call_later"),
    _row(
        "loop.time",
        "clock",
        "simulated",
        "virtual time: integer nanoseconds from 0, jumping to the next deadline when "
        "nothing is ready",
    ),
    _row("asyncio.sleep", "clock", "simulated", "a timer on the virtual clock"),
    _row(
        "loop.create_task",
        "scheduling",
        "simulated",
        "tasks are named Task-1, Task-2... and hashed by creation number, so sets of "
        "tasks iterate in the same order in every run",
    ),
    _row(
        "loop.run_in_executor",
        "threads",
        "simulated",
        "the function runs on a real worker thread in lockstep with the loop (one of "
        "them runs at a time; waits on the loop park it and resume as loop steps), so "
        "asyncio.to_thread and run_coroutine_threadsafe(...).result() in a job work "
        "deterministically",
    ),
    _row(
        "asyncio.as_completed",
        "scheduling",
        "patched",
        "coroutines are wrapped into tasks in argument order, not set order",
    ),
    _row(
        "asyncio.Lock.acquire",
        "scheduling",
        "patched",
        "behaves as the stock one and remembers the task that holds the lock (release "
        "forgets it), so a deadlock report names who holds what each waiter waits for",
    ),
    _row(
        "asyncio.Semaphore.acquire",
        "scheduling",
        "patched",
        "behaves as the stock one (BoundedSemaphore too) and remembers the tasks that "
        "hold a unit (a release gives back the releaser's unit, or the oldest), so a "
        "deadlock report names them",
    ),
    _row(
        "gc",
        "identity",
        "simulated",
        "automatic collection is off; the loop collects at fixed step counts and at "
        "the end, so finalisers run at the same step in every run",
    ),
    _row(
        "simloom.sometimes",
        "randomness",
        "simulated",
        "a tape decision (sometimes:<label>); simloom.draw likewise (draw:<label>)",
    ),
    _row(
        "loop.call_soon_threadsafe",
        "threads",
        "escape",
        "EscapedSimulationError when called from a thread other than the loop's",
    ),
    # -- clocks
    _row(
        "time.time",
        "clock",
        "patched",
        "the wall clock: wall_clock_epoch plus virtual time",
        ("time.time",),
        _wall_time,
    ),
    _row("time.time_ns", "clock", "patched", "as time.time", ("time.time_ns",), _wall_time_ns),
    _row(
        "time.monotonic",
        "clock",
        "patched",
        "loop.time(), also where bound before the universe (from time import monotonic)",
        ("time.monotonic",),
        _monotonic,
    ),
    _row(
        "time.monotonic_ns",
        "clock",
        "patched",
        "virtual nanoseconds",
        ("time.monotonic_ns",),
        _monotonic_ns,
    ),
    _row(
        "time.perf_counter",
        "clock",
        "patched",
        "as time.monotonic",
        ("time.perf_counter",),
        _monotonic,
    ),
    _row(
        "time.perf_counter_ns",
        "clock",
        "patched",
        "as time.monotonic_ns",
        ("time.perf_counter_ns",),
        _monotonic_ns,
    ),
    _row(
        "time.localtime",
        "clock",
        "patched",
        "without an argument: of the wall clock (in the process's time zone)",
        ("time.localtime",),
        _now_for(time.localtime),
    ),
    _row(
        "time.gmtime",
        "clock",
        "patched",
        "without an argument: of the wall clock",
        ("time.gmtime",),
        _now_for(time.gmtime),
    ),
    _row(
        "time.ctime",
        "clock",
        "patched",
        "without an argument: of the wall clock",
        ("time.ctime",),
        _now_for(time.ctime),
    ),
    _row(
        "time.asctime",
        "clock",
        "patched",
        "without an argument: of the wall clock",
        ("time.asctime",),
        _asctime,
    ),
    _row(
        "time.strftime",
        "clock",
        "patched",
        "without a time tuple: of the wall clock",
        ("time.strftime",),
        _strftime,
    ),
    _Row(
        BoundaryEntry(
            "time.clock_gettime",
            "clock",
            "patched",
            "CLOCK_REALTIME reads the wall clock, CLOCK_MONOTONIC (and _RAW, BOOTTIME) "
            "virtual time; clock_gettime_ns likewise",
        ),
        (
            ("time.clock_gettime", _clock_gettime(nanoseconds=False)),
            ("time.clock_gettime_ns", _clock_gettime(nanoseconds=True)),
        ),
    ),
    _row(
        "datetime.datetime.now",
        "clock",
        "patched",
        "the wall clock, in the given time zone (local time without one)",
        ("datetime.datetime.now",),
        _datetime_now,
    ),
    _row(
        "datetime.datetime.utcnow",
        "clock",
        "patched",
        "the wall clock in UTC (with the stdlib's DeprecationWarning)",
        ("datetime.datetime.utcnow",),
        _datetime_utcnow,
    ),
    _row(
        "datetime.date.today",
        "clock",
        "patched",
        "through time.time (datetime.datetime.today too)",
    ),
    _row(
        "time.process_time",
        "clock",
        "documented",
        "real CPU time (and time.thread_time, os.times, resource.getrusage, "
        "CLOCK_PROCESS_CPUTIME_ID, CLOCK_TAI): do not base decisions on it",
    ),
    _row(
        "time.sleep",
        "clock",
        "patched",
        "on the loop's thread it blocks the whole universe, as it blocks a real loop: "
        "the virtual clock moves on by the duration at once and nothing else runs "
        "meanwhile (timers that fell due run after the step)",
        ("time.sleep",),
        _sleep,
    ),
    # -- randomness
    _row(
        "random",
        "randomness",
        "patched",
        "the global instance (random.random, random.choice, ...) is seeded from the "
        "tape (world.random_seed) when the universe first uses it; its state is "
        "restored afterwards",
        (
            "_random.Random.random",
            "_random.Random.getrandbits",
            "_random.Random.getstate",
            "_random.Random.setstate",
        ),
        _random_use,
    ),
    _row(
        "random.Random",
        "randomness",
        "patched",
        "instances created without a seed (and random.seed()) are seeded from the "
        "tape; explicitly seeded instances are left alone",
        ("_random.Random.seed",),
        _random_seed,
    ),
    _row(
        "hypothesis.register_random",
        "randomness",
        "patched",
        "registered random.Random instances are seeded from the tape on first use; "
        "other registered generators (numpy's) are seeded to 0, as Hypothesis does; "
        "all are restored afterwards",
    ),
    _row(
        "os.urandom",
        "randomness",
        "patched",
        "a byte stream derived from the tape",
        ("os.urandom",),
        _urandom,
    ),
    _row(
        "os.getrandom",
        "randomness",
        "patched",
        "the same stream as os.urandom",
        ("os.getrandom",),
        _urandom,
    ),
    _row(
        "random.SystemRandom",
        "randomness",
        "patched",
        "through os.urandom (so secrets too)",
    ),
    _row("secrets", "randomness", "patched", "through os.urandom"),
    _row("uuid.uuid4", "randomness", "patched", "through os.urandom"),
    _row(
        "uuid.uuid1",
        "randomness",
        "patched",
        "the wall clock, a clock sequence from the tape and a fixed multicast node",
        ("_uuid.generate_time_safe",),
        _uuid_generate_time,
    ),
    _row(
        "ssl.RAND_bytes",
        "randomness",
        "patched",
        "a byte stream derived from the tape (its own, so it does not shift os.urandom's)",
        ("_ssl.RAND_bytes",),
        _ssl_rand_bytes,
    ),
    _row(
        "ssl (OpenSSL's own randomness)",
        "randomness",
        "documented",
        "a TLS handshake's random values and keys come from OpenSSL's generator, "
        "which simloom cannot reach: the bytes on a simulated TLS connection differ "
        "between runs, but not their lengths (with RSA certificates; an ECDSA "
        "signature's length varies), so the schedule and the digest replay",
    ),
    _row(
        "random.Random (created outside the universe)",
        "randomness",
        "documented",
        "an unregistered instance created before the universe keeps its own state "
        "across universes: register it with hypothesis.register_random",
    ),
    # -- network and DNS
    _loop_simulated("create_connection", "network", "a connection (asyncio.open_connection)"),
    _loop_simulated("create_server", "network", "a listener (asyncio.start_server)"),
    _loop_simulated("create_unix_connection", "network", "a Unix socket path of the host"),
    _loop_simulated("create_unix_server", "network", "a Unix socket path of the host"),
    _loop_simulated("create_datagram_endpoint", "network", "a UDP endpoint"),
    _loop_simulated("start_tls", "network", "TLS over memory BIOs on a simulated connection"),
    _loop_simulated("sock_connect", "network", "connects a socket.socket object"),
    *(
        _row(
            f"loop.{name}",
            "network",
            "simulated",
            "on a socket bound, connected or accepted in the universe (simloom._sim_socket): "
            f"the simulated network; EscapedSimulationError on any other socket ({what})",
        )
        for name, what in SOCKET_LOOP_CALLS.items()
    ),
    *_loop_escapes("network"),
    _loop_simulated("getaddrinfo", "dns", "strict DNS of the world's names"),
    _loop_simulated("getnameinfo", "dns", "the world's names"),
    *(_socket_method_row(name, what) for name, what in _SOCKET_METHOD_ESCAPES.items()),
    *(_simulated_socket_row(name, what) for name, what in _SIMULATED_SOCKET_METHODS.items()),
    _row(
        "ssl.SSLContext.wrap_socket",
        "network",
        "patched",
        "on a simulated socket.socket, OpenSSL over memory BIOs, its records sent and "
        "received through the simulated socket (simloom._sim_tls); the real method on "
        "any other socket",
        ("_ssl._SSLContext._wrap_socket",),
        _ssl_wrap_socket,
    ),
    _row(
        "socket.socketpair",
        "network",
        "simulated",
        "two connected Unix sockets of the simulated world (simloom._sim_unix); the real "
        "pair with world=False",
        ("_socket.socketpair",),
        _socketpair,
    ),
    _row(
        "socket.create_connection",
        "network",
        "escape",
        "through socket.getaddrinfo (a name) or socket.socket.connect",
    ),
    _row(
        "socket.getaddrinfo",
        "dns",
        "escape",
        "EscapedSimulationError for a host name; numeric addresses need no lookup",
        ("_socket.getaddrinfo",),
        _dns("socket.getaddrinfo", "it resolves a name with real DNS", 0),
    ),
    _row(
        "socket.gethostbyname",
        "dns",
        "escape",
        "as socket.getaddrinfo",
        ("_socket.gethostbyname",),
        _dns("socket.gethostbyname", "it resolves a name with real DNS", 0),
    ),
    _row(
        "socket.gethostbyname_ex",
        "dns",
        "escape",
        "as socket.getaddrinfo",
        ("_socket.gethostbyname_ex",),
        _dns("socket.gethostbyname_ex", "it resolves a name with real DNS", 0),
    ),
    _row(
        "socket.gethostbyaddr",
        "dns",
        "patched",
        "reverse DNS of the world's names (localhost for loopback; socket.herror for an "
        "address with no name); EscapedSimulationError with world=False",
        ("_socket.gethostbyaddr",),
        _reverse_dns("socket.gethostbyaddr", "host_by_address"),
    ),
    _row(
        "socket.getnameinfo",
        "dns",
        "patched",
        "as loop.getnameinfo: the world's names, ports as numbers; "
        "EscapedSimulationError with world=False",
        ("_socket.getnameinfo",),
        _reverse_dns("socket.getnameinfo", "name_info"),
    ),
    _row(
        "blocking C-extension I/O",
        "network",
        "documented",
        "drivers that do their own socket I/O in C (psycopg2, grpc's C core, "
        "mysqlclient) are invisible to simloom: they run for real and block; use an "
        "asyncio client or a stand-in",
    ),
    _row(
        "select.select",
        "files",
        "documented",
        "real file descriptors (and selectors, poll, epoll): outside the simulation, "
        "except a wait in a lockstep thread (the next row)",
    ),
    _row(
        "select.epoll.poll",
        "threads",
        "patched",
        "in a lockstep thread (select.select too), a wait for real "
        "descriptors is a switch point: the thread parks until one is ready or the "
        "timeout passes in virtual time, so an event loop of its own (a stock loop "
        "in a thread, such as anyio's blocking portal) waits for call_soon_threadsafe "
        "without blocking the universe; elsewhere, the real call",
        ("select.epoll.poll", "select.select"),
        _descriptor_wait,
    ),
    *_FILE_ROWS,
    # -- processes, signals, threads
    *_loop_escapes("processes"),
    _row(
        "subprocess.Popen",
        "processes",
        "escape",
        "EscapedSimulationError at the call: it starts a real process "
        "(subprocess.run and friends too)",
        ("_posixsubprocess.fork_exec",),
        _escape("subprocess.Popen", "it starts a real process"),
    ),
    _row(
        "os.system",
        "processes",
        "escape",
        "EscapedSimulationError at the call: it starts a real process",
        ("os.system",),
        _escape("os.system", "it starts a real process"),
    ),
    _row(
        "os.posix_spawn",
        "processes",
        "escape",
        "EscapedSimulationError at the call: it starts a real process (posix_spawnp too)",
        ("os.posix_spawn", "os.posix_spawnp"),
        _process_escape("os.posix_spawn", "it starts a real process"),
    ),
    _row(
        "os.fork",
        "processes",
        "escape",
        "EscapedSimulationError at the call: it copies the process",
        ("os.fork",),
        _process_escape("os.fork", "it copies the process"),
    ),
    _row(
        "os.forkpty",
        "processes",
        "escape",
        "EscapedSimulationError at the call: it copies the process",
        ("os.forkpty",),
        _process_escape("os.forkpty", "it copies the process"),
    ),
    _row(
        "pty.fork",
        "processes",
        "escape",
        "through os.forkpty, named pty.fork (pty.spawn likewise)",
    ),
    _row(
        "os.spawnv",
        "processes",
        "escape",
        "through os.fork, named after the function called (os.spawnl, spawnle, "
        "spawnlp, spawnlpe, spawnv, spawnve, spawnvp, spawnvpe)",
    ),
    _Row(
        BoundaryEntry(
            "os.execv",
            "processes",
            "escape",
            "EscapedSimulationError at the call: it replaces the process (os.execve, "
            "and os.execl, execle, execlp, execlpe, execvp, execvpe named after "
            "themselves)",
        ),
        (
            ("os.execv", _process_escape("os.execv", "it replaces the process")),
            ("os.execve", _process_escape("os.execve", "it replaces the process")),
        ),
    ),
    _row(
        "os.kill",
        "signals",
        "escape",
        "EscapedSimulationError at the call: it sends a real signal (to any process, this one too)",
        ("os.kill",),
        _signal_escape("os.kill", "it sends a real signal"),
    ),
    _row(
        "os.killpg",
        "signals",
        "escape",
        "as os.kill",
        ("os.killpg",),
        _signal_escape("os.killpg", "it sends a real signal"),
    ),
    *_SIGNAL_ROWS,
    _row(
        "os.getpid",
        "processes",
        "documented",
        "differs between processes (as do the host name and os.environ): "
        "cross-process replays need decisions that do not depend on them",
    ),
    *_loop_escapes("signals"),
    *_loop_escapes("files"),
    _row(
        "threading.Thread",
        "threads",
        "simulated",
        "a thread started in a universe (on its loop's thread or by a lockstep "
        "thread) runs in lockstep: one party at a time, its waits (locks, events, "
        "conditions, queues, joins, time.sleep, futures) are switch points resumed by "
        "thread.wake steps at tape-chosen positions; the boundary answers in it as in "
        "the loop's thread",
    ),
    *_THREAD_ROWS,
    # -- hashing and identity
    _row(
        "hash(str), hash(bytes)",
        "hashing",
        "documented",
        "randomised per process unless PYTHONHASHSEED is pinned: same-process "
        "replay is unaffected, cross-process replay needs it pinned "
        "(simloom.pin_hashseed(), --simloom-pin-hashseed); simloom says so in "
        "failure reports and the pytest header",
    ),
    _row(
        "id()",
        "identity",
        "documented",
        "addresses differ between runs, so sets and dicts of objects hashed by "
        "identity (plain objects, asyncio.Future) iterate in a different order: "
        "caught by the self-check (check_determinism)",
    ),
)

_ESCAPE_APIS = frozenset(
    row.entry.api for row in _ROWS if row.entry.treatment == "escape" and row.redirects
)
_TABLE = tuple(row.entry for row in _ROWS)


def boundary() -> tuple[BoundaryEntry, ...]:
    """Every real-world API simloom knows about and what a universe does there.

    Each :class:`BoundaryEntry` names the ``api``, its ``area``, the ``treatment``
    (``simulated``: simloom's model answers; ``patched``: the stdlib call is
    redirected to the virtual clock or the tape while the boundary is on;
    ``escape``: :class:`~simloom.EscapedSimulationError` at the call site;
    ``documented``: outside the simulation) and ``how`` in words. The boundary is on
    by default under ``@simloom.test`` and ``simloom.universes()`` and opt-in for
    ``simloom.run`` (``boundary=True``); see docs/determinism.md.
    """
    return _TABLE


def _resolve(path: str) -> object | None:
    """The builtin at a dotted path, or ``None`` where this platform lacks it."""
    parts = path.split(".")
    try:
        target: object = __import__(parts[0])
    except ImportError:
        return None
    for name in parts[1:]:
        if isinstance(target, type):
            target = target.__dict__.get(name)  # the descriptor, not a bound method
        else:
            target = getattr(target, name, None)
        if target is None:
            return None
    return target


_C_BUILTINS = (
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)


def _original_builtin(path: str) -> object | None:
    """The C builtin at ``path``, looking through a wrapper some other tool put
    there (``functools.wraps``' ``__wrapped__``), or ``None``."""
    found = _resolve(path)
    if found is None or isinstance(found, _C_BUILTINS):
        return found
    try:
        unwrapped = inspect.unwrap(found)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return unwrapped if isinstance(unwrapped, _C_BUILTINS) else None


def _resolve_redirected_builtins() -> list[tuple[str, object, Callable[..., object]]]:
    found = []
    for row in _ROWS:
        for target, handler in row.redirects:
            builtin = _original_builtin(target)
            if builtin is not None:
                found.append((target, builtin, handler))
    return found


def redirected_builtins() -> list[tuple[str, object, Callable[..., object]]]:
    """``(target path, builtin, handler)`` for every builtin the table redirects
    that exists on this platform.

    Resolved once, when simloom is imported: a tool that replaces one of them later
    with a Python wrapper that calls the original (blockbuster, which anyio's suite
    turns on for every test, replaces ``time.sleep`` and socket methods this way)
    still reaches the redirected builtin through its wrapper."""
    return list(_RESOLVED_BUILTINS)


def _builtin_redirects() -> _core.BuiltinRedirects:
    global _redirects
    if _redirects is None:
        if getattr(sys, "_is_gil_enabled", lambda: True)() is False:  # pragma: no cover
            raise SimloomUsageError(
                "the determinism boundary needs the GIL; run with boundary=False on a "
                "free-threaded build"
            )
        _redirects = _core.BuiltinRedirects(redirected_builtins())
    return _redirects


#: The redirected builtins, resolved when simloom is imported: before any other
#: tool can wrap them (see redirected_builtins).
_RESOLVED_BUILTINS = _resolve_redirected_builtins()
