"""The Postgres stand-in (``world.postgres``): unmodified ``asyncpg`` (and
SQLAlchemy's asyncio engine over it) against it, its isolation levels, the host's
faults, and its durability across crash universes.

The differential test against a real PostgreSQL is in
``tests/test_standin_postgres_differential.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import uuid
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import simloom
from simloom import SimloomUsageError


def run(main: Any, seed: int = 0, **options: Any) -> Any:
    result = simloom.run(main, seed=seed, **options)
    result.raise_error()
    return result.value


async def connect(world: Any, **options: Any) -> asyncpg.Connection:
    if "db" not in world.hosts:
        world.postgres("db", **{k: v for k, v in options.items() if k == "password"})
    await asyncio.sleep(0.001)  # let it start listening
    return await asyncpg.connect(host="db", user="postgres", **options)


# ------------------------------------------------------------ client usage


def test_fetch_fetchrow_fetchval_execute_and_prepared_statements() -> None:
    async def main(world: Any) -> list[Any]:
        con = await connect(world)
        out: list[Any] = []
        out.append(await con.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)"))
        out.append(await con.execute("INSERT INTO items VALUES ($1, $2)", 1, "apple"))
        await con.executemany("INSERT INTO items VALUES ($1, $2)", [(2, "pear"), (3, "fig")])
        out.append([tuple(r) for r in await con.fetch("SELECT id, name FROM items ORDER BY id")])
        row = await con.fetchrow("SELECT name FROM items WHERE id = $1", 2)
        out.append(row["name"])
        out.append(await con.fetchval("SELECT count(*) FROM public.items"))
        out.append(await con.fetchval("SELECT $1::int + 1", 41))
        out.append(await con.execute("UPDATE items SET name = $1 WHERE id > $2", "x", 1))
        out.append(await con.execute("DELETE FROM items WHERE id = $1", 3))
        statement = await con.prepare("SELECT name FROM items WHERE id = $1")
        out.append([await statement.fetchval(i) for i in (1, 2, 3)])
        out.append([(a.name, a.type.name) for a in statement.get_attributes()])
        out.append([p.name for p in statement.get_parameters()])
        # Multiple statements in one simple query: one implicit transaction.
        out.append(
            await con.execute("INSERT INTO items VALUES (9, 'z'); DELETE FROM items WHERE id = 9")
        )
        out.append(await con.fetchval("SELECT name FROM items WHERE id = 9"))
        with pytest.raises(asyncpg.UniqueViolationError):
            await con.execute(
                "INSERT INTO items VALUES (8, 'y'); INSERT INTO items VALUES (1, 'x')"
            )
        out.append(await con.fetchval("SELECT count(*) FROM items WHERE id = 8"))  # rolled back
        await con.close()
        return out

    assert run(main) == [
        "CREATE TABLE",
        "INSERT 0 1",
        [(1, "apple"), (2, "pear"), (3, "fig")],
        "pear",
        3,
        42,
        "UPDATE 2",
        "DELETE 1",
        ["apple", "x", None],
        [("name", "text")],
        ["int4"],
        "DELETE 1",
        None,
        0,
    ]


TYPES: list[tuple[str, Any]] = [
    ("int2", 12),
    ("int4", -2_000_000_000),
    ("int8", 9_000_000_000_000),
    ("float4", 1.5),
    ("float8", 3.141592653589793),
    ("numeric(12,3)", Decimal("-1234.567")),
    ("numeric", Decimal("0.0001")),
    ("text", "héllo, wörld"),
    ("varchar(20)", "short"),
    ("bool", True),
    ("bytea", b"\x00\xffbinary"),
    ("timestamp", datetime.datetime(2024, 2, 29, 13, 14, 15, 123456)),
    ("timestamptz", datetime.datetime(2024, 2, 29, 13, 14, 15, tzinfo=datetime.UTC)),
    ("date", datetime.date(1999, 12, 31)),
    ("time", datetime.time(23, 59, 58, 5)),
    ("interval", datetime.timedelta(days=3, seconds=7, microseconds=11)),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("json", {"a": [1, 2, None]}),
    ("jsonb", {"b": "c"}),
    ("int4[]", [1, None, 3]),
    ("text[]", ["a", "b c", ""]),
    ("float8[]", [0.5, -1.0]),
    ("bool[]", [True, False]),
    ("uuid[]", [uuid.UUID(int=1)]),
    ("date[]", [datetime.date(2020, 1, 1)]),
]


@pytest.mark.parametrize(("type_name", "value"), TYPES, ids=[t for t, _ in TYPES])
def test_each_type_round_trips_through_a_table_and_a_parameter(type_name: str, value: Any) -> None:
    async def main(world: Any) -> list[Any]:
        con = await connect(world)
        for name in ("json", "jsonb"):
            await con.set_type_codec(
                name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )
        await con.execute(f"CREATE TABLE v (id int PRIMARY KEY, x {type_name})")
        await con.execute("INSERT INTO v VALUES (1, $1)", value)
        await con.execute("INSERT INTO v VALUES (2, NULL)")
        stored = await con.fetchval("SELECT x FROM v WHERE id = 1")
        null = await con.fetchval("SELECT x FROM v WHERE id = 2")
        cast = await con.fetchval(f"SELECT $1::{type_name}", value)
        # The text format (simple query) of the same value parses back in Postgres.
        text = (await con.fetch("SELECT x::text AS t FROM v WHERE id = 1"))[0]["t"]
        await con.close()
        return [stored, null, cast, text]

    stored, null, cast, text = run(main)
    assert stored == value and null is None and cast == value
    assert isinstance(text, str) and text


def test_trust_and_scram_authentication_and_a_wrong_password() -> None:
    async def main(world: Any) -> list[Any]:
        world.postgres("db", password="s3cret")
        world.postgres("open")
        await asyncio.sleep(0.001)
        out: list[Any] = []
        con = await asyncpg.connect(host="db", user="postgres", password="s3cret")
        out.append(await con.fetchval("SELECT 1"))
        await con.close()
        with pytest.raises(asyncpg.InvalidPasswordError, match="password authentication failed"):
            await asyncpg.connect(host="db", user="postgres", password="wrong")
        with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError):
            await asyncpg.connect(host="db", user="mallory", password="s3cret")
        with pytest.raises(asyncpg.InvalidCatalogNameError):
            await asyncpg.connect(host="open", user="postgres", database="nope")
        trusted = await asyncpg.connect(host="open", user="postgres")
        out.append(trusted.get_server_version().major)
        out.append(await trusted.fetchval("SHOW server_version"))
        await trusted.close()
        return out

    assert run(main) == [1, 15, "15.8"]


ERRORS = [
    ("SELECT * FROM missing", asyncpg.UndefinedTableError, "42P01"),
    ("SELEC 1", asyncpg.PostgresSyntaxError, "42601"),
    ("INSERT INTO e VALUES (1, 'dup')", asyncpg.UniqueViolationError, "23505"),
    ("INSERT INTO e (id) VALUES (5)", asyncpg.NotNullViolationError, "23502"),
    ("SELECT nope FROM e", asyncpg.UndefinedColumnError, "42703"),
    ("SELECT 'x'::int", asyncpg.InvalidTextRepresentationError, "22P02"),
    ("SELECT 1 / 0", asyncpg.DivisionByZeroError, "22012"),
]


@pytest.mark.parametrize(("sql", "kind", "sqlstate"), ERRORS, ids=[e[2] for e in ERRORS])
def test_errors_carry_the_sqlstate_asyncpg_maps_to_its_exception(
    sql: str, kind: type[Exception], sqlstate: str
) -> None:
    async def main(world: Any) -> tuple[str, str]:
        con = await connect(world)
        await con.execute("CREATE TABLE e (id int PRIMARY KEY, name text NOT NULL)")
        await con.execute("INSERT INTO e VALUES (1, 'one')")
        codes = []
        for use_args in (False, True):  # simple query, then the extended protocol
            with pytest.raises(kind) as caught:
                if use_args:
                    await con.fetch(sql + " -- extended")
                else:
                    await con.execute(sql)
            codes.append(caught.value.sqlstate)
        # The connection is still usable.
        assert await con.fetchval("SELECT count(*) FROM e") == 1
        await con.close()
        return codes[0], codes[1]

    assert run(main) == (sqlstate, sqlstate)


def test_transactions_commit_roll_back_and_a_failed_block_refuses_statements() -> None:
    async def main(world: Any) -> list[Any]:
        con = await connect(world)
        other = await asyncpg.connect(host="db", user="postgres")
        await con.execute("CREATE TABLE acc (id int PRIMARY KEY, balance int NOT NULL)")
        out: list[Any] = []
        async with con.transaction():
            await con.execute("INSERT INTO acc VALUES (1, 100)")
            out.append(await other.fetchval("SELECT count(*) FROM acc"))  # not yet visible
        out.append(await other.fetchval("SELECT count(*) FROM acc"))  # committed
        with contextlib.suppress(RuntimeError):
            async with con.transaction():
                await con.execute("UPDATE acc SET balance = 0 WHERE id = 1")
                raise RuntimeError("the application gives up")
        out.append(await con.fetchval("SELECT balance FROM acc WHERE id = 1"))  # rolled back
        tr = con.transaction()
        await tr.start()
        with pytest.raises(asyncpg.UniqueViolationError):
            await con.execute("INSERT INTO acc VALUES (1, 5)")
        with pytest.raises(asyncpg.InFailedSQLTransactionError):
            await con.fetchval("SELECT 1")
        await tr.rollback()
        out.append(await con.fetchval("SELECT count(*) FROM acc"))
        await con.close()
        await other.close()
        return out

    assert run(main) == [0, 1, 100, 1]


def test_a_pool_of_many_tasks_runs_each_increment_once() -> None:
    async def main(world: Any) -> int:
        world.postgres("db")
        await asyncio.sleep(0.001)
        pool = await asyncpg.create_pool(host="db", user="postgres", min_size=2, max_size=4)
        async with pool.acquire() as con:
            await con.execute("CREATE TABLE c (id int PRIMARY KEY, n int NOT NULL)")
            await con.execute("INSERT INTO c VALUES (1, 0)")

        async def bump() -> None:
            for _ in range(5):
                async with pool.acquire() as con:
                    await con.execute("UPDATE c SET n = n + 1 WHERE id = 1")

        await asyncio.gather(*(bump() for _ in range(6)))
        value: int = await pool.fetchval("SELECT n FROM c WHERE id = 1")
        await pool.close()
        return value

    for seed in range(5):
        assert run(main, seed=seed, scheduler="random") == 30


def _lost_update_universe(isolation: str) -> Any:
    async def main(world: Any) -> tuple[int, int]:
        world.postgres("db")
        await asyncio.sleep(0.001)
        setup = await asyncpg.connect(host="db", user="postgres")
        await setup.execute("CREATE TABLE k (id int PRIMARY KEY, n int NOT NULL)")
        await setup.execute("INSERT INTO k VALUES (1, 0)")
        conflicts = 0

        async def bump() -> None:
            nonlocal conflicts
            con = await asyncpg.connect(host="db", user="postgres")
            try:
                async with con.transaction(isolation=isolation):
                    n = await con.fetchval("SELECT n FROM k WHERE id = 1")
                    await asyncio.sleep(0)
                    await con.execute("UPDATE k SET n = $1 WHERE id = 1", n + 1)
            except asyncpg.SerializationError:
                conflicts += 1
            await con.close()

        await asyncio.gather(bump(), bump())
        value: int = await setup.fetchval("SELECT n FROM k WHERE id = 1")
        await setup.close()
        return value, conflicts

    return main


def test_read_committed_loses_an_update_that_serializable_refuses_with_40001() -> None:
    committed = [
        run(_lost_update_universe("read_committed"), seed=s, scheduler="random") for s in range(12)
    ]
    serial = [
        run(_lost_update_universe("serializable"), seed=s, scheduler="random") for s in range(12)
    ]
    # Read committed: some schedule loses an increment, and nothing ever conflicts.
    assert any(value == 1 for value, _ in committed)
    assert all(conflicts == 0 for _, conflicts in committed)
    # Serializable: never a lost update; whenever both read 0, one gets 40001.
    assert all(value + conflicts == 2 for value, conflicts in serial)
    assert any(conflicts == 1 for _, conflicts in serial)


def test_a_partition_makes_a_query_hang_until_its_timeout() -> None:
    async def main(world: Any) -> str:
        con = await connect(world)
        world.net.partition("main", "db")
        with pytest.raises(asyncio.TimeoutError):
            await con.fetchval("SELECT 1", timeout=2.0)
        world.net.heal()
        return "timed out"

    assert run(main) == "timed out"


def test_a_crash_drops_the_connection_and_rolls_back_the_open_transaction() -> None:
    async def main(world: Any) -> list[Any]:
        con = await connect(world)
        host = world.hosts["db"]
        await con.execute("CREATE TABLE t (id int PRIMARY KEY)")
        await con.execute("INSERT INTO t VALUES (1)")
        tr = con.transaction()
        await tr.start()
        await con.execute("INSERT INTO t VALUES (2)")
        host.crash()
        with pytest.raises((ConnectionError, asyncpg.PostgresConnectionError, OSError)):
            await con.fetchval("SELECT 1")
        host.restart()
        await asyncio.sleep(0.001)
        fresh = await asyncpg.connect(host="db", user="postgres")
        rows = [r["id"] for r in await fresh.fetch("SELECT id FROM t ORDER BY id")]
        await fresh.close()
        return rows

    assert run(main) == [1]


def test_two_standins_at_once_see_only_their_own_database() -> None:
    async def main(world: Any) -> list[Any]:
        world.postgres("a", database="orders")
        world.postgres("b")
        await asyncio.sleep(0.001)
        a = await asyncpg.connect(host="a", user="postgres", database="orders")
        b = await asyncpg.connect(host="b", user="postgres")
        await a.execute("CREATE TABLE only_a (x int)")
        await b.execute("CREATE TABLE only_b (x int)")
        await b.execute("CREATE SEQUENCE b_seq")
        tables = "SELECT table_name FROM information_schema.tables ORDER BY table_name"
        out = [
            await a.fetchval("SELECT current_database()"),
            await b.fetchval("SELECT current_database()"),
            [r[0] for r in await a.fetch(tables)],
            [r[0] for r in await b.fetch(tables)],
        ]
        with pytest.raises(asyncpg.UndefinedTableError):
            await a.fetch("SELECT * FROM only_b")
        await a.close()
        await b.close()
        return out

    assert run(main) == ["orders", "postgres", ["only_a"], ["only_b"]]


def test_each_universe_starts_from_an_empty_database_on_a_kept_instance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DuckDB instances are kept between universes (opening one costs 20-40 ms), but
    nothing a universe made, committed, left open or lost in a crash reaches the next."""
    import duckdb

    opened = 0
    real_connect = duckdb.connect

    def counting_connect(*args: Any, **kwargs: Any) -> Any:
        nonlocal opened
        opened += 1
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counting_connect)

    async def main(world: Any) -> list[Any]:
        con = await connect(world)
        seen = [r[0] for r in await con.fetch("SELECT table_name FROM information_schema.tables")]
        await con.execute("CREATE TABLE t (id serial PRIMARY KEY, v text)")
        await con.execute("CREATE SEQUENCE s")
        first = await con.fetchval("INSERT INTO t (v) VALUES ('x') RETURNING id")
        tr = con.transaction()
        await tr.start()
        await con.execute("INSERT INTO t (v) VALUES ('open')")
        if simloom.draw("crash", 2):
            world.hosts["db"].crash()  # the engine closes only after the universe ends
        return [seen, first]

    for seed in range(12):
        assert run(main, seed=seed) == [[], 1], seed
    assert opened <= 4, f"{opened} DuckDB instances opened for 12 universes"


def test_a_dropped_connection_rolls_back_and_frees_the_write_lock() -> None:
    async def main(world: Any) -> list[Any]:
        con = await connect(world)
        await con.execute("CREATE TABLE t (id int PRIMARY KEY)")
        await con.execute("BEGIN")
        await con.execute("INSERT INTO t VALUES (1)")
        con.terminate()
        other = await asyncpg.connect(host="db", user="postgres")
        await other.execute("INSERT INTO t VALUES (2)")  # would wait forever on a held lock
        rows = [r["id"] for r in await other.fetch("SELECT id FROM t")]
        await other.close()
        return rows

    assert run(main) == [2]


def test_now_is_the_hosts_virtual_wall_clock() -> None:
    async def main(world: Any) -> list[Any]:
        con = await connect(world)
        before = await con.fetchval("SELECT now()")
        await asyncio.sleep(3600)
        after = await con.fetchval("SELECT current_timestamp")
        await con.close()
        return [before, (after - before).total_seconds()]

    before, elapsed = run(main)
    assert isinstance(before, datetime.datetime) and before.tzinfo is not None
    assert 3600 <= elapsed < 3601


def test_bad_options_are_named_errors() -> None:
    async def main(world: Any) -> None:
        with pytest.raises(SimloomUsageError, match="port"):
            world.postgres("db", port=0)
        with pytest.raises(SimloomUsageError, match="password"):
            world.postgres("db", password="")
        with pytest.raises(SimloomUsageError, match="user"):
            world.postgres("db", user="")

    run(main)


def test_sqlalchemy_asyncio_engine_over_asyncpg_does_plain_crud() -> None:
    import sqlalchemy
    from sqlalchemy.ext.asyncio import create_async_engine

    metadata = sqlalchemy.MetaData()
    users = sqlalchemy.Table(
        "users",
        metadata,
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("name", sqlalchemy.String(50), nullable=False),
        sqlalchemy.Column("score", sqlalchemy.Numeric(10, 2)),
    )

    async def main(world: Any) -> list[Any]:
        standin = world.postgres("db")
        await asyncio.sleep(0.001)
        engine = create_async_engine(standin.dsn.replace("postgresql://", "postgresql+asyncpg://"))
        out: list[Any] = []
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with engine.begin() as conn:
            result = await conn.execute(
                users.insert().returning(users.c.id), [{"name": "ada", "score": Decimal("9.5")}]
            )
            out.append(result.scalar_one())
            await conn.execute(users.insert(), [{"name": "bob"}, {"name": "cy"}])
            nested = await conn.begin_nested()  # SAVEPOINT
            await conn.execute(users.insert(), [{"name": "gone"}])
            await nested.rollback()
        async with engine.connect() as conn:
            rows = await conn.execute(
                sqlalchemy.select(users.c.id, users.c.name).order_by(users.c.id)
            )
            out.append([tuple(r) for r in rows])
            await conn.execute(users.update().where(users.c.name == "bob").values(score=1))
            await conn.execute(users.delete().where(users.c.name == "cy"))
            await conn.commit()
            rows = await conn.execute(
                sqlalchemy.select(users.c.name, users.c.score).order_by(users.c.id)
            )
            out.append([tuple(r) for r in rows])
        await engine.dispose()
        return out

    assert run(main) == [
        1,
        [(1, "ada"), (2, "bob"), (3, "cy")],
        [("ada", Decimal("9.50")), ("bob", Decimal("1.00"))],
    ]


# -------------------------------------------------------------- durability


def durability_universe(writes: int = 12) -> Any:
    """Clients commit rows (autocommit inserts and explicit transactions) while a
    timer cuts the power at a tape-chosen moment; after a restart, what survived
    is returned with what each client heard committed and what never committed."""

    async def main(world: Any) -> tuple[set[int], set[int], set[int], set[int]]:
        world.postgres("db")
        host = world.hosts["db"]
        await asyncio.sleep(0.001)
        setup = await asyncpg.connect(host="db", user="postgres")
        await setup.execute("CREATE TABLE r (id int PRIMARY KEY, note text)")
        await setup.close()
        acknowledged: set[int] = set()
        attempted: set[int] = set()
        rolled_back: set[int] = set()
        crash_at = simloom.draw("crash_at", 50) * 0.003

        async def writer(base: int) -> None:
            with contextlib.suppress(Exception):
                con = await asyncpg.connect(host="db", user="postgres")
                for i in range(base, base + writes):
                    attempted.add(i)
                    if i % 3 == 0:
                        await con.execute("INSERT INTO r VALUES ($1, 'auto')", i)
                    elif i % 3 == 1:
                        async with con.transaction():
                            await con.execute("INSERT INTO r VALUES ($1, 'tx')", i)
                            await con.execute("UPDATE r SET note = 'tx2' WHERE id = $1", i)
                    else:
                        tr = con.transaction()
                        await tr.start()
                        rolled_back.add(i)
                        await con.execute("INSERT INTO r VALUES ($1, 'never')", i)
                        await tr.rollback()
                        continue
                    acknowledged.add(i)

        async def power_cut() -> None:
            await asyncio.sleep(crash_at)
            host.crash()

        await asyncio.gather(writer(0), writer(100), power_cut())
        host.restart()
        await asyncio.sleep(0.001)
        fresh = await asyncpg.connect(host="db", user="postgres")
        rows = await fresh.fetch("SELECT id, note FROM r")
        await fresh.close()
        assert all(r["note"] in ("auto", "tx2") for r in rows), rows  # never half a transaction
        return {r["id"] for r in rows}, acknowledged, attempted, rolled_back

    return main


def test_committed_transactions_survive_a_crash_and_nothing_else_appears() -> None:
    # 1,000 universes with SIMLOOM_PG_CRASH_UNIVERSES=1000 (the soak); 100 by default.
    universes = int(os.environ.get("SIMLOOM_PG_CRASH_UNIVERSES", "100"))
    lost_unacknowledged = kept_unacknowledged = 0
    for seed in range(universes):
        present, acknowledged, attempted, rolled_back = run(durability_universe(), seed=seed)
        assert acknowledged <= present, (seed, acknowledged - present)
        assert present <= attempted, (seed, present - attempted)
        assert not present & rolled_back, (seed, present & rolled_back)
        in_flight = attempted - acknowledged - rolled_back
        kept_unacknowledged += len(present & in_flight)
        lost_unacknowledged += len(in_flight - present)
    # Both sides of a commit cut mid-flush happen: the crash model is exercised.
    assert lost_unacknowledged > 0
    assert kept_unacknowledged > 0


def test_the_log_is_replayed_and_a_torn_tail_is_dropped() -> None:
    async def main(world: Any) -> tuple[list[int], int, int]:
        standin = world.postgres("db")
        host = world.hosts["db"]
        con = await connect(world)
        await con.execute("CREATE TABLE s (id serial PRIMARY KEY, v int)")
        await con.execute("BEGIN")
        await con.execute("INSERT INTO s (v) VALUES (0)")  # takes id 1, then rolls back
        await con.execute("ROLLBACK")
        for v in (1, 2):
            await con.execute("INSERT INTO s (v) VALUES ($1)", v)
        await con.close()
        size = host.disk.size("pg_wal.log")
        # A torn record after the synced ones: as if a flush was cut short.
        with host.disk.open("pg_wal.log", "r+") as wal:
            wal.seek(size)
            wal.write(b"\x00\x00\x01\x00garbage")
            wal.fsync()
        host.crash()
        host.restart()
        await asyncio.sleep(0.001)
        fresh = await asyncpg.connect(host="db", user="postgres")
        ids = [r["id"] for r in await fresh.fetch("SELECT id FROM s ORDER BY id")]
        await fresh.execute("INSERT INTO s (v) VALUES (3)")
        ids.append(await fresh.fetchval("SELECT max(id) FROM s"))
        await fresh.close()
        return ids, standin.loaded_transactions, host.disk.size("pg_wal.log") - size

    ids, loaded, grown = run(main)
    # Sequence values a rolled-back transaction took stay taken after replay.
    assert ids == [2, 3, 4]
    assert loaded == 3  # CREATE TABLE and two inserts; the torn tail dropped
    assert grown > 0  # the new insert was appended where the torn tail was cut


def test_a_cursor_fetches_through_portal_row_limits() -> None:
    async def main(world: Any) -> list[Any]:
        con = await connect(world)
        await con.execute("CREATE TABLE n (i int PRIMARY KEY)")
        await con.executemany("INSERT INTO n VALUES ($1)", [(i,) for i in range(25)])
        out: list[Any] = []
        async with con.transaction():
            out.append([r["i"] async for r in con.cursor("SELECT i FROM n ORDER BY i", prefetch=4)])
            cursor = await con.cursor("SELECT i FROM n WHERE i >= $1 ORDER BY i", 20)
            out.append([r["i"] for r in await cursor.fetch(3)])
            out.append([r["i"] for r in await cursor.fetch(10)])
        await con.close()
        return out

    assert run(main) == [list(range(25)), [20, 21, 22], [23, 24]]


def test_select_for_update_makes_read_committed_read_modify_write_safe() -> None:
    async def main(world: Any) -> int:
        world.postgres("db")
        await asyncio.sleep(0.001)
        setup = await asyncpg.connect(host="db", user="postgres")
        await setup.execute("CREATE TABLE k (id int PRIMARY KEY, n int NOT NULL)")
        await setup.execute("INSERT INTO k VALUES (1, 0)")

        async def bump() -> None:
            con = await asyncpg.connect(host="db", user="postgres")
            async with con.transaction():
                n = await con.fetchval("SELECT n FROM k WHERE id = 1 FOR UPDATE")
                await asyncio.sleep(0)
                await con.execute("UPDATE k SET n = $1 WHERE id = 1", n + 1)
            await con.close()

        await asyncio.gather(bump(), bump(), bump())
        value: int = await setup.fetchval("SELECT n FROM k WHERE id = 1")
        await setup.close()
        return value

    for seed in range(10):
        assert run(main, seed=seed, scheduler="random") == 3


def test_nested_transactions_roll_back_to_their_savepoint() -> None:
    async def main(world: Any) -> list[Any]:
        con = await connect(world)
        await con.execute("CREATE TABLE s (id serial PRIMARY KEY, v text NOT NULL)")
        out: list[Any] = []
        async with con.transaction():
            out.append(await con.fetchval("INSERT INTO s (v) VALUES ('outer') RETURNING id"))
            with contextlib.suppress(asyncpg.UniqueViolationError):
                async with con.transaction():  # SAVEPOINT
                    await con.execute("INSERT INTO s (v) VALUES ('inner')")
                    await con.execute("INSERT INTO s (id, v) VALUES (1, 'dup')")
            async with con.transaction():
                out.append(await con.fetchval("INSERT INTO s (v) VALUES ('kept') RETURNING id"))
        out.append([tuple(r) for r in await con.fetch("SELECT id, v FROM s ORDER BY id")])
        with pytest.raises(asyncpg.NoActiveSQLTransactionError):
            await con.execute("SAVEPOINT nowhere")
        await con.close()
        # The log replays to the same rows, ids included.
        world.hosts["db"].crash()
        world.hosts["db"].restart()
        await asyncio.sleep(0.001)
        fresh = await asyncpg.connect(host="db", user="postgres")
        out.append([tuple(r) for r in await fresh.fetch("SELECT id, v FROM s ORDER BY id")])
        out.append(await fresh.fetchval("INSERT INTO s (v) VALUES ('next') RETURNING id"))
        await fresh.close()
        return out

    assert run(main) == [
        1,
        3,  # id 2 went to the rolled-back 'inner', as in Postgres
        [(1, "outer"), (3, "kept")],
        [(1, "outer"), (3, "kept")],
        4,
    ]


def test_snapshots_read_committed_sees_each_commit_serializable_keeps_its_snapshot() -> None:
    async def main(world: Any) -> dict[str, list[int]]:
        con = await connect(world)
        await con.execute("CREATE TABLE v (id int PRIMARY KEY)")
        writer = await asyncpg.connect(host="db", user="postgres")
        seen: dict[str, list[int]] = {}
        for isolation in ("read_committed", "serializable"):
            await writer.execute("DELETE FROM v")
            async with con.transaction(isolation=isolation, readonly=isolation == "serializable"):
                counts = [await con.fetchval("SELECT count(*) FROM v")]
                await writer.execute("INSERT INTO v VALUES (1)")
                counts.append(await con.fetchval("SELECT count(*) FROM v"))
                await writer.execute("INSERT INTO v VALUES (2)")
                counts.append(await con.fetchval("SELECT count(*) FROM v"))
            seen[isolation] = counts
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            async with con.transaction(readonly=True):
                await con.execute("INSERT INTO v VALUES (3)")
        await con.close()
        await writer.close()
        return seen

    assert run(main) == {"read_committed": [0, 1, 2], "serializable": [0, 0, 0]}


def test_the_same_seed_replays_the_same_universe() -> None:
    main = _lost_update_universe("serializable")
    first = simloom.run(main, seed=7, scheduler="random")
    second = simloom.run(main, seed=7, scheduler="random")
    first.raise_error()
    assert first.value == second.value and first.digest == second.digest
