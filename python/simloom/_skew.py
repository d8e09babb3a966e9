"""Per-host wall-clock skew: each host's clock is off by an offset and runs at its
own rate, both tape choices within the bounds the program sets.

``world.set_clock_skew(max_offset=..., max_drift_ppm=...)`` turns it on for one
universe. From then on every host, those that exist and those made later, draws two
choices the first time it is seen (``clock.offset:<host>``, ``clock.drift:<host>``),
and code running on that host reads the wall clock (``time.time``, ``time_ns``,
``datetime.now``, ``uuid1``, ... every API the boundary sends to the wall clock) as::

    epoch + offset + virtual_now * (1 + drift)

Canonical (choice 0) is no skew, so a failure shrinks toward the smallest offset and
drift that still fail it. The monotonic clocks and ``loop.time()`` are not skewed:
they are the virtual clock every host shares (a monotonic clock has no meaning across
hosts, and timers must not depend on a host). A restarted host keeps its skew: it is
the same machine with the same clock.

Each choice covers the range ``[-max, +max]``: value ``v`` in ``1..max`` is ``+v``,
``max+1..2*max`` is ``-(v-max)``, so lowering a value (what shrinking does) lowers
the size of the skew. Offsets are in nanoseconds, drifts in parts per billion.

Owns: the bounds, the per-host draws and the skewed reading. Must not: draw on the
read path (a host draws once; a reading is a dict lookup), or know how the wall
clock is patched (``_boundary`` calls :meth:`ClockSkew.wall_ns`).
"""

from __future__ import annotations

import contextvars
import math
from typing import TYPE_CHECKING

from . import _boundary
from .errors import SimloomUsageError

if TYPE_CHECKING:
    from .loop import SimLoop
    from .world import Host, World

__all__ = ["MAX_DRIFT_PPM", "MAX_OFFSET_SECONDS", "ClockSkew", "host_seen", "install"]

#: The largest ``max_offset`` (seconds): a day. Larger shifts of the whole clock
#: are what ``wall_clock_epoch`` is for.
MAX_OFFSET_SECONDS = 86_400
#: ``max_drift_ppm`` must stay below a million: at -100% a clock would stop.
MAX_DRIFT_PPM = 1_000_000

OFFSET_LABEL = "clock.offset:"
DRIFT_LABEL = "clock.drift:"

_NS_PER_SECOND = 1_000_000_000
_PPB_PER_PPM = 1_000
#: The wall clock never reads outside what ``datetime`` can show.
_LATEST_WALL_NS = _boundary._LATEST_EPOCH_SECONDS * _NS_PER_SECOND


def _signed(value: int, limit: int) -> int:
    """A choice in ``[0, 2*limit]`` as a value in ``[-limit, limit]`` whose size grows
    with the choice (0 is 0)."""
    return value if value <= limit else limit - value


class ClockSkew:
    """The skew of every host of one universe's world."""

    __slots__ = ("_by_host", "_by_incarnation", "_host_var", "_loop", "_max_drift", "_max_offset")

    def __init__(
        self,
        loop: SimLoop,
        host_var: contextvars.ContextVar[int],
        max_offset_ns: int,
        max_drift_ppb: int,
    ) -> None:
        self._loop = loop
        self._host_var = host_var
        self._max_offset = max_offset_ns
        self._max_drift = max_drift_ppb
        #: (offset ns, drift ppb) by host name, drawn once per host.
        self._by_host: dict[str, tuple[int, int]] = {}
        #: The same, by host incarnation (0: the host "main"), for the read path.
        self._by_incarnation: dict[int, tuple[int, int]] = {}

    def add(self, host: Host) -> None:
        """Draw ``host``'s skew the first time it is seen; map its current
        incarnation to it (a restart keeps the skew)."""
        skew = self._by_host.get(host.name)
        if skew is None:
            offset = self._loop._choose(OFFSET_LABEL + host.name, 2 * self._max_offset + 1)
            drift = self._loop._choose(DRIFT_LABEL + host.name, 2 * self._max_drift + 1)
            skew = (_signed(offset, self._max_offset), _signed(drift, self._max_drift))
            self._by_host[host.name] = skew
        self._by_incarnation[host._incarnation] = skew

    def wall_ns(self, epoch_ns: int, now_ns: int) -> int:
        """The wall clock of the host running now, at virtual time ``now_ns``."""
        skew = self._by_incarnation.get(self._host_var.get(0))
        if skew is None:
            return epoch_ns + now_ns
        offset, drift = skew
        wall = epoch_ns + offset + now_ns + now_ns * drift // _NS_PER_SECOND
        if wall < 0:
            return 0
        if wall > _LATEST_WALL_NS:
            return _LATEST_WALL_NS
        return wall


def _bound(name: str, value: object, limit: int, unit: str, below: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value >= limit if below else value > limit)
    ):
        upper = f"below {limit:_}" if below else f"at most {limit:_}"
        raise SimloomUsageError(
            f"{name} must be a non-negative number of {unit}, {upper}, got {value!r}"
        )
    return float(value)


def install(
    world: World, host_var: contextvars.ContextVar[int], max_offset: object, max_drift_ppm: object
) -> None:
    """``world.set_clock_skew``: validate the bounds, draw the skew of every host that
    exists (creation order), and send the universe's wall clock through it."""
    offset_s = _bound("max_offset", max_offset, MAX_OFFSET_SECONDS, "seconds")
    drift_ppm = _bound("max_drift_ppm", max_drift_ppm, MAX_DRIFT_PPM, "ppm", below=True)
    universe = _boundary.universe_of(world.loop)
    if universe is None:
        raise SimloomUsageError(
            "world.set_clock_skew() needs the determinism boundary (boundary=True): "
            "without it the wall clock is the real one"
        )
    if universe.skew is not None:
        raise SimloomUsageError("world.set_clock_skew() was already called in this universe")
    skew = ClockSkew(
        world.loop,
        host_var,
        round(offset_s * _NS_PER_SECOND),
        round(drift_ppm * _PPB_PER_PPM),
    )
    universe.skew = skew
    for host in world.hosts.values():
        skew.add(host)


def host_seen(world: World, host: Host) -> None:
    """A host was made or restarted: give it (or keep) its skew, if skew is on."""
    universe = _boundary.universe_of(world.loop)
    if universe is not None and universe.skew is not None:
        universe.skew.add(host)
