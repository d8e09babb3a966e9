"""Stand-in servers for the services a program talks to, run on world hosts.

Each speaks its real wire protocol over the simulated network, so unmodified
client libraries work against it, and each lives on a :class:`~simloom.world.Host`:
the host's faults (partitions, latency, crashes, restarts) apply to it like to any
program, and what it persists goes to the host's simulated disk.

* :func:`redis` (``world.redis(name)``): a Redis server (RESP2 and RESP3) with
  the append-only file and its ``appendfsync`` policies.
* :func:`postgres` (``world.postgres(name)``): a Postgres server (protocol v3,
  SQL on DuckDB) with a write-ahead log fsynced at commit.
* :func:`nats` (``world.nats(name)``): a NATS server (the core client protocol:
  subjects, wildcards, queue groups, headers, request/reply), no persistence.

Owns: the servers' protocol and state. Must not: reach the real network or disk.
"""

from __future__ import annotations

from .nats import NatsStandin, nats
from .postgres import PostgresStandin, postgres
from .redis import RedisStandin, redis

__all__ = ["NatsStandin", "PostgresStandin", "RedisStandin", "nats", "postgres", "redis"]
