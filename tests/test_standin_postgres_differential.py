"""The Postgres stand-in against a real PostgreSQL 15 started by this module (as
an unprivileged user when the tests run as root, in a temporary directory, on a
free loopback port): the same Hypothesis-generated command sequences through
unmodified asyncpg, comparing rows, command tags and SQLSTATEs."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import simloom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def postgres_binaries() -> Path:
    """The directory with initdb and postgres: $SIMLOOM_POSTGRES_BIN, the PATH, or
    the Debian layout (installed by `make postgres`)."""
    candidates = [os.environ.get("SIMLOOM_POSTGRES_BIN", "")]
    found = shutil.which("postgres")
    if found:
        candidates.append(str(Path(os.path.realpath(found)).parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    pytest.fail(
        "PostgreSQL is not installed: `make postgres` (scripts/bootstrap.sh postgres) installs "
        "it from the OS packages (or set SIMLOOM_POSTGRES_BIN to the directory of initdb)"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def real_postgres() -> Iterator[int]:
    binaries = postgres_binaries()
    # Not under pytest's tmp_path: its parents are closed to other users.
    directory = Path(tempfile.mkdtemp(prefix="simloom-postgres-"))
    data = directory / "data"
    # Postgres refuses to run as root: run it as `nobody` then.
    user = None
    if os.geteuid() == 0:
        user = "nobody"
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
        os.chmod(directory, 0o700)
    initdb = subprocess.run(
        [
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        user=user,
        cwd=directory,
    )
    if initdb.returncode:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.fail(f"initdb failed: {initdb.stderr.decode(errors='replace')}")
    port = free_port()
    server = subprocess.Popen(
        [
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(directory),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "TimeZone=UTC",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        user=user,
        cwd=directory,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("postgres did not start")
                time.sleep(0.05)
        time.sleep(0.2)  # accepting connections is not yet accepting logins
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)


KEYS = st.integers(0, 4)
VALUES = st.one_of(st.none(), st.sampled_from(["a", "b", "hello", "", "x y"]))
COMMANDS = st.one_of(
    st.tuples(st.just("INSERT INTO t VALUES ($1, $2)"), KEYS, VALUES),
    st.tuples(st.just("INSERT INTO t (v) VALUES ($1)"), VALUES),  # NOT NULL id
    st.tuples(st.just("SELECT id, v FROM t ORDER BY id")),
    st.tuples(st.just("SELECT v FROM t WHERE id = $1"), KEYS),
    st.tuples(st.just("SELECT count(*) FROM t WHERE id >= $1"), KEYS),
    st.tuples(st.just("UPDATE t SET v = $1 WHERE id = $2"), VALUES, KEYS),
    st.tuples(st.just("UPDATE t SET n = n + 1 WHERE id <= $1"), KEYS),
    st.tuples(st.just("DELETE FROM t WHERE id = $1"), KEYS),
    st.tuples(st.just("SELECT id FROM t WHERE v = $1 ORDER BY id"), VALUES),
    st.tuples(st.just("SELECT * FROM missing")),
    st.tuples(st.just("SELECT nope FROM t")),
    st.tuples(st.just("SELECT n / (n - n) FROM t")),
    st.tuples(st.just("BEGIN")),
    st.tuples(st.just("COMMIT")),
    st.tuples(st.just("ROLLBACK")),
    st.tuples(st.just("SAVEPOINT a")),
    st.tuples(st.just("ROLLBACK TO SAVEPOINT a")),
    st.tuples(st.just("RELEASE SAVEPOINT a")),
)
SCHEMA = "CREATE TABLE t (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0)"


async def replies(con: asyncpg.Connection, commands: list[tuple[Any, ...]]) -> list[Any]:
    out: list[Any] = []
    for sql, *args in commands:
        try:
            if sql in ("BEGIN", "COMMIT", "ROLLBACK") or sql.startswith(
                ("INSERT", "UPDATE", "DELETE")
            ):
                out.append(await con.execute(sql, *args))
            else:
                out.append([tuple(row) for row in await con.fetch(sql, *args)])
        except asyncpg.PostgresError as error:
            out.append(("error", error.sqlstate))
    return out


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(COMMANDS, max_size=20))
def test_rows_tags_and_sqlstates_match_a_real_postgresql(
    real_postgres: int, commands: list[tuple[Any, ...]]
) -> None:
    async def against_real() -> list[Any]:
        con = await asyncpg.connect(host="127.0.0.1", port=real_postgres, user="postgres")
        try:
            await con.execute("DROP TABLE IF EXISTS t")
            await con.execute(SCHEMA)
            return await replies(con, commands)
        finally:
            await con.close()

    async def against_standin(world: Any) -> list[Any]:
        world.postgres("db")
        await asyncio.sleep(0.001)
        con = await asyncpg.connect(host="db", user="postgres")
        try:
            await con.execute(SCHEMA)
            return await replies(con, commands)
        finally:
            await con.close()

    expected = asyncio.run(against_real())
    result = simloom.run(against_standin)
    result.raise_error()
    assert result.value == expected


async def simple_query_rows(
    host: str, port: int, sql: str, requests: tuple[int, ...] = (80877103,)
) -> tuple[bytes, list[list[Any]]]:
    """A minimal client of the wire protocol: encryption requests (SSLRequest by
    default; each must be refused with ``N``), startup, then one simple query; the
    text-format rows, and the tags of what came back."""
    reader, writer = await asyncio.open_connection(host, port)
    answers = b""
    for code in requests:
        writer.write(struct.pack("!ii", 8, code))
        answers += await reader.readexactly(1)
    body = b"user\x00postgres\x00database\x00postgres\x00\x00"
    writer.write(struct.pack("!ii", len(body) + 8, 196608) + body)

    async def message() -> tuple[bytes, bytes]:
        kind = await reader.readexactly(1)
        (length,) = struct.unpack("!i", await reader.readexactly(4))
        return kind, await reader.readexactly(length - 4)

    while (await message())[0] != b"Z":
        pass
    query = sql.encode() + b"\x00"
    writer.write(b"Q" + struct.pack("!i", len(query) + 4) + query)
    rows: list[list[Any]] = []
    while True:
        kind, data = await message()
        if kind == b"Z":
            break
        if kind == b"D":
            (count,) = struct.unpack_from("!h", data)
            offset, row = 2, []
            for _ in range(count):
                (size,) = struct.unpack_from("!i", data, offset)
                offset += 4
                row.append(None if size < 0 else data[offset : offset + size].decode())
                offset += max(size, 0)
            rows.append(row)
        elif kind in (b"C", b"I", b"E"):
            rows.append([kind.decode()])
    writer.write(b"X\x00\x00\x00\x04")
    writer.close()
    return answers, rows


TEXT_FORMATS = (
    "SELECT 1::int2, -2::int4, 3000000000::int8, 1.5::float4, 0.1::float8, "
    "12.50::numeric(5,2), true, false, 'a b'::text, '\\x00ff'::bytea, DATE '2020-01-02', "
    "TIMESTAMP '2020-01-02 03:04:05.5', TIMESTAMPTZ '2020-01-02 03:04:05+00', "
    "'12345678-1234-5678-1234-567812345678'::uuid, ARRAY[1, 2, NULL], ARRAY['a', 'b c'], "
    "NULL::int; ; SELECT 1 WHERE false"
)


def test_simple_query_text_formats_match_a_real_postgresql(real_postgres: int) -> None:
    requests = (80877103,)  # SSLRequest, as asyncpg sends by default

    async def against_standin(world: Any) -> Any:
        world.postgres("db")
        await asyncio.sleep(0.001)
        return await simple_query_rows("db", 5432, TEXT_FORMATS, requests)

    expected = asyncio.run(simple_query_rows("127.0.0.1", real_postgres, TEXT_FORMATS, requests))
    assert expected[0] == b"N"
    result = simloom.run(against_standin)
    result.raise_error()
    assert result.value == expected


def test_a_gssenc_request_then_an_ssl_request_are_both_refused() -> None:
    async def main(world: Any) -> Any:
        world.postgres("db")
        await asyncio.sleep(0.001)
        return await simple_query_rows("db", 5432, "SELECT 1", (80877104, 80877103))

    result = simloom.run(main)
    result.raise_error()
    assert result.value == (b"NN", [["1"], ["C"]])
