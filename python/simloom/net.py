"""The simulated network as asyncio sees it: transports, servers, name resolution,
and the fault controls of ``world.net``.

The model (who receives which bytes, when, and what the faults do) is Rust
(:class:`simloom._core.NetCore`); this module turns its events into protocol
callbacks with the semantics of asyncio's own selector transports, so unmodified
clients and servers (asyncio streams, aiohttp, httpx/anyio) run on it.

Owns: transports and servers, the loop's network methods (``create_connection``,
``create_server``, ``getaddrinfo``, ...), and ``Net``, the user's fault controls.
Must not: decide timing or order (the model does), or touch a real socket.

The core dispatches each event itself: it hands it to the transport's ``_on_net``
in the transport's own context (the host that opened it), through a per-transport
inbox in Rust that keeps a connection's events in order whatever the scheduler does,
so a crashed host's transports never run again and deliveries still interleave with
other work. ``_on_net`` feeds a reading protocol at once; what it cannot handle yet
(paused reading, no protocol) waits in the transport's own inbox, in order. A new
connection goes to its server's ``_on_accept``, and a crash to each endpoint's
``_host_crashed``: the core keeps which transport, server and socket each id and
host has (``register_stream``, ``listen``, ``register_datagram``), so nothing here
keeps a registry of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import errno
import ipaddress
import os
import socket
import ssl as ssl_module
import struct
from asyncio import futures, sslproto, transports
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import _causal
from .errors import EscapedSimulationError, SimloomUsageError
from .errors import raise_escaped as _escape

#: The simulated-socket layer, ``simloom._sim_socket``, which builds on this module
#: and registers itself here when imported (``loop.py`` imports it): the sockets a
#: program hands to loop APIs (``create_server(sock=)``, ``sock_connect``) go to it
#: without an import edge back from here.
_registered_socket_layer: Any = None


def _socket_layer() -> Any:
    if _registered_socket_layer is None:  # pragma: no cover - loop.py imports it
        raise RuntimeError("simloom._sim_socket is not loaded")
    return _registered_socket_layer


if TYPE_CHECKING:
    from .loop import SimLoop
    from .world import Host, World

__all__ = ["Net"]

_CLIENT = 0
_SERVER = 1

_SERVICES = {"http": 80, "https": 443, "ftp": 21, "ssh": 22, "smtp": 25, "dns": 53}
_DEFAULT_BACKLOG = 100
#: Names every host has for itself (the world's DNS never lets them be shadowed).
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")

Address = tuple[str, int]
ProtocolFactory = Callable[[], asyncio.BaseProtocol]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _no_such_name(host: object) -> socket.gaierror:
    return socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host!r}")


def _port_number(port: object) -> int:
    if port is None:
        return 0
    if isinstance(port, bool):
        raise TypeError(f"port must be an int or str, got {port!r}")
    if isinstance(port, int):
        if not 0 <= port <= 65535:
            raise OverflowError(f"port must be 0-65535, got {port}")
        return port
    if isinstance(port, bytes):
        port = port.decode()
    if isinstance(port, str):
        if port.isdigit():
            return _port_number(int(port))
        if port in _SERVICES:
            return _SERVICES[port]
        raise socket.gaierror(socket.EAI_SERVICE, f"Servname not supported: {port!r}")
    raise TypeError(f"port must be an int or str, got {type(port).__name__}")


def _feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    if isinstance(protocol, asyncio.BufferedProtocol):
        view = memoryview(data)
        while view:
            buffer = memoryview(protocol.get_buffer(len(view)))
            size = min(len(buffer), len(view))
            if not size:
                raise RuntimeError("get_buffer() returned an empty buffer")
            buffer[:size] = view[:size]
            protocol.buffer_updated(size)
            view = view[size:]
    else:
        protocol.data_received(data)  # type: ignore[attr-defined]


#: Read ends of two pipes, made on first use: one at end of file (always readable),
#: one whose write end stays open and is never written (never readable).
_readiness_pipes: tuple[int, int] | None = None


def _readiness_fd(readable: bool) -> int:
    """A real file descriptor that ``poll``/``select`` report as readable or not.
    Libraries that check a socket's readiness by its descriptor (httpcore does,
    before reusing a keep-alive connection) then see the simulated connection's
    state; nothing is ever read from or written to it."""
    global _readiness_pipes
    if _readiness_pipes is None:
        at_eof, eof_writer = os.pipe()
        os.close(eof_writer)
        idle, _idle_writer = os.pipe()  # kept open for the process's lifetime
        _readiness_pipes = (at_eof, idle)
    return _readiness_pipes[0] if readable else _readiness_pipes[1]


class SimSocket:
    """What ``server.sockets`` and ``get_extra_info("socket")`` would hold: the
    address-reporting half of a socket. I/O goes through the transport; a connected
    stream socket's ``fileno()`` is a descriptor whose readiness is the
    connection's (see :func:`_readiness_fd`), others have none (-1)."""

    def __init__(
        self,
        family: int,
        kind: int,
        sockname: Any,
        peername: Any = None,
        *,
        readable: Callable[[], bool] | None = None,
    ) -> None:
        self.family = socket.AddressFamily(family)
        self.type = socket.SocketKind(kind)
        self.proto = 0
        self._sockname = sockname
        self._peername = peername
        self._readable = readable
        #: The transport's connection is gone: as the stock transport closes its
        #: socket then, ``fileno()`` is -1 from now on.
        self._closed = False
        #: Options set (level, name) -> value; they change nothing on the simulated
        #: network, and read back as set. A stock TCP transport turns Nagle off.
        self._options: dict[tuple[int, int], int | bytes] = {}
        if self.type == socket.SOCK_STREAM and self.family in (socket.AF_INET, socket.AF_INET6):
            self._options[(socket.IPPROTO_TCP, socket.TCP_NODELAY)] = 1

    def getsockname(self) -> Any:
        return self._sockname

    def getpeername(self) -> Any:
        if self._peername is None:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
        return self._peername

    def fileno(self) -> int:
        if self._readable is None or self._closed:
            return -1
        return _readiness_fd(self._readable())

    def setsockopt(self, level: int, name: int, value: Any, optlen: int | None = None) -> None:
        """Socket options have no effect on the simulated network; they are kept,
        so that ``getsockopt`` reads them back (ints as ints, buffers as bytes)."""
        if value is None:  # setsockopt(level, name, None, optlen)
            self._options[(level, name)] = bytes(optlen or 0)
        elif isinstance(value, int) and not isinstance(value, bool):
            self._options[(level, name)] = value
        else:
            self._options[(level, name)] = bytes(value)

    def getsockopt(self, level: int, name: int, buflen: int | None = None) -> int | bytes:
        """An option as set (0 if never set); ``SO_TYPE``/``SO_DOMAIN``/
        ``SO_PROTOCOL`` as the socket's. With ``buflen``, the bytes (an int option
        as a C int), at most ``buflen`` of them."""
        if level == socket.SOL_SOCKET and name == socket.SO_TYPE:
            value: int | bytes = int(self.type)
        elif level == socket.SOL_SOCKET and name == getattr(socket, "SO_DOMAIN", -1):
            value = int(self.family)
        elif level == socket.SOL_SOCKET and name == getattr(socket, "SO_PROTOCOL", -1):
            value = self.proto
        else:
            value = self._options.get((level, name), 0)
        if buflen is None:
            return value if isinstance(value, int) else int.from_bytes(value[:4] or b"\0", "little")
        data = value if isinstance(value, bytes) else struct.pack("i", value)
        return data[:buflen]

    def setblocking(self, flag: bool) -> None:
        pass

    def gettimeout(self) -> float:
        """0.0: a transport's socket is non-blocking, as on the stock loop."""
        return 0.0

    def __repr__(self) -> str:
        return f"<simloom.SimSocket family={self.family.name} laddr={self._sockname}>"


#: Blocking socket calls now waiting on the loop's thread (simloom._sim_socket):
#: while one waits, events for transports other than simulated sockets' wait for
#: the loop (their inbox steps), as the kernel keeps them for a blocked program.
blocked_waits = 0


def _deferred(transport: StreamTransport | DatagramTransport) -> bool:
    return blocked_waits > 0 and not transport._socket_side


def _family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


class _Inbox:
    """Events waiting for one transport, handled in order by one callback at a time
    in the transport's context."""

    def __init__(self, loop: SimLoop, context: contextvars.Context, handler: Callable[[], None]):
        self.events: collections.deque[tuple[Any, ...]] = collections.deque()
        self._loop = loop
        self._context = context
        self._handler = handler
        self._scheduled = False

    def kick(self) -> None:
        if not self._scheduled and self.events:
            self._scheduled = True
            self._loop.call_soon(self._run, context=self._context)

    def _run(self) -> None:
        self._scheduled = False
        self._handler()


class StreamTransport(transports._FlowControlMixin):
    """One side of a simulated TCP (or Unix) connection.

    Flow control is asyncio's own (``_FlowControlMixin``, which the selector
    transports use): bytes the connection's window does not take wait in this
    transport's buffer, and the protocol's ``pause_writing()``/``resume_writing()``
    are called at the same water marks, so ``StreamWriter.drain()`` waits while
    the peer does not read."""

    _start_tls_compatible = True

    def __init__(
        self,
        world: World,
        host: Host,
        conn: int,
        side: int,
        context: contextvars.Context,
        *,
        family: int = socket.AF_INET,
        unix_path: str | None = None,
    ) -> None:
        super().__init__(loop=world.loop)
        self._world = world
        self._loop: SimLoop = world.loop
        self._host = host
        self._conn = conn
        self._side = side
        self._context = context
        self._family = family
        self._unix_path = unix_path
        self._protocol: asyncio.BaseProtocol | None = None
        self._inbox = _Inbox(world.loop, context, self._handle_events)
        self._extra: dict[str, Any] = {}
        self._closing = False
        self._lost = False
        self._write_shut = False
        #: Bytes written that the connection's window has not taken yet.
        self._buffer = bytearray()
        #: ``write_eof()`` or ``close()`` was called with bytes still buffered: the
        #: half-close or close happens once they have all been sent.
        self._eof_pending = False
        self._close_pending = False
        self._reading = True
        self._eof = False
        self._server: SimServer | None = None
        #: A simulated socket's connection (simloom._sim_socket): its events are the
        #: kernel's, handled even while a blocking call waits on the loop's thread.
        self._socket_side = False
        # Filled in by whoever opened the transport:
        self._on_connected: Callable[[StreamTransport], None] | None = None
        self._on_refused: Callable[[StreamTransport], None] | None = None

    # ---------------------------------------------------------------- events

    def _register(self) -> None:
        """The core routes this side's events to ``_on_net`` from now on."""
        self._world._net.register_stream(
            self._conn,
            self._side,
            self._host._net_id,
            self._on_net,
            self._context,
            self._host_crashed,
        )

    def _forget(self) -> None:
        self._world._net.forget_stream(self._conn, self._side)

    def _on_net(self, kind: str, *payload: Any) -> None:
        """One event from the network core, run in this transport's context (the
        core schedules it directly): ``("data", bytes)``, ``("eof",)``,
        ``("reset",)``, ``("writable",)``, ``("connected", local, peer)``,
        ``("accepted", local, peer)`` or ``("refused",)``. Bytes go straight to a
        reading protocol when nothing is waiting before them; anything else waits
        its turn in the inbox, so events are handled in the order they came."""
        if _deferred(self):
            if kind == "writable":
                self._loop.call_soon(self._on_writable, context=self._context)
            else:
                self._inbox.events.append((kind, *payload))
                self._inbox.kick()
            return
        if kind == "writable":
            # Not through the inbox: a side that stopped reading still writes.
            self._on_writable()
            return
        events = self._inbox.events
        if kind == "data" and not events and self._reading and not self._closing:
            protocol = self._protocol
            if protocol is not None and not self._lost:
                data = payload[0]
                self._consumed(len(data))
                _feed(protocol, data)
                return
        events.append((kind, *payload))
        self._handle_events()

    def _consumed(self, nbytes: int) -> None:
        """``nbytes`` were read: the peer's window opens by as much. (try/except,
        not contextlib.suppress: this runs once per segment.)"""
        try:  # noqa: SIM105
            self._world._net.consumed(self._loop, self._conn, self._side, nbytes)
        except OSError:
            pass

    def _handle_events(self) -> None:
        events = self._inbox.events
        while events and not self._lost:
            kind = events[0][0]
            if kind in ("data", "eof") and (not self._reading or self._protocol is None):
                return  # paused, or no protocol yet: resume_reading/attach kicks again
            event = events.popleft()
            if kind == "data":
                self._consumed(len(event[1]))  # read, or (closing) discarded
                if self._closing:
                    continue
                assert self._protocol is not None
                _feed(self._protocol, event[1])
            elif kind == "eof":
                self._eof = True
                if self._closing:
                    continue
                assert self._protocol is not None
                keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
                if not keep_open:
                    self.close()
            elif kind == "connected":
                local, peer = event[1], event[2]
                self._set_addresses(local, peer)
                if self._on_connected is not None:
                    self._on_connected(self)
            elif kind == "accepted":
                local, peer = event[1], event[2]
                self._set_addresses(local, peer)
                assert self._server is not None
                self._server._accept(self)
            elif kind == "refused":
                self._lost = True
                self._forget()
                if self._on_refused is not None:
                    self._on_refused(self)
            elif kind == "reset":
                self._connection_lost(
                    ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
                )

    def _set_addresses(self, local: Address, peer: Address) -> None:
        if self._unix_path is not None:
            sockname: Any = self._unix_path if self._side == _SERVER else ""
            peername: Any = "" if self._side == _SERVER else self._unix_path
        else:
            sockname, peername = tuple(local), tuple(peer)
            if self._family == socket.AF_INET6:
                sockname, peername = (*sockname, 0, 0), (*peername, 0, 0)
        self._extra["sockname"] = sockname
        self._extra["peername"] = peername

    def _attach(self, protocol: asyncio.BaseProtocol) -> None:
        """Give the transport its protocol and call ``connection_made``."""
        self._protocol = protocol
        protocol.connection_made(self)
        self._inbox.kick()

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._inbox.events.clear()
        self._buffer.clear()
        self._forget()
        if (sock := self._extra.get("socket")) is not None:
            sock._closed = True
        if self._server is not None:
            self._server._detach(self)
        protocol = self._protocol
        if protocol is not None:
            protocol.connection_lost(exc)

    def _host_crashed(self) -> None:
        """The host of this side lost power: the transport is gone without a word."""
        self._lost = True
        self._closing = True
        self._inbox.events.clear()
        self._buffer.clear()

    # ------------------------------------------------------------- transport API

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket" and "socket" not in self._extra:
            if "sockname" not in self._extra:
                return default
            # Made once, as asyncio's transports hold one socket object (anyio asks
            # for it on every request).
            kind = socket.AF_UNIX if self._unix_path is not None else self._family
            self._extra["socket"] = SimSocket(
                kind,
                socket.SOCK_STREAM,
                self._extra["sockname"],
                self._extra.get("peername"),
                readable=self._has_unread_input,
            )
        return self._extra.get(name, default)

    def _has_unread_input(self) -> bool:
        """What ``poll`` says of a real socket under a selector transport: readable
        once bytes, end of file or a reset have arrived and not yet been handed to
        the protocol, and for good after end of file or a reset."""
        return self._eof or self._lost or bool(self._inbox.events)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._buffer:
            # As asyncio's transports do: the buffered bytes go first.
            self._close_pending = True
            return
        self._finish_close()

    def _finish_close(self) -> None:
        self._call_net("close")
        self._loop.call_soon(self._connection_lost, None, context=self._context)

    def abort(self) -> None:
        self._force_close(None)

    def _force_close(self, exc: Exception | None, *, reset: bool = False) -> None:
        """Abort and report ``exc`` to the protocol's ``connection_lost``, as the
        selector transport does (asyncio's TLS layer calls this on a failed
        handshake or a shutdown timeout): the buffered bytes are dropped and no
        more is read. The socket closes as a stock transport's does on Linux: a
        FIN after what the connection already took, or a reset when bytes
        received were left unread (or ``reset``)."""
        if self._lost:
            return
        self._closing = True
        self._buffer.clear()
        unread = any(event[0] == "data" for event in self._inbox.events)
        self._call_net("abort" if reset or unread else "close")
        self._loop.call_soon(self._connection_lost, exc, context=self._context)

    def _abandon(self) -> None:
        """A connect given up (cancelled, timed out, refused, or its socket closed
        meanwhile): the connection closes, and no protocol hears of it."""
        if self._lost:
            return
        self._closing = True
        self._call_net("close")
        self._lost = True
        self._forget()

    def _reset(self) -> None:
        """Close with a reset (``SO_LINGER`` 0, unread bytes, a connection queued on
        a listener that closed)."""
        self._force_close(None, reset=True)

    def _call_net(self, operation: str) -> None:
        # OSError: the connection is already gone (reset, or the peer closed).
        with contextlib.suppress(OSError):
            getattr(self._world._net, operation)(self._loop, self._conn, self._side)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if (
            type(data) is bytes
            and not self._buffer
            and not (self._write_shut or self._closing or self._lost)
            and 0 < len(data) <= self._world._stream_window
        ):
            # The common case, without copying or wrapping the bytes: what
            # ``_send`` does for a write no larger than one window.
            try:
                taken = self._world._net.send(self._loop, self._conn, self._side, data, False)
            except OSError:
                return  # a reset in flight; the reset event reports it
            if taken < len(data):
                self._buffer += memoryview(data)[taken:]
                self._maybe_pause_protocol()  # type: ignore[attr-defined]
            return
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._write_shut:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data or self._closing or self._lost:
            return
        view = memoryview(data).cast("B")
        if self._buffer:
            self._buffer += view
        else:
            taken = self._send(view)
            if taken < len(view):
                self._buffer += view[taken:]
        self._maybe_pause_protocol()  # type: ignore[attr-defined]  # asyncio's; typeshed omits it

    def _send(self, view: memoryview) -> int:
        """Offer the connection the start of ``view`` (at most one window, so a huge
        write is never copied whole); how many bytes it took."""
        net = self._world._net
        chunk = bytes(view[: net.stream_window()])
        try:
            return int(net.send(self._loop, self._conn, self._side, chunk, len(chunk) < len(view)))
        except OSError:
            # A reset in flight; the reset event reports it to the protocol.
            return len(view)

    def _on_writable(self) -> None:
        """The peer read enough to open the window: send what is buffered, resume
        the protocol below the low-water mark, and finish a deferred half-close or
        close once the buffer is empty."""
        if self._lost or not self._buffer:
            return
        with memoryview(self._buffer) as view:
            taken = self._send(view)
        del self._buffer[:taken]
        self._maybe_resume_protocol()  # type: ignore[attr-defined]  # asyncio's; typeshed omits it
        if self._buffer:
            return
        if self._eof_pending:
            self._eof_pending = False
            self._call_net("shutdown_write")
        if self._close_pending:
            self._close_pending = False
            self._finish_close()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        if self._write_shut or self._closing:
            return
        self._write_shut = True
        if self._buffer:
            self._eof_pending = True
            return
        self._call_net("shutdown_write")

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        """Bytes written that the connection's window has not taken yet."""
        return len(self._buffer)

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        if not self._reading:
            self._reading = True
            self._inbox.kick()

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[return-value]

    def __repr__(self) -> str:
        state = "closed" if self._lost else ("closing" if self._closing else "open")
        return (
            f"<simloom.StreamTransport {state} host={self._host.name!r} "
            f"sockname={self._extra.get('sockname')} peername={self._extra.get('peername')}>"
        )


class SimServer(asyncio.AbstractServer):
    """What ``create_server`` returns: listeners on a simulated host."""

    def __init__(
        self,
        world: World,
        host: Host,
        protocol_factory: ProtocolFactory,
        context: contextvars.Context,
        *,
        ssl: ssl_module.SSLContext | None,
        ssl_handshake_timeout: float | None,
        ssl_shutdown_timeout: float | None,
        unix_path: str | None = None,
    ) -> None:
        self._world = world
        self._loop = world.loop
        self._host = host
        self._protocol_factory = protocol_factory
        self._context = context
        self._ssl = ssl
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._unix_path = unix_path
        #: A simulated socket's listener (simloom._sim_socket): its connections'
        #: events are the kernel's (see StreamTransport._socket_side).
        self._socket_listener = False
        self._listeners: list[tuple[int, Address]] = []
        self._serving = False
        self._closed = False
        self._clients: dict[StreamTransport, None] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._serving_forever: asyncio.Future[None] | None = None

    def _listen(
        self,
        host: Host,
        ip: str,
        port: int,
        backlog: int,
        reuse_port: bool = False,
        v6only: bool = False,
    ) -> tuple[int, Address]:
        """Listen on ``ip:port`` of ``host``; the core hands its connections to
        ``_on_accept``. ``reuse_port``: SO_REUSEPORT (listeners that all set it
        share the address); ``v6only``: IPV6_V6ONLY (``::`` takes no IPv4)."""
        listener, address = self._world._net.listen(
            host._net_id,
            ip,
            port,
            max(1, backlog),
            self._on_accept,
            self._context,
            self._host_crashed,
            reuse_port,
            v6only,
        )
        return listener, (address[0], address[1])

    def _add_listener(self, listener: int, address: Address) -> None:
        self._listeners.append((listener, address))

    def _on_accept(self, conn: int, local: Address, peer: Address) -> None:
        """A connection arrived at one of the listeners (run by the core in the
        server's context): its server-side transport, told it is accepted."""
        world = self._world
        if self._closed:
            with contextlib.suppress(OSError):  # already reset
                world._net.abort(self._loop, conn, _SERVER)
            return
        transport = StreamTransport(
            world,
            self._host,
            conn,
            _SERVER,
            self._context,
            family=_family_of(local[0]),
            unix_path=self._unix_path,
        )
        transport._register()
        transport._server = self
        transport._socket_side = self._socket_listener
        transport._on_net("accepted", local, peer)

    def _accept(self, transport: StreamTransport) -> None:
        if self._closed:
            transport._reset()
            return
        transport._server = self
        self._clients[transport] = None
        protocol = self._protocol_factory()
        if self._ssl is not None:
            waiter = self._loop.create_future()
            ssl_protocol = sslproto.SSLProtocol(
                self._loop,
                protocol,
                self._ssl,
                waiter,
                server_side=True,
                ssl_handshake_timeout=self._ssl_handshake_timeout,  # type: ignore[arg-type]
                ssl_shutdown_timeout=self._ssl_shutdown_timeout,
            )
            waiter.add_done_callback(_consume_exception)
            transport._attach(ssl_protocol)
        else:
            transport._attach(protocol)

    def _detach(self, transport: StreamTransport) -> None:
        self._clients.pop(transport, None)
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        if self._closed and not self._clients:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _host_crashed(self) -> None:
        self._closed = True
        self._serving = False
        self._listeners.clear()

    # -------------------------------------------------------------- server API

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._serving = False
        for listener, _ in self._listeners:
            with contextlib.suppress(RuntimeError):  # its host crashed
                self._world._net.close_listener(self._loop, listener)
        self._listeners.clear()
        if self._unix_path is not None:
            self._world._unbind_unix(self._host, self._unix_path)
        if self._serving_forever is not None and not self._serving_forever.done():
            self._serving_forever.cancel()
        self._wake_waiters()

    def close_clients(self) -> None:
        for transport in list(self._clients):
            transport.close()

    def abort_clients(self) -> None:
        for transport in list(self._clients):
            transport.abort()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        if not self._serving:
            self._serving = True
            for listener, _ in self._listeners:
                self._world._net.set_accepting(self._loop, listener, True)

    async def serve_forever(self) -> None:
        if self._serving_forever is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        await self.start_serving()
        self._serving_forever = self._loop.create_future()
        try:
            await self._serving_forever
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever = None

    async def wait_closed(self) -> None:
        """Wait until the server is closed and its connections are gone."""
        if self._closed and not self._clients:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    @property
    def sockets(self) -> tuple[SimSocket, ...]:
        if self._unix_path is not None:
            return tuple(
                SimSocket(socket.AF_UNIX, socket.SOCK_STREAM, self._unix_path)
                for _ in self._listeners
            )
        return tuple(
            SimSocket(_family_of(ip), socket.SOCK_STREAM, (ip, port))
            for _, (ip, port) in self._listeners
        )

    def __repr__(self) -> str:
        return f"<simloom.SimServer host={self._host.name!r} sockets={self.sockets!r}>"


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class DatagramTransport(asyncio.DatagramTransport):
    """A simulated UDP socket."""

    def __init__(
        self,
        world: World,
        host: Host,
        socket_id: int,
        local: Address,
        remote: Address | None,
        context: contextvars.Context,
    ) -> None:
        super().__init__()
        self._world = world
        self._loop = world.loop
        self._host = host
        self._socket = socket_id
        self._remote = remote
        self._context = context
        self._protocol: asyncio.DatagramProtocol | None = None
        self._inbox = _Inbox(world.loop, context, self._handle_events)
        six = _family_of(local[0]) == socket.AF_INET6
        self._extra: dict[str, Any] = {"sockname": (*local, 0, 0) if six else local}
        if remote is not None:
            self._extra["peername"] = (*remote, 0, 0) if six else remote
        #: ``get_extra_info("socket")``, made once (options set on it stay).
        self._sim_socket: SimSocket | None = None
        self._closing = False
        self._lost = False
        self._socket_side = False

    def _on_net(self, kind: str, source: Any, data: bytes) -> None:
        """A datagram from the network core, run in this transport's context."""
        self._inbox.events.append((kind, source, data))
        if _deferred(self):
            self._inbox.kick()
            return
        self._handle_events()

    def _handle_events(self) -> None:
        events = self._inbox.events
        while events and not self._closing and self._protocol is not None:
            _, source, data = events.popleft()
            source = tuple(source)
            if self._remote is not None and source != self._remote:
                continue  # a connected UDP socket hears only its peer
            if len(self._extra["sockname"]) == 4:
                source = (*source, 0, 0)  # an IPv6 address, as the stock loop gives it
            self._protocol.datagram_received(data, source)

    def _host_crashed(self) -> None:
        self._closing = self._lost = True
        self._inbox.events.clear()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            if self._sim_socket is None:
                self._sim_socket = SimSocket(
                    _family_of(self._extra["sockname"][0]),
                    socket.SOCK_DGRAM,
                    self._extra["sockname"],
                    self._extra.get("peername"),
                )
            return self._sim_socket
        return self._extra.get(name, default)

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._remote is not None:
            if addr not in (None, self._remote):
                raise ValueError(f"Invalid address: must be None or {self._remote}")
            addr = self._remote
        if addr is None:
            raise ValueError("an address is needed: the endpoint has no remote_addr")
        if self._closing:
            return
        ip, port = self._world._resolve(addr[0], self._host), _port_number(addr[1])
        self._world._net.send_datagram(self._loop, self._socket, ip, port, bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._world._net.close_datagram(self._socket)
        self._world._net.forget_datagram(self._socket)
        self._loop.call_soon(self._connection_lost, context=self._context)

    def abort(self) -> None:
        self.close()

    def _connection_lost(self) -> None:
        if self._lost:
            return
        self._lost = True
        if self._protocol is not None:
            self._protocol.connection_lost(None)

    def get_write_buffer_size(self) -> int:
        """Always 0: a datagram goes to the network at once, never waits here."""
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Stored and reported as asyncio's transports do; with nothing ever buffered
        (see :meth:`get_write_buffer_size`) the protocol is never paused."""
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._write_buffer_limits = (low, high)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return getattr(self, "_write_buffer_limits", (16 * 1024, 64 * 1024))

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol  # type: ignore[return-value]

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]


# ---------------------------------------------------------------- loop methods
#
# SimLoop's network methods call these with its world. Signatures follow asyncio's.


async def getaddrinfo(
    world: World,
    host: Any,
    port: Any,
    *,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> list[tuple[Any, ...]]:
    """Strict DNS: a name resolves once a host has it; unknown names raise
    ``socket.gaierror``."""
    if isinstance(host, bytes):
        host = host.decode("idna")
    number = _port_number(port)
    if host is None and flags & socket.AI_PASSIVE and family in (0, socket.AF_UNSPEC):
        # Both wildcards, IPv4 first, as a dual-stack resolver answers.
        return [
            *await getaddrinfo(
                world, "0.0.0.0", port, family=socket.AF_INET, type=type, proto=proto
            ),
            *await getaddrinfo(world, "::", port, family=socket.AF_INET6, type=type, proto=proto),
        ]
    if host is None:
        passive = flags & socket.AI_PASSIVE
        if family == socket.AF_INET6:
            ip = "::" if passive else "::1"
        else:
            ip = "0.0.0.0" if passive else "127.0.0.1"
    else:
        ip = world._resolve(host, world._current_host())
    ip_family = _family_of(ip)
    if family == socket.AF_INET6 and ip == "127.0.0.1" and host in _LOCAL_NAMES:
        # The machine's own names have an IPv6 loopback too (as in /etc/hosts);
        # asked for without a family they answer 127.0.0.1 only, as before.
        ip, ip_family = "::1", socket.AF_INET6
    if family not in (0, socket.AF_UNSPEC, ip_family):
        raise socket.gaierror(socket.EAI_ADDRFAMILY, f"no {family!r} address for {host!r}")
    kinds = [type] if type else [socket.SOCK_STREAM, socket.SOCK_DGRAM]
    address: tuple[Any, ...] = (ip, number) if ip_family == socket.AF_INET else (ip, number, 0, 0)
    out: list[tuple[Any, ...]] = []
    for kind in kinds:
        number_proto = proto or (
            socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else socket.IPPROTO_UDP
        )
        out.append(
            (socket.AddressFamily(ip_family), socket.SocketKind(kind), number_proto, "", address)
        )
    return out


async def getnameinfo(world: World, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
    return name_info(world, sockaddr, flags)


def name_info(world: World, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
    """``getnameinfo`` in the world: the address's name from the world's reverse
    DNS (``localhost`` for loopback), the port as a number (the world has no
    services database, so ``NI_NUMERICSERV`` is always in effect)."""
    if not isinstance(sockaddr, tuple) or len(sockaddr) not in (2, 4):
        raise TypeError("getnameinfo() argument 1 must be a tuple")
    if not isinstance(flags, int):
        raise TypeError(f"'{type(flags).__name__}' object cannot be interpreted as an integer")
    ip, port = sockaddr[0], sockaddr[1]
    if not isinstance(ip, str) or not isinstance(port, int):
        raise TypeError("getnameinfo(): illegal sockaddr argument")
    name = None if flags & socket.NI_NUMERICHOST else _reverse_name(world, ip)
    if name is None and flags & socket.NI_NAMEREQD:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return (name if name is not None else ip, str(port))


def _reverse_name(world: World, ip: str) -> str | None:
    name = world._name_of(ip)
    if name is None and _is_loopback(ip):
        return "localhost"
    return name


def host_by_address(world: World, ip: Any) -> tuple[str, list[str], list[str]]:
    """``gethostbyaddr`` in the world: ``(name, [], [ip])`` from its reverse DNS;
    ``socket.herror`` for an address with no name, as a real resolver says."""
    if not isinstance(ip, str):
        raise TypeError(f"gethostbyaddr() argument 1 must be str, not {type(ip).__name__}")
    name = _reverse_name(world, ip)
    if name is None:
        raise socket.herror(1, "Unknown host")
    return (name, [], [ip])


def _check_ssl_arguments(
    ssl: Any, server_hostname: Any, ssl_handshake_timeout: Any, ssl_shutdown_timeout: Any
) -> None:
    if not ssl:
        if server_hostname is not None:
            raise ValueError("server_hostname is only meaningful with ssl")
        if ssl_handshake_timeout is not None:
            raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
        if ssl_shutdown_timeout is not None:
            raise ValueError("ssl_shutdown_timeout is only meaningful with ssl")


async def open_stream(
    world: World,
    protocol_factory: ProtocolFactory,
    ip: str,
    port: int,
    *,
    ssl: Any,
    server_hostname: str | None,
    ssl_handshake_timeout: float | None,
    ssl_shutdown_timeout: float | None,
    unix_path: str | None = None,
    transport: StreamTransport | None = None,
    local: Address | None = None,
    server_side: bool = False,
) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
    """Connect (or take the already connected ``transport``), build the protocol and
    wait for it to be ready (the TLS handshake included)."""
    loop = world.loop
    if transport is None:
        transport = await connect(world, ip, port, unix_path=unix_path, local=local)
    protocol = protocol_factory()
    if ssl:
        context = None if isinstance(ssl, bool) else ssl
        waiter = loop.create_future()
        ssl_protocol = sslproto.SSLProtocol(
            loop,
            protocol,
            context,  # type: ignore[arg-type]  # None: a default client context
            waiter,
            server_side=server_side,
            server_hostname=server_hostname,
            ssl_handshake_timeout=ssl_handshake_timeout,  # type: ignore[arg-type]
            ssl_shutdown_timeout=ssl_shutdown_timeout,
        )
        transport._attach(ssl_protocol)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise
        return ssl_protocol._app_transport, protocol
    transport._attach(protocol)
    return transport, protocol


async def connect(
    world: World,
    ip: str,
    port: int,
    *,
    unix_path: str | None = None,
    local: Address | None = None,
) -> StreamTransport:
    """A connected transport with no protocol yet (data is held until one is
    attached). ``local``: the address the client side is bound to."""
    loop = world.loop
    host = world._current_host()
    context = contextvars.copy_context()
    conn = world._net.connect(loop, host._net_id, ip, port, local)
    transport = StreamTransport(
        world, host, conn, _CLIENT, context, family=_family_of(ip), unix_path=unix_path
    )
    transport._register()
    connected: asyncio.Future[None] | None = loop.create_future()
    assert connected is not None

    def on_connected(_: StreamTransport) -> None:
        if connected is not None and not connected.done():
            connected.set_result(None)
        else:
            transport.abort()

    def on_refused(_: StreamTransport) -> None:
        if connected is None:
            return
        if not connected.done() and unix_path is None:
            _sim_socket = _socket_layer()
            if _is_loopback(ip) and _sim_socket.adopt_listener_on(world, port):
                # A sync fixture's real listener, taken over now: try again.
                connected.set_result(None)
                retry.append(True)
                return
            try:
                _sim_socket.check_real_server(ip, port, "loop.create_connection")
            except EscapedSimulationError as escape:
                connected.set_exception(escape)
                return
        if not connected.done():
            where = unix_path if unix_path is not None else f"('{ip}', {port})"
            connected.set_exception(
                ConnectionRefusedError(errno.ECONNREFUSED, f"Connect call failed {where}")
            )

    retry: list[bool] = []
    transport._on_connected = on_connected
    transport._on_refused = on_refused
    waiting = connected
    try:
        await waiting
    except BaseException:
        # Cancelled (a timeout) or refused: abandon the connect.
        transport._abandon()
        # The future holds the error, whose traceback holds this frame: no cycle
        # keeps the error alive (as asyncio's own sock_connect, cpython#124859).
        del waiting
        connected = None
        raise
    if retry:
        return await connect(world, ip, port, unix_path=unix_path, local=local)
    return transport


def _is_loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip == "::1"


async def create_server(
    world: World,
    protocol_factory: ProtocolFactory,
    host: Any = None,
    port: Any = None,
    *,
    family: int = 0,
    flags: int = socket.AI_PASSIVE,
    sock: Any = None,
    backlog: int = _DEFAULT_BACKLOG,
    ssl: Any = None,
    reuse_address: bool | None = None,
    reuse_port: bool | None = None,
    keep_alive: bool | None = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
) -> SimServer:
    if isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    if sock is not None:
        if host is not None or port is not None:
            raise ValueError("host/port and sock can not be specified at the same time")
        _sim_socket = _socket_layer()

        host, port, _family = _sim_socket.adopt_listening(
            world, sock, "loop.create_server(sock=...)"
        )
    _check_ssl_arguments(ssl, None, ssl_handshake_timeout, ssl_shutdown_timeout)
    on = world._current_host()
    hosts: list[Any]
    if host is None or host == "":
        hosts = ["0.0.0.0"]
    elif isinstance(host, str):
        hosts = [host]
    else:
        hosts = list(host)
    number = _port_number(port)
    server = SimServer(
        world,
        on,
        protocol_factory,
        contextvars.copy_context(),
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
    )
    try:
        for name in hosts:
            ip = world._resolve(name, on) if name not in ("0.0.0.0", "::") else name
            listener, address = server._listen(on, ip, number, backlog, bool(reuse_port))
            server._add_listener(listener, address)
            if number == 0:
                number = address[1]  # every host name listens on the same port
            if not start_serving:
                world._net.set_accepting(world.loop, listener, False)
    except BaseException:
        server.close()
        raise
    server._serving = start_serving
    return server


async def create_unix_server(
    world: World,
    protocol_factory: ProtocolFactory,
    path: Any = None,
    *,
    sock: Any = None,
    backlog: int = _DEFAULT_BACKLOG,
    ssl: Any = None,
    ssl_handshake_timeout: float | None = None,
    ssl_shutdown_timeout: float | None = None,
    start_serving: bool = True,
    cleanup_socket: bool = True,
) -> SimServer:
    if sock is not None:
        _escape("loop.create_unix_server(sock=...)", "it listens on a real Unix socket")
    if path is None:
        raise ValueError("path was not specified, and no sock specified")
    on = world._current_host()
    path = str(path)
    server = SimServer(
        world,
        on,
        protocol_factory,
        contextvars.copy_context(),
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        ssl_shutdown_timeout=ssl_shutdown_timeout,
        unix_path=path,
    )
    listener, address = world._listen_unix(on, path, backlog, server)
    server._add_listener(listener, address)
    if not start_serving:
        world._net.set_accepting(world.loop, listener, False)
    server._serving = start_serving
    return server


async def create_datagram_endpoint(
    world: World,
    protocol_factory: Callable[[], asyncio.DatagramProtocol],
    local_addr: Any = None,
    remote_addr: Any = None,
    *,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    reuse_address: Any = None,
    reuse_port: bool | None = None,
    allow_broadcast: bool | None = None,
    sock: Any = None,
) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
    on = world._current_host()
    if sock is not None:
        if local_addr is not None or remote_addr is not None:
            raise ValueError(
                "socket modifier keyword arguments can not be used when sock is specified."
            )
        _sim_socket = _socket_layer()

        socket_id, bound, peer = _sim_socket.adopt_datagram(
            world, sock, "loop.create_datagram_endpoint(sock=...)"
        )
        return await open_datagram(world, on, socket_id, bound, peer, protocol_factory)
    remote: Address | None = None
    if remote_addr is not None:
        remote = (world._resolve(remote_addr[0], on), _port_number(remote_addr[1]))
    if local_addr is not None:
        ip = local_addr[0] or "0.0.0.0"
        if ip not in ("0.0.0.0", "::"):
            ip = world._resolve(ip, on)
        port = _port_number(local_addr[1])
    else:
        ip, port = ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0
    socket_id, local = world._net.bind_datagram(on._net_id, ip, port, bool(reuse_port))
    if remote is not None and local[0] in ("0.0.0.0", "::"):
        # Connected: like the kernel, report the source address of the route to
        # the peer (loopback for a loopback peer, else the host's own address).
        local = (_route_source(world, on, remote[0], local[0]), local[1])
    return await open_datagram(world, on, socket_id, tuple(local), remote, protocol_factory)  # type: ignore[arg-type]


def _route_source(world: World, on: Host, peer: str, wildcard: str) -> str:
    """The local address a socket bound to ``wildcard`` sends to ``peer`` from."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return wildcard
    if address.is_loopback:
        return "::1" if address.version == 6 else "127.0.0.1"
    own = on.address
    if address.version == 6 or wildcard == "::":
        return wildcard if ":" not in own else own
    return own


async def open_datagram(
    world: World,
    on: Host,
    socket_id: int,
    local: Address,
    remote: Address | None,
    protocol_factory: Callable[[], asyncio.DatagramProtocol],
) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
    """The transport of the bound UDP socket ``socket_id``, with its protocol,
    returned once ``connection_made`` has run, as the stock loop's
    ``create_datagram_endpoint`` waits for it (the same three callbacks, in order)."""
    context = contextvars.copy_context()
    transport = DatagramTransport(world, on, socket_id, local, remote, context)
    world._net.register_datagram(
        socket_id, on._net_id, transport._on_net, context, transport._host_crashed
    )
    protocol = protocol_factory()
    transport._protocol = protocol
    loop = world.loop
    ready: asyncio.Future[None] = loop.create_future()
    loop.call_soon(protocol.connection_made, transport, context=context)
    loop.call_soon(transport._inbox.kick, context=context)
    loop.call_soon(futures._set_result_unless_cancelled, ready, None)  # type: ignore[attr-defined]
    try:
        await ready
    except BaseException:
        transport.close()
        raise
    return transport, protocol


# ---------------------------------------------------------------- faults


def _percent(value: object, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise SimloomUsageError(f"{argument} must be an int percentage in [0, 100], got {value!r}")
    return value


def _seconds_ns(value: object, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise SimloomUsageError(f"{argument} must be seconds in [0, 3600], got {value!r}")
    return round(value * 1e9)


class Net:
    """The network's fault controls, as ``world.net``.

    Every fault is deterministic given the tape: latency within a range, a lost
    segment's retransmissions and datagram faults are tape choices whose canonical
    (shrunk) value is "no fault" (the minimum latency, nothing lost). Faults surface
    as the exceptions real sockets raise (``ConnectionResetError``,
    ``ConnectionRefusedError``, a connect that hangs until the caller's timeout).
    """

    def __init__(self, world: World) -> None:
        self._world = world

    def _core(self) -> Any:
        self._world._check_running("world.net")
        return self._world._net

    def _ids(self, group: Any, argument: str) -> list[int]:
        return [host._net_id for host in self._world._hosts_in(group, argument)]

    def _one(self, host: Any, argument: str) -> int:
        hosts = self._world._hosts_in(host, argument)
        if len(hosts) != 1:
            raise SimloomUsageError(f"{argument} must be one host, got {host!r}")
        return hosts[0]._net_id

    def _names(self, group: Any, argument: str) -> str:
        """A group of hosts in words, for the causal trace's faults."""
        names = sorted(host.name for host in self._world._hosts_in(group, argument))
        return names[0] if len(names) == 1 else "{" + ", ".join(names) + "}"

    def _fault(self, text: Callable[[], str]) -> None:
        if _causal.recording is not None:
            _causal.recording.note_fault(self._world.loop, text())

    def partition(self, side_a: Any, side_b: Any) -> None:
        """Cut every path between the hosts of ``side_a`` and those of ``side_b``
        (each a host, a host name or an iterable of them). Stream bytes sent across
        are held and delivered, in order, on ``heal``; datagrams are lost; a connect
        across hangs until the caller gives up."""
        self._core().partition(self._ids(side_a, "side_a"), self._ids(side_b, "side_b"))
        self._fault(
            lambda: f"partition {self._names(side_a, 'side_a')} | {self._names(side_b, 'side_b')}"
        )

    def heal(self, side_a: Any = None, side_b: Any = None) -> None:
        """Reopen every path (no arguments) or those between two groups; held bytes
        leave in order."""
        if side_a is None and side_b is None:
            self._core().heal(self._world.loop)
            self._fault(lambda: "heal every partition")
        elif side_a is None or side_b is None:
            raise SimloomUsageError("heal() takes no groups (heal everything) or two groups")
        else:
            self._core().heal_between(
                self._world.loop, self._ids(side_a, "side_a"), self._ids(side_b, "side_b")
            )
            self._fault(
                lambda: f"heal {self._names(side_a, 'side_a')} | {self._names(side_b, 'side_b')}"
            )

    def block(self, src: Any, dst: Any) -> None:
        """Cut the one direction ``src → dst`` (asymmetric partition)."""
        self._core().block(self._one(src, "src"), self._one(dst, "dst"))
        self._fault(lambda: f"block {self._names(src, 'src')} -> {self._names(dst, 'dst')}")

    def unblock(self, src: Any, dst: Any) -> None:
        self._core().unblock(self._world.loop, self._one(src, "src"), self._one(dst, "dst"))
        self._fault(lambda: f"unblock {self._names(src, 'src')} -> {self._names(dst, 'dst')}")

    def clog_node_out(self, host: Any) -> None:
        """Hold everything ``host`` sends."""
        self._core().clog_node_out(self._one(host, "host"))
        self._fault(lambda: f"clog {self._names(host, 'host')} (out)")

    def clog_node_in(self, host: Any) -> None:
        """Hold everything sent to ``host``."""
        self._core().clog_node_in(self._one(host, "host"))
        self._fault(lambda: f"clog {self._names(host, 'host')} (in)")

    def unclog_node_out(self, host: Any) -> None:
        self._core().unclog_node_out(self._world.loop, self._one(host, "host"))
        self._fault(lambda: f"unclog {self._names(host, 'host')} (out)")

    def unclog_node_in(self, host: Any) -> None:
        self._core().unclog_node_in(self._world.loop, self._one(host, "host"))
        self._fault(lambda: f"unclog {self._names(host, 'host')} (in)")

    def reset_connections(self, a: Any, b: Any) -> int:
        """Reset every established connection between hosts ``a`` and ``b``: both
        sides' protocols get ``ConnectionResetError``. Returns how many."""
        count = len(
            self._core().reset_connections(self._world.loop, self._one(a, "a"), self._one(b, "b"))
        )
        self._fault(
            lambda: f"reset {count} connection(s) {self._names(a, 'a')} <-> {self._names(b, 'b')}"
        )
        return count

    def set_latency(
        self, minimum: float, maximum: float | None = None, *, src: Any = None, dst: Any = None
    ) -> None:
        """One-way latency in seconds, drawn from ``[minimum, maximum]`` per segment
        (a tape choice shrinking toward ``minimum``), on every link or on the
        directed link ``src → dst``."""
        low = _seconds_ns(minimum, "minimum")
        high = low if maximum is None else _seconds_ns(maximum, "maximum")
        if high < low:
            raise SimloomUsageError(f"maximum ({maximum}) must be at least minimum ({minimum})")
        self._shape(src, dst, lambda shape: (low, high, shape[2]))

    def set_loss(self, percent: int, *, src: Any = None, dst: Any = None) -> None:
        """Chance that a stream segment is lost and retransmitted (arriving a
        retransmission timeout later, with backoff): streams still never lose or
        reorder bytes. A tape choice shrinking toward "not lost"."""
        loss = _percent(percent, "percent")
        self._shape(src, dst, lambda shape: (shape[0], shape[1], loss))

    def _shape(
        self, src: Any, dst: Any, change: Callable[[tuple[int, int, int]], tuple[int, int, int]]
    ) -> None:
        core = self._core()
        if src is None and dst is None:
            core.set_default_link(*change(core.default_link()))
        elif src is None or dst is None:
            raise SimloomUsageError("give both src and dst (one directed link) or neither (all)")
        else:
            source, destination = self._one(src, "src"), self._one(dst, "dst")
            core.set_link(source, destination, *change(core.link(source, destination)))

    def set_retransmission(self, timeout: float, max_retransmissions: int = 3) -> None:
        """The first retransmission timeout (seconds; doubling each time) and how
        many times a lost segment may be lost again."""
        if (
            isinstance(max_retransmissions, bool)
            or not isinstance(max_retransmissions, int)
            or not 0 <= max_retransmissions <= 16
        ):
            raise SimloomUsageError(
                f"max_retransmissions must be an int in [0, 16], got {max_retransmissions!r}"
            )
        self._core().set_retransmission(_seconds_ns(timeout, "timeout"), max_retransmissions)

    def set_segmentation(self, percent: int) -> None:
        """Chance that a stream write is cut before its end, so the peer gets it in
        several reads (tape choice ``net.segment``, asked again for the rest after
        each cut; canonical: one write, one read). 0, the default, asks nothing."""
        self._core().set_segmentation(_percent(percent, "percent"))

    def set_stream_window(self, nbytes: int) -> None:
        """Bytes one direction of a connection holds before its writer must wait
        (in flight plus arrived and unread; default 256 KiB). Past it, writes stay
        in the transport's buffer and ``drain()`` waits at its high-water mark."""
        if isinstance(nbytes, bool) or not isinstance(nbytes, int) or not 1 <= nbytes <= 1 << 30:
            raise SimloomUsageError(f"nbytes must be an int in [1, {1 << 30}], got {nbytes!r}")
        self._core().set_stream_window(nbytes)
        self._world._stream_window = nbytes

    def set_datagram_loss(self, percent: int) -> None:
        """Chance that a datagram is dropped (tape choice; canonical: delivered)."""
        self._core().set_datagram_loss(_percent(percent, "percent"))

    def set_datagram_duplication(self, percent: int) -> None:
        """Chance that a datagram is delivered twice (canonical: once)."""
        self._core().set_datagram_duplication(_percent(percent, "percent"))

    def set_datagram_reorder(self, percent: int, *, delay: float | None = None) -> None:
        """Chance that a datagram is held back ``delay`` seconds (default 10 ms), so
        later ones overtake it (canonical: in order)."""
        self._core().set_datagram_reorder(_percent(percent, "percent"))
        if delay is not None:
            self._core().set_datagram_reorder_delay(_seconds_ns(delay, "delay"))


# Sockets that ``sock_connect`` connected on the simulated network, for


async def sock_connect(world: World, sock: Any, address: Any) -> None:
    if not isinstance(sock, socket.socket):
        raise TypeError(f"sock must be a socket.socket, got {type(sock).__name__}")
    if sock.type != socket.SOCK_STREAM:
        _escape("loop.sock_connect() on a non-stream socket", "it connects a real socket")
    _sim_socket = _socket_layer()

    ip = world._resolve(address[0], world._current_host())
    port = _port_number(address[1])
    state = _sim_socket.state_of(world, sock)
    local = _sim_socket.unbind_for_connect(state)
    transport = await connect(world, ip, port, local=local)
    if state is None:
        state = _sim_socket.new_state(world, sock)
    state.connected(transport)


def take_connected_socket(world: World, sock: Any) -> StreamTransport | None:
    """The transport of ``sock``'s connection (``sock_connect`` or ``accept`` made
    it), which owns the connection from now on; the real socket only carried an
    identity and is closed here (on the stock loop the transport would close it),
    so no file descriptor leaks."""
    transport: StreamTransport | None = _socket_layer().adopt_connected(
        world, sock, "loop.create_connection(sock=...)"
    )
    return transport
