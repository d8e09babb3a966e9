"""A Redis stand-in on a world host: RESP2 and RESP3, the common data types, key
expiry in the host's (virtual) wall-clock time, transactions with ``WATCH``,
pub/sub, ``SCAN``, and persistence through the append-only file.

Start one with ``world.redis("cache")`` (or :func:`redis`); connect with an
unmodified client, e.g. ``redis.asyncio.Redis(host="cache", port=6379)``.

Durability is Redis's. With ``appendonly=True`` (the default) every write command
is appended to ``appendonly.aof`` on the host's disk, and ``appendfsync`` says when
the file is fsynced, so what a power cut (``host.crash()``) loses is what real
Redis loses under that policy:

* ``"always"``: fsynced before the reply: an acknowledged write survives;
* ``"everysec"`` (the default): fsynced once a virtual second: up to the last
  second of acknowledged writes may be lost;
* ``"no"``: never fsynced by the server: anything not yet on disk may be lost.

A restart (``host.restart()``) replays the file; a torn last command (a crash in
the middle of an append) is dropped, as Redis's ``aof-load-truncated yes`` does,
and so is a transaction whose ``EXEC`` never reached the file.

Each command runs to the end without yielding (Redis is single-threaded): the
interleavings are between commands of different connections, chosen by the
scheduler like any others.

Owns: the server's state, protocol and append-only file. Must not: reach the real
network or disk (it runs on the simulated ones).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..errors import SimloomUsageError
from . import _redis_commands
from ._resp import (
    _SUBSCRIBED_OK,
    _WRONGTYPE,
    NO_REPLY,
    QUEUED,
    _command_bytes,
    _Connection,
    _Error,
    _int,
    _match,
    _now_ms,
    _NoWriter,
    _parse_commands,
    _Push,
    _read_command,
)

__all__ = ["AOF_PATH", "APPENDFSYNC_POLICIES", "RedisStandin", "redis"]

#: The ``appendfsync`` policies, as in redis.conf.
APPENDFSYNC_POLICIES = ("always", "everysec", "no")
#: The append-only file on the host's disk.
AOF_PATH = "appendonly.aof"


def redis(
    world: Any,
    name: str = "redis",
    *,
    port: int = 6379,
    appendonly: bool = True,
    appendfsync: str = "everysec",
    password: str | None = None,
    databases: int = 16,
) -> RedisStandin:
    """Start a Redis stand-in on ``world``'s host ``name`` (made if needed),
    listening on ``port``; it restarts with the host, from its append-only file."""
    if appendfsync not in APPENDFSYNC_POLICIES:
        raise SimloomUsageError(
            f"appendfsync must be one of {', '.join(map(repr, APPENDFSYNC_POLICIES))}, "
            f"got {appendfsync!r}"
        )
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise SimloomUsageError(f"port must be an integer in 1..65535, got {port!r}")
    if not isinstance(databases, int) or databases < 1:
        raise SimloomUsageError(f"databases must be a positive integer, got {databases!r}")
    host = world.host(name)
    standin = RedisStandin(
        host,
        port=port,
        appendonly=bool(appendonly),
        appendfsync=appendfsync,
        password=password,
        databases=databases,
    )
    host.spawn(standin._serve, name=f"redis-standin:{name}")
    return standin


class RedisStandin:
    """One Redis stand-in server (see the module docstring). Its state lives as long
    as the host's incarnation; a restart rebuilds it from the append-only file."""

    def __init__(
        self,
        host: Any,
        *,
        port: int,
        appendonly: bool,
        appendfsync: str,
        password: str | None,
        databases: int,
    ) -> None:
        self.host = host
        self.port = port
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.password = password.encode() if password is not None else None
        self.databases = databases
        self._dbs: list[dict[bytes, Any]] = []
        self._expires: list[dict[bytes, float]] = []
        self._versions: dict[tuple[int, bytes], int] = {}
        self._channels: dict[bytes, set[_Connection]] = {}
        self._patterns: dict[bytes, set[_Connection]] = {}
        self._aof: Any = None
        self._unsynced = False
        self._next_client = 0
        self._replay_db = 0
        #: Commands replayed from the append-only file at the last start.
        self.loaded_commands = 0
        self._commands: dict[bytes, tuple[Callable[..., Any], int, bool]] = _command_table(self)

    @property
    def url(self) -> str:
        """``redis://<host>:<port>``, for ``redis.asyncio.from_url``."""
        return f"redis://{self.host.name}:{self.port}"

    # -------------------------------------------------------------- lifecycle

    async def _serve(self) -> None:
        self._dbs = [{} for _ in range(self.databases)]
        self._expires = [{} for _ in range(self.databases)]
        self._versions = {}
        self._channels = {}
        self._patterns = {}
        self._load()
        server = await asyncio.start_server(self._client, "0.0.0.0", self.port)
        async with server:
            if self.appendonly and self.appendfsync == "everysec":
                while True:
                    await asyncio.sleep(1.0)
                    self._fsync()
            else:
                await server.serve_forever()

    def _load(self) -> None:
        self._aof = None
        self._replay_db = 0
        self.loaded_commands = 0
        if not self.appendonly:
            return
        disk = self.host.disk
        if disk.exists(AOF_PATH):
            data = disk.read_bytes(AOF_PATH)
            commands = _parse_commands(data)
            # A transaction whose EXEC never reached the file is dropped (with
            # what follows it, which can only be the torn tail).
            if b"multi" in (c[0].lower() for c in commands):
                opened = None
                for index, command in enumerate(commands):
                    verb = command[0].lower()
                    if verb == b"multi":
                        opened = index
                    elif verb == b"exec":
                        opened = None
                if opened is not None:
                    commands = commands[:opened]
            size = sum(len(_command_bytes(c)) for c in commands)
            for command in commands:
                self._replay(command)
            self.loaded_commands = len(commands)
            self._aof = disk.open(AOF_PATH, "r+")
            self._aof.truncate(size)  # a torn tail goes, as redis-check-aof --fix does
            self._aof.seek(size)
            if size != len(data):
                self._aof.fsync()
        else:
            self._aof = disk.open(AOF_PATH, "w")
            disk.fsync_dir()

    def _replay(self, command: list[bytes]) -> None:
        verb = command[0].lower()
        if verb in (b"multi", b"exec"):
            return
        if verb == b"select":
            self._replay_db = _int(command[1])
            return
        entry = self._commands.get(verb)
        if entry is None:
            return
        connection = _Connection(writer=_NoWriter(), ident=0)  # type: ignore[arg-type]
        connection.db = self._replay_db
        entry[0](connection, command[1:])

    def _append(self, connection: _Connection, commands: list[list[bytes]]) -> None:
        if self._aof is None or not commands:
            return
        data = _command_bytes([b"SELECT", b"%d" % connection.db])
        data += b"".join(_command_bytes(c) for c in commands)
        self._aof.write(data)
        self._unsynced = True
        if self.appendfsync == "always":
            self._fsync()

    def _fsync(self) -> None:
        if self._aof is not None and self._unsynced:
            self._aof.fsync()
            self._unsynced = False

    # ------------------------------------------------------------ connections

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._next_client += 1
        connection = _Connection(
            writer=writer, ident=self._next_client, authenticated=self.password is None
        )
        try:
            while True:
                try:
                    args = await _read_command(reader)
                except _Error as error:
                    connection.send(error)
                    break
                if args is None:
                    break
                if not args:
                    continue
                quit_now = args[0].lower() == b"quit"
                reply = self._execute(connection, args)
                if reply is not NO_REPLY:
                    connection.send(reply)
                if quit_now:
                    break
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._drop_subscriptions(connection)
            writer.close()

    def _execute(self, connection: _Connection, args: list[bytes]) -> Any:
        verb = args[0].lower()
        entry = self._commands.get(verb)
        if entry is None:
            error = _Error(
                f"ERR unknown command '{args[0].decode('latin-1')}', with args beginning with: "
                + " ".join(f"'{a.decode('latin-1')}'" for a in args[1:4])
            )
            if connection.multi is not None:
                connection.multi_failed = True
            return error
        handler, arity, _writes = entry
        if (arity >= 0 and len(args) != arity) or (arity < 0 and len(args) < -arity):
            if connection.multi is not None:
                connection.multi_failed = True
            return _Error(f"ERR wrong number of arguments for '{verb.decode()}' command")
        if not connection.authenticated and verb not in (b"auth", b"hello", b"quit"):
            return _Error("NOAUTH Authentication required.")
        if connection.proto == 2 and connection.subscribed and verb not in _SUBSCRIBED_OK:
            return _Error(
                f"ERR Can't execute '{verb.decode()}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / "
                "PING / QUIT / RESET are allowed in this context"
            )
        if connection.multi is not None and verb not in (
            b"exec",
            b"discard",
            b"multi",
            b"watch",
            b"quit",
        ):
            connection.multi.append(args)
            return QUEUED
        try:
            return handler(connection, args[1:])
        except _Error as error:
            return error

    # ------------------------------------------------------------------ keys

    def _db(self, connection: _Connection) -> dict[bytes, Any]:
        return self._dbs[connection.db]

    def _alive(self, db: int, key: bytes) -> bool:
        deadline = self._expires[db].get(key)
        if deadline is not None and deadline <= _now_ms():
            del self._expires[db][key]
            del self._dbs[db][key]
            self._touch(db, key)
            return False
        return key in self._dbs[db]

    def _get(self, connection: _Connection, key: bytes, kind: type | None = None) -> Any:
        if not self._alive(connection.db, key):
            return None
        value = self._dbs[connection.db][key]
        if kind is not None and type(value) is not kind:
            raise _Error(_WRONGTYPE)
        return value

    def _set(
        self, connection: _Connection, key: bytes, value: Any, *, keep_ttl: bool = False
    ) -> None:
        self._dbs[connection.db][key] = value
        if not keep_ttl:
            self._expires[connection.db].pop(key, None)
        self._touch(connection.db, key)

    def _delete(self, connection: _Connection, key: bytes) -> bool:
        if not self._alive(connection.db, key):
            return False
        del self._dbs[connection.db][key]
        self._expires[connection.db].pop(key, None)
        self._touch(connection.db, key)
        return True

    def _touch(self, db: int, key: bytes) -> None:
        self._versions[(db, key)] = self._versions.get((db, key), 0) + 1

    def _changed(self, connection: _Connection, key: bytes) -> None:
        """A container value was modified in place (or emptied: then removed)."""
        value = self._dbs[connection.db].get(key)
        if value is not None and len(value) == 0:
            del self._dbs[connection.db][key]
            self._expires[connection.db].pop(key, None)
        self._touch(connection.db, key)

    def _live_keys(self, db: int) -> list[bytes]:
        return [key for key in list(self._dbs[db]) if self._alive(db, key)]

    # -------------------------------------------------------------- pub/sub

    def _drop_subscriptions(self, connection: _Connection) -> None:
        for channel in connection.channels:
            self._channels.get(channel, set()).discard(connection)
        for pattern in connection.patterns:
            self._patterns.get(pattern, set()).discard(connection)
        connection.channels.clear()
        connection.patterns.clear()

    def publish(self, channel: bytes, message: bytes) -> int:
        receivers = 0
        for connection in sorted(self._channels.get(channel, ()), key=lambda c: c.ident):
            connection.send(_Push([b"message", channel, message]))
            receivers += 1
        for pattern, connections in self._patterns.items():
            if _match(pattern, channel):
                for connection in sorted(connections, key=lambda c: c.ident):
                    connection.send(_Push([b"pmessage", pattern, channel, message]))
                    receivers += 1
        return receivers


def _command_table(server: RedisStandin) -> dict[bytes, tuple[Callable[..., Any], int, bool]]:
    return _redis_commands.table(server)
