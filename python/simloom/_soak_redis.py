"""A soak shared by several processes (or machines) through one Redis server.

Each process runs ``simloom soak ... --share redis://host:port/db``; they claim
chunks of the same seed sequence from Redis and record the finished ones there:

- ``<prefix>:next``: the next fresh chunk number (chunk ``i`` is seeds
  ``[i * chunk, (i + 1) * chunk)``);
- ``<prefix>:claimed``: chunk number -> ``deadline|attempt|owner`` of the chunks
  handed out and not finished; a claim whose deadline (Redis server time) has
  passed belongs to a process that died, and is handed out again first;
- ``<prefix>:done``: chunk number -> who ran it. A chunk is recorded once
  (``HSETNX``): the shared ledger holds every seed exactly once;
- ``<prefix>:meta``: the chunk size, which every process must share.

Claims and records are Lua scripts, so each is atomic on the server.

Owns: the Redis keys of a shared soak. Must not: run universes (``_soak`` does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .errors import SimloomUsageError

__all__ = ["SharedSeeds"]

#: Seconds a claimed chunk stays its claimer's before another process may take it.
DEFAULT_LEASE = 120.0
#: How often a process with nothing to claim looks again while chunks are out
#: with other processes (seconds).
POLL = 0.05

_CLAIM = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1e6
local lease = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local owner = ARGV[3]
local claims = redis.call('HGETALL', KEYS[2])
for i = 1, #claims, 2 do
  local chunk = claims[i]
  local deadline, attempt = string.match(claims[i + 1], '^([^|]+)|(%d+)|')
  if tonumber(deadline) < now and redis.call('HEXISTS', KEYS[3], chunk) == 0 then
    attempt = tonumber(attempt) + 1
    redis.call('HSET', KEYS[2], chunk, (now + lease) .. '|' .. attempt .. '|' .. owner)
    return {tonumber(chunk), attempt, 0}
  end
end
local fresh = tonumber(redis.call('GET', KEYS[1]) or '0')
if limit >= 0 and fresh >= limit then
  return {-1, 0, #claims / 2}
end
redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], fresh, (now + lease) .. '|1|' .. owner)
return {fresh, 1, 0}
"""

_FINISH = """
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
"""

_GIVE_BACK = """
local claim = redis.call('HGET', KEYS[1], ARGV[1])
if claim then
  local _, attempt, owner = string.match(claim, '^([^|]+)|(%d+)|(.*)$')
  redis.call('HSET', KEYS[1], ARGV[1], '0|' .. attempt .. '|' .. owner)
end
return 1
"""


@dataclass(frozen=True)
class Claim:
    chunk: int
    attempt: int


class SharedSeeds:
    """The seed chunks of one shared soak, claimed from and recorded in Redis."""

    def __init__(
        self,
        url: str,
        name: str,
        *,
        chunk: int,
        universes: int | None,
        owner: str,
        lease: float = DEFAULT_LEASE,
    ) -> None:
        try:
            import redis
        except ImportError:  # pragma: no cover - redis is optional
            raise SimloomUsageError("--share needs redis-py: pip install redis") from None
        self.client: Any = redis.Redis.from_url(url)
        self.prefix = f"simloom:soak:{name}"
        self.chunk = chunk
        self.owner = owner
        self.lease = lease
        self.limit = -1 if universes is None else -(-universes // chunk)
        self.universes = universes
        self.keys = [f"{self.prefix}:{part}" for part in ("next", "claimed", "done", "meta")]
        try:
            self.client.hsetnx(self.keys[3], "chunk", chunk)
            raw: Any = self.client.hget(self.keys[3], "chunk")
            shared = int(raw)
        except redis.RedisError as exc:
            raise SimloomUsageError(f"--share {url}: {exc}") from None
        if shared != chunk:
            raise SimloomUsageError(
                f"the shared soak {name!r} hands out chunks of {shared} seeds; give --chunk {shared}"
            )
        self._claim = self.client.register_script(_CLAIM)
        self._finish = self.client.register_script(_FINISH)
        self._give_back = self.client.register_script(_GIVE_BACK)
        #: Chunks this process holds (claimed, not finished nor given back).
        self.holding: set[int] = set()

    def seeds(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk
        stop = start + self.chunk
        if self.universes is not None:
            stop = min(stop, self.universes)
        return start, stop

    def claim(self, *, wait: bool) -> Claim | None:
        """The next chunk for this process: one a dead process left first, then a
        fresh one; ``None`` when the budget is handed out (with ``wait``, only once
        no other process holds a chunk either, so a dead one's come back here)."""
        while True:
            chunk, attempt, out = (
                int(value)
                for value in self._claim(
                    keys=self.keys[:3], args=[self.lease, self.limit, self.owner]
                )
            )
            if chunk >= 0:
                self.holding.add(chunk)
                return Claim(chunk, attempt)
            if not wait or out <= len(self.holding):
                return None
            time.sleep(POLL)

    def finish(self, chunk: int, worker: str) -> bool:
        """Record ``chunk`` as run; False if it already was (it is not counted twice)."""
        self.holding.discard(chunk)
        return bool(self._finish(keys=self.keys[1:3], args=[chunk, worker]))

    def give_back(self, chunk: int) -> None:
        """Its worker died: any process may claim it again at once."""
        self.holding.discard(chunk)
        self._give_back(keys=[self.keys[1]], args=[chunk])

    def done(self) -> dict[int, str]:
        """Every chunk run by any process of the shared soak, and by whom."""
        return {
            int(chunk): worker.decode()
            for chunk, worker in self.client.hgetall(self.keys[2]).items()
        }

    def ledger_intervals(self) -> list[tuple[int, int]]:
        return [self.seeds(chunk) for chunk in sorted(self.done())]
