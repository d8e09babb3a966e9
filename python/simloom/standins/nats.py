"""A NATS stand-in on a world host: the core NATS client protocol (no JetStream),
as nats-server 2.9 speaks it, so an unmodified client (``nats-py``) connects to it
over the simulated network.

Start one with ``world.nats("bus")`` (or :func:`nats`); connect with
``await nats.connect("nats://bus:4222")``.

What it speaks: ``INFO`` (with ``headers``, ``max_payload`` 1 MiB, ``auth_required``
when credentials are set), ``CONNECT`` (``verbose``, ``pedantic``, ``echo``,
``headers``, ``no_responders``; user/password or token authentication),
``PING``/``PONG``, ``PUB``, ``HPUB``, ``SUB`` (with queue groups), ``UNSUB`` (with a
maximum number of messages), ``MSG``/``HMSG`` and ``+OK``/``-ERR``. Subjects are
tokens separated by ``.``; a subscription may use ``*`` (one token) and ``>`` (the
rest). A request with a reply subject that nobody subscribes to gets the ``503``
status message when the client asked for ``no_responders``. The errors, when the
server answers with them and when it closes the connection, are nats-server's:
``tests/test_standin_nats_differential.py`` checks them against a real server.

The one nondeterministic decision is which member of a queue group gets a message:
it is a tape choice (``nats.queue``), so it replays and shrinks like a scheduling
decision; the canonical choice is the group's oldest subscription.

The server keeps no state across a restart (core NATS has no persistence): a crash
drops every connection, and clients reconnect and subscribe again once the host
restarts.

Each read is parsed and acted on to its end without yielding, as the real server's
read loop does; what it sends each connection is written once the read is done.

Owns: the server's subscriptions, protocol and connections. Must not: reach the
real network, keep state across a restart, or decide anything itself (the queue
member is a tape choice).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import sys
from typing import Any

from .. import _causal
from ..errors import SimloomUsageError

__all__ = [
    "AUTH_TIMEOUT",
    "CLOSE_LINGER",
    "MAX_CONTROL_LINE",
    "MAX_PAYLOAD",
    "PING_INTERVAL",
    "QUEUE_CHOICE_LABEL",
    "SERVER_VERSION",
    "NatsStandin",
    "nats",
]

#: The nats-server release whose behaviour (and error texts) the stand-in follows.
SERVER_VERSION = "2.9.10"
#: The largest message payload (headers included) a client may publish, in bytes.
MAX_PAYLOAD = 1024 * 1024
#: The longest protocol line argument the server accepts, in bytes.
MAX_CONTROL_LINE = 4096
#: Virtual seconds a client has to send ``CONNECT`` when authentication is required.
AUTH_TIMEOUT = 2.0
#: Virtual seconds between the server's keepalive checks of a silent client.
PING_INTERVAL = 120.0
#: Unanswered server ``PING``\\ s after which a connection is closed as stale.
MAX_PINGS_OUT = 2
#: Virtual seconds a connection the server ended waits for the client to close.
CLOSE_LINGER = 1.0
#: Subjects nats-server's sublist cache holds before it sweeps, and how many stay.
CACHE_MAX = 1024
CACHE_SWEEP = 256
#: The label of the tape choice that picks a queue group's member.
QUEUE_CHOICE_LABEL = "nats.queue"

_CRLF = b"\r\n"
_OK = b"+OK\r\n"
_PING = b"PING\r\n"
_PONG = b"PONG\r\n"
_NO_RESPONDERS = b"NATS/1.0 503\r\n\r\n"
_WHITESPACE = b" \t"

_UNKNOWN_OPERATION = "Unknown Protocol Operation"
_AUTHORIZATION_VIOLATION = "Authorization Violation"
_AUTHENTICATION_TIMEOUT = "Authentication Timeout"
_MAX_PAYLOAD_VIOLATION = "Maximum Payload Violation"
_MAX_CONTROL_LINE = "maximum control line exceeded"
_INVALID_SUBJECT = "Invalid Subject"
_INVALID_PUBLISH_SUBJECT = "Invalid Publish Subject"
_INVALID_PROTOCOL = "invalid client protocol"
_NO_RESPONDERS_NEEDS_HEADERS = "no responders requires headers support"
_STALE_CONNECTION = "Stale Connection"

# CONNECT's fields the server reads, with the JSON types it accepts (null is
# always accepted and leaves the field as it was, as Go's decoder does).
_BOOL_FIELDS = ("verbose", "pedantic", "tls_required", "echo", "headers", "no_responders")
_STRING_FIELDS = ("user", "pass", "auth_token", "name", "lang", "version", "jwt", "nkey", "sig")
_INT_FIELDS = ("protocol",)
_DEFAULT_OPTIONS: dict[str, Any] = {
    # nats-server's defaults for a client that does not say (verbose and pedantic
    # are on until CONNECT turns them off).
    "verbose": True,
    "pedantic": True,
    "echo": True,
    "headers": False,
    "no_responders": False,
    "protocol": 0,
    "user": "",
    "pass": "",
    "auth_token": "",
}


def nats(
    world: Any,
    name: str = "nats",
    *,
    port: int = 4222,
    user: str | None = None,
    password: str | None = None,
    token: str | None = None,
) -> NatsStandin:
    """Start a NATS stand-in on ``world``'s host ``name`` (made if needed), listening
    on ``port``; it restarts with the host, with no subscriptions (clients make them
    again when they reconnect). ``user`` and ``password`` (together) or ``token``
    make clients authenticate."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise SimloomUsageError(f"port must be an integer in 1..65535, got {port!r}")
    for argument, value in (("user", user), ("password", password), ("token", token)):
        if value is not None and (not isinstance(value, str) or not value):
            raise SimloomUsageError(f"{argument} must be a non-empty string or None, got {value!r}")
    if (user is None) != (password is None):
        raise SimloomUsageError(
            "user and password go together: give both (or neither), got "
            f"user={user!r}, password={'<set>' if password is not None else None}"
        )
    if token is not None and user is not None:
        raise SimloomUsageError(
            "give either a token or a user and password, not both (nats-server "
            "authenticates a client one way)"
        )
    host = world.host(name)
    standin = NatsStandin(host, port=port, user=user, password=password, token=token)
    host.spawn(standin._serve, name=f"nats-standin:{name}")
    return standin


class NatsStandin:
    """One NATS stand-in server (see the module docstring). Its subscriptions live
    as long as the host's incarnation."""

    def __init__(
        self,
        host: Any,
        *,
        port: int,
        user: str | None,
        password: str | None,
        token: str | None,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.token = token
        digest = hashlib.sha256(f"simloom-nats:{host.name}:{port}".encode()).digest()
        #: A server id shaped like nats-server's (56 base32 characters starting
        #: with "N"), the same in every universe for the same host and port.
        self.server_id = "N" + base64.b32encode(digest).decode()[:55]
        self._connections: dict[int, _Connection] = {}
        self._next_client = 0
        self._next_subscription = 0
        #: Subscriptions to a literal subject, by subject; the rest (with a
        #: wildcard) are scanned. Each list is in subscription order.
        self._literal: dict[bytes, list[_Subscription]] = {}
        self._wildcard: list[_Subscription] = []
        #: nats-server's sublist cache: for each subject matched since it last
        #: changed, its tokens and its subscriptions in the cache's order (see
        #: ``_matches``).
        self._cache: dict[bytes, tuple[list[bytes], list[_Subscription]]] = {}
        self._dirty: list[_Connection] = []
        #: Messages received from clients and delivered to them (``in_msgs`` and
        #: ``out_msgs`` of the real server's monitoring), this incarnation.
        self.messages_in = 0
        self.messages_out = 0

    @property
    def url(self) -> str:
        """``nats://<host>:<port>``, for ``nats.connect``."""
        return f"nats://{self.host.name}:{self.port}"

    @property
    def auth_required(self) -> bool:
        return self.token is not None or self.user is not None

    @property
    def connections(self) -> int:
        """The number of open client connections."""
        return len(self._connections)

    @property
    def subscriptions(self) -> int:
        """The number of subscriptions, over every connection."""
        return sum(len(c.subscriptions) for c in self._connections.values())

    # -------------------------------------------------------------- lifecycle

    async def _serve(self) -> None:
        self._connections = {}
        self._literal = {}
        self._wildcard = []
        self._cache = {}
        self._dirty = []
        self._next_client = 0
        self._next_subscription = 0
        self.messages_in = self.messages_out = 0
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Connection(self), "0.0.0.0", self.port)
        async with server:
            await server.serve_forever()

    def _info(self, connection: _Connection) -> bytes:
        info: dict[str, Any] = {
            "server_id": self.server_id,
            "server_name": self.server_id,
            "version": SERVER_VERSION,
            "proto": 1,
            "go": "simloom",
            "host": "0.0.0.0",
            "port": self.port,
            "headers": True,
        }
        if self.auth_required:
            info["auth_required"] = True
        info["max_payload"] = MAX_PAYLOAD
        info["client_id"] = connection.ident
        if connection.ip is not None:
            info["client_ip"] = connection.ip
        return b"INFO " + json.dumps(info, separators=(",", ":")).encode() + b" \r\n"

    def _authorized(self, options: dict[str, Any]) -> bool:
        if self.token is not None:
            return bool(options.get("auth_token") == self.token)
        if self.user is not None:
            return bool(options.get("user") == self.user and options.get("pass") == self.password)
        return True

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            connection.flush()

    # ---------------------------------------------------------- subscriptions

    def _subscribe(self, subscription: _Subscription) -> None:
        self._next_subscription += 1
        subscription.order = self._next_subscription
        cache = self._cache
        if subscription.literal:
            self._literal.setdefault(subscription.subject, []).append(subscription)
            keys = [subscription.subject] if subscription.subject in cache else []
        else:
            self._wildcard.append(subscription)
            keys = [
                key for key, (tokens, _) in cache.items() if _match(subscription.tokens, tokens)
            ]
        # A new subscription joins the cached results at their end (a new list:
        # a publish in progress may hold the old one).
        for key in keys:
            tokens, found = cache[key]
            cache[key] = (tokens, [*found, subscription])

    def _unsubscribe(self, subscription: _Subscription) -> None:
        connection = subscription.connection
        if connection.subscriptions.get(subscription.sid) is subscription:
            del connection.subscriptions[subscription.sid]
        if subscription.literal:
            members = self._literal.get(subscription.subject)
            if members is not None and subscription in members:
                members.remove(subscription)
                if not members:
                    del self._literal[subscription.subject]
        elif subscription in self._wildcard:
            self._wildcard.remove(subscription)
        # A removal drops the cached results it touches: they are matched afresh.
        cache = self._cache
        if subscription.literal:
            cache.pop(subscription.subject, None)
        else:
            for key in [
                k for k, (tokens, _) in cache.items() if _match(subscription.tokens, tokens)
            ]:
                del cache[key]

    def _matches(self, subject: bytes) -> list[_Subscription]:
        """The subscriptions ``subject`` reaches (none for a subject with an empty
        token), in the order nats-server's sublist gives them: matched afresh,
        ``>`` before ``*`` before literal tokens level by level (see
        ``_sublist_rank``; oldest first among equals, where the server's order is
        a Go map's); once cached, later subscriptions follow in the order they
        came. That order decides which subscription a ``503`` goes to."""
        cached = self._cache.get(subject)
        if cached is not None:
            return cached[1]
        tokens = subject.split(b".")
        if b"" in tokens:
            return []
        found = list(self._literal.get(subject, ()))
        wildcard = [s for s in self._wildcard if _match(s.tokens, tokens)]
        if wildcard:
            found += wildcard
        found.sort(key=_by_rank)
        cache = self._cache
        if len(cache) >= CACHE_MAX:
            # nats-server sweeps a full cache down at random; the oldest go here.
            for key in list(cache)[: len(cache) - CACHE_SWEEP]:
                del cache[key]
        cache[subject] = (tokens, found)
        return found

    # ---------------------------------------------------------------- routing

    def _publish(
        self,
        sender: _Connection,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        sizes: tuple[bytes, bytes] | None,
    ) -> None:
        """Deliver one message (``message`` = header block + payload, the first
        ``header_size`` bytes being headers). ``sizes`` are the size tokens as the
        publisher wrote them, which nats-server copies into MSG/HMSG."""
        self.messages_in += 1
        matched = self._matches(subject)
        plain: list[_Subscription] = []
        groups: dict[bytes, list[_Subscription]] = {}
        for subscription in matched:
            if subscription.queue is None:
                plain.append(subscription)
            else:
                groups.setdefault(subscription.queue, []).append(subscription)
        echo = sender.options["echo"]
        chosen = plain if echo else [s for s in plain if s.connection is not sender]
        if groups:
            chosen = list(chosen)
            for members in groups.values():
                # A member that may not get the sender's own messages is passed
                # over for the others, as nats-server does.
                if not echo:
                    members = [s for s in members if s.connection is not sender]
                if len(members) > 1:
                    members = sorted(members, key=_by_order)  # choice 0: the oldest
                if members:
                    chosen.append(members[self._choose_member(len(members))])
        if not chosen:
            # Nobody got it (a sender's own subscriptions do not count when it
            # turned echo off): a requester that asked is told so.
            if reply is not None and sender.options["no_responders"]:
                self._no_responders(sender, reply)
            return
        for subscription in chosen:
            subscription.connection.deliver(
                subscription, subject, reply, header_size, message, sizes
            )
            self.messages_out += 1
            subscription.delivered += 1
            if subscription.max is not None and subscription.delivered >= subscription.max:
                self._unsubscribe(subscription)

    def _choose_member(self, members: int) -> int:
        if members == 1:
            return 0
        loop = asyncio.get_running_loop()
        if _causal.recording is not None:
            _causal.recording.note_choice(loop, sys._getframe(1))  # the publish
        return int(loop._choose(QUEUE_CHOICE_LABEL, members))  # type: ignore[attr-defined]

    def _no_responders(self, sender: _Connection, reply: bytes) -> None:
        """The 503 status goes to the first of the requester's own plain
        subscriptions that match the reply subject, in sublist order."""
        for subscription in self._matches(reply):
            if subscription.connection is sender and subscription.queue is None:
                sender.send(
                    b"HMSG %s %s 16 16\r\n%s\r\n" % (reply, subscription.sid, _NO_RESPONDERS)
                )
                return


class _Subscription:
    __slots__ = (
        "connection",
        "delivered",
        "literal",
        "max",
        "order",
        "queue",
        "rank",
        "sid",
        "subject",
        "tokens",
    )

    def __init__(
        self, connection: _Connection, subject: bytes, queue: bytes | None, sid: bytes
    ) -> None:
        self.connection = connection
        self.subject = subject
        self.tokens = subject.split(b".")
        self.literal = b"*" not in self.tokens and b">" not in self.tokens
        self.rank = _sublist_rank(self.tokens)
        self.queue = queue
        self.sid = sid
        self.max: int | None = None
        self.delivered = 0
        self.order = 0


def _by_order(subscription: _Subscription) -> int:
    return subscription.order


def _by_rank(subscription: _Subscription) -> tuple[tuple[int, ...], int]:
    return subscription.rank, subscription.order


class _Connection(asyncio.Protocol):
    """One client connection: the parser of what it sends and the buffer of what
    the server sends it."""

    def __init__(self, server: NatsStandin) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.ident = 0
        self.ip: str | None = None
        self.options: dict[str, Any] = dict(_DEFAULT_OPTIONS)
        self.connect_received = False
        self.subscriptions: dict[bytes, _Subscription] = {}
        self.closed = False
        self.buffer = bytearray()
        #: A PUB/HPUB whose payload has not all arrived: (subject, reply, header
        #: size, total size, size tokens).
        self.pending: tuple[bytes, bytes | None, int, int, tuple[bytes, bytes] | None] | None = None
        self.outgoing: list[bytes] = []
        self.active = False
        self.pings_out = 0
        self._timers: list[asyncio.TimerHandle] = []

    # ------------------------------------------------------------ transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        server = self.server
        self.transport = transport
        server._next_client += 1
        self.ident = server._next_client
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.ip = str(peer[0])
        server._connections[self.ident] = self
        loop = asyncio.get_running_loop()
        if server.auth_required:
            self._timers.append(loop.call_later(AUTH_TIMEOUT, self._auth_timeout))
        self._timers.append(loop.call_later(PING_INTERVAL, self._ping_timer))
        self.send(server._info(self))
        server._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._drop()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.active = True
        self.buffer += data
        try:
            self._parse()
        finally:
            self.server._flush()

    # -------------------------------------------------------------- output

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.outgoing:
            self.server._dirty.append(self)
        self.outgoing.append(data)

    def flush(self) -> None:
        if self.outgoing and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self.outgoing))
        self.outgoing.clear()

    def deliver(
        self,
        subscription: _Subscription,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        message: bytes,
        sizes: tuple[bytes, bytes] | None,
    ) -> None:
        head = [subject, subscription.sid]
        if reply is not None:
            head.append(reply)
        if header_size and self.options["headers"]:
            if sizes is None:
                head += [b"%d" % header_size, b"%d" % len(message)]
            else:
                head += list(sizes)
            self.send(b"HMSG " + b" ".join(head) + _CRLF + message + _CRLF)
            return
        if header_size:  # a client without header support gets the payload alone
            message = message[header_size:]
            head.append(b"%d" % len(message))
        else:
            head.append(sizes[1] if sizes is not None else b"%d" % len(message))
        self.send(b"MSG " + b" ".join(head) + _CRLF + message + _CRLF)

    def error(self, text: str) -> None:
        self.send(b"-ERR '" + text.encode() + b"'\r\n")

    def close(self, error: str | None = None) -> None:
        """End the connection, after ``-ERR '<error>'`` when given (the rest of what
        was queued for it goes first).

        The server's side is shut for writing at once, and what the client still
        sends is read and ignored until it closes too (or ``CLOSE_LINGER`` virtual
        seconds pass): nats-server has usually read a client's next command (the
        ``PING`` after ``CONNECT``) by the time it closes, so its client reads the
        ``-ERR``; a full close here would instead meet that command with a reset,
        which would discard the ``-ERR`` before the client read it."""
        if self.closed:
            return
        if error is not None:
            self.error(error)
        self.flush()
        self._drop()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write_eof()
            asyncio.get_running_loop().call_later(CLOSE_LINGER, transport.close)

    def eof_received(self) -> None:
        """The client closed its side: so does the server (asyncio closes the
        transport when this returns a false value)."""
        self._drop()

    def _drop(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.outgoing.clear()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        server = self.server
        for subscription in list(self.subscriptions.values()):
            server._unsubscribe(subscription)
        self.subscriptions.clear()
        server._connections.pop(self.ident, None)

    # ---------------------------------------------------------------- timers

    def _auth_timeout(self) -> None:
        if not self.connect_received:
            self.close(_AUTHENTICATION_TIMEOUT)

    def _ping_timer(self) -> None:
        if self.closed:
            return
        if not self.active:
            if self.pings_out >= MAX_PINGS_OUT:
                self.close(_STALE_CONNECTION)
                return
            self.pings_out += 1
            self.send(_PING)
            self.server._flush()
        self.active = False
        self._timers = [t for t in self._timers if not t.cancelled()]
        self._timers.append(asyncio.get_running_loop().call_later(PING_INTERVAL, self._ping_timer))

    # ---------------------------------------------------------------- parser

    def _parse(self) -> None:
        buffer = self.buffer
        position = 0
        try:
            while not self.closed:
                pending = self.pending
                if pending is not None:
                    end = position + pending[3]
                    if len(buffer) < end + 2:
                        break
                    if buffer[end : end + 2] != _CRLF:
                        self.close(_UNKNOWN_OPERATION)
                        return
                    message = bytes(buffer[position:end])
                    position = end + 2
                    self.pending = None
                    self._finish_publish(pending, message)
                    continue
                newline = buffer.find(b"\n", position)
                if newline < 0:
                    if len(buffer) - position > MAX_CONTROL_LINE and _takes_arguments(
                        buffer[position : position + 6]
                    ):
                        self.close(_MAX_CONTROL_LINE)
                    break
                line = bytes(buffer[position:newline])
                position = newline + 1
                if line.endswith(b"\r"):
                    line = line[:-1]
                self._line(line)
        finally:
            del buffer[:position]

    def _line(self, line: bytes) -> None:
        if not self.connect_received and self.server.auth_required and line[:1] not in (b"C", b"c"):
            self.close(_AUTHORIZATION_VIOLATION)
            return
        word = line[:7].upper()
        if word.startswith(b"PUB"):
            self._argument_op(line, 3, self._pub)
        elif word.startswith(b"PING"):
            self.send(_PONG)
        elif word.startswith(b"PONG"):
            self.pings_out = 0
        elif word.startswith(b"SUB"):
            self._argument_op(line, 3, self._sub)
        elif word.startswith(b"UNSUB"):
            self._argument_op(line, 5, self._unsub)
        elif word.startswith(b"HPUB"):
            self._argument_op(line, 4, self._hpub)
        elif word.startswith(b"CONNECT"):
            self._connect(line[7:].lstrip(_WHITESPACE))
        elif word.startswith(b"+OK"):
            pass
        elif word.startswith(b"INFO"):
            # A client may send INFO; the server reads it and keeps nothing, but
            # a body that is not a JSON object ends the connection (silently).
            if not isinstance(_json_object(line[4:].lstrip(_WHITESPACE)), dict):
                self.close()
        elif word.startswith(b"-ERR") and line[4:5] in (b" ", b"\t"):
            self.close()  # a client reporting an error is closed, silently
        else:
            self.close(_UNKNOWN_OPERATION)

    def _argument_op(self, line: bytes, length: int, handler: Any) -> None:
        """An operation followed by arguments: the name must be followed by a
        space or a tab (else it is not the operation), and the arguments may be
        no longer than the control line limit."""
        if line[length : length + 1] not in (b" ", b"\t"):
            self.close(_UNKNOWN_OPERATION)
            return
        arguments = line[length + 1 :]
        if len(arguments.lstrip(_WHITESPACE)) > MAX_CONTROL_LINE:
            self.close(_MAX_CONTROL_LINE)
            return
        handler(arguments.split())

    # -------------------------------------------------------------- operations

    def _connect(self, argument: bytes) -> None:
        fields = _json_object(argument)
        if not isinstance(fields, dict) or not _valid_connect(fields):
            self.close()
            return
        for key, value in fields.items():
            if value is not None and key in _DEFAULT_OPTIONS:
                self.options[key] = value
        server = self.server
        if server.auth_required and not server._authorized(self.options):
            self.close(_AUTHORIZATION_VIOLATION)
            return
        self.connect_received = True
        if not 0 <= self.options["protocol"] <= 1:
            self.close(_INVALID_PROTOCOL)
            return
        if self.options["no_responders"] and not self.options["headers"]:
            self.close(_NO_RESPONDERS_NEEDS_HEADERS)
            return
        if self.options["verbose"]:
            self.send(_OK)

    def _pub(self, arguments: list[bytes]) -> None:
        if len(arguments) == 2:
            subject, reply, size_token = arguments[0], None, arguments[1]
        elif len(arguments) == 3:
            subject, reply, size_token = arguments
        else:
            self.close()  # nats-server closes on malformed arguments, without -ERR
            return
        size = _size(size_token)
        if size < 0:
            self.close()
            return
        self._start_publish(subject, reply, 0, size, (b"0", size_token))

    def _hpub(self, arguments: list[bytes]) -> None:
        if not self.options["headers"]:
            self.close()  # headers were not announced in CONNECT
            return
        if len(arguments) == 3:
            subject, reply = arguments[0], None
        elif len(arguments) == 4:
            subject, reply = arguments[0], arguments[1]
        else:
            self.close()
            return
        header_token, total_token = arguments[-2], arguments[-1]
        header_size, total = _size(header_token), _size(total_token)
        if header_size < 0 or total < 0 or header_size > total:
            self.close()
            return
        self._start_publish(subject, reply, header_size, total, (header_token, total_token))

    def _start_publish(
        self,
        subject: bytes,
        reply: bytes | None,
        header_size: int,
        total: int,
        sizes: tuple[bytes, bytes],
    ) -> None:
        if total > MAX_PAYLOAD:
            self.close(_MAX_PAYLOAD_VIOLATION)
            return
        if self.options["pedantic"] and not _valid_literal_subject(subject):
            self.error(_INVALID_PUBLISH_SUBJECT)  # said, and the message still goes
        self.pending = (subject, reply, header_size, total, sizes)

    def _finish_publish(
        self,
        pending: tuple[bytes, bytes | None, int, int, tuple[bytes, bytes] | None],
        message: bytes,
    ) -> None:
        subject, reply, header_size, _total, sizes = pending
        if self.options["verbose"]:
            self.send(_OK)
        if header_size == 0:
            # A zero-length header block is a plain message.
            sizes = None if sizes is None else (b"0", sizes[1])
        self.server._publish(self, subject, reply, header_size, message, sizes)

    def _sub(self, arguments: list[bytes]) -> None:
        if len(arguments) == 2:
            subject, queue, sid = arguments[0], None, arguments[1]
        elif len(arguments) == 3:
            subject, queue, sid = arguments
        else:
            self.close()
            return
        if sid not in self.subscriptions:  # a repeated sid changes nothing, silently
            if not _valid_subject(subject):
                self.error(_INVALID_SUBJECT)
                return
            subscription = _Subscription(self, subject, queue, sid)
            self.subscriptions[sid] = subscription
            self.server._subscribe(subscription)
        if self.options["verbose"]:
            self.send(_OK)

    def _unsub(self, arguments: list[bytes]) -> None:
        if len(arguments) == 1:
            sid, limit = arguments[0], 0
        elif len(arguments) == 2:
            sid, limit = arguments[0], _size(arguments[1])
        else:
            self.close()
            return
        subscription = self.subscriptions.get(sid)
        if subscription is not None:
            if limit > 0 and limit > subscription.delivered:
                subscription.max = limit
            else:
                self.server._unsubscribe(subscription)
        if self.options["verbose"]:
            self.send(_OK)


# ------------------------------------------------------------------ helpers


def _takes_arguments(start: bytes | bytearray) -> bool:
    word = start.upper()
    return word.startswith((b"PUB", b"HPUB", b"SUB", b"UNSUB"))


def _json_object(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _valid_connect(fields: dict[str, Any]) -> bool:
    """Go's JSON decoder rejects a field of the wrong type (and the server then
    closes the connection)."""
    for key in _BOOL_FIELDS:
        value = fields.get(key)
        if value is not None and not isinstance(value, bool):
            return False
    for key in _STRING_FIELDS:
        value = fields.get(key)
        if value is not None and not isinstance(value, str):
            return False
    for key in _INT_FIELDS:
        value = fields.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return False
    return True


def _size(token: bytes) -> int:
    """nats-server's parseSize: up to 9 decimal digits, else -1."""
    if not 0 < len(token) <= 9 or not token.isdigit():
        return -1
    return int(token)


def _valid_subject(subject: bytes) -> bool:
    """A subscription subject: non-empty tokens; ``>`` only as the last token."""
    tokens = subject.split(b".")
    for index, token in enumerate(tokens):
        if not token:
            return False
        if token == b">" and index != len(tokens) - 1:
            return False
    return True


def _valid_literal_subject(subject: bytes) -> bool:
    """A publish subject (pedantic mode): non-empty tokens, no wildcard token."""
    return all(token and token not in (b"*", b">") for token in subject.split(b"."))


def _match(pattern: list[bytes], tokens: list[bytes]) -> bool:
    count = len(tokens)
    for index, token in enumerate(pattern):
        if token == b">":
            return count > index
        if index >= count or (token != b"*" and token != tokens[index]):
            return False
    return len(pattern) == count


def _sublist_rank(pattern: list[bytes]) -> tuple[int, ...]:
    """The order in which nats-server's sublist lists the subscriptions a subject
    matches: at each level ``>`` first, then what continues after ``*``, then the
    literal token, except at the last level, where ``*`` comes after the literal."""
    last = len(pattern) - 1
    ranks = []
    for index, token in enumerate(pattern):
        if token == b">":
            ranks.append(0)
        elif token == b"*":
            ranks.append(2 if index == last else 1)
        else:
            ranks.append(1 if index == last else 2)
    return tuple(ranks)
