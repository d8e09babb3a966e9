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
    max_examples=100,
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
