"""A Postgres stand-in on a world host: the frontend/backend protocol v3 (startup,
trust and SCRAM-SHA-256 authentication, simple and extended query, text and
binary formats), transactions at read committed and serializable, errors with
Postgres's SQLSTATEs, and durability through a write-ahead log on the host disk.

Start one with ``world.postgres("db")`` (or :func:`postgres`); connect with an
unmodified client, e.g. ``await asyncpg.connect(host="db", user="postgres")``.

The SQL runs on DuckDB (in-process, one thread, its Postgres-derived parser and
types), one in-memory database per host incarnation; ``_pg_sql`` rewrites the few
spellings that differ and infers parameter types, ``_pg_types`` holds the wire
formats. See docs/standins.md for what each isolation level gives.

**Durability.** A transaction that wrote is appended to ``pg_wal.log`` on the
host's disk at COMMIT (an autocommit statement is a transaction of its own), the
log is fsynced, and only then do other sessions see it and the client hear
``COMMIT``. A power cut (``host.crash()``) keeps what the disk kept; a restart
replays the log, dropping a torn or unsynced tail. So a commit the client heard
survives, a transaction that never committed never appears, and one whose COMMIT
was cut mid-flush may go either way (the client never heard).

Owns: the server's sessions, transactions, write lock and log. Must not: reach
the real network or disk (it runs on the simulated ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import pickle
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from ..errors import SimloomUsageError
from . import _pg_sql, _pg_types
from ._pg_sql import Statement
from ._pg_types import PgType, WireError
from ._pg_wire import (
    CANCEL_REQUEST,
    GSSENC_REQUEST,
    PROTOCOL_3,
    SSL_REQUEST,
    PgError,
    Reader,
    Scram,
    cstring,
    message,
    read_message,
    read_startup,
    startup_parameters,
)

__all__ = ["WAL_PATH", "PostgresStandin", "postgres"]

#: The write-ahead log on the host's disk.
WAL_PATH = "pg_wal.log"
#: Virtual seconds a WAL flush takes (the window in which a crash cuts a commit).
FSYNC_SECONDS = 0.0005
SERVER_VERSION = "15.8"
_ISOLATION_LEVELS = ("read committed", "repeatable read", "serializable", "read uncommitted")
_TEXT = _pg_types.TEXT


def postgres(
    world: Any,
    name: str = "postgres",
    *,
    port: int = 5432,
    user: str = "postgres",
    password: str | None = None,
    database: str = "postgres",
) -> PostgresStandin:
    """Start a Postgres stand-in on ``world``'s host ``name`` (made if needed),
    listening on ``port``; it restarts with the host, replaying its log."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise SimloomUsageError(f"port must be an integer in 1..65535, got {port!r}")
    for argument, value in (("user", user), ("database", database)):
        if not isinstance(value, str) or not value:
            raise SimloomUsageError(f"{argument} must be a non-empty str, got {value!r}")
    if password is not None and (not isinstance(password, str) or not password):
        raise SimloomUsageError(
            f"password must be None (trust authentication) or a non-empty str, got {password!r}"
        )
    try:
        import duckdb  # noqa: F401
    except ImportError:  # pragma: no cover - a dev dependency
        raise SimloomUsageError(
            "world.postgres() runs its SQL on DuckDB: pip install duckdb sqlglot"
        ) from None
    host = world.host(name)
    standin = PostgresStandin(host, port=port, user=user, password=password, database=database)
    host.spawn(standin._serve, name=f"postgres-standin:{name}")
    return standin


class PostgresStandin:
    """One Postgres stand-in server (see the module docstring). Its data lives as
    long as the host's incarnation; a restart rebuilds it from the log."""

    def __init__(
        self, host: Any, *, port: int, user: str, password: str | None, database: str
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        #: Transactions replayed from the log at the last start.
        self.loaded_transactions = 0
        self._engine: _Engine | None = None
        self._scram = Scram(password, b"simloom-salt-" + user.encode()) if password else None
        self._next_backend = 0

    @property
    def dsn(self) -> str:
        """``postgresql://user[:password]@host:port/database``, for asyncpg and
        SQLAlchemy (add ``+asyncpg`` to the scheme for the latter)."""
        secret = f":{self.password}" if self.password else ""
        return f"postgresql://{self.user}{secret}@{self.host.name}:{self.port}/{self.database}"

    async def _serve(self) -> None:
        engine = _Engine(self.host.disk, self.database)
        self._engine = engine
        try:
            self.loaded_transactions = engine.load()
            server = await asyncio.start_server(self._client, "0.0.0.0", self.port)
            try:
                await server.serve_forever()
            finally:
                server.close()
        finally:
            # Nothing here awaits: after a crash this coroutine is closed when the
            # universe ends, and an await would leave the engine (and its DuckDB
            # instance) to the garbage collector.
            engine.close()

    # ------------------------------------------------------------ sessions

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        engine = self._engine
        if engine is None:  # pragma: no cover - the listener starts after the engine
            writer.close()
            return
        session: _Session | None = None
        try:
            parameters = await self._startup(reader, writer)
            if parameters is None:
                return
            self._next_backend += 1
            session = _Session(engine, writer, self._next_backend)
            for key, value in (
                ("application_name", parameters.get("application_name", "")),
                ("client_encoding", "UTF8"),
                ("DateStyle", "ISO, MDY"),
                ("integer_datetimes", "on"),
                ("IntervalStyle", "postgres"),
                ("is_superuser", "on"),
                ("server_encoding", "UTF8"),
                ("server_version", SERVER_VERSION),
                ("session_authorization", self.user),
                ("standard_conforming_strings", "on"),
                ("TimeZone", "UTC"),
            ):
                session.send(message(b"S", cstring(key) + cstring(value)))
            session.send(message(b"K", struct.pack("!ii", self._next_backend, 0x5EED)))
            session.ready()
            await writer.drain()
            await session.serve(reader)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except PgError as error:
            writer.write(error.encode())
        finally:
            if session is not None:
                session.drop()
            writer.close()

    async def _startup(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> dict[str, str] | None:
        while True:
            code, body = await read_startup(reader)
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                writer.write(b"N")  # no encryption: the client goes on in the clear
                continue
            if code == CANCEL_REQUEST:
                return None
            if code != PROTOCOL_3:
                raise PgError(
                    "0A000",
                    f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: "
                    "server supports 3.0 to 3.0",
                    "FATAL",
                )
            break
        parameters = startup_parameters(body)
        user = parameters.get("user", "")
        if user != self.user:
            raise PgError("28000", f'role "{user}" does not exist', "FATAL")
        database = parameters.get("database", user)
        if database != self.database:
            raise PgError("3D000", f'database "{database}" does not exist', "FATAL")
        if self._scram is not None:
            await self._authenticate(reader, writer, user)
        writer.write(message(b"R", struct.pack("!i", 0)))
        return parameters

    async def _authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, user: str
    ) -> None:
        scram = self._scram
        assert scram is not None
        failed = PgError("28P01", f'password authentication failed for user "{user}"', "FATAL")
        writer.write(message(b"R", struct.pack("!i", 10) + cstring("SCRAM-SHA-256") + b"\x00"))
        kind, body = await read_message(reader)
        if kind != b"p":
            raise failed
        fields = Reader(body)
        mechanism = fields.cstring()
        if mechanism != "SCRAM-SHA-256":
            raise PgError(
                "28000", "client selected an invalid SASL authentication mechanism", "FATAL"
            )
        client_first = fields.bytes(fields.int32())
        # The nonce needs no secrecy inside a simulation; it must be deterministic.
        nonce = f"simloom{self._next_backend + 1:08d}{int(time.time() * 1000):x}"
        server_first, bare, combined = scram.server_first(client_first, nonce)
        writer.write(message(b"R", struct.pack("!i", 11) + server_first))
        kind, body = await read_message(reader)
        if kind != b"p":
            raise failed
        final = scram.verify(body, bare, server_first, combined)
        if final is None:
            raise failed
        writer.write(message(b"R", struct.pack("!i", 12) + final))


# ------------------------------------------------------------------ engine


#: DuckDB instances with nothing attached, kept for the next engine: opening an
#: instance costs 20-40 ms and closing one 5-10 ms, attaching a fresh in-memory
#: database to a kept one about 0.3 ms. Each engine holds its own instance, so two
#: stand-ins alive at once never see each other's catalogs.
_IDLE: list[Any] = []
_IDLE_MAX = 4
#: The process the idle instances belong to; a forked child opens its own.
_idle_pid = 0
#: Instances inherited over a fork: never used again, and never destroyed (their
#: locks may be held by a thread the child does not have).
_ABANDONED: list[Any] = []
#: DuckDB's own catalog names, which the engine's database may not take.
_RESERVED_CATALOGS = frozenset({"memory", "system", "temp", "main"})


def _take_instance() -> Any:
    global _idle_pid
    import duckdb

    if _idle_pid != os.getpid():
        _ABANDONED.extend(_IDLE)
        _IDLE.clear()
        _idle_pid = os.getpid()
    if _IDLE:
        return _IDLE.pop()
    base = duckdb.connect(
        ":memory:",
        config={
            "threads": 1,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        },
    )
    base.execute(
        "SET GLOBAL TimeZone = 'UTC'; SET GLOBAL integer_division = true; "
        "SET GLOBAL error_on_division_by_zero = true"
    )
    return base


def _give_back(base: Any, catalog: str) -> None:
    """Detach ``catalog`` and keep ``base`` for the next engine, or close it if it
    cannot be cleaned."""
    try:
        base.execute(f'DETACH "{catalog}"')
        clean = [
            name
            for (name,) in base.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        ] == ["memory", "system", "temp"]
    except Exception:
        clean = False
    if clean and len(_IDLE) < _IDLE_MAX and _idle_pid == os.getpid():
        _IDLE.append(base)
    else:
        with contextlib.suppress(Exception):
            base.close()


class _Engine:
    """One incarnation's database: DuckDB, the write lock, the commit record that
    serializable transactions validate against, and the log.

    The database is an in-memory catalog attached to a kept DuckDB instance under
    the stand-in's database name (so ``current_database()`` says it), detached when
    the incarnation ends."""

    def __init__(self, disk: Any, database: str = "postgres") -> None:
        self.disk = disk
        self.catalog = (
            "simloom_" + database if database.lower() in _RESERVED_CATALOGS else database
        ).replace('"', '""')
        self._base: Any = _take_instance()
        try:
            self.db = self._base.cursor()
            self._use = f'USE "{self.catalog}"'
            self.db.execute(f"ATTACH ':memory:' AS \"{self.catalog}\"; {self._use}")
        except BaseException:
            self._base.close()
            raise
        self._cursors: list[Any] = []
        self.lock = asyncio.Lock()
        #: Committed writing transactions so far, and the tables each wrote.
        self.commit_seq = 0
        self.commits: list[tuple[int, frozenset[str]]] = []
        self.has_sequences = False
        self.catalog_version = 0
        self._catalog: tuple[int, dict[str, list[tuple[str, str]]]] | None = None
        self.wal: Any = None

    def cursor(self) -> Any:
        """A new DuckDB connection (one per session) on this engine's database."""
        cursor = self.db.cursor()
        cursor.execute(self._use)
        self._cursors.append(cursor)
        return cursor

    def release_cursor(self, cursor: Any) -> None:
        with contextlib.suppress(ValueError):
            self._cursors.remove(cursor)
        with contextlib.suppress(Exception):
            cursor.close()

    def close(self) -> None:
        base, self._base = self._base, None
        if base is None:  # closed already
            return
        for cursor in (*self._cursors, self.db):
            with contextlib.suppress(Exception):  # closed by its session already
                cursor.close()
        self._cursors.clear()
        _give_back(base, self.catalog)

    # --------------------------------------------------------------- log

    def load(self) -> int:
        """Replay the log; drop (and cut off) a torn or corrupt tail."""
        disk = self.disk
        if not disk.exists(WAL_PATH):
            self.wal = disk.open(WAL_PATH, "w")
            disk.fsync_dir()
            return 0
        data = disk.read_bytes(WAL_PATH)
        offset = applied = 0
        while offset + 8 <= len(data):
            length, checksum = struct.unpack_from("!II", data, offset)
            payload = data[offset + 8 : offset + 8 + length]
            if len(payload) < length or zlib.crc32(payload) != checksum:
                break
            self._replay(pickle.loads(payload))
            applied += 1
            offset += 8 + length
        self.wal = disk.open(WAL_PATH, "r+")
        if offset != len(data):
            self.wal.truncate(offset)
            self.wal.fsync()
        self.wal.seek(offset)
        return applied

    def _replay(self, record: dict[str, Any]) -> None:
        db = self.db
        db.execute("BEGIN TRANSACTION")
        self._advance_sequences(db, record["sequences"])
        for sql, params, now in record["statements"]:
            if now is not None:
                db.execute("SET VARIABLE simloom_now = $1::TIMESTAMPTZ", [now])
            db.execute(sql, params)
            if _creates_sequence(sql):
                self.has_sequences = True
        db.execute("COMMIT")
        self.commit_seq += 1

    def sequences(self, cursor: Any) -> dict[str, int]:
        if not self.has_sequences:
            return {}
        rows = cursor.execute("SELECT sequence_name, last_value FROM duckdb_sequences()").fetchall()
        return {name: value for name, value in rows if value is not None}

    def _advance_sequences(self, cursor: Any, wanted: dict[str, int]) -> None:
        """Sequences are not transactional: values a rolled-back transaction took
        are gone, so replay moves each sequence to where the transaction found it."""
        if not wanted:
            return
        now = self.sequences(cursor)
        for name, value in wanted.items():
            missing = value - now.get(name, 0)
            if missing > 0:
                cursor.execute(f"SELECT max(nextval('{name}')) FROM range({missing})").fetchall()

    def append(self, record: dict[str, Any]) -> None:
        payload = pickle.dumps(record, protocol=5)
        self.wal.write(struct.pack("!II", len(payload), zlib.crc32(payload)) + payload)

    # ------------------------------------------------------------ catalog

    def columns(self, cursor: Any, own_ddl: bool) -> dict[str, list[tuple[str, str]]]:
        """``table -> [(column, DuckDB type)]`` as the session sees it."""
        if not own_ddl and self._catalog is not None and self._catalog[0] == self.catalog_version:
            return self._catalog[1]
        rows = cursor.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE NOT internal ORDER BY table_name, column_index"
        ).fetchall()
        catalog: dict[str, list[tuple[str, str]]] = {}
        for table, column, kind in rows:
            catalog.setdefault(table.lower(), []).append((column.lower(), kind))
        if not own_ddl:
            self._catalog = (self.catalog_version, catalog)
        return catalog


def _creates_sequence(sql: str) -> bool:
    return "sequence" in sql.lower()


# ----------------------------------------------------------------- session


@dataclass
class _Prepared:
    statement: Statement
    param_types: list[PgType]
    columns: list[tuple[str, PgType]] | None
    duckdb: str


@dataclass
class _Portal:
    prepared: _Prepared
    params: list[Any]
    binary: list[bool]
    rows: list[tuple[Any, ...]] | None = None
    tag: str = ""
    sent: int = 0


@dataclass
class _Result:
    columns: list[tuple[str, PgType]] | None
    rows: list[tuple[Any, ...]]
    tag: str


@dataclass
class _Session:
    engine: _Engine
    writer: asyncio.StreamWriter
    backend: int
    status: str = "I"  # I idle, T in a transaction, E failed transaction
    isolation: str = "read committed"
    default_isolation: str = "read committed"
    holds_lock: bool = False
    in_duckdb: bool = False
    snapshot: int | None = None
    read_tables: set[str] = field(default_factory=set)
    written_tables: set[str] = field(default_factory=set)
    log: list[tuple[str, list[Any], Any]] = field(default_factory=list)
    sequences_before: dict[str, int] = field(default_factory=dict)
    own_ddl: bool = False
    savepoints: list[tuple[str, int]] = field(default_factory=list)
    read_only: bool = False
    duckdb_lost: bool = False
    began_at: float = 0.0
    statements_in_transaction: int = 0
    settings: dict[str, str] = field(default_factory=dict)
    prepared: dict[str, _Prepared] = field(default_factory=dict)
    portals: dict[str, _Portal] = field(default_factory=dict)
    cursor: Any = None

    def __post_init__(self) -> None:
        self.cursor = self.engine.cursor()

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def ready(self) -> None:
        self.send(message(b"Z", self.status.encode()))

    # ----------------------------------------------------------- the loop

    async def serve(self, reader: asyncio.StreamReader) -> None:
        skipping = False  # after an error in the extended protocol, until Sync
        while True:
            kind, body = await read_message(reader)
            if kind == b"X":
                return
            if kind == b"Q":
                await self.simple_query(body[:-1].decode())
                self.ready()
                await self.writer.drain()
                continue
            if kind == b"S":
                skipping = False
                self.portals.pop("", None)
                if self.status == "I" and self.in_duckdb:
                    self.end_duckdb(commit=True)
                self.ready()
                await self.writer.drain()
                continue
            if kind == b"H":
                await self.writer.drain()
                continue
            if skipping:
                continue
            try:
                await self.extended(kind, body)
            except PgError as error:
                self.send(error.encode())
                skipping = True

    async def extended(self, kind: bytes, body: bytes) -> None:
        fields = Reader(body)
        if kind == b"P":
            name, query = fields.cstring(), fields.cstring()
            oids = [fields.int32() for _ in range(fields.int16())]
            if name and name in self.prepared:
                raise PgError("42P05", f'prepared statement "{name}" already exists')
            self.prepared[name] = self.parse(query, oids)
            self.send(message(b"1"))
        elif kind == b"B":
            portal_name, name = fields.cstring(), fields.cstring()
            prepared = self.prepared.get(name)
            if prepared is None:
                raise PgError("26000", f'prepared statement "{name}" does not exist')
            formats = [fields.int16() for _ in range(fields.int16())]
            values: list[Any] = []
            count = fields.int16()
            if count != len(prepared.param_types):
                raise PgError(
                    "08P01",
                    f"bind message supplies {count} parameters, but prepared statement "
                    f'"{name}" requires {len(prepared.param_types)}',
                )
            for index in range(count):
                size = fields.int32()
                if size < 0:
                    values.append(None)
                    continue
                binary = (formats[index] if len(formats) > 1 else formats[0] if formats else 0) == 1
                try:
                    values.append(
                        _pg_types.decode(prepared.param_types[index], fields.bytes(size), binary)
                    )
                except WireError as error:
                    raise PgError(error.sqlstate, str(error)) from None
            result_formats = [fields.int16() for _ in range(fields.int16())]
            columns = prepared.columns or []
            binary_columns = [
                (result_formats[i] if len(result_formats) > 1 else result_formats[0]) == 1
                if result_formats
                else False
                for i in range(len(columns))
            ]
            self.portals[portal_name] = _Portal(prepared, values, binary_columns)
            self.send(message(b"2"))
        elif kind == b"D":
            which, name = fields.bytes(1), fields.cstring()
            if which == b"S":
                prepared = self.prepared.get(name)
                if prepared is None:
                    raise PgError("26000", f'prepared statement "{name}" does not exist')
                types = prepared.param_types
                self.send(
                    message(
                        b"t", struct.pack(f"!h{len(types)}i", len(types), *(t.oid for t in types))
                    )
                )
                self.send(_row_description(prepared.columns, None))
            else:
                portal = self.portals.get(name)
                if portal is None:
                    raise PgError("34000", f'portal "{name}" does not exist')
                self.send(_row_description(portal.prepared.columns, portal.binary))
        elif kind == b"E":
            name = fields.cstring()
            limit = fields.int32()
            portal = self.portals.get(name)
            if portal is None:
                raise PgError("34000", f'portal "{name}" does not exist')
            await self.execute_portal(portal, limit)
        elif kind == b"C":
            which, name = fields.bytes(1), fields.cstring()
            if which == b"S":
                self.prepared.pop(name, None)
            else:
                self.portals.pop(name, None)
            self.send(message(b"3"))
        elif kind in (b"d", b"c", b"f"):
            raise PgError("0A000", "COPY is not supported by the simloom Postgres stand-in")
        else:
            raise PgError("08P01", f"invalid frontend message type {kind[0]}", "FATAL")

    # ------------------------------------------------------------- simple

    async def simple_query(self, sql: str) -> None:
        statements = [_pg_sql.analyze(text) for text in _pg_sql.split(sql)]
        if not statements:
            self.send(message(b"I"))
            return
        # Several statements outside a transaction block run as one implicit
        # transaction, unless they say BEGIN/COMMIT/ROLLBACK themselves.
        implicit = (
            len(statements) > 1
            and self.status == "I"
            and not any(
                s.kind in ("begin", "commit", "rollback", "savepoint", "unsupported")
                for s in statements
            )
        )
        if implicit:
            self.status = "T"
            self.began_at = time.time()
        for statement in statements:
            try:
                if statement.syntax_error:
                    raise PgError("42601", statement.syntax_error)
                result = await self.run(statement, statement.duckdb, [], None)
                if result.columns is not None:
                    self.send(_row_description(result.columns, None))
                    binary = [False] * len(result.columns)
                    for row in result.rows:
                        self.send(_data_row(row, result.columns, binary))
            except PgError as error:
                self.send(error.encode())
                if implicit:
                    self.end_duckdb(commit=False)
                    self.release()
                    self.reset_transaction()
                return
            self.send(message(b"C", cstring(result.tag)))
        if implicit:
            await self.commit()

    # ----------------------------------------------------------- extended

    def parse(self, query: str, oids: list[int]) -> _Prepared:
        statements = _pg_sql.split(query)
        if len(statements) > 1:
            raise PgError("42601", "cannot insert multiple commands into a prepared statement")
        statement = _pg_sql.analyze(statements[0] if statements else "")
        if statement.syntax_error:
            raise PgError("42601", statement.syntax_error)
        self.check_not_failed(statement)
        param_types = self.param_types(statement, oids)
        duck = _bind_casts(statement.duckdb, param_types) if statement.params else statement.duckdb
        columns = self.describe(statement, duck, param_types)
        return _Prepared(statement, param_types, columns, duck)

    def param_types(self, statement: Statement, oids: list[int]) -> list[PgType]:
        types: list[PgType] = []
        catalog: dict[str, list[tuple[str, str]]] | None = None
        for number in range(1, statement.params + 1):
            given = oids[number - 1] if number - 1 < len(oids) else 0
            found = _pg_types.by_oid(given) if given else None
            if found is None:
                context = statement.contexts.get(number, ("text",))
                if context[0] in ("column", "insert", "array_of_column") and catalog is None:
                    catalog = self.engine.columns(self.cursor, self.own_ddl)
                found = _resolve(context, statement, catalog or {})
            types.append(found)
        return types

    def describe(
        self, statement: Statement, duck: str, param_types: list[PgType]
    ) -> list[tuple[str, PgType]] | None:
        if statement.kind == "show":
            return [(statement.setting.split()[-1] if statement.setting else "setting", _TEXT)]
        if statement.kind == "introspect":
            return [
                (name, _pg_types.by_name(kind) or _TEXT)
                for name, kind in _pg_types.INTROSPECTION_COLUMNS
            ]
        if statement.kind == "noop" and statement.tag == "SELECT":
            return [("pg_advisory_unlock_all", _pg_types.by_name("void") or _TEXT)]
        if statement.kind == "read" or statement.locks:
            try:
                rows = self.cursor.execute("DESCRIBE " + duck, [None] * len(param_types)).fetchall()
            except Exception as error:
                self.fail_transaction()
                raise _pg_error(error, statement) from None
            return [(_column_name(row[0]), _pg_types.from_duckdb(row[1])) for row in rows]
        if statement.returning:
            catalog = self.engine.columns(self.cursor, self.own_ddl)
            table = catalog.get(statement.target, [])
            out = []
            for column in statement.returning_columns:
                if column == "*":
                    out += [(name, _pg_types.from_duckdb(kind)) for name, kind in table]
                else:
                    match = next((kind for name, kind in table if name == column), None)
                    out.append(
                        (column, _pg_types.from_duckdb(match) if match else _TEXT)
                        if match or re.fullmatch(r"\w+", column)
                        else ("?column?", _TEXT)
                    )
            return out
        return None

    async def execute_portal(self, portal: _Portal, limit: int) -> None:
        prepared = portal.prepared
        if portal.rows is None:
            result = await self.run(
                prepared.statement, prepared.duckdb, portal.params, prepared.columns
            )
            portal.rows, portal.tag = result.rows, result.tag
        columns = prepared.columns
        rows = portal.rows
        if columns is not None:
            end = len(rows) if limit <= 0 else min(len(rows), portal.sent + limit)
            for row in rows[portal.sent : end]:
                self.send(_data_row(row, columns, portal.binary))
            portal.sent = end
            if end < len(rows):
                self.send(message(b"s"))
                return
        self.send(message(b"C", cstring(portal.tag)))

    # ----------------------------------------------------- transactions

    def check_not_failed(self, statement: Statement) -> None:
        if (
            self.status == "E"
            and statement.kind not in ("commit", "rollback")
            and not (statement.setting == "rollback_to")
        ):
            raise PgError(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            )

    def end_duckdb(self, *, commit: bool) -> None:
        if self.in_duckdb:
            try:
                self.cursor.execute("COMMIT" if commit else "ROLLBACK")
            except Exception:
                with contextlib.suppress(Exception):
                    self.cursor.execute("ROLLBACK")
            self.in_duckdb = False

    def release(self) -> None:
        if self.holds_lock:
            self.holds_lock = False
            self.engine.lock.release()

    def reset_transaction(self) -> None:
        self.status = "I"
        self.snapshot = None
        self.read_tables.clear()
        self.written_tables.clear()
        self.log.clear()
        self.sequences_before = {}
        if self.own_ddl:
            self.engine.catalog_version += 1
        self.own_ddl = False
        self.statements_in_transaction = 0
        self.isolation = self.default_isolation
        self.savepoints.clear()
        self.duckdb_lost = False
        self.read_only = False

    def fail_transaction(self) -> None:
        """An error: an autocommit statement is rolled back now; a transaction
        block stays failed (and keeps its write lock, as Postgres keeps its row
        locks) until the client ends it or rolls back to a savepoint."""
        self.end_duckdb(commit=False)
        if self.status == "I" or not self.savepoints:
            self.release()
            in_block = self.status != "I"
            self.reset_transaction()
            if in_block:
                self.status = "E"
            return
        self.duckdb_lost = True
        self.status = "E"

    def savepoint(self, statement: Statement) -> _Result:
        """SAVEPOINT, RELEASE and ROLLBACK TO. DuckDB has no savepoints, so rolling
        back to one rolls the DuckDB transaction back and runs the transaction's
        writes up to the savepoint again (under the write lock nothing else has
        changed), with the sequences where they were, then where they had got to
        (values taken after the savepoint stay taken, as in Postgres)."""
        action, name = statement.setting, statement.value
        if self.status == "I":
            words = {"savepoint": "SAVEPOINT", "release": "RELEASE SAVEPOINT"}
            raise PgError(
                "25P01",
                f"{words.get(action, 'ROLLBACK TO SAVEPOINT')} can only be used in transaction blocks",
            )
        if action == "savepoint":
            self.check_not_failed(statement)
            self.savepoints.append((name, len(self.log)))
            return _Result(None, [], "SAVEPOINT")
        index = next(
            (i for i in range(len(self.savepoints) - 1, -1, -1) if self.savepoints[i][0] == name),
            None,
        )
        if index is None:
            error = PgError("3B001", f'savepoint "{name}" does not exist')
            self.fail_transaction()
            raise error
        if action == "release":
            self.check_not_failed(statement)
            del self.savepoints[index:]
            return _Result(None, [], "RELEASE")
        position = self.savepoints[index][1]
        del self.savepoints[index + 1 :]
        engine = self.engine
        if self.holds_lock:
            self.end_duckdb(commit=False)
            reached = engine.sequences(self.cursor)
            floors = (
                dict(
                    self.cursor.execute(
                        "SELECT sequence_name, min_value FROM duckdb_sequences()"
                    ).fetchall()
                )
                if reached
                else {}
            )
            self.cursor.execute("BEGIN TRANSACTION")
            self.in_duckdb = True
            for sequence in reached:
                # Not used before the transaction: back to "never used" (serial
                # sequences allow 0); a sequence made with MINVALUE 1 cannot be.
                value = self.sequences_before.get(sequence, 0)
                if value >= floors.get(sequence, 1):
                    self.cursor.execute("SELECT setval($1, $2)", [sequence, value])
            kept = self.log[:position]
            for sql, params, now in kept:
                if now is not None:
                    self.cursor.execute("SET VARIABLE simloom_now = $1::TIMESTAMPTZ", [now])
                self.cursor.execute(sql, params)
            self.log = kept
            for sequence, value in reached.items():
                self.cursor.execute("SELECT setval($1, $2)", [sequence, value])
                self.log.append(("SELECT setval($1, $2)", [sequence, value], None))
        elif self.duckdb_lost and self.isolation in ("serializable", "repeatable read"):
            if self.snapshot is not None and any(
                seq > self.snapshot and ("*" in tables or tables & self.read_tables)
                for seq, tables in engine.commits
            ):
                raise PgError(
                    "40001",
                    "could not serialize access due to read/write dependencies among transactions",
                )
            self.cursor.execute("BEGIN TRANSACTION")
            self.in_duckdb = True
            self.snapshot = engine.commit_seq
        self.duckdb_lost = False
        self.status = "T"
        return _Result(None, [], "ROLLBACK")

    def drop(self) -> None:
        """The client went away: its open transaction rolls back."""
        self.end_duckdb(commit=False)
        self.release()
        self.reset_transaction()
        self.engine.release_cursor(self.cursor)

    async def take_lock(self, statement: Statement) -> None:
        """Before a session's first write of a transaction: the write lock (one
        writer at a time), then a snapshot that sees every commit; a serializable
        transaction whose earlier reads a commit since its snapshot has changed
        fails with 40001 instead."""
        if self.holds_lock:
            return
        await self.engine.lock.acquire()
        self.holds_lock = True
        if self.isolation in ("serializable", "repeatable read") and self.snapshot is not None:
            touched = self.read_tables | set(statement.tables)
            for seq, tables in self.engine.commits:
                if seq > self.snapshot and ("*" in tables or tables & touched):
                    raise PgError(
                        "40001",
                        "could not serialize access due to read/write dependencies among "
                        "transactions",
                        detail="Reason code: Canceled on identification as a pivot, during write.",
                    )
        self.end_duckdb(commit=True)  # only reads so far: nothing to publish
        self.cursor.execute("BEGIN TRANSACTION")
        self.in_duckdb = True
        self.sequences_before = self.engine.sequences(self.cursor)

    async def commit(self) -> None:
        engine = self.engine
        if self.holds_lock and self.log:
            record = {"sequences": self.sequences_before, "statements": list(self.log)}
            engine.append(record)
            # The flush takes time: a crash now may keep or lose this commit (the
            # client has not heard), and nobody sees it before it is durable.
            await asyncio.sleep(FSYNC_SECONDS)
            engine.wal.fsync()
            self.end_duckdb(commit=True)
            engine.commit_seq += 1
            engine.commits.append((engine.commit_seq, frozenset(self.written_tables)))
            del engine.commits[:-2000]
        else:
            self.end_duckdb(commit=True)
        self.release()
        self.reset_transaction()

    # ------------------------------------------------------------- a statement

    async def run(
        self,
        statement: Statement,
        duck: str,
        params: list[Any],
        columns: list[tuple[str, PgType]] | None,
    ) -> _Result:
        kind = statement.kind
        self.check_not_failed(statement)
        if kind == "begin":
            if self.status == "T":
                self.notice("25001", "there is already a transaction in progress")
            else:
                self.status = "T"
                self.isolation = statement.isolation or self.default_isolation
                self.read_only = statement.value == "read only"
                self.began_at = time.time()
            return _Result(None, [], "BEGIN")
        if kind == "commit":
            if self.status == "I":
                self.notice("25P01", "there is no transaction in progress")
                return _Result(None, [], "COMMIT")
            if self.status == "E":
                self.end_duckdb(commit=False)
                self.release()
                self.reset_transaction()
                return _Result(None, [], "ROLLBACK")
            await self.commit()
            return _Result(None, [], "COMMIT")
        if kind == "rollback":
            if self.status == "I":
                self.notice("25P01", "there is no transaction in progress")
            self.end_duckdb(commit=False)
            self.release()
            self.reset_transaction()
            return _Result(None, [], "ROLLBACK")
        if kind == "savepoint":
            return self.savepoint(statement)
        if kind == "unsupported":
            error = PgError(
                "0A000", f"{statement.tag} is not supported by the simloom Postgres stand-in"
            )
            self.fail_transaction()
            raise error
        if kind == "set":
            return self.set(statement)
        if kind == "show":
            return _Result(
                columns or self.describe(statement, "", []), [(self.show(statement),)], "SHOW"
            )
        if kind == "noop":
            if statement.tag == "SELECT":
                return _Result(columns or self.describe(statement, "", []), [("",)], "SELECT 1")
            return _Result(None, [], statement.tag)
        if kind == "empty":
            return _Result(None, [], "")
        if kind == "introspect":
            rows = _pg_types.introspection_rows(list(params[0] or []) if params else [])
            return _Result(columns or self.describe(statement, "", []), rows, f"SELECT {len(rows)}")
        return await self.run_sql(statement, duck, params, columns)

    async def run_sql(
        self,
        statement: Statement,
        duck: str,
        params: list[Any],
        columns: list[tuple[str, PgType]] | None,
    ) -> _Result:
        writes = statement.kind in ("write", "ddl")
        autocommit = self.status == "I"
        if self.status == "T" and self.statements_in_transaction == 0 and not self.began_at:
            self.began_at = time.time()
        now_at = time.time() if autocommit else self.began_at
        now = (
            datetime.datetime.fromtimestamp(now_at, datetime.UTC) if statement.uses_clock else None
        )
        if writes and self.read_only and not statement.locks:
            error = PgError("25006", f"cannot execute {statement.tag} in a read-only transaction")
            self.fail_transaction()
            raise error
        try:
            if writes:
                if autocommit:
                    self.status = "T"  # an implicit transaction of one statement
                await self.take_lock(statement)
            elif (
                self.status == "T"
                and not self.in_duckdb
                and (self.isolation in ("serializable", "repeatable read"))
            ):
                self.cursor.execute("BEGIN TRANSACTION")
                self.in_duckdb = True
                self.snapshot = self.engine.commit_seq
            self.statements_in_transaction += 1
            if statement.tag == "INSERT" and _INSERT_WITHOUT_COLUMNS.match(duck):
                duck = self.name_insert_columns(duck)
            if now is not None:
                self.cursor.execute("SET VARIABLE simloom_now = $1::TIMESTAMPTZ", [now])
            result = self.cursor.execute(duck, params)
            rows = result.fetchall() if result.description else []
            description = result.description
        except PgError:
            self.fail_transaction()
            if autocommit:
                self.status = "I"
            raise
        except Exception as error:
            self.fail_transaction()
            if autocommit:
                self.status = "I"
            raise _pg_error(error, statement) from None
        if not writes or statement.locks:
            self.read_tables |= statement.tables
        else:
            self.log.append((duck, list(params), now))
            self.written_tables |= statement.tables if statement.kind == "write" else {"*"}
            if statement.kind == "ddl":
                self.own_ddl = True
                self.engine.catalog_version += 1
                if _creates_sequence(duck):
                    self.engine.has_sequences = True
        if autocommit and writes:
            await self.commit()
        elif autocommit and self.in_duckdb:
            self.end_duckdb(commit=True)
        query = statement.kind == "read" or statement.locks
        if columns is None and description is not None and (query or statement.returning):
            columns = [(_column_name(d[0]), _pg_types.from_duckdb(str(d[1]))) for d in description]
        tag = statement.tag
        if query:
            return _Result(columns, rows, f"SELECT {len(rows)}")
        if statement.kind == "ddl":
            return _Result(None, [], tag)
        if statement.returning:
            count = len(rows)
        else:
            count = int(rows[0][0]) if rows and rows[0] and isinstance(rows[0][0], int) else 0
            rows = []
        if tag == "INSERT":
            tag = f"INSERT 0 {count}"
        elif tag in ("UPDATE", "DELETE", "MERGE"):
            tag = f"{tag} {count}"
        elif tag == "TRUNCATE TABLE":
            pass
        return _Result(columns if statement.returning else None, rows, tag)

    def name_insert_columns(self, duck: str) -> str:
        """``INSERT INTO t VALUES (a, b)`` fills t's first two columns and defaults the
        rest in Postgres; DuckDB wants a value per column, so name the columns."""
        match = _INSERT_WITHOUT_COLUMNS.match(duck)
        assert match is not None
        columns = self.engine.columns(self.cursor, self.own_ddl).get(
            match.group(1).lower().strip('"')
        )
        if not columns:
            return duck
        depth, values = 0, 1
        for token in _pg_sql._tokens(duck[match.end() :]):
            if token.text == "(":
                depth += 1
            elif token.text == ")":
                if depth == 0:
                    break
                depth -= 1
            elif token.text == "," and depth == 0:
                values += 1
        if values >= len(columns):
            return duck
        names = ", ".join(f'"{name}"' for name, _ in columns[:values])
        return f"{duck[: match.start(2)]}({names}) {duck[match.start(2) :]}"

    def notice(self, sqlstate: str, text: str) -> None:
        error = PgError(sqlstate, text, "WARNING")
        self.send(b"N" + error.encode()[1:])

    def set(self, statement: Statement) -> _Result:
        if statement.isolation:
            if statement.setting == "transaction":
                if self.statements_in_transaction:
                    error = PgError(
                        "25001", "SET TRANSACTION ISOLATION LEVEL must be called before any query"
                    )
                    self.fail_transaction()
                    raise error
                self.isolation = statement.isolation
            else:
                self.default_isolation = statement.isolation
                if self.status == "I":
                    self.isolation = statement.isolation
        elif statement.setting == "default_transaction_isolation":
            level = statement.value.lower()
            if level in _ISOLATION_LEVELS:
                self.default_isolation = level
                if self.status == "I":
                    self.isolation = level
        else:
            self.settings[statement.setting] = statement.value
        return _Result(None, [], "SET")

    def show(self, statement: Statement) -> str:
        name = statement.setting
        known = {
            "transaction isolation level": self.isolation,
            "transaction_isolation": self.isolation,
            "default_transaction_isolation": self.default_isolation,
            "standard_conforming_strings": "on",
            "server_version": SERVER_VERSION,
            "server_version_num": "150008",
            "server_encoding": "UTF8",
            "client_encoding": "UTF8",
            "timezone": "UTC",
            "datestyle": "ISO, MDY",
            "integer_datetimes": "on",
            "search_path": '"$user", public',
            "max_identifier_length": "63",
            "intervalstyle": "postgres",
        }
        if name in self.settings:
            return self.settings[name]
        if name not in known:
            error = PgError("42704", f'unrecognized configuration parameter "{name}"')
            self.fail_transaction()
            raise error
        return known[name]


# ----------------------------------------------------------------- helpers


def _resolve(
    context: tuple[Any, ...], statement: Statement, catalog: dict[str, list[tuple[str, str]]]
) -> PgType:
    kind = context[0]
    if kind == "type":
        return _pg_types.by_name(context[1]) or _TEXT
    if kind in ("column", "array_of_column"):
        table, column = context[1], context[2]
        candidates = [table] if table else [statement.target, *sorted(statement.tables)]
        for name in candidates:
            for col, duck in catalog.get(name, []):
                if col == column:
                    found = _pg_types.from_duckdb(duck)
                    if kind == "array_of_column" and found.array_oid:
                        return _pg_types.by_oid(found.array_oid) or _TEXT
                    return found
        return _TEXT
    if kind == "insert":
        columns = catalog.get(context[1], [])
        position = context[2]
        if isinstance(position, int):
            if position < len(columns):
                return _pg_types.from_duckdb(columns[position][1])
            return _TEXT
        for col, duck in columns:
            if col == position:
                return _pg_types.from_duckdb(duck)
        return _TEXT
    return _pg_types.by_name(kind) or _TEXT


_INSERT_WITHOUT_COLUMNS = re.compile(r'\s*insert\s+into\s+("?\w+"?)\s+(values)\s*\(', re.I)


def _bind_casts(duck: str, types: list[PgType]) -> str:
    """Each ``$n`` cast to the type it was described with, so DuckDB computes the
    types the client was promised."""
    out = []
    for token in _pg_sql._tokens(duck):
        if token.kind == "param":
            number = int(token.text[1:])
            pg = types[number - 1] if number - 1 < len(types) else None
            if pg is not None and pg.name not in ("unknown", "void"):
                out.append(f"({token.text}::{pg.duckdb})")
                continue
        out.append(token.text)
    return "".join(out)


def _column_name(name: str) -> str:
    """Postgres's name for an unnamed result column: the cast's type, the
    function's name, else ``?column?``."""
    if re.fullmatch(r"[A-Za-z_][\w$]*", name):
        return name
    cast = re.fullmatch(r"CAST\(.* AS ([\w ]+(?:\[\])?)\)", name)
    if cast:
        pg = _pg_types.by_name(cast.group(1)) or _pg_types.from_duckdb(cast.group(1).upper())
        return pg.name
    if name == "count_star()":
        return "count"
    function = re.match(r"([A-Za-z_]\w*)\(", name)
    if function:
        return function.group(1).lower()
    return "?column?"


def _row_description(columns: list[tuple[str, PgType]] | None, binary: list[bool] | None) -> bytes:
    if columns is None:
        return message(b"n")
    parts = [struct.pack("!h", len(columns))]
    for index, (name, pg) in enumerate(columns):
        fmt = 1 if binary and binary[index] else 0
        parts.append(cstring(name) + struct.pack("!ihihih", 0, 0, pg.oid, pg.size, -1, fmt))
    return message(b"T", b"".join(parts))


def _data_row(row: tuple[Any, ...], columns: list[tuple[str, PgType]], binary: list[bool]) -> bytes:
    parts = [struct.pack("!h", len(row))]
    for index, value in enumerate(row):
        if value is None:
            parts.append(b"\xff\xff\xff\xff")
            continue
        pg = columns[index][1] if index < len(columns) else _TEXT
        try:
            data = _pg_types.encode(pg, value, binary[index] if index < len(binary) else False)
        except WireError as error:
            raise PgError(error.sqlstate, str(error)) from None
        parts.append(struct.pack("!i", len(data)) + data)
    return message(b"D", b"".join(parts))


_RELATION = re.compile(r"Table with name (\S+) does not exist")
_COLUMN = re.compile(r'column "?([^"\s]+)"? not found|Referenced column "([^"]+)" not found')
_DUPLICATE = re.compile(r'duplicate key "([^"]*)"')
_NOT_NULL = re.compile(r'NOT NULL constraint failed: ([\w"]+)\.("?[\w]+"?)')
_CONVERT = re.compile(r"Could not convert string '([^']*)' to (\w+)")


def _pg_error(error: Exception, statement: Statement) -> PgError:
    """A DuckDB error as the ErrorResponse Postgres would send (SQLSTATE and text)."""
    name = type(error).__name__
    text = str(error).split("\n")[0]
    detail = text.split(": ", 1)[-1] if ": " in text else text
    if name == "CatalogException":
        match = _RELATION.search(text)
        if match:
            return PgError("42P01", f'relation "{match.group(1)}" does not exist')
        if "configuration parameter" in text:
            return PgError("42704", detail)
        if "already exists" in text:
            return PgError("42P07", detail)
        if "Type with name" in text:
            return PgError("42704", detail)
        if "Function with name" in text or "Scalar Function" in text:
            return PgError("42883", detail)
        return PgError("42P01", detail)
    if name == "ParserException":
        return PgError("42601", detail)
    if name == "BinderException":
        match = _COLUMN.search(text)
        if match:
            return PgError("42703", f'column "{match.group(1) or match.group(2)}" does not exist')
        if "No function matches" in text:
            return PgError("42883", detail)
        if "Cannot compare" in text or "type" in text.lower():
            return PgError("42804", detail)
        return PgError("42703" if "column" in text.lower() else "42601", detail)
    if name == "ConstraintException":
        if "PRIMARY KEY or UNIQUE" in text or "Duplicate key" in text:
            match = _DUPLICATE.search(text)
            table = statement.target or "relation"
            return PgError(
                "23505",
                f'duplicate key value violates unique constraint "{table}_pkey"',
                detail=f"Key {match.group(1)} already exists." if match else "",
            )
        if "NOT NULL" in text:
            match = _NOT_NULL.search(text)
            if match:
                return PgError(
                    "23502",
                    f'null value in column "{match.group(2).strip(chr(34))}" of relation '
                    f'"{match.group(1).strip(chr(34))}" violates not-null constraint',
                )
            return PgError("23502", detail)
        if "FOREIGN KEY" in text.upper():
            return PgError("23503", detail)
        if "CHECK" in text:
            return PgError("23514", detail)
        return PgError("23000", detail)
    if name == "ConversionException":
        match = _CONVERT.search(text)
        if match:
            target = {"INT32": "integer", "INT64": "bigint", "INT16": "smallint"}.get(
                match.group(2), match.group(2).lower()
            )
            return PgError("22P02", f'invalid input syntax for type {target}: "{match.group(1)}"')
        if "out of range" in text.lower():
            return PgError("22003", detail)
        return PgError("22P02", detail)
    if name == "OutOfRangeException":
        return PgError("22003", detail)
    if name == "InvalidInputException" and "Division by zero" in text:
        return PgError("22012", "division by zero")
    if name == "TransactionException":
        return PgError("40001", "could not serialize access due to concurrent update")
    if name == "InvalidInputException":
        return PgError("22023", detail)
    if name == "NotImplementedException":
        return PgError("0A000", detail)
    return PgError("XX000", f"{name}: {detail}")
