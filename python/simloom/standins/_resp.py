"""RESP, the Redis wire protocol (RESP2 and RESP3), for the Redis stand-in: reply
types and their encoding, the command parser (from a connection and from an
append-only file), a connection's state, and argument parsing helpers.

Owns: the bytes on the wire. Must not: know what a command does
(``_redis_commands``) or hold server state (``redis``).
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
import time
from dataclasses import dataclass, field
from typing import Any

#: The version the stand-in reports (``INFO``, ``HELLO``): the command set it
#: follows.
VERSION = "7.2.0"

# ----------------------------------------------------------------- replies


class _Simple(str):
    """A simple-string reply (``+OK``)."""


class _Error(Exception):
    """An error reply (``-ERR ...``)."""


class _SetReply(list[Any]):
    """A set reply (RESP3 ``~``; an array in RESP2)."""


class _Push(list[Any]):
    """An out-of-band push (RESP3 ``>``; an array in RESP2)."""


class _NullArray:
    """RESP2's null array (``*-1``), RESP3's null."""


OK = _Simple("OK")
QUEUED = _Simple("QUEUED")
NULL_ARRAY = _NullArray()
#: What a command returns when it has sent its replies itself (SUBSCRIBE).
NO_REPLY: Any = object()


def _encode(value: Any, proto: int, out: list[bytes]) -> None:
    if isinstance(value, _Simple):
        out.append(b"+" + value.encode() + b"\r\n")
    elif isinstance(value, _Error):
        out.append(b"-" + str(value).encode() + b"\r\n")
    elif isinstance(value, bool):
        if proto == 3:
            out.append(b"#t\r\n" if value else b"#f\r\n")
        else:
            out.append(b":1\r\n" if value else b":0\r\n")
    elif isinstance(value, int):
        out.append(b":%d\r\n" % value)
    elif isinstance(value, bytes):
        out.append(b"$%d\r\n%s\r\n" % (len(value), value))
    elif isinstance(value, str):
        _encode(value.encode(), proto, out)
    elif value is None:
        out.append(b"_\r\n" if proto == 3 else b"$-1\r\n")
    elif isinstance(value, _NullArray):
        out.append(b"_\r\n" if proto == 3 else b"*-1\r\n")
    elif isinstance(value, float):
        text = _format_float(value).encode()
        if proto == 3:
            out.append(b"," + text + b"\r\n")
        else:
            _encode(text, proto, out)
    elif isinstance(value, dict):
        if proto == 3:
            out.append(b"%%%d\r\n" % len(value))
        else:
            out.append(b"*%d\r\n" % (2 * len(value)))
        for key, item in value.items():
            _encode(key, proto, out)
            _encode(item, proto, out)
    elif isinstance(value, list | tuple):
        mark = b"*"
        if proto == 3 and isinstance(value, _SetReply):
            mark = b"~"
        elif proto == 3 and isinstance(value, _Push):
            mark = b">"
        out.append(mark + b"%d\r\n" % len(value))
        for item in value:
            _encode(item, proto, out)
    else:  # pragma: no cover - a reply type this module does not make
        raise TypeError(f"cannot encode {value!r}")


def _format_float(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e17:
        return str(int(value))
    return repr(value)


def _command_bytes(args: list[bytes]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


# ----------------------------------------------------------------- parsing


class _Truncated(Exception):
    pass


def _parse_commands(data: bytes) -> list[list[bytes]]:
    """The whole commands at the start of ``data`` (an append-only file): a torn
    last one, or anything unreadable from there on, is left out."""
    commands: list[list[bytes]] = []
    position = 0
    while position < len(data):
        try:
            command, position = _parse_one(data, position)
        except (_Truncated, ValueError):
            break
        commands.append(command)
    return commands


def _parse_one(data: bytes, position: int) -> tuple[list[bytes], int]:
    def line(at: int) -> tuple[bytes, int]:
        end = data.find(b"\r\n", at)
        if end < 0:
            raise _Truncated
        return data[at:end], end + 2

    header, position = line(position)
    if not header.startswith(b"*"):
        raise ValueError("not an array")
    count = int(header[1:])
    args = []
    for _ in range(count):
        size_line, position = line(position)
        if not size_line.startswith(b"$"):
            raise ValueError("not a bulk string")
        size = int(size_line[1:])
        if position + size + 2 > len(data):
            raise _Truncated
        args.append(data[position : position + size])
        position += size + 2
    return args, position


async def _read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    if not line.endswith(b"\r\n"):
        raise _Error("ERR Protocol error: unterminated line")
    if line.startswith(b"*"):
        try:
            count = int(line[1:-2])
        except ValueError:
            raise _Error("ERR Protocol error: invalid multibulk length") from None
        args = []
        for _ in range(count):
            size_line = await reader.readline()
            if not size_line.startswith(b"$"):
                raise _Error("ERR Protocol error: expected '$'")
            try:
                size = int(size_line[1:-2])
            except ValueError:
                raise _Error("ERR Protocol error: invalid bulk length") from None
            data = await reader.readexactly(size + 2)
            args.append(data[:-2])
        return args
    return line.split()  # an inline command (redis-cli, telnet)


# ------------------------------------------------------------------ state


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    ident: int
    proto: int = 2
    db: int = 0
    authenticated: bool = True
    name: bytes | None = None
    multi: list[list[bytes]] | None = None
    multi_failed: bool = False
    watched: dict[tuple[int, bytes], int] = field(default_factory=dict)
    channels: set[bytes] = field(default_factory=set)
    patterns: set[bytes] = field(default_factory=set)
    #: What the running write command appends to the append-only file instead of
    #: itself (``None``: itself; ``[]``: nothing), set by the command.
    aof_entries: list[list[bytes]] | None = None

    def send(self, value: Any) -> None:
        out: list[bytes] = []
        _encode(value, self.proto, out)
        if not self.writer.is_closing():
            self.writer.write(b"".join(out))

    @property
    def subscribed(self) -> int:
        return len(self.channels) + len(self.patterns)


_WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
_NOT_INTEGER = "ERR value is not an integer or out of range"
_NOT_FLOAT = "ERR value is not a valid float"
_SYNTAX = "ERR syntax error"


def _int(arg: bytes) -> int:
    try:
        return int(arg)
    except ValueError:
        raise _Error(_NOT_INTEGER) from None


def _float(arg: bytes) -> float:
    text = arg.lower()
    if text in (b"+inf", b"inf"):
        return math.inf
    if text == b"-inf":
        return -math.inf
    try:
        value = float(arg)
    except ValueError:
        raise _Error(_NOT_FLOAT) from None
    if math.isnan(value):
        raise _Error(_NOT_FLOAT)
    return value


def _match(pattern: bytes | None, key: bytes) -> bool:
    return pattern is None or fnmatch.fnmatchcase(key.decode("latin-1"), pattern.decode("latin-1"))


#: Commands allowed while a connection is subscribed (RESP2).
_SUBSCRIBED_OK = {
    b"subscribe",
    b"unsubscribe",
    b"psubscribe",
    b"punsubscribe",
    b"ping",
    b"quit",
    b"reset",
}


class _NoWriter:
    """The writer of a replayed command (its reply goes nowhere)."""

    def is_closing(self) -> bool:
        return True

    def write(self, data: bytes) -> None:  # pragma: no cover - never called
        pass


def _now_ms() -> float:
    """The host's wall clock in milliseconds (virtual inside a universe)."""
    return time.time() * 1000.0
