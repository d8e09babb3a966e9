"""The Redis stand-in's commands: one function per command, registered with its
arity (as ``COMMAND INFO`` gives it: ``n`` exactly, ``-n`` at least) and whether
it writes (a write is appended to the append-only file).

Each returns the reply; a write appends its effect to the file, with relative
expiries made absolute (as Redis rewrites them), so a replay after a restart gives
the same state whenever it happens.

Owns: what each command does. Must not: yield (a command runs to the end).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from ._resp import (
    _SYNTAX,
    NO_REPLY,
    NULL_ARRAY,
    OK,
    VERSION,
    _Connection,
    _Error,
    _float,
    _format_float,
    _int,
    _match,
    _now_ms,
    _Push,
    _SetReply,
    _Simple,
)

__all__ = ["table"]

Handler = Callable[[_Connection, list[bytes]], Any]


def table(server: Any) -> dict[bytes, tuple[Handler, int, bool]]:
    """The command table of ``server``."""
    s = server
    commands: dict[bytes, tuple[Handler, int, bool]] = {}

    def command(name: str, arity: int, writes: bool = False) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            def run(connection: _Connection, args: list[bytes]) -> Any:
                connection.aof_entries = None
                try:
                    reply = handler(connection, args)
                except _Error:
                    connection.aof_entries = None
                    raise
                if writes:
                    logged = connection.aof_entries
                    entry = logged if logged is not None else [[name.encode(), *args]]
                    connection.aof_entries = None
                    s._append(connection, entry)
                return reply

            commands[name.encode()] = (run, arity, writes)
            return handler

        return register

    def log(connection: _Connection, *entries: list[bytes]) -> None:
        """What a write appends instead of itself (or nothing, with no entries)."""
        connection.aof_entries = list(entries)

    # ------------------------------------------------------------ connection

    @command("ping", -1)
    def ping(c: _Connection, a: list[bytes]) -> Any:
        if c.proto == 2 and c.subscribed:
            return [b"pong", a[0] if a else b""]
        return a[0] if a else _Simple("PONG")

    @command("echo", 2)
    def echo(c: _Connection, a: list[bytes]) -> Any:
        return a[0]

    @command("quit", -1)
    def quit_(c: _Connection, a: list[bytes]) -> Any:
        return OK

    @command("auth", -2)
    def auth(c: _Connection, a: list[bytes]) -> Any:
        password = a[-1]
        if s.password is None:
            raise _Error(
                "ERR AUTH <password> called without any password configured for the default user"
            )
        if password != s.password or (len(a) == 2 and a[0] != b"default"):
            raise _Error("WRONGPASS invalid username-password pair or user is disabled.")
        c.authenticated = True
        return OK

    @command("hello", -1)
    def hello(c: _Connection, a: list[bytes]) -> Any:
        if a:
            version = _int(a[0]) if a[0].isdigit() else -1
            if version not in (2, 3):
                raise _Error("NOPROTO unsupported protocol version")
            rest = a[1:]
            while rest:
                option = rest[0].lower()
                if option == b"auth" and len(rest) >= 3:
                    auth(c, [rest[1], rest[2]])
                    rest = rest[3:]
                elif option == b"setname" and len(rest) >= 2:
                    c.name = rest[1]
                    rest = rest[2:]
                else:
                    raise _Error(_SYNTAX)
            if not c.authenticated:
                raise _Error("NOAUTH HELLO must be called with the client already authenticated")
            c.proto = version
        return {
            b"server": b"redis",
            b"version": VERSION.encode(),
            b"proto": c.proto,
            b"id": c.ident,
            b"mode": b"standalone",
            b"role": b"master",
            b"modules": [],
        }

    @command("select", 2)
    def select(c: _Connection, a: list[bytes]) -> Any:
        index = _int(a[0])
        if not 0 <= index < s.databases:
            raise _Error("ERR DB index is out of range")
        c.db = index
        return OK

    @command("client", -2)
    def client(c: _Connection, a: list[bytes]) -> Any:
        sub = a[0].lower()
        if sub == b"setname" and len(a) == 2:
            c.name = a[1]
            return OK
        if sub == b"getname":
            return c.name
        if sub == b"id":
            return c.ident
        if sub == b"setinfo" and len(a) == 3:
            return OK
        if sub == b"list":
            return f"id={c.ident} db={c.db} resp={c.proto}\n".encode()
        raise _Error(f"ERR unknown subcommand '{a[0].decode('latin-1')}'")

    @command("reset", 1)
    def reset(c: _Connection, a: list[bytes]) -> Any:
        s._drop_subscriptions(c)
        c.multi, c.multi_failed, c.watched, c.db, c.proto = None, False, {}, 0, 2
        c.authenticated = s.password is None
        return _Simple("RESET")

    @command("info", -1)
    def info(c: _Connection, a: list[bytes]) -> Any:
        keys = sum(len(s._live_keys(db)) for db in range(s.databases))
        lines = [
            "# Server",
            f"redis_version:{VERSION}",
            "redis_mode:standalone",
            "os:simloom",
            "# Clients",
            f"connected_clients:{s._next_client}",
            "# Persistence",
            "loading:0",
            f"aof_enabled:{int(s.appendonly)}",
            "# Replication",
            "role:master",
            "# Keyspace",
            *(
                f"db{db}:keys={len(s._live_keys(db))},expires={len(s._expires[db])}"
                for db in range(s.databases)
                if s._live_keys(db)
            ),
            f"# total keys:{keys}",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()

    @command("config", -2)
    def config(c: _Connection, a: list[bytes]) -> Any:
        if a[0].lower() == b"get":
            known = {
                b"appendonly": b"yes" if s.appendonly else b"no",
                b"appendfsync": s.appendfsync.encode(),
                b"databases": str(s.databases).encode(),
            }
            found = {k: v for k, v in known.items() if any(_match(p.lower(), k) for p in a[1:])}
            return found if c.proto == 3 else [x for kv in found.items() for x in kv]
        if a[0].lower() == b"set":
            return OK
        raise _Error(f"ERR unknown subcommand '{a[0].decode('latin-1')}'")

    @command("time", 1)
    def time_(c: _Connection, a: list[bytes]) -> Any:
        now = int(_now_ms() * 1000)
        return [str(now // 1_000_000).encode(), str(now % 1_000_000).encode()]

    # ------------------------------------------------------------------ keys

    @command("dbsize", 1)
    def dbsize(c: _Connection, a: list[bytes]) -> Any:
        return len(s._live_keys(c.db))

    @command("flushdb", -1, writes=True)
    def flushdb(c: _Connection, a: list[bytes]) -> Any:
        for key in list(s._dbs[c.db]):
            s._touch(c.db, key)
        s._dbs[c.db].clear()
        s._expires[c.db].clear()
        return OK

    @command("flushall", -1, writes=True)
    def flushall(c: _Connection, a: list[bytes]) -> Any:
        for db in range(s.databases):
            for key in list(s._dbs[db]):
                s._touch(db, key)
            s._dbs[db].clear()
            s._expires[db].clear()
        return OK

    @command("del", -2, writes=True)
    def delete(c: _Connection, a: list[bytes]) -> Any:
        return sum(s._delete(c, key) for key in a)

    commands[b"unlink"] = commands[b"del"]

    @command("exists", -2)
    def exists(c: _Connection, a: list[bytes]) -> Any:
        return sum(s._alive(c.db, key) for key in a)

    @command("type", 2)
    def type_(c: _Connection, a: list[bytes]) -> Any:
        value = s._get(c, a[0])
        return _Simple(_type_name(value))

    @command("keys", 2)
    def keys(c: _Connection, a: list[bytes]) -> Any:
        return [key for key in s._live_keys(c.db) if _match(a[0], key)]

    @command("scan", -2)
    def scan(c: _Connection, a: list[bytes]) -> Any:
        cursor = _int(a[0])
        pattern, count, kind = None, 10, None
        rest = a[1:]
        while rest:
            option = rest[0].lower()
            if len(rest) < 2:
                raise _Error(_SYNTAX)
            if option == b"match":
                pattern = rest[1]
            elif option == b"count":
                count = _int(rest[1])
                if count < 1:
                    raise _Error(_SYNTAX)
            elif option == b"type":
                kind = rest[1].decode("latin-1").lower()
            else:
                raise _Error(_SYNTAX)
            rest = rest[2:]
        # The cursor is a position in the sorted key space: keys present for the
        # whole scan are returned (a key may come twice, as in Redis).
        ordered = sorted(s._live_keys(c.db))
        start = bisect.bisect_left(ordered, _cursor_key(cursor)) if cursor else 0
        chunk = ordered[start : start + count]
        following = start + count
        next_cursor = _key_cursor(ordered[following]) if following < len(ordered) else 0
        found = [
            key
            for key in chunk
            if _match(pattern, key) and (kind is None or _type_name(s._dbs[c.db][key]) == kind)
        ]
        return [str(next_cursor).encode(), found]

    @command("rename", 3, writes=True)
    def rename(c: _Connection, a: list[bytes]) -> Any:
        if not s._alive(c.db, a[0]):
            raise _Error("ERR no such key")
        value = s._dbs[c.db][a[0]]
        deadline = s._expires[c.db].get(a[0])
        s._delete(c, a[0])
        s._set(c, a[1], value)
        if deadline is not None:
            s._expires[c.db][a[1]] = deadline
        return OK

    def set_deadline(c: _Connection, key: bytes, deadline_ms: float) -> None:
        s._expires[c.db][key] = deadline_ms
        s._touch(c.db, key)

    def expire_with(unit_ms: float, absolute: bool) -> Handler:
        def handler(c: _Connection, a: list[bytes]) -> Any:
            amount = _int(a[1])
            if not s._alive(c.db, a[0]):
                log(c)
                return 0
            deadline = amount * unit_ms if absolute else _now_ms() + amount * unit_ms
            if deadline <= _now_ms():
                s._delete(c, a[0])
                log(c, [b"DEL", a[0]])
                return 1
            set_deadline(c, a[0], deadline)
            log(c, [b"PEXPIREAT", a[0], b"%d" % int(deadline)])
            return 1

        return handler

    command("expire", -3, writes=True)(expire_with(1000.0, absolute=False))
    command("pexpire", -3, writes=True)(expire_with(1.0, absolute=False))
    command("expireat", -3, writes=True)(expire_with(1000.0, absolute=True))
    command("pexpireat", -3, writes=True)(expire_with(1.0, absolute=True))

    @command("persist", 2, writes=True)
    def persist(c: _Connection, a: list[bytes]) -> Any:
        if s._alive(c.db, a[0]) and s._expires[c.db].pop(a[0], None) is not None:
            s._touch(c.db, a[0])
            return 1
        log(c)
        return 0

    def ttl_with(unit_ms: float) -> Handler:
        def handler(c: _Connection, a: list[bytes]) -> Any:
            if not s._alive(c.db, a[0]):
                return -2
            deadline = s._expires[c.db].get(a[0])
            if deadline is None:
                return -1
            left = deadline - _now_ms()
            return max(0, int((left + unit_ms - 1) // unit_ms)) if unit_ms > 1 else int(left)

        return handler

    command("ttl", 2)(ttl_with(1000.0))
    command("pttl", 2)(ttl_with(1.0))

    # --------------------------------------------------------------- strings

    def get_string(c: _Connection, key: bytes) -> bytes | None:
        value = s._get(c, key, bytes)
        return value if value is None else bytes(value)

    @command("get", 2)
    def get(c: _Connection, a: list[bytes]) -> Any:
        return get_string(c, a[0])

    @command("set", -3, writes=True)
    def set_(c: _Connection, a: list[bytes]) -> Any:
        key, value = a[0], a[1]
        nx = xx = keep = want_old = False
        deadline: float | None = None
        rest = a[2:]
        while rest:
            option = rest[0].lower()
            if option in (b"ex", b"px", b"exat", b"pxat"):
                if len(rest) < 2 or deadline is not None or keep:
                    raise _Error(_SYNTAX)
                amount = _int(rest[1])
                if amount <= 0:
                    raise _Error("ERR invalid expire time in 'set' command")
                unit = 1000.0 if option in (b"ex", b"exat") else 1.0
                absolute = option.endswith(b"at")
                deadline = amount * unit if absolute else _now_ms() + amount * unit
                rest = rest[2:]
                continue
            if option == b"nx" and not xx:
                nx = True
            elif option == b"xx" and not nx:
                xx = True
            elif option == b"keepttl" and deadline is None:
                keep = True
            elif option == b"get":
                want_old = True
            else:
                raise _Error(_SYNTAX)
            rest = rest[1:]
        old = get_string(c, key) if want_old else None
        present = s._alive(c.db, key)
        if (nx and present) or (xx and not present):
            log(c)
            return old if want_old else None
        s._set(c, key, value, keep_ttl=keep)
        entry = [b"SET", key, value]
        if deadline is not None:
            s._expires[c.db][key] = deadline
            entry += [b"PXAT", b"%d" % int(deadline)]
        elif keep:
            entry.append(b"KEEPTTL")
        log(c, entry)
        return old if want_old else OK

    @command("setnx", 3, writes=True)
    def setnx(c: _Connection, a: list[bytes]) -> Any:
        return 1 if set_(c, [a[0], a[1], b"NX"]) is OK else 0

    @command("setex", 4, writes=True)
    def setex(c: _Connection, a: list[bytes]) -> Any:
        return set_(c, [a[0], a[2], b"EX", a[1]])

    @command("psetex", 4, writes=True)
    def psetex(c: _Connection, a: list[bytes]) -> Any:
        return set_(c, [a[0], a[2], b"PX", a[1]])

    @command("getset", 3, writes=True)
    def getset(c: _Connection, a: list[bytes]) -> Any:
        return set_(c, [a[0], a[1], b"GET"])

    @command("getdel", 2, writes=True)
    def getdel(c: _Connection, a: list[bytes]) -> Any:
        value = get_string(c, a[0])
        if value is not None:
            s._delete(c, a[0])
            log(c, [b"DEL", a[0]])
        else:
            log(c)
        return value

    @command("mget", -2)
    def mget(c: _Connection, a: list[bytes]) -> Any:
        out = []
        for key in a:
            value = s._get(c, key)
            out.append(value if isinstance(value, bytes) else None)
        return out

    @command("mset", -3, writes=True)
    def mset(c: _Connection, a: list[bytes]) -> Any:
        if len(a) % 2:
            raise _Error("ERR wrong number of arguments for 'mset' command")
        for key, value in zip(a[::2], a[1::2], strict=True):
            s._set(c, key, value)
        return OK

    @command("msetnx", -3, writes=True)
    def msetnx(c: _Connection, a: list[bytes]) -> Any:
        if len(a) % 2:
            raise _Error("ERR wrong number of arguments for 'msetnx' command")
        if any(s._alive(c.db, key) for key in a[::2]):
            log(c)
            return 0
        mset(c, a)
        return 1

    @command("append", 3, writes=True)
    def append(c: _Connection, a: list[bytes]) -> Any:
        value = (get_string(c, a[0]) or b"") + a[1]
        s._set(c, a[0], value, keep_ttl=True)
        return len(value)

    @command("strlen", 2)
    def strlen(c: _Connection, a: list[bytes]) -> Any:
        return len(get_string(c, a[0]) or b"")

    def add_int(c: _Connection, key: bytes, amount: int) -> int:
        current = get_string(c, key)
        try:
            number = int(current) if current is not None else 0
        except ValueError:
            raise _Error(_NOT_INTEGER_) from None
        number += amount
        if not -(2**63) <= number < 2**63:
            raise _Error("ERR increment or decrement would overflow")
        s._set(c, key, str(number).encode(), keep_ttl=True)
        return number

    @command("incr", 2, writes=True)
    def incr(c: _Connection, a: list[bytes]) -> Any:
        return add_int(c, a[0], 1)

    @command("decr", 2, writes=True)
    def decr(c: _Connection, a: list[bytes]) -> Any:
        return add_int(c, a[0], -1)

    @command("incrby", 3, writes=True)
    def incrby(c: _Connection, a: list[bytes]) -> Any:
        return add_int(c, a[0], _int(a[1]))

    @command("decrby", 3, writes=True)
    def decrby(c: _Connection, a: list[bytes]) -> Any:
        return add_int(c, a[0], -_int(a[1]))

    @command("incrbyfloat", 3, writes=True)
    def incrbyfloat(c: _Connection, a: list[bytes]) -> Any:
        current = get_string(c, a[0])
        try:
            number = float(current) if current is not None else 0.0
        except ValueError:
            raise _Error("ERR value is not a valid float") from None
        text = _format_float(number + _float(a[1])).encode()
        s._set(c, a[0], text, keep_ttl=True)
        log(c, [b"SET", a[0], text, b"KEEPTTL"])
        return text

    def container(c: _Connection, key: bytes, kind: type, create: bool) -> Any:
        """The hash, list, set or sorted set at ``key`` (``WRONGTYPE`` if the key
        holds another kind), made empty and stored if missing and ``create``."""
        value = s._get(c, key, kind)
        if value is None and create:
            value = kind()
            s._dbs[c.db][key] = value
        return value

    def remove(c: _Connection, key: bytes, kind: type, names: list[bytes]) -> int:
        """HDEL, SREM, ZREM: remove ``names`` from the container at ``key``; how
        many were there (a missing key writes nothing to the file)."""
        value = container(c, key, kind, False)
        if value is None:
            log(c)
            return 0
        present = [name for name in dict.fromkeys(names) if name in value]
        for name in present:
            if isinstance(value, set):
                value.discard(name)
            else:
                del value[name]
        s._changed(c, key)
        return len(present)

    # ---------------------------------------------------------------- hashes

    def hash_of(c: _Connection, key: bytes, create: bool = False) -> dict[bytes, bytes] | None:
        value: dict[bytes, bytes] | None = container(c, key, dict, create)
        return value

    @command("hset", -4, writes=True)
    def hset(c: _Connection, a: list[bytes]) -> Any:
        if len(a) % 2 == 0:
            raise _Error("ERR wrong number of arguments for 'hset' command")
        h = hash_of(c, a[0], create=True)
        assert h is not None
        added = 0
        for field, value in zip(a[1::2], a[2::2], strict=True):
            added += field not in h
            h[field] = value
        s._changed(c, a[0])
        return added

    commands[b"hmset"] = (
        lambda c, a: (hset_run(c, a), OK)[1],
        -4,
        True,
    )
    hset_run = commands[b"hset"][0]

    @command("hsetnx", 4, writes=True)
    def hsetnx(c: _Connection, a: list[bytes]) -> Any:
        h = hash_of(c, a[0], create=True)
        assert h is not None
        if a[1] in h:
            log(c)
            return 0
        h[a[1]] = a[2]
        s._changed(c, a[0])
        return 1

    @command("hget", 3)
    def hget(c: _Connection, a: list[bytes]) -> Any:
        h = hash_of(c, a[0])
        return None if h is None else h.get(a[1])

    @command("hmget", -3)
    def hmget(c: _Connection, a: list[bytes]) -> Any:
        h = hash_of(c, a[0]) or {}
        return [h.get(f) for f in a[1:]]

    @command("hgetall", 2)
    def hgetall(c: _Connection, a: list[bytes]) -> Any:
        return dict(hash_of(c, a[0]) or {})

    @command("hdel", -3, writes=True)
    def hdel(c: _Connection, a: list[bytes]) -> Any:
        return remove(c, a[0], dict, a[1:])

    @command("hexists", 3)
    def hexists(c: _Connection, a: list[bytes]) -> Any:
        return int(a[1] in (hash_of(c, a[0]) or {}))

    @command("hlen", 2)
    def hlen(c: _Connection, a: list[bytes]) -> Any:
        return len(hash_of(c, a[0]) or {})

    @command("hkeys", 2)
    def hkeys(c: _Connection, a: list[bytes]) -> Any:
        return list(hash_of(c, a[0]) or {})

    @command("hvals", 2)
    def hvals(c: _Connection, a: list[bytes]) -> Any:
        return list((hash_of(c, a[0]) or {}).values())

    @command("hincrby", 4, writes=True)
    def hincrby(c: _Connection, a: list[bytes]) -> Any:
        h = hash_of(c, a[0], create=True)
        assert h is not None
        try:
            number = int(h.get(a[1], b"0"))
        except ValueError:
            raise _Error("ERR hash value is not an integer") from None
        number += _int(a[2])
        h[a[1]] = str(number).encode()
        s._changed(c, a[0])
        return number

    # ----------------------------------------------------------------- lists

    def list_of(c: _Connection, key: bytes, create: bool = False) -> list[bytes] | None:
        value: list[bytes] | None = container(c, key, list, create)
        return value

    def push(left: bool) -> Handler:
        def handler(c: _Connection, a: list[bytes]) -> Any:
            items = list_of(c, a[0], create=True)
            assert items is not None
            for value in a[1:]:
                if left:
                    items.insert(0, value)
                else:
                    items.append(value)
            s._changed(c, a[0])
            return len(items)

        return handler

    command("lpush", -3, writes=True)(push(left=True))
    command("rpush", -3, writes=True)(push(left=False))

    def pop(left: bool) -> Handler:
        def handler(c: _Connection, a: list[bytes]) -> Any:
            items = list_of(c, a[0])
            count = _int(a[1]) if len(a) > 1 else None
            if count is not None and count < 0:
                raise _Error("ERR value is out of range, must be positive")
            if not items:
                log(c)
                return NULL_ARRAY if count is not None else None
            taken = []
            for _ in range(1 if count is None else min(count, len(items))):
                taken.append(items.pop(0) if left else items.pop())
            s._changed(c, a[0])
            return taken[0] if count is None else taken

        return handler

    command("lpop", -2, writes=True)(pop(left=True))
    command("rpop", -2, writes=True)(pop(left=False))

    def span(length: int, start: int, stop: int) -> tuple[int, int]:
        if start < 0:
            start = max(0, length + start)
        if stop < 0:
            stop = length + stop
        return start, min(stop, length - 1)

    @command("lrange", 4)
    def lrange(c: _Connection, a: list[bytes]) -> Any:
        items = list_of(c, a[0]) or []
        start, stop = span(len(items), _int(a[1]), _int(a[2]))
        return items[start : stop + 1] if start <= stop else []

    @command("llen", 2)
    def llen(c: _Connection, a: list[bytes]) -> Any:
        return len(list_of(c, a[0]) or [])

    @command("lindex", 3)
    def lindex(c: _Connection, a: list[bytes]) -> Any:
        items = list_of(c, a[0]) or []
        index = _int(a[1])
        return items[index] if -len(items) <= index < len(items) else None

    @command("lset", 4, writes=True)
    def lset(c: _Connection, a: list[bytes]) -> Any:
        items = list_of(c, a[0])
        if items is None:
            raise _Error("ERR no such key")
        index = _int(a[1])
        if not -len(items) <= index < len(items):
            raise _Error("ERR index out of range")
        items[index] = a[2]
        s._changed(c, a[0])
        return OK

    @command("lrem", 4, writes=True)
    def lrem(c: _Connection, a: list[bytes]) -> Any:
        items = list_of(c, a[0])
        if items is None:
            log(c)
            return 0
        count, value = _int(a[1]), a[2]
        positions = [i for i, item in enumerate(items) if item == value]
        if count < 0:
            positions = positions[::-1][:-count]
        elif count > 0:
            positions = positions[:count]
        for i in sorted(positions, reverse=True):
            del items[i]
        s._changed(c, a[0])
        return len(positions)

    @command("ltrim", 4, writes=True)
    def ltrim(c: _Connection, a: list[bytes]) -> Any:
        items = list_of(c, a[0])
        if items is not None:
            start, stop = span(len(items), _int(a[1]), _int(a[2]))
            items[:] = items[start : stop + 1] if start <= stop else []
            s._changed(c, a[0])
        return OK

    # ------------------------------------------------------------------ sets

    def set_of(c: _Connection, key: bytes, create: bool = False) -> set[bytes] | None:
        value: set[bytes] | None = container(c, key, set, create)
        return value

    def members(values: set[bytes]) -> _SetReply:
        return _SetReply(sorted(values))

    @command("sadd", -3, writes=True)
    def sadd(c: _Connection, a: list[bytes]) -> Any:
        values = set_of(c, a[0], create=True)
        assert values is not None
        before = len(values)
        values.update(a[1:])
        s._changed(c, a[0])
        return len(values) - before

    @command("srem", -3, writes=True)
    def srem(c: _Connection, a: list[bytes]) -> Any:
        return remove(c, a[0], set, a[1:])

    @command("smembers", 2)
    def smembers(c: _Connection, a: list[bytes]) -> Any:
        return members(set_of(c, a[0]) or set())

    @command("sismember", 3)
    def sismember(c: _Connection, a: list[bytes]) -> Any:
        return int(a[1] in (set_of(c, a[0]) or set()))

    @command("scard", 2)
    def scard(c: _Connection, a: list[bytes]) -> Any:
        return len(set_of(c, a[0]) or set())

    @command("sinter", -2)
    def sinter(c: _Connection, a: list[bytes]) -> Any:
        sets = [set_of(c, key) or set() for key in a]
        return members(set.intersection(*sets))

    @command("sunion", -2)
    def sunion(c: _Connection, a: list[bytes]) -> Any:
        return members(set().union(*(set_of(c, key) or set() for key in a)))

    # ----------------------------------------------------------- sorted sets

    def zset_of(c: _Connection, key: bytes, create: bool = False) -> _ZSet | None:
        value: _ZSet | None = container(c, key, _ZSet, create)
        return value

    def score_reply(c: _Connection, score: float) -> Any:
        return score if c.proto == 3 else _format_float(score).encode()

    @command("zadd", -4, writes=True)
    def zadd(c: _Connection, a: list[bytes]) -> Any:
        rest = a[1:]
        nx = xx = ch = incr = False
        while rest and rest[0].lower() in (b"nx", b"xx", b"ch", b"incr", b"gt", b"lt"):
            option = rest.pop(0).lower()
            nx, xx = nx or option == b"nx", xx or option == b"xx"
            ch, incr = ch or option == b"ch", incr or option == b"incr"
        if not rest or len(rest) % 2 or (nx and xx) or (incr and len(rest) != 2):
            raise _Error(_SYNTAX)
        pairs = [
            (_float(score), member) for score, member in zip(rest[::2], rest[1::2], strict=True)
        ]
        z = zset_of(c, a[0], create=True)
        assert z is not None
        added = changed = 0
        result: Any = None
        for score, member in pairs:
            present = member in z
            if (nx and present) or (xx and not present):
                continue
            new = z.get(member, 0.0) + score if incr else score
            if not present:
                added += 1
            elif z[member] != new:
                changed += 1
            z[member] = new
            result = score_reply(c, new)
        s._changed(c, a[0])
        if incr:
            return result
        return added + changed if ch else added

    @command("zincrby", 4, writes=True)
    def zincrby(c: _Connection, a: list[bytes]) -> Any:
        z = zset_of(c, a[0], create=True)
        assert z is not None
        z[a[2]] = z.get(a[2], 0.0) + _float(a[1])
        s._changed(c, a[0])
        return score_reply(c, z[a[2]])

    @command("zscore", 3)
    def zscore(c: _Connection, a: list[bytes]) -> Any:
        z = zset_of(c, a[0])
        if z is None or a[1] not in z:
            return None
        return score_reply(c, z[a[1]])

    @command("zrem", -3, writes=True)
    def zrem(c: _Connection, a: list[bytes]) -> Any:
        return remove(c, a[0], _ZSet, a[1:])

    @command("zcard", 2)
    def zcard(c: _Connection, a: list[bytes]) -> Any:
        return len(zset_of(c, a[0]) or {})

    def ranged(c: _Connection, ordered: list[tuple[float, bytes]], scores: bool) -> Any:
        if not scores:
            return [member for _, member in ordered]
        if c.proto == 3:
            return [[member, score] for score, member in ordered]
        return [x for score, member in ordered for x in (member, _format_float(score).encode())]

    @command("zrange", -4)
    def zrange(c: _Connection, a: list[bytes]) -> Any:
        flags = [x.lower() for x in a[3:]]
        if any(f not in (b"withscores", b"rev") for f in flags):
            raise _Error(_SYNTAX)
        ordered = (zset_of(c, a[0]) or _ZSet()).ordered()
        if b"rev" in flags:
            ordered.reverse()
        start, stop = span(len(ordered), _int(a[1]), _int(a[2]))
        chosen = ordered[start : stop + 1] if start <= stop else []
        return ranged(c, chosen, b"withscores" in flags)

    @command("zrevrange", -4)
    def zrevrange(c: _Connection, a: list[bytes]) -> Any:
        return zrange(c, [*a[:3], b"REV", *a[3:]])

    def bound(text: bytes) -> tuple[float, bool]:
        if text.startswith(b"("):
            return _float(text[1:]), True
        return _float(text), False

    @command("zrangebyscore", -4)
    def zrangebyscore(c: _Connection, a: list[bytes]) -> Any:
        (low, low_open), (high, high_open) = bound(a[1]), bound(a[2])
        rest = [x for x in a[3:]]
        scores = False
        offset, count = 0, -1
        while rest:
            option = rest.pop(0).lower()
            if option == b"withscores":
                scores = True
            elif option == b"limit" and len(rest) >= 2:
                offset, count = _int(rest.pop(0)), _int(rest.pop(0))
            else:
                raise _Error(_SYNTAX)
        chosen = [
            (score, member)
            for score, member in (zset_of(c, a[0]) or _ZSet()).ordered()
            if (score > low if low_open else score >= low)
            and (score < high if high_open else score <= high)
        ]
        chosen = chosen[offset:] if count < 0 else chosen[offset : offset + count]
        return ranged(c, chosen, scores)

    @command("zrank", 3)
    def zrank(c: _Connection, a: list[bytes]) -> Any:
        z = zset_of(c, a[0])
        if z is None or a[1] not in z:
            return None
        return [member for _, member in z.ordered()].index(a[1])

    # ----------------------------------------------------------- transactions

    @command("multi", 1)
    def multi(c: _Connection, a: list[bytes]) -> Any:
        if c.multi is not None:
            raise _Error("ERR MULTI calls can not be nested")
        c.multi, c.multi_failed = [], False
        return OK

    @command("discard", 1)
    def discard(c: _Connection, a: list[bytes]) -> Any:
        if c.multi is None:
            raise _Error("ERR DISCARD without MULTI")
        c.multi, c.multi_failed, c.watched = None, False, {}
        return OK

    @command("watch", -2)
    def watch(c: _Connection, a: list[bytes]) -> Any:
        if c.multi is not None:
            raise _Error("ERR WATCH inside MULTI is not allowed")
        for key in a:
            s._alive(c.db, key)  # an expired key counts as changed from here on
            c.watched.setdefault((c.db, key), s._versions.get((c.db, key), 0))
        return OK

    @command("unwatch", 1)
    def unwatch(c: _Connection, a: list[bytes]) -> Any:
        c.watched = {}
        return OK

    @command("exec", 1)
    def exec_(c: _Connection, a: list[bytes]) -> Any:
        if c.multi is None:
            raise _Error("ERR EXEC without MULTI")
        queued, failed, watched = c.multi, c.multi_failed, c.watched
        c.multi, c.multi_failed, c.watched = None, False, {}
        if failed:
            raise _Error("EXECABORT Transaction discarded because of previous errors.")
        for (db, key), version in watched.items():
            s._alive(db, key)
            if s._versions.get((db, key), 0) != version:
                return NULL_ARRAY
        # The writes of the transaction go to the file as one MULTI ... EXEC.
        collected: list[list[bytes]] = []
        original_append = s._append

        def collect(connection: _Connection, entries: list[list[bytes]]) -> None:
            collected.append([b"SELECT", b"%d" % connection.db])
            collected.extend(entries)

        s._append = collect
        try:
            replies = [s._execute(c, args) for args in queued]
        finally:
            s._append = original_append
        if collected:
            s._append(c, [[b"MULTI"], *collected, [b"EXEC"]])
        return replies

    # --------------------------------------------------------------- pub/sub

    def subscribe_to(
        c: _Connection, names: list[bytes], mine: set[bytes], shared: dict[bytes, Any], kind: bytes
    ) -> Any:
        for name in names:
            mine.add(name)
            shared.setdefault(name, set()).add(c)
            c.send(_Push([kind, name, c.subscribed]))
        return NO_REPLY

    def unsubscribe_from(
        c: _Connection, names: list[bytes], mine: set[bytes], shared: dict[bytes, Any], kind: bytes
    ) -> Any:
        targets = names or sorted(mine)
        if not targets:
            c.send(_Push([kind, None, c.subscribed]))
        for name in targets:
            mine.discard(name)
            shared.get(name, set()).discard(c)
            c.send(_Push([kind, name, c.subscribed]))
        return NO_REPLY

    @command("subscribe", -2)
    def subscribe(c: _Connection, a: list[bytes]) -> Any:
        return subscribe_to(c, a, c.channels, s._channels, b"subscribe")

    @command("psubscribe", -2)
    def psubscribe(c: _Connection, a: list[bytes]) -> Any:
        return subscribe_to(c, a, c.patterns, s._patterns, b"psubscribe")

    @command("unsubscribe", -1)
    def unsubscribe(c: _Connection, a: list[bytes]) -> Any:
        return unsubscribe_from(c, a, c.channels, s._channels, b"unsubscribe")

    @command("punsubscribe", -1)
    def punsubscribe(c: _Connection, a: list[bytes]) -> Any:
        return unsubscribe_from(c, a, c.patterns, s._patterns, b"punsubscribe")

    @command("publish", 3)
    def publish(c: _Connection, a: list[bytes]) -> Any:
        return s.publish(a[0], a[1])

    return commands


_NOT_INTEGER_ = "ERR value is not an integer or out of range"


class _ZSet(dict[bytes, float]):
    """A sorted set: member → score, ordered by (score, member) when read."""

    def ordered(self) -> list[tuple[float, bytes]]:
        return sorted((score, member) for member, score in self.items())


def _type_name(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bytes):
        return "string"
    if isinstance(value, _ZSet):
        return "zset"
    if isinstance(value, dict):
        return "hash"
    if isinstance(value, list):
        return "list"
    return "set"


def _cursor_key(cursor: int) -> bytes:
    """The key a SCAN cursor stands for (the cursor encodes its bytes)."""
    raw = cursor.to_bytes((cursor.bit_length() + 7) // 8, "big")
    return raw[1:]  # the leading 0x01 keeps leading zero bytes


def _key_cursor(key: bytes) -> int:
    return int.from_bytes(b"\x01" + key, "big")
