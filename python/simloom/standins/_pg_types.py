"""Postgres types for the Postgres stand-in: the built-in type OIDs, how a DuckDB
column type maps to one, and each type's text and binary wire formats (values to
bytes for results, bytes to values for parameters).

Owns: the bytes of a value on the wire. Must not: know SQL or hold server state.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import struct
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "INTROSPECTION_COLUMNS",
    "TEXT",
    "PgType",
    "WireError",
    "by_name",
    "by_oid",
    "decode",
    "encode",
    "from_duckdb",
    "introspection_rows",
]


@dataclass(frozen=True)
class PgType:
    """A built-in type: its name, OID, the OID of its array type (0 for an array
    type itself), the OID of its element (arrays only), its length (-1 varlena),
    its category for ``pg_type.typcategory`` and the DuckDB type it runs as."""

    name: str
    oid: int
    array_oid: int
    element_oid: int
    size: int
    duckdb: str


_SCALARS = [
    # name, oid, array oid, size, DuckDB type
    ("bool", 16, 1000, 1, "BOOLEAN"),
    ("bytea", 17, 1001, -1, "BLOB"),
    ("char", 18, 1002, 1, "VARCHAR"),
    ("name", 19, 1003, 64, "VARCHAR"),
    ("int8", 20, 1016, 8, "BIGINT"),
    ("int2", 21, 1005, 2, "SMALLINT"),
    ("int4", 23, 1007, 4, "INTEGER"),
    ("text", 25, 1009, -1, "VARCHAR"),
    ("oid", 26, 1028, 4, "UINTEGER"),
    ("json", 114, 199, -1, "JSON"),
    ("float4", 700, 1021, 4, "FLOAT"),
    ("float8", 701, 1022, 8, "DOUBLE"),
    ("varchar", 1043, 1015, -1, "VARCHAR"),
    ("date", 1082, 1182, 4, "DATE"),
    ("time", 1083, 1183, 8, "TIME"),
    ("timestamp", 1114, 1115, 8, "TIMESTAMP"),
    ("timestamptz", 1184, 1185, 8, "TIMESTAMPTZ"),
    ("interval", 1186, 1187, 16, "INTERVAL"),
    ("numeric", 1700, 1231, -1, "DECIMAL(38,10)"),
    ("uuid", 2950, 2951, 16, "UUID"),
    ("jsonb", 3802, 3807, -1, "JSON"),
    ("void", 2278, 0, 4, "VARCHAR"),
    ("unknown", 705, 0, -2, "VARCHAR"),
]

_BY_OID: dict[int, PgType] = {}
_BY_NAME: dict[str, PgType] = {}
for _name, _oid, _array, _size, _duck in _SCALARS:
    _scalar = PgType(_name, _oid, _array, 0, _size, _duck)
    _BY_OID[_oid] = _BY_NAME[_name] = _scalar
    if _array:
        _list = PgType("_" + _name, _array, 0, _oid, -1, _duck + "[]")
        _BY_OID[_array] = _BY_NAME["_" + _name] = _list

#: The type of anything Postgres cannot tell better.
TEXT = _BY_NAME["text"]

#: SQL spellings of the types (what a cast or a column definition may say).
_ALIASES = {
    "boolean": "bool",
    "smallint": "int2",
    "integer": "int4",
    "int": "int4",
    "bigint": "int8",
    "real": "float4",
    "float": "float8",
    "double precision": "float8",
    "double": "float8",
    "decimal": "numeric",
    "character varying": "varchar",
    "character": "text",
    "char": "text",
    "bpchar": "text",
    "string": "text",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "time without time zone": "time",
    "serial": "int4",
    "bigserial": "int8",
    "smallserial": "int2",
    "blob": "bytea",
}

#: DuckDB's type names (as ``cursor.description`` spells them) to Postgres types.
_DUCKDB = {
    "BOOLEAN": "bool",
    "TINYINT": "int2",
    "SMALLINT": "int2",
    "INTEGER": "int4",
    "BIGINT": "int8",
    "HUGEINT": "numeric",
    "UTINYINT": "int2",
    "USMALLINT": "int4",
    "UINTEGER": "int8",
    "UBIGINT": "numeric",
    "FLOAT": "float4",
    "DOUBLE": "float8",
    "VARCHAR": "text",
    "BLOB": "bytea",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIMESTAMP_NS": "timestamp",
    "TIMESTAMP_MS": "timestamp",
    "TIMESTAMP_S": "timestamp",
    "INTERVAL": "interval",
    "UUID": "uuid",
    "JSON": "json",
    '"NULL"': "text",
    "NULL": "text",
}


def by_oid(oid: int) -> PgType | None:
    return _BY_OID.get(oid)


def introspection_rows(oids: list[int]) -> list[tuple[Any, ...]]:
    """What asyncpg's type introspection query returns for built-in types (it asks
    about arrays, whose element types it must learn): the asked types at depth 0,
    their elements at depth 1, deepest first."""
    rows: list[tuple[Any, ...]] = []
    for oid in oids:
        pg = _BY_OID.get(oid)
        if pg is None:
            continue
        if pg.element_oid:
            element = _BY_OID[pg.element_oid]
            rows.append(
                (
                    element.oid,
                    "pg_catalog",
                    element.name,
                    b"b",
                    None,
                    0,
                    None,
                    None,
                    None,
                    None,
                    1,
                    None,
                    None,
                    None,
                )
            )
        rows.append(
            (
                pg.oid,
                "pg_catalog",
                pg.name,
                b"b",
                None,
                pg.element_oid,
                b"," if pg.element_oid else None,
                None,
                None,
                None,
                0,
                None,
                _BY_OID[pg.element_oid].name if pg.element_oid else None,
                None,
            )
        )
    rows.sort(key=lambda row: -row[10])
    return rows


#: The columns of asyncpg's type introspection query.
INTROSPECTION_COLUMNS = [
    ("oid", "oid"),
    ("ns", "name"),
    ("name", "name"),
    ("kind", "char"),
    ("basetype", "oid"),
    ("elemtype", "oid"),
    ("elemdelim", "char"),
    ("range_subtype", "oid"),
    ("attrtypoids", "_oid"),
    ("attrnames", "_text"),
    ("depth", "int4"),
    ("basetype_name", "text"),
    ("elemtype_name", "text"),
    ("range_subtype_name", "text"),
]


def by_name(name: str) -> PgType | None:
    """The type a SQL type name means (``integer``, ``int4``, ``text[]``,
    ``numeric(10,2)``, ``varchar(20)``), or None if it is not a built-in one."""
    spelled = re.sub(r"\s+", " ", name.strip().lower().strip('"'))
    array = spelled.endswith("[]")
    if array:
        spelled = spelled[:-2].strip()
    spelled = re.sub(r"\s*\(.*\)", "", spelled).removeprefix("pg_catalog.")
    base = _BY_NAME.get(_ALIASES.get(spelled, spelled))
    if base is None or (array and not base.array_oid):
        return None
    return _BY_OID[base.array_oid] if array else base


def from_duckdb(type_name: str) -> PgType:
    """The Postgres type for a DuckDB column type (``DECIMAL(10,2)``, ``INTEGER[]``);
    anything without a counterpart is sent as text."""
    name = str(type_name)
    array = name.endswith("[]")
    if array:
        name = name[:-2]
    base_name = _DUCKDB.get(name)
    if base_name is None:
        base_name = "numeric" if name.startswith("DECIMAL") else "text"
    base = _BY_NAME[base_name]
    return _BY_OID[base.array_oid] if array else base


# ------------------------------------------------------------- conversions

_EPOCH_DATE = datetime.date(2000, 1, 1)
_EPOCH = datetime.datetime(2000, 1, 1)
_EPOCH_TZ = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
_DAY_US = 86_400_000_000


class WireError(ValueError):
    """A value that cannot be read or written in the requested type (becomes an
    ErrorResponse with ``sqlstate``)."""

    def __init__(self, message: str, sqlstate: str = "22P02") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _numeric_binary(value: Decimal) -> bytes:
    if value.is_nan():
        return struct.pack("!hhHH", 0, 0, 0xC000, 0)
    if value.is_infinite():
        return struct.pack("!hhHH", 0, 0, 0xF000 if value < 0 else 0xD000, 0)
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    dscale = max(0, -exponent)
    text = "".join(map(str, digits))
    # Integer part and fraction part in decimal digits, then base-10000 groups.
    if exponent >= 0:
        integer, fraction = text + "0" * exponent, ""
    else:
        cut = len(text) + exponent
        integer = text[:cut] if cut > 0 else ""
        fraction = ("0" * -cut + text) if cut < 0 else text[cut:]
    integer = integer.lstrip("0")
    pad_integer = "0" * (-len(integer) % 4) + integer
    pad_fraction = fraction + "0" * (-len(fraction) % 4)
    groups = [int(pad_integer[i : i + 4]) for i in range(0, len(pad_integer), 4)]
    weight = len(groups) - 1
    groups += [int(pad_fraction[i : i + 4]) for i in range(0, len(pad_fraction), 4)]
    # Strip leading and trailing zero groups (the weight follows the leading ones).
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    return struct.pack(
        f"!hhHH{len(groups)}H", len(groups), weight, 0x4000 if sign else 0, dscale, *groups
    )


def _numeric_from_binary(data: bytes) -> Decimal:
    count, weight, sign, dscale = struct.unpack_from("!hhHH", data)
    if sign == 0xC000:
        return Decimal("NaN")
    if sign in (0xD000, 0xF000):
        return Decimal("-Infinity" if sign == 0xF000 else "Infinity")
    groups = struct.unpack_from(f"!{count}H", data, 8)
    value = Decimal(0)
    for index, group in enumerate(groups):
        value += Decimal(group).scaleb(4 * (weight - index))
    if sign == 0x4000:
        value = -value
    return value.quantize(Decimal(1).scaleb(-dscale)) if dscale or count else Decimal(0)


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(value)
    if text.endswith(".0"):
        text = text[:-2]
    if "e" in text:
        mantissa, _, exponent = text.partition("e")
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}e{sign}{exponent.lstrip('+-').zfill(2)}"
    return text


def _timestamp_text(value: datetime.datetime, tz: bool) -> str:
    if tz:
        value = value.astimezone(datetime.UTC)
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + ("+00" if tz else "")


def _text_of(pg: PgType, value: Any) -> str:
    """A value in Postgres's text output format."""
    name = pg.name
    if name == "bool":
        return "t" if value else "f"
    if name == "char" and isinstance(value, bytes):
        return value.decode()
    if name == "bytea":
        return "\\x" + bytes(value).hex()
    if name in ("float4", "float8"):
        return _float_text(float(value))
    if name == "timestamp":
        return _timestamp_text(value, False)
    if name == "timestamptz":
        return _timestamp_text(value, True)
    if name in ("json", "jsonb"):
        return value if isinstance(value, str) else json.dumps(value)
    if name == "numeric":
        return str(value) if isinstance(value, Decimal) else str(Decimal(value))
    if name == "interval":
        return _interval_text(value)
    if pg.element_oid:
        element = _BY_OID[pg.element_oid]
        return "{" + ",".join(_array_item(element, item) for item in value) + "}"
    return str(value)


def _interval_text(value: datetime.timedelta) -> str:
    days = value.days
    seconds = value.seconds
    text = f"{days} days " if days else ""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    if value.microseconds:
        clock += f".{value.microseconds:06d}".rstrip("0")
    return (text + clock) if (seconds or value.microseconds or not days) else text.strip()


def _array_item(element: PgType, item: Any) -> str:
    if item is None:
        return "NULL"
    text = _text_of(element, item)
    if text == "" or text.upper() == "NULL" or re.search(r'[{},"\\\s]', text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _binary_of(pg: PgType, value: Any) -> bytes:
    name = pg.name
    if name == "bool":
        return b"\x01" if value else b"\x00"
    if name == "int2":
        return struct.pack("!h", value)
    if name == "int4":
        return struct.pack("!i", value)
    if name in ("int8",):
        return struct.pack("!q", value)
    if name == "oid":
        return struct.pack("!I", value)
    if name == "float4":
        return struct.pack("!f", value)
    if name == "float8":
        return struct.pack("!d", value)
    if name == "bytea":
        return bytes(value)
    if name == "uuid":
        return (value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))).bytes
    if name == "date":
        return struct.pack("!i", (value - _EPOCH_DATE).days)
    if name == "time":
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000
        return struct.pack("!q", micros + value.microsecond)
    if name in ("timestamp", "timestamptz"):
        delta = value - (_EPOCH_TZ if value.tzinfo is not None else _EPOCH)
        return struct.pack(
            "!q", (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        )
    if name == "interval":
        micros = value.seconds * 1_000_000 + value.microseconds
        return struct.pack("!qii", micros, value.days, 0)
    if name == "numeric":
        return _numeric_binary(value if isinstance(value, Decimal) else Decimal(value))
    if name == "jsonb":
        return b"\x01" + _text_of(pg, value).encode()
    if pg.element_oid:
        return _array_binary(_BY_OID[pg.element_oid], value)
    return _text_of(pg, value).encode()


def _array_binary(element: PgType, items: list[Any]) -> bytes:
    if not items:
        return struct.pack("!iii", 0, 0, element.oid)
    has_null = any(item is None for item in items)
    parts = [struct.pack("!iiiii", 1, int(has_null), element.oid, len(items), 1)]
    for item in items:
        if item is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            data = _binary_of(element, item)
            parts.append(struct.pack("!i", len(data)) + data)
    return b"".join(parts)


def encode(pg: PgType, value: Any, binary: bool) -> bytes:
    """One non-NULL result value in the text or binary format of ``pg``."""
    try:
        if binary:
            return _binary_of(pg, value)
        return _text_of(pg, value).encode()
    except (struct.error, TypeError, ValueError, OverflowError, AttributeError) as error:
        raise WireError(f"cannot send {value!r} as {pg.name}: {error}", "22003") from None


# ------------------------------------------------------------ parameters


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("t", "true", "y", "yes", "on", "1"):
        return True
    if lowered in ("f", "false", "n", "no", "off", "0"):
        return False
    raise WireError(f'invalid input syntax for type boolean: "{text}"')


def _parse_array_text(element: PgType, text: str) -> list[Any]:
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise WireError(f'malformed array literal: "{text}"')
    items: list[Any] = []
    index, inner = 0, body[1:-1]
    while index < len(inner):
        if inner[index] == '"':
            index += 1
            chars = []
            while inner[index] != '"':
                if inner[index] == "\\":
                    index += 1
                chars.append(inner[index])
                index += 1
            items.append(_from_text(element, "".join(chars)))
            index += 1
        else:
            end = inner.find(",", index)
            end = len(inner) if end < 0 else end
            raw = inner[index:end].strip()
            items.append(None if raw.upper() == "NULL" else _from_text(element, raw))
            index = end
        if index < len(inner) and inner[index] == ",":
            index += 1
    return items


def _from_text(pg: PgType, text: str) -> Any:
    name = pg.name
    if pg.element_oid:
        return _parse_array_text(_BY_OID[pg.element_oid], text)
    try:
        if name in ("int2", "int4", "int8", "oid"):
            return int(text)
        if name in ("float4", "float8"):
            return float(text)
        if name == "numeric":
            return Decimal(text)
        if name == "bool":
            return _parse_bool(text)
        if name == "bytea":
            return bytes.fromhex(text[2:]) if text.startswith("\\x") else text.encode()
        if name == "uuid":
            return uuid.UUID(text)
        if name == "date":
            return datetime.date.fromisoformat(text)
        if name in ("timestamp", "timestamptz"):
            value = datetime.datetime.fromisoformat(text.replace(" ", "T"))
            if name == "timestamptz" and value.tzinfo is None:
                value = value.replace(tzinfo=datetime.UTC)
            return value
    except (ValueError, ArithmeticError):
        raise WireError(f'invalid input syntax for type {_display(name)}: "{text}"') from None
    return text


def _display(name: str) -> str:
    return {
        "int2": "smallint",
        "int4": "integer",
        "int8": "bigint",
        "float8": "double precision",
    }.get(name, name)


def _from_binary(pg: PgType, data: bytes) -> Any:
    name = pg.name
    try:
        if name == "bool":
            return data != b"\x00"
        if name == "int2":
            return struct.unpack("!h", data)[0]
        if name == "int4":
            return struct.unpack("!i", data)[0]
        if name == "int8":
            return struct.unpack("!q", data)[0]
        if name == "oid":
            return struct.unpack("!I", data)[0]
        if name == "float4":
            return struct.unpack("!f", data)[0]
        if name == "float8":
            return struct.unpack("!d", data)[0]
        if name == "bytea":
            return bytes(data)
        if name == "uuid":
            return uuid.UUID(bytes=bytes(data))
        if name == "date":
            return _EPOCH_DATE + datetime.timedelta(days=struct.unpack("!i", data)[0])
        if name == "time":
            micros = struct.unpack("!q", data)[0]
            return (datetime.datetime.min + datetime.timedelta(microseconds=micros)).time()
        if name == "timestamp":
            return _EPOCH + datetime.timedelta(microseconds=struct.unpack("!q", data)[0])
        if name == "timestamptz":
            return _EPOCH_TZ + datetime.timedelta(microseconds=struct.unpack("!q", data)[0])
        if name == "interval":
            micros, days, months = struct.unpack("!qii", data)
            return datetime.timedelta(days=days + 30 * months, microseconds=micros)
        if name == "numeric":
            return _numeric_from_binary(data)
        if name == "jsonb":
            return bytes(data[1:]).decode()
        if pg.element_oid:
            return _array_from_binary(data)
    except (struct.error, ValueError, OverflowError) as error:
        raise WireError(f"incorrect binary data format for {name}: {error}", "22P03") from None
    return bytes(data).decode()


def _array_from_binary(data: bytes) -> list[Any]:
    ndim, _flags, element_oid = struct.unpack_from("!iii", data)
    if ndim == 0:
        return []
    if ndim != 1:
        raise WireError("only one-dimensional arrays are supported", "0A000")
    length, _lower = struct.unpack_from("!ii", data, 12)
    element = _BY_OID.get(element_oid) or _BY_NAME["text"]
    offset, items = 20, list[Any]()
    for _ in range(length):
        (size,) = struct.unpack_from("!i", data, offset)
        offset += 4
        if size < 0:
            items.append(None)
        else:
            items.append(_from_binary(element, data[offset : offset + size]))
            offset += size
    return items


def decode(pg: PgType, data: bytes, binary: bool) -> Any:
    """A parameter value sent by the client in the text or binary format of ``pg``."""
    if binary:
        return _from_binary(pg, data)
    return _from_text(pg, bytes(data).decode())
