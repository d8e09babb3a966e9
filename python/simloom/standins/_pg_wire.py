"""The Postgres frontend/backend protocol (version 3) for the Postgres stand-in:
reading a client's messages, building the server's, errors with SQLSTATEs, and
SCRAM-SHA-256 authentication.

Owns: the bytes on the wire. Must not: know what a statement does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import struct

__all__ = [
    "PgError",
    "Reader",
    "Scram",
    "cstring",
    "message",
    "read_message",
    "read_startup",
    "startup_parameters",
]

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102


class PgError(Exception):
    """An ErrorResponse: ``sqlstate`` and Postgres's message text."""

    def __init__(self, sqlstate: str, text: str, severity: str = "ERROR", detail: str = "") -> None:
        super().__init__(text)
        self.sqlstate = sqlstate
        self.text = text
        self.severity = severity
        self.detail = detail

    def encode(self) -> bytes:
        fields = [
            b"S" + self.severity.encode(),
            b"V" + self.severity.encode(),
            b"C" + self.sqlstate.encode(),
            b"M" + self.text.encode(),
        ]
        if self.detail:
            fields.append(b"D" + self.detail.encode())
        return message(b"E", b"\x00".join(fields) + b"\x00\x00")


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def cstring(text: str) -> bytes:
    return text.encode() + b"\x00"


async def read_startup(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    header = await reader.readexactly(4)
    (length,) = struct.unpack("!i", header)
    if not 8 <= length <= 10_000:
        raise PgError("08P01", f"invalid length of startup packet: {length}", "FATAL")
    body = await reader.readexactly(length - 4)
    (code,) = struct.unpack_from("!i", body)
    return code, body[4:]


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    header = await reader.readexactly(5)
    kind = header[:1]
    (length,) = struct.unpack_from("!i", header, 1)
    if length < 4 or length > 1 << 30:
        raise PgError("08P01", f"invalid message length {length}", "FATAL")
    return kind, await reader.readexactly(length - 4)


def startup_parameters(body: bytes) -> dict[str, str]:
    parts = body.split(b"\x00")
    return {
        parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2) if parts[i]
    }


class Reader:
    """Reads the fields of one message body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def cstring(self) -> str:
        end = self.data.index(b"\x00", self.offset)
        text = self.data[self.offset : end].decode()
        self.offset = end + 1
        return text

    def int16(self) -> int:
        (value,) = struct.unpack_from("!h", self.data, self.offset)
        self.offset += 2
        return int(value)

    def int32(self) -> int:
        (value,) = struct.unpack_from("!i", self.data, self.offset)
        self.offset += 4
        return int(value)

    def bytes(self, count: int) -> bytes:
        value = self.data[self.offset : self.offset + count]
        self.offset += count
        return value


# ------------------------------------------------------------------ SCRAM


class Scram:
    """One SCRAM-SHA-256 exchange (RFC 5802/7677, as Postgres runs it), with the
    stored key and server key derived from the password once per server."""

    ITERATIONS = 4096

    def __init__(self, password: str, salt: bytes) -> None:
        self.salt = salt
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, self.ITERATIONS)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        self.stored_key = hashlib.sha256(client_key).digest()
        self.server_key = hmac.digest(salted, b"Server Key", "sha256")

    def server_first(self, client_first: bytes, server_nonce: str) -> tuple[bytes, str, str]:
        """``(server-first-message, client-first-bare, the combined nonce)``."""
        text = client_first.decode()
        if not text.startswith(("n,", "y,")):
            raise PgError(
                "08P01", "malformed SCRAM message (channel binding is not supported)", "FATAL"
            )
        bare = text.split(",", 2)[2]
        attributes = dict(part.split("=", 1) for part in bare.split(",") if "=" in part)
        nonce = attributes.get("r", "") + server_nonce
        salt = base64.b64encode(self.salt).decode()
        return f"r={nonce},s={salt},i={self.ITERATIONS}".encode(), bare, nonce

    def verify(
        self, client_final: bytes, bare: str, server_first: bytes, nonce: str
    ) -> bytes | None:
        """The server-final message if the proof holds, else None."""
        text = client_final.decode()
        without_proof, _, proof_part = text.rpartition(",p=")
        attributes = dict(part.split("=", 1) for part in without_proof.split(",") if "=" in part)
        if attributes.get("r") != nonce:
            return None
        auth_message = f"{bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(self.stored_key, auth_message, "sha256")
        try:
            proof = base64.b64decode(proof_part)
        except ValueError:
            return None
        if len(proof) != len(signature):
            return None
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self.stored_key):
            return None
        server_signature = hmac.digest(self.server_key, auth_message, "sha256")
        return b"v=" + base64.b64encode(server_signature)
