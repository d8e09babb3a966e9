"""Real ``socket.socket`` objects used inside a universe with a world: their stream
I/O happens on the simulated network.

The boundary redirects the C methods of ``_socket.socket`` (``bind``, ``listen``,
``_accept``, ``connect``, ``send``, ``recv``, ``getsockname``, ``close``, ...) here
while a universe runs (see the socket rows of :mod:`simloom._boundary`). A socket
bound, connected or accepted in the universe gets a :class:`SocketState` in its
world, keyed by its file descriptor: a listener of the simulated network, or a
connection's :class:`~simloom.net.StreamTransport` with a protocol that buffers
what arrives for ``recv``. The loop's ``sock_*`` methods, ``connect_accepted_socket``
and ``create_server(sock=)``/``create_connection(sock=)`` take those over.

Owns: the simulated state of real socket objects, and the check that names a real
server listening on a loopback port (``/proc/net/tcp``).
Must not: do I/O on the real descriptor (it only carries an identity; socket
options are stored by the real socket, which is never bound or connected), or wait
on the loop's thread: a blocking call that would wait raises a named error.
"""

from __future__ import annotations

import _socket
import asyncio
import collections
import contextlib
import contextvars
import errno
import functools
import socket
import struct
import sys
import threading
import types
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _sim_unix
from . import net as _net
from .errors import ESCAPE_HINT, EscapedSimulationError

if TYPE_CHECKING:
    from .world import Host, World

Address = tuple[str, int]

_ANY = ("", "0.0.0.0", "::")

#: How many received bytes a simulated socket holds before its peer's sends wait
#: (a real socket's receive buffer; Linux's default is of this order).
RECEIVE_BUFFER = 256 * 1024


class _BufferingProtocol(asyncio.Protocol):
    """The protocol of a socket's connection until a transport takes it over:
    what arrives waits in the socket's state for ``recv``."""

    def __init__(self, state: SocketState) -> None:
        self._state = state

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        state = self._state
        state.inbound += data
        if len(state.inbound) >= RECEIVE_BUFFER and not state.reading_paused:
            # A full receive buffer: the peer's window closes and its sends wait,
            # as they do against a real socket nobody reads.
            state.reading_paused = True
            self._transport.pause_reading()  # type: ignore[attr-defined]
        state.wake()

    def eof_received(self) -> bool:
        self._state.eof = True
        self._state.wake()
        return True  # half-closed: the socket may still send

    def connection_lost(self, exc: Exception | None) -> None:
        self._state.eof = True
        if exc is not None:
            self._state.error = exc
        self._state.wake()


class _Listener(_net.SimServer):
    """A listening socket's listener: accepted connections wait, with no protocol
    yet, for ``accept()``."""

    def __init__(self, world: World, host: Host, state: SocketState) -> None:
        super().__init__(
            world,
            host,
            lambda: _BufferingProtocol(state),
            contextvars.copy_context(),
            ssl=None,
            ssl_handshake_timeout=None,
            ssl_shutdown_timeout=None,
        )
        self._state = state
        self._socket_listener = True

    def _accept(self, transport: _net.StreamTransport) -> None:
        if self._closed:
            transport._reset()
            return
        transport._server = self
        self._clients[transport] = None
        self._state.accepted.append(transport)
        self._state.wake()


class SocketState(_sim_unix.Watched):
    """What the simulated network knows of one real stream socket."""

    def __init__(self, world: World, family: int, owner: Any = None) -> None:
        super().__init__()
        self.world = world
        self.closed = False
        self.family = family
        #: The socket objects with this descriptor (``socket.socket(fileno=...)``
        #: makes another): none left alive means the descriptor is a reused one.
        self.owners: weakref.WeakSet[Any] = weakref.WeakSet()
        self._owner_refs: list[weakref.ref[Any]] = []
        if owner is not None:
            self.own(owner)
        self.adopted = owner is None
        self.bound: Address | None = None
        self.listener: _Listener | None = None
        self.listening = False
        self.accepted: collections.deque[_net.StreamTransport] = collections.deque()
        self.transport: _net.StreamTransport | None = None
        self.inbound = bytearray()
        self.eof = False
        self.reading_paused = False
        self.error: Exception | None = None
        #: A UDP socket's id in the network core, and its peer (connect).
        self.datagram: int | None = None
        self.peer: Address | None = None
        #: A non-blocking connect under way: its transport, where it goes, and
        #: once known its outcome ("connected" or "refused").
        self.connecting: _net.StreamTransport | None = None
        self.connecting_to: Address | None = None
        self.connect_outcome: str | None = None
        self._waiters: list[asyncio.Future[None]] = []

    def own(self, sock: Any) -> None:
        """``sock`` holds this socket's descriptor. When the last holder goes
        without closing it, the descriptor is still open (``detach()``: a
        ``socket.socket(fileno=fd)`` takes it up) or was closed by the collector
        (the state goes with it; the number may be reused)."""
        fd = _socket.socket.fileno(sock)
        self.owners.add(sock)
        self._owner_refs.append(weakref.ref(sock, lambda _: self._owner_gone(fd)))

    def _owner_gone(self, fd: int) -> None:
        left = _sim_unix.descriptor_left(self, self.owners, _table(self.world), fd)
        if left == "open":
            self.adopted = True
        elif left == "closed":
            if self.world.loop.is_closed():
                # Collected after its universe ended: its connection went with the
                # world, there is nothing left to close.
                self.closed = True
            else:
                self.release()

    def readable(self) -> bool:
        return bool(self.inbound or self.accepted) or self.eof or self.error is not None

    def writable(self) -> bool:
        if self.connecting is not None:
            return self.connect_outcome is not None  # (as a kernel says: connected)
        transport = self.transport
        if transport is None:
            return not self.listening  # a send fails at once
        return transport.get_write_buffer_size() == 0 or transport.is_closing()

    def wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._arm(True)
        self._arm(False)
        # A lockstep thread blocked on this socket looks again after the step,
        # not only when its timeout passes.
        nudge = _sim_unix.nudge_hook
        if nudge is not None:
            nudge(self.world.loop)

    async def changed(self) -> None:
        """Wait until something arrives (a connection, bytes, end of file)."""
        waiter: asyncio.Future[None] = self.world.loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def connected(self, transport: _net.StreamTransport) -> None:
        self.transport = transport
        transport._socket_side = True
        transport._attach(_BufferingProtocol(self))

    def sockname(self) -> Any:
        address: Any = None
        if self.transport is not None:
            address = self.transport.get_extra_info("sockname")
        elif self.bound is not None:
            address = self.bound
            if self.family == socket.AF_INET6:
                address = (*address, 0, 0)
        return address

    def release(self, linger_zero: bool = False) -> None:
        """The socket is closed: its listener and connection go with it. With
        bytes received and not read, or ``SO_LINGER`` set to 0, the connection is
        reset, as a real close does then; otherwise it is closed."""
        if self.listener is not None:
            self.listener.close()
            for transport in self.accepted:
                transport._reset()
            self.accepted.clear()
            self.listener = None
        if self.transport is not None:
            unread = bool(self.inbound) or bool(self.transport._inbox.events)
            if unread or linger_zero:
                self.transport._reset()
            else:
                self.transport.close()
            self.transport = None
        if self.datagram is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.world._net.close_datagram(self.datagram)
            self.datagram = None
        connecting, self.connecting = self.connecting, None
        self.connecting_to = self.connect_outcome = None
        if connecting is not None:
            connecting._abandon()  # closed mid-connect
        self.closed = True
        self._unwatch_all()
        self.wake()


def _table(world: World) -> dict[int, SocketState]:
    table: dict[int, SocketState] | None = world.__dict__.get("_sim_sockets")
    if table is None:
        table = {}
        world.__dict__["_sim_sockets"] = table
    return table


def state_of(world: World, sock: Any) -> SocketState | None:
    """The simulated state of ``sock`` (a real socket object), or None."""
    try:
        fd = _socket.socket.fileno(sock)
    except (OSError, TypeError):
        return None
    table = _table(world)
    state = table.get(fd)
    if state is None:
        return None
    if sock not in state.owners:
        if not state.owners and not state.adopted:
            del table[fd]  # the descriptor of a socket collected unclosed, reused
            return None
        state.own(sock)  # an accepted socket's first use, or fileno=
        state.adopted = False
    return state


def new_state(world: World, sock: Any) -> SocketState:
    state = SocketState(world, sock.family, sock)
    _table(world)[_socket.socket.fileno(sock)] = state
    return state


def _is_datagram(sock: Any) -> bool:
    return bool(sock.type & socket.SOCK_DGRAM) and sock.family in (
        socket.AF_INET,
        socket.AF_INET6,
    )


def _is_stream(sock: Any) -> bool:
    return bool(sock.type & socket.SOCK_STREAM) and sock.family in (
        socket.AF_INET,
        socket.AF_INET6,
    )


#: Set while a lockstep thread's call runs on the loop's thread: it must not wait
#: there (the thread parks instead, see :func:`_from_a_lockstep_thread`).
_on_behalf_of_a_thread = False


def _nonblocking(sock: Any) -> bool:
    return _on_behalf_of_a_thread or _socket.socket.gettimeout(sock) == 0


def _escaped(api: str, what: str) -> EscapedSimulationError:
    return EscapedSimulationError(f"{api}(): {what} ({ESCAPE_HINT}).")


def _wait_for_network(
    world: World,
    sock: Any,
    transport: _net.StreamTransport | None,
    done: Callable[[], bool],
    api: str,
    what: str,
    listeners: tuple[int, ...] = (),
) -> None:
    """A blocking call on the loop's thread waits as the kernel does while the
    program is blocked: lockstep threads take their turns, virtual time moves on to
    each network event, and the events of this socket's own connection are handled
    at once (every other transport's wait for the loop), until ``done()``. Past the
    socket's timeout, TimeoutError; with nothing left that could happen, the named
    escape (a real program would hang)."""
    loop = world.loop
    timeout = _socket.socket.gettimeout(sock)
    deadline = None if timeout is None else loop.time() + timeout
    core = world._net
    _net.blocked_waits += 1
    core.set_blocked(True)
    try:
        while True:
            # What already came for this socket (an accept routed to its
            # listener's inbox while an earlier blocking call waited) first.
            if transport is not None:
                core.drain_stream(transport._conn, transport._side)
            for listener in listeners:
                core.drain_listener(listener)
            if done():
                return
            if _sim_unix.wait_hook is not None and _sim_unix.wait_hook(done, None, api):
                return
            next_ns = core.next_event_time()
            if next_ns is None:
                break
            when = next_ns / 1e9
            if deadline is not None and when > deadline:
                break
            if when > loop.time():
                loop._advance_clock(when - loop.time())
            core._due(loop)
    finally:
        _net.blocked_waits -= 1
        core.set_blocked(_net.blocked_waits > 0)
    if done():
        return
    if deadline is not None:
        if deadline > loop.time():
            loop._advance_clock(deadline - loop.time())
        raise TimeoutError("timed out")
    raise _would_block(api, what)


def unbind_for_connect(state: SocketState | None) -> Address | None:
    """A socket bound before it connects (``bind`` then ``connect``) keeps its
    address: the bound-but-not-listening listener that held it is let go, and the
    address is returned for the connection's client side."""
    if state is None or state.listener is None or state.bound is None:
        return None
    local = (state.bound[0], state.bound[1])
    state.release()
    return local


def _blocking_connect(world: World, sock: Any, ip: str, port: int, api: str) -> None:
    """A blocking connect on the loop's thread: the handshake runs in virtual time
    while the loop is blocked (see :func:`_wait_for_network`)."""
    host = world._current_host()
    state = state_of(world, sock)
    local = unbind_for_connect(state)
    conn = world._net.connect(world.loop, host._net_id, ip, port, local)
    transport = _net.StreamTransport(
        world, host, conn, _net._CLIENT, contextvars.copy_context(), family=_net._family_of(ip)
    )
    transport._socket_side = True
    transport._register()
    outcome: list[str] = []
    transport._on_connected = lambda _: outcome.append("connected")
    transport._on_refused = lambda _: outcome.append("refused")
    try:
        _wait_for_network(world, sock, transport, lambda: bool(outcome), api, "the connection")
    except BaseException:
        transport._abandon()
        raise
    if outcome[0] == "refused":
        if ip.startswith("127.") or ip == "::1":
            if adopt_listener_on(world, port):
                _blocking_connect(world, sock, ip, port, api)  # a sync fixture's server
                return
            check_real_server(ip, port, api)
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    if state is None:
        state = new_state(world, sock)
    state.connected(transport)


def _start_connect(world: World, sock: Any, ip: str, port: int) -> None:
    """A non-blocking connect: the handshake starts on the simulated network and
    the socket is connecting; a later ``connect`` on it says how it went (as a
    kernel does: EALREADY while in progress). A lockstep thread's blocking
    connect is this, its thread parked until the outcome is in."""
    host = world._current_host()
    state = state_of(world, sock) or new_state(world, sock)
    local = unbind_for_connect(state)
    conn = world._net.connect(world.loop, host._net_id, ip, port, local)
    transport = _net.StreamTransport(
        world, host, conn, _net._CLIENT, contextvars.copy_context(), family=_net._family_of(ip)
    )
    transport._socket_side = True
    transport._register()
    state.connecting = transport
    state.connecting_to = (ip, port)

    def done(outcome: str) -> None:
        state.connect_outcome = outcome
        state.wake()

    transport._on_connected = lambda _: done("connected")
    transport._on_refused = lambda _: done("refused")


def _connect_progress(world: World, sock: Any, state: SocketState, api: str) -> None:
    """``connect`` again on a connecting socket: EALREADY while the handshake is on
    its way; then the connection (the call succeeds) or the refusal."""
    outcome, transport = state.connect_outcome, state.connecting
    if outcome is None:
        raise BlockingIOError(errno.EALREADY, "Operation already in progress")
    assert transport is not None and state.connecting_to is not None
    ip, port = state.connecting_to
    state.connecting = state.connecting_to = state.connect_outcome = None
    if outcome == "refused":
        if ip.startswith("127.") or ip == "::1":
            if adopt_listener_on(world, port):
                _start_connect(world, sock, ip, port)  # a sync fixture's server
                raise BlockingIOError(errno.EALREADY, "Operation already in progress")
            check_real_server(ip, port, api)
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    state.connected(transport)


def _would_block(api: str, what: str) -> EscapedSimulationError:
    return _escaped(
        api,
        f"on a blocking socket it would wait for {what} on the loop's thread, which "
        "blocks the whole universe; use the loop's sock_* methods or a non-blocking "
        "socket (socket.setblocking(False))",
    )


# ------------------------------------------------------------ socket methods


def bind(world: World, sock: Any, address: Any) -> Any:
    datagram = _is_datagram(sock)
    if not (datagram or _is_stream(sock)):
        return NotImplemented
    state = state_of(world, sock) or new_state(world, sock)
    if state.bound is not None or state.transport is not None:
        raise OSError(errno.EINVAL, "Invalid argument")
    host = world._current_host()
    name, port = address[0], _net._port_number(address[1])
    if name in _ANY:
        ip = "::" if sock.family == socket.AF_INET6 else "0.0.0.0"
    else:
        ip = world._resolve(name, host)
    shared, v6only = _option(sock, socket.SOL_SOCKET, "SO_REUSEPORT"), _v6only(sock)
    if datagram:
        state.datagram, bound_to = world._net.bind_datagram(host._net_id, ip, port, shared, v6only)
        state.bound = (bound_to[0], bound_to[1])
        return None
    listener = _Listener(world, host, state)
    listener_id, bound = listener._listen(host, ip, port, _net._DEFAULT_BACKLOG, shared, v6only)
    listener._add_listener(listener_id, bound)
    # Bound, not listening yet: connections wait until listen().
    world._net.set_accepting(world.loop, listener_id, False)
    state.listener = listener
    state.bound = bound
    return None


def _option(sock: Any, level: int, name: str) -> bool:
    """Whether the boolean socket option ``name`` is set (the real socket stores
    the options a program sets; the simulation reads them at bind)."""
    option = getattr(socket, name, None)
    if option is None:
        return False
    try:
        return bool(_socket.socket.getsockopt(sock, level, option))
    except OSError:
        return False


def _v6only(sock: Any) -> bool:
    return sock.family == socket.AF_INET6 and _option(sock, socket.IPPROTO_IPV6, "IPV6_V6ONLY")


def listen(world: World, sock: Any, *args: Any) -> Any:
    if not _is_stream(sock):
        return NotImplemented
    state = state_of(world, sock)
    if state is None and _socket.socket.getsockname(sock)[1] != 0:
        return NotImplemented  # bound outside the universe: a real socket
    if state is None or state.listener is None:
        bind(world, sock, ("", 0))
        state = state_of(world, sock)
    assert state is not None and state.listener is not None
    state.listening = True
    state.listener._serving = True
    for listener_id, _ in state.listener._listeners:
        world._net.set_accepting(world.loop, listener_id, True)
    return None


def accept(world: World, sock: Any) -> Any:
    state = state_of(world, sock) or adopt_real_listener(world, sock)
    if state is None:
        return NotImplemented
    if not state.listening:
        raise OSError(errno.EINVAL, "Invalid argument")
    if not state.accepted:
        if _nonblocking(sock):
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        listener = state.listener
        _wait_for_network(
            world,
            sock,
            None,
            lambda: bool(state.accepted),
            "socket.socket.accept",
            "a connection",
            tuple(listener_id for listener_id, _ in listener._listeners) if listener else (),
        )
    transport = state.accepted.popleft()
    fresh = _socket.socket(sock.family, socket.SOCK_STREAM)
    fd = fresh.detach()
    accepted = SocketState(world, sock.family)
    _table(world)[fd] = accepted
    accepted.connected(transport)
    return fd, transport.get_extra_info("peername")


def connect(world: World, sock: Any, address: Any, api: str = "socket.socket.connect") -> Any:
    if _is_datagram(sock):
        # A UDP connect only sets the peer: nothing is sent, nothing waits.
        state = state_of(world, sock)
        if state is None or state.datagram is None:
            any_address = "::" if sock.family == socket.AF_INET6 else "0.0.0.0"
            bind(world, sock, (any_address, 0))
            state = state_of(world, sock)
        assert state is not None
        host = world._current_host()
        state.peer = (world._resolve(str(address[0]), host), _net._port_number(address[1]))
        return None
    if not _is_stream(sock):
        return NotImplemented
    existing = state_of(world, sock)
    if existing is None and (_real_sockname(sock) or ("", 0))[1] != 0:
        return NotImplemented  # bound outside the universe: a real socket
    if existing is not None and existing.connecting is not None:
        return _connect_progress(world, sock, existing, api)
    if existing is not None and existing.transport is not None:
        raise OSError(errno.EISCONN, "Transport endpoint is already connected")
    if _nonblocking(sock):
        host = world._current_host()
        ip = world._resolve(str(address[0]), host)
        _start_connect(world, sock, ip, _net._port_number(address[1]))
        raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")
    host = world._current_host()
    ip = world._resolve(str(address[0]), host)
    _blocking_connect(world, sock, ip, _net._port_number(address[1]), api)
    return None


def connect_ex(world: World, sock: Any, address: Any) -> Any:
    try:
        result = connect(world, sock, address, "socket.socket.connect_ex")
    except EscapedSimulationError:
        raise
    except OSError as error:
        if error.errno is None:
            raise
        return error.errno
    return 0 if result is None else result


_LOOPBACK_NAMES = ("localhost", "::1", "ip6-localhost")


def _real_listeners() -> set[int]:
    """Ports a real TCP socket of this machine listens on (Linux's /proc/net/tcp*;
    empty elsewhere)."""
    ports: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as lines:
                next(lines, None)
                for line in lines:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def _real_sockname(sock: Any) -> Any:
    """``sock``'s real address (the boundary leaves the call to the real method)."""
    _sim_unix.real_calls = True
    try:
        return _socket.socket.getsockname(sock)
    except OSError:
        return None
    finally:
        _sim_unix.real_calls = False


def adopt_real_listener(world: World, sock: Any) -> SocketState | None:
    """A TCP socket listening for real, bound before the universe (a sync
    fixture's server): the universe takes it over as a simulated listener on the
    same address and port, so connects in the universe reach it and its
    ``accept()`` takes their connections. None if ``sock`` is not one."""
    if not _is_stream(sock) or _socket.socket.fileno(sock) < 0:
        return None
    if _socket.socket.fileno(sock) in _table(world):
        return state_of(world, sock)
    try:
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return None
    except OSError:
        return None
    address = _real_sockname(sock)
    if not address:
        return None
    ip, port = str(address[0]), int(address[1])
    host = world._current_host()
    if ip not in _ANY:
        try:
            ip = world._resolve(ip, host)
        except OSError:
            return None
    state = new_state(world, sock)
    listener = _Listener(world, host, state)
    try:
        listener_id, bound = listener._listen(host, ip, port, _net._DEFAULT_BACKLOG)
    except OSError:
        del _table(world)[_socket.socket.fileno(sock)]
        return None
    listener._add_listener(listener_id, bound)
    state.listener, state.bound, state.listening = listener, bound, True
    listener._serving = True
    return state


def adopt_listener_on(world: World, port: int) -> bool:
    """A connect in the universe was refused on loopback ``port`` where a real
    server of this machine listens: adopt that server's socket if it is a live
    socket object of this process (searched once, ``gc.get_objects``, in creation
    order). Whether one was adopted (the connect may be tried again)."""
    import gc

    if port not in _real_listeners():
        return False
    for candidate in gc.get_objects():
        if (
            isinstance(candidate, _socket.socket)
            and candidate.family in (socket.AF_INET, socket.AF_INET6)
            and _is_stream(candidate)
            and _socket.socket.fileno(candidate) >= 0
            and _socket.socket.fileno(candidate) not in _table(world)
        ):
            address = _real_sockname(candidate)
            if (
                address
                and int(address[1]) == port
                and not _served_by_a_thread(candidate)
                and adopt_real_listener(world, candidate)
            ):
                return True
    return False


def _served_by_a_thread(sock: Any) -> bool:
    """Whether another thread's stack holds ``sock`` (a real server thread
    accepting on it, directly or through its server object): such a listener is
    left to that thread, and the connect is the named escape."""
    me = threading.get_ident()
    for thread, top in sys._current_frames().items():
        if thread == me:
            continue
        frame: types.FrameType | None = top
        while frame is not None:
            for value in frame.f_locals.values():
                if value is sock or sock in getattr(value, "__dict__", {}).values():
                    return True
            frame = frame.f_back
    return False


def check_real_server(host: str, port: int, api: str = "socket.socket.connect") -> None:
    """Raise a named :class:`EscapedSimulationError` when ``host:port`` is a
    loopback address where a real server of this machine listens (one started
    outside the universe, by a sync fixture or a thread): the simulated network
    cannot reach it, and waiting for it would hang."""
    if not (host.startswith("127.") or host in _LOOPBACK_NAMES):
        return
    if port in _real_listeners():
        raise _escaped(
            api,
            f"connecting to ('{host}', {port}), where a real server outside the "
            f"universe is listening (port {port} of this machine, opened before the "
            "universe or by a thread it did not start); the simulated network cannot "
            "reach it: start the server inside the universe (an async fixture or the "
            "test itself)",
        )


def send(world: World, sock: Any, data: Any, *args: Any) -> Any:
    state = state_of(world, sock)
    if state is None:
        return NotImplemented
    transport = state.transport
    if transport is None:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
    if state.error is not None:
        raise state.error
    if transport.is_closing():
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")
    payload = bytes(data)
    transport.write(payload)
    return len(payload)


def sendall(world: World, sock: Any, data: Any, *args: Any) -> Any:
    result = send(world, sock, data)
    return result if result is NotImplemented else None


def _take(world: World, sock: Any, nbytes: int, api: str) -> Any:
    state = state_of(world, sock)
    if state is None:
        return NotImplemented
    if state.transport is None and not state.inbound:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
    if not state.inbound:
        if state.error is not None:
            raise state.error
        if state.eof:
            return b""
        if _nonblocking(sock):
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        _wait_for_network(
            world,
            sock,
            state.transport,
            lambda: bool(state.inbound) or state.eof or state.error is not None,
            api,
            "bytes to arrive",
        )
        return _take(world, sock, nbytes, api)
    size = len(state.inbound) if nbytes <= 0 else min(nbytes, len(state.inbound))
    data = bytes(state.inbound[:size])
    del state.inbound[:size]
    if state.reading_paused and len(state.inbound) < RECEIVE_BUFFER and state.transport:
        state.reading_paused = False
        state.transport.resume_reading()
    return data


def recv(world: World, sock: Any, bufsize: int, *args: Any) -> Any:
    return _take(world, sock, bufsize, "socket.socket.recv")


def recv_into(world: World, sock: Any, buffer: Any, nbytes: int = 0, *args: Any) -> Any:
    view = memoryview(buffer).cast("B")
    wanted = len(view) if nbytes <= 0 else min(nbytes, len(view))
    data = _take(world, sock, wanted, "socket.socket.recv_into")
    if data is NotImplemented:
        return data
    view[: len(data)] = data
    return len(data)


def getsockname(world: World, sock: Any) -> Any:
    state = state_of(world, sock)
    address = state.sockname() if state is not None else None
    return NotImplemented if address is None else address


def getpeername(world: World, sock: Any) -> Any:
    state = state_of(world, sock)
    if state is None:
        return NotImplemented
    peer = state.transport.get_extra_info("peername") if state.transport else state.peer
    if peer is not None and state.transport is None and state.family == socket.AF_INET6:
        peer = (*peer, 0, 0)
    if peer is None:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
    return peer


def shutdown(world: World, sock: Any, how: int) -> Any:
    state = state_of(world, sock)
    if state is None:
        return NotImplemented
    if state.transport is None:
        raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")
    if how in (socket.SHUT_WR, socket.SHUT_RDWR) and state.transport.can_write_eof():
        state.transport.write_eof()
    return None


def close(world: World, sock: Any) -> Any:
    """The real descriptor closes as usual; the simulated side goes first."""
    state = state_of(world, sock)
    if state is not None:
        del _table(world)[_socket.socket.fileno(sock)]
        state.release(linger_zero=_linger_zero(sock))
    return NotImplemented


def _linger_zero(sock: Any) -> bool:
    """``SO_LINGER`` on with a timeout of 0 (the option is stored by the real socket)."""
    try:
        onoff, seconds = struct.unpack(
            "ii", _socket.socket.getsockopt(sock, socket.SOL_SOCKET, socket.SO_LINGER, 8)
        )
    except (OSError, struct.error):
        return False
    return bool(onoff) and seconds == 0


#: ``_socket.socket`` method name -> its simulation (the receiver first).
METHODS: dict[str, Callable[..., Any]] = {
    "bind": bind,
    "listen": listen,
    "_accept": accept,
    "connect": connect,
    "connect_ex": connect_ex,
    "send": send,
    "sendall": sendall,
    "recv": recv,
    "recv_into": recv_into,
    "getsockname": getsockname,
    "getpeername": getpeername,
    "shutdown": shutdown,
    "close": close,
}


def call(name: str, world: World, sock: Any, *args: Any, **kwargs: Any) -> Any:
    """``_socket.socket.<name>(sock, ...)`` on the simulated network: a Unix socket's
    in :mod:`simloom._sim_unix`, an IP one's here; NotImplemented leaves the call to
    the boundary (the real method, or the escape)."""
    if _sim_unix.real_calls:
        return NotImplemented
    methods = METHODS
    if _sim_unix.is_unix(sock):
        methods = _sim_unix.METHODS
        if name != "close" and name in methods and _socket.socket.fileno(sock) < 0:
            raise OSError(errno.EBADF, "Bad file descriptor")  # closed, as the real one
        if name in methods and _sim_unix.state_of(world, sock) is None:
            return NotImplemented  # connected for real outside the universe
    method = methods.get(name)
    if method is None:
        return NotImplemented
    if methods is METHODS and _sim_unix.in_lockstep_thread():
        return _from_a_lockstep_thread(world, sock, method, args, kwargs)
    return method(world, sock, *args, **kwargs)


def _from_a_lockstep_thread(
    world: World, sock: Any, method: Callable[..., Any], args: Any, kwargs: Any
) -> Any:
    """An IP socket's call from a lockstep thread: it runs on the loop's thread
    (the network is the loop's), never waiting there; a blocking socket's thread
    parks until the socket is ready (or its timeout passes) and tries again."""
    global _on_behalf_of_a_thread
    blocking = _socket.socket.gettimeout(sock) != 0
    timeout = _socket.socket.gettimeout(sock)

    def attempt() -> Any:
        global _on_behalf_of_a_thread
        _on_behalf_of_a_thread = True
        try:
            return method(world, sock, *args, **kwargs)
        finally:
            _on_behalf_of_a_thread = False

    assert _sim_unix.on_loop_hook is not None and _sim_unix.wait_hook is not None
    while True:
        try:
            return _sim_unix.on_loop_hook(attempt)
        except BlockingIOError:
            if not blocking:
                raise
        state = state_of(world, sock)
        if state is None:
            raise OSError(errno.EBADF, "Bad file descriptor")
        ready = functools.partial(_ready, state)
        if not _sim_unix.wait_hook(ready, timeout, f"{method.__name__} on {sock!r}"):
            raise TimeoutError("timed out")


def _ready(state: SocketState) -> bool:
    """Whether a blocking call on ``state``'s socket may now go on."""
    if state.connecting is not None:
        return state.connect_outcome is not None
    return (
        bool(state.inbound or state.accepted)
        or state.eof
        or state.error is not None
        or (state.transport is None and not state.listening)
    )


def socketpair(world: World, family: Any = None, kind: Any = None, proto: Any = 0) -> Any:
    """``_socket.socketpair()`` with a world: two connected simulated Unix sockets
    (the default family); NotImplemented for another family."""
    family = socket.AF_UNIX if family is None else family
    kind = socket.SOCK_STREAM if kind is None else kind
    if family != socket.AF_UNIX:
        return NotImplemented
    first, second = _sim_unix.socketpair(world, family, kind, proto)
    return (
        _socket.socket(socket.AF_UNIX, kind, 0, first),
        _socket.socket(socket.AF_UNIX, kind, 0, second),
    )


def watch(world: World, fd: Any, readable: bool, handle: asyncio.Handle | None) -> bool | None:
    """``loop.add_reader``/``add_writer`` (a handle) and ``remove_*`` (None) on an IP
    socket of this universe, or on a Unix one (:func:`simloom._sim_unix.watch`);
    None when ``fd`` is neither."""
    found = _sim_unix.watch(world, fd, readable, handle)
    if found is not None:
        return found
    number = fd if isinstance(fd, int) else _sim_unix._fileno(fd)
    state = None if number is None else _table(world).get(number)
    # A fresh socket (never bound or connected, for real or here): a simulated one
    # with nothing to read yet.
    if (
        state is None
        and isinstance(fd, socket.socket)
        and _is_stream(fd)
        and _socket.socket.fileno(fd) >= 0
        and (_real_sockname(fd) or ("", 1))[1] == 0
    ):
        state = new_state(world, fd)
    if state is None:
        return None
    return state.watch(readable, handle)


def known(world: World, sock: Any) -> bool:
    """Whether ``sock`` is a socket of the simulated network (for the loop's
    ``sock_*`` methods)."""
    if _sim_unix.is_unix(sock):
        return _sim_unix.state_of(world, sock) is not None
    return state_of(world, sock) is not None or adopt_real_listener(world, sock) is not None


# -------------------------------------------------------- the loop's methods


def _forget(world: World, sock: Any, api: str) -> SocketState:
    """Take ``sock``'s state out of the table (a transport or server owns it now)
    and close the real descriptor, as the stock loop's transport would."""
    state = state_of(world, sock)
    if state is None:
        raise _escaped(
            api,
            f"{sock!r} was not bound, connected or accepted on the simulated network "
            "in this universe, so it is a real socket",
        )
    del _table(world)[_socket.socket.fileno(sock)]
    _socket.socket.close(sock)
    return state


async def sock_accept(world: World, sock: Any) -> tuple[Any, Any]:
    if _sim_unix.is_unix(sock):
        return await _sim_unix.sock_accept(world, sock)
    state = state_of(world, sock)
    if state is None or not state.listening:
        raise OSError(errno.EINVAL, "Invalid argument")
    while not state.accepted:
        await state.changed()
    return sock.accept()  # type: ignore[no-any-return]


async def sock_recv(world: World, sock: Any, nbytes: int) -> bytes:
    if _sim_unix.is_unix(sock):
        return await _sim_unix.sock_recv(world, sock, nbytes)
    while True:
        state = state_of(world, sock)
        if state is None:
            raise OSError(errno.EBADF, "Bad file descriptor")
        if state.inbound or state.eof or state.error is not None or state.transport is None:
            return _take(world, sock, nbytes, "loop.sock_recv")  # type: ignore[no-any-return]
        await state.changed()


async def sock_recv_into(world: World, sock: Any, buffer: Any) -> int:
    view = memoryview(buffer).cast("B")
    data = await sock_recv(world, sock, len(view))
    view[: len(data)] = data
    return len(data)


async def sock_sendall(world: World, sock: Any, data: Any) -> None:
    if _sim_unix.is_unix(sock):
        await _sim_unix.sock_sendall(world, sock, data)
        return
    if state_of(world, sock) is None:
        raise OSError(errno.EBADF, "Bad file descriptor")
    send(world, sock, data)


def adopt_connected(world: World, sock: Any, api: str) -> _net.StreamTransport | None:
    """The connection of ``sock``, taken over by a transport whose protocol the
    caller attaches next; the bytes that already arrived follow on the next turn
    of the loop, as the stock transport reads them from the socket then."""
    state = state_of(world, sock)
    if state is None or state.transport is None:
        return None
    _forget(world, sock, api)
    transport = state.transport
    state.transport = None
    pending, eof = bytes(state.inbound), state.eof and state.error is None
    if pending or eof:
        world.loop.call_soon(_replay, transport, pending, eof, context=transport._context)
    return transport


def _replay(transport: _net.StreamTransport, pending: bytes, eof: bool) -> None:
    protocol = transport._protocol
    if protocol is None or transport._lost or transport._closing:
        return
    if pending:
        _net._feed(protocol, pending)
    if eof and not protocol.eof_received():  # type: ignore[attr-defined]
        transport.close()


def adopt_datagram(world: World, sock: Any, api: str) -> tuple[int, Address, Address | None]:
    """A bound UDP socket, taken over by a datagram transport: ``(its id in the
    network core, its address, its peer)``."""
    state = _forget(world, sock, api)
    if state.datagram is None or state.bound is None:
        raise _escaped(api, f"{sock!r} is not a UDP socket bound in this universe")
    socket_id, state.datagram = state.datagram, None
    return socket_id, state.bound, state.peer


def adopt_listening(world: World, sock: Any, api: str) -> tuple[str, int, int]:
    """``sock``'s bound address, its listener closed for a server to listen there
    instead: ``(ip, port, family)``."""
    state = _forget(world, sock, api)
    assert state.bound is not None
    ip, port = state.bound
    state.release()
    return ip, port, state.family


_net._registered_socket_layer = sys.modules[__name__]
