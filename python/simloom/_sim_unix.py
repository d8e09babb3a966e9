"""Unix-domain ``socket.socket`` objects (``AF_UNIX``: stream, seqpacket and
datagram) used inside a universe with a world: a small in-memory model of the
kernel's Unix sockets on each host.

A Unix socket has no network between its ends: the kernel copies what one end
sends straight into the other's receive queue, a connect to a listening socket is
queued in its backlog at once, and a datagram lands in the receiver's queue at
once. So this model has no latency and no faults: a send is in the peer's buffer
when it returns, as on a real machine. What the schedule decides is when the
readers run (the loop's ``add_reader``/``add_writer`` callbacks are steps scheduled
with ``call_soon``; blocked lockstep threads resume at their wake steps).

Names. A filesystem name is a real socket inode: ``bind`` makes it with
``os.mknod(path, S_IFSOCK)`` (so ``os.stat``, ``os.unlink``, ``os.path.exists`` and a
temporary directory's cleanup see what they see after a real bind, and binding an
existing path is ``EADDRINUSE``), and the listener is found by the inode a connect
resolves the path to, as the kernel does (a socket whose file was unlinked is
unreachable; a path bound again is the new socket). Abstract names (a leading NUL)
live in the host's namespace, in this world, until the socket closes. Each
descriptor is a real, never-bound ``AF_UNIX`` socket: it only carries an identity.

Owns: the state of the universe's Unix sockets (``UnixSocket``), their names, and
the readiness the loop's reader/writer watchers see.
Must not: bind, connect, read or write a real descriptor; wait on the loop's thread
for something that cannot happen (a blocking call that would wait forever raises a
named error; one with a timeout moves virtual time and times out).
"""

from __future__ import annotations

import _socket
import array
import asyncio
import collections
import contextlib
import errno
import os
import socket
import stat
import weakref
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from .errors import ESCAPE_HINT, EscapedSimulationError

if TYPE_CHECKING:
    from .world import World

#: Bytes a stream socket's receive queue holds before the peer's sends wait.
RECEIVE_BUFFER = 256 * 1024
#: Messages a datagram or seqpacket socket's queue holds before senders wait
#: (Linux's ``net.unix.max_dgram_qlen`` default).
MESSAGE_QUEUE = 512
#: The longest ``sun_path`` (Linux's ``struct sockaddr_un``).
MAX_PATH = 108

#: Waits for a blocking call: ``wait(done, timeout, where) -> done()``, on the loop
#: thread by giving lockstep threads their turns, in a lockstep thread by parking it
#: (registered by :mod:`simloom._lockstep`, which the loop imports).
wait_hook: Callable[[Callable[[], bool], float | None, str], bool] | None = None
#: Runs a function on the loop's thread from a lockstep thread, within its turn.
on_loop_hook: Callable[[Callable[[], Any]], Any] | None = None
#: Whether the calling thread is a lockstep thread (registered with ``wait_hook``).
in_lockstep_thread: Callable[[], bool] = bool  # bool() is False: no lockstep yet
#: Tells a loop's lockstep threads that something they may wait on changed (set by
#: :mod:`simloom._lockstep`): parked threads look again after the step.
nudge_hook: Callable[[Any], None] | None = None


def _error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _escaped(api: str, what: str) -> EscapedSimulationError:
    return EscapedSimulationError(f"{api}(): {what} ({ESCAPE_HINT}).")


class Watched:
    """The loop's reader and writer watchers of a simulated socket (``add_reader``,
    ``add_writer``): level-triggered steps while the socket is ready. A subclass
    says when it is ready (``readable``, ``writable``) and calls ``_arm`` when that
    may have changed."""

    world: World
    closed: bool

    def __init__(self) -> None:
        self.readers: asyncio.Handle | None = None
        self.writers: asyncio.Handle | None = None
        self._armed = [False, False]

    def readable(self) -> bool:
        raise NotImplementedError

    def writable(self) -> bool:
        raise NotImplementedError

    def watch(self, readable: bool, handle: asyncio.Handle | None) -> bool:
        """Set (or, with None, remove) the reader or writer watcher; whether one
        was set before."""
        before = self.readers if readable else self.writers
        if before is not None:
            before.cancel()
        if readable:
            self.readers = handle
        else:
            self.writers = handle
        if handle is not None:
            self._arm(readable)
        return before is not None

    def _arm(self, readable: bool) -> None:
        handle = self.readers if readable else self.writers
        if handle is None or self._armed[readable] or self.closed:
            return
        if not (self.readable() if readable else self.writable()):
            return
        self._armed[readable] = True
        self.world.loop.call_soon(self._fire, readable, context=handle.get_context())

    def _fire(self, readable: bool) -> None:
        """A watcher's callback, level-triggered as the selector loop's: it runs
        while the socket is ready and the watcher is set, one turn at a time."""
        self._armed[readable] = False
        handle = self.readers if readable else self.writers
        if handle is None or handle.cancelled() or self.closed:
            return
        if not (self.readable() if readable else self.writable()):
            return
        # This step runs in the watcher's context already (see _arm).
        try:
            handle._callback(*handle._args)  # type: ignore[attr-defined]
        finally:
            self._arm(readable)

    def _unwatch_all(self) -> None:
        for handle in (self.readers, self.writers):
            if handle is not None:
                handle.cancel()
        self.readers = self.writers = None


class UnixSocket(Watched):
    """What the model knows of one Unix socket."""

    def __init__(self, world: World, kind: int) -> None:
        super().__init__()
        self.world = world
        self.kind = kind
        self.owners: weakref.WeakSet[Any] = weakref.WeakSet()
        #: ``getsockname()``: '' unbound, a str for a path, bytes for an abstract name.
        self.name: str | bytes = ""
        self.key: Hashable | None = None
        self.listening = False
        self.backlog: collections.deque[UnixSocket] = collections.deque()
        self.backlog_limit = 0
        #: A stream's other end; a connected datagram socket's default destination.
        self.peer: UnixSocket | None = None
        self.peer_name: str | bytes | None = None
        self.connected = False
        self.inbound = bytearray()
        #: A stream's ``SCM_RIGHTS`` descriptors: (byte offset they came with, fds).
        self.inbound_fds: collections.deque[tuple[int, list[int]]] = collections.deque()
        self.consumed = 0
        self.received = 0
        #: Datagram and seqpacket messages: (data, sender's name or None, fds).
        self.messages: collections.deque[tuple[bytes, str | bytes | None, list[int]]] = (
            collections.deque()
        )
        self.eof = False
        self.shut_read = False
        self.shut_write = False
        self.closed = False
        self.error: OSError | None = None
        #: An accepted or socketpair socket whose descriptor no object holds yet.
        self.adoptable = False
        #: A socket connected for real outside the universe: left to the boundary.
        self.real = False
        self._owner_refs: list[weakref.ref[Any]] = []
        self._waiters: list[asyncio.Future[None]] = []

    def own(self, sock: Any, fd: int) -> None:
        """``sock`` holds this socket's descriptor ``fd``. When the last holder goes
        without closing it, the descriptor is either still open (``detach()``: a
        ``socket.socket(fileno=fd)`` may take it up) or closed by the collector
        (the state goes; the number may be reused)."""
        self.owners.add(sock)
        self._owner_refs.append(weakref.ref(sock, lambda _: self._owner_gone(fd)))

    def _owner_gone(self, fd: int) -> None:
        if self.closed:
            return
        left = descriptor_left(self, self.owners, _table(self.world), fd)
        if left == "open":
            self.adoptable = True
        elif left == "closed":
            if self.world.loop.is_closed():
                self.closed = True  # collected after its universe: nothing to wake
            else:
                self.release()

    # ------------------------------------------------------------ readiness

    @property
    def is_stream(self) -> bool:
        return self.kind == socket.SOCK_STREAM

    def readable(self) -> bool:
        if self.closed or (self.listening and self.backlog):
            return True
        if self.is_stream:
            return bool(self.inbound) or self.eof or self.shut_read or self.error is not None
        return bool(self.messages) or self.eof or self.shut_read

    def writable(self) -> bool:
        if self.closed or self.kind == socket.SOCK_DGRAM or self.listening:
            return True
        peer = self.peer
        if peer is None or peer.closed or self.shut_write:
            return True  # a send fails at once
        if self.is_stream:
            return len(peer.inbound) < RECEIVE_BUFFER
        return len(peer.messages) < MESSAGE_QUEUE

    def changed(self) -> None:
        """Something this socket's readers or writers wait on may have changed.
        The loop's side of it (futures, watcher steps) happens on the loop's
        thread: a lockstep thread asks the loop to do it within its turn."""
        if not _in_loop_thread() and on_loop_hook is not None:
            on_loop_hook(self._changed)
        else:
            self._changed()

    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._arm(True)
        self._arm(False)
        lockstep = getattr(self.world.loop, "_lockstep", None)
        if lockstep is not None and lockstep._workers and _in_loop_thread():
            lockstep.poll()

    async def wait_changed(self) -> None:
        waiter: asyncio.Future[None] = self.world.loop.create_future()
        self._waiters.append(waiter)
        await waiter

    # ------------------------------------------------------------ closing

    def release(self) -> None:
        if self.closed:
            return
        self.closed = True
        names = _names(self.world)
        if self.key is not None and names.get(self.key) is self:
            del names[self.key]
        for pending in self.backlog:
            pending.release()
        self.backlog.clear()
        peer = self.peer
        if peer is not None and self.kind != socket.SOCK_DGRAM:
            if (self.inbound or self.messages) and peer.error is None:
                peer.error = ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))
            peer.eof = True
            peer.changed()
        for _, fds in self.inbound_fds:
            _close_fds(fds)
        for _, _, fds in self.messages:
            _close_fds(fds)
        self.inbound_fds.clear()
        self.messages.clear()
        self._unwatch_all()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


#: Set while this module asks the real socket about itself (the boundary's socket
#: handlers then leave the call to the real method).
real_calls = False


def _real_address(method: Callable[[Any], Any], sock: Any) -> Any:
    global real_calls
    real_calls = True
    try:
        return method(sock)
    except OSError:
        return None
    finally:
        real_calls = False


def _adopt_real(world: World, sock: Any, state: UnixSocket) -> None:
    """A Unix socket bound (and listening) for real before the universe, by a sync
    fixture: the model takes over its name, so the universe's connects reach it
    (a filesystem name by the inode the real bind made). A socket connected for
    real stays unknown to the model (its peer is outside the universe)."""
    if _real_address(_socket.socket.getpeername, sock) is not None:
        state.real = True
        return
    name = _real_address(_socket.socket.getsockname, sock)
    if not name:
        return
    raw = name if isinstance(name, bytes) else os.fsencode(name)
    try:
        key = _abstract_key(world, raw) if raw.startswith(b"\0") else _path_key(raw)
    except OSError:
        return  # its file is gone: nothing can connect to it
    if key in _names(world):
        return
    state.key, state.name = key, _shown(raw)
    _names(world)[key] = state
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        state.listening, state.backlog_limit = True, 128


def _in_loop_thread() -> bool:
    return not in_lockstep_thread()


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def descriptor_left(state: Any, owners: Any, table: dict[int, Any], fd: int) -> str | None:
    """A holder of ``state``'s descriptor ``fd`` was collected: ``None`` while
    another holder lives (or the number now names another socket); ``"open"`` if
    the descriptor is still open (``detach()``: ``socket.socket(fileno=fd)`` may
    take it up); ``"closed"`` if the collector closed it, after taking it out of
    ``table`` (the caller releases the state). Shared by IP and Unix sockets."""
    # Iterating sees only live holders (the set may still count the dead one).
    if any(True for _ in owners) or table.get(fd) is not state:
        return None
    try:
        still_open = stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        still_open = False
    if still_open:
        return "open"
    del table[fd]
    return "closed"


def _table(world: World) -> dict[int, UnixSocket]:
    table: dict[int, UnixSocket] | None = world.__dict__.get("_sim_unix_sockets")
    if table is None:
        table = world.__dict__["_sim_unix_sockets"] = {}
    return table


def _names(world: World) -> dict[Hashable, UnixSocket]:
    names: dict[Hashable, UnixSocket] | None = world.__dict__.get("_sim_unix_names")
    if names is None:
        names = world.__dict__["_sim_unix_names"] = {}
    return names


def is_unix(sock: Any) -> bool:
    try:
        return bool(sock.family == socket.AF_UNIX)
    except Exception:
        return False


def _kind(sock: Any) -> int:
    return int(sock.type) & ~(socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)


def state_of(world: World, sock: Any) -> UnixSocket | None:
    """The state of ``sock`` (made now for a Unix socket made in this universe)."""
    try:
        fd = _socket.socket.fileno(sock)
    except (OSError, TypeError):
        return None
    if fd < 0:
        return None
    table = _table(world)
    state = table.get(fd)
    if state is not None and sock not in state.owners:
        if state.owners or state.adoptable:
            # socket.socket(fileno=...) of the same descriptor, or an accepted one
            state.own(sock, fd)
            state.adoptable = False
        else:
            state = None  # a reused descriptor of a socket collected unclosed
    if state is None:
        state = UnixSocket(world, _kind(sock))
        state.own(sock, fd)
        table[fd] = state
        _adopt_real(world, sock, state)
    if state.real:
        return None
    return state


def state_of_fd(world: World, fd: int) -> UnixSocket | None:
    return _table(world).get(fd)


def _register(world: World, state: UnixSocket, family_kind: int) -> int:
    """A fresh real descriptor for ``state`` (an accepted socket, a socketpair end)."""
    fresh = _socket.socket(socket.AF_UNIX, family_kind)
    fd = fresh.detach()
    state.adoptable = True
    _table(world)[fd] = state
    return fd


# ----------------------------------------------------------------- names


def _address(address: Any) -> bytes:
    if isinstance(address, str):
        raw = os.fsencode(address)
    elif isinstance(address, (bytes, bytearray, memoryview)):
        raw = bytes(address)
    elif isinstance(address, os.PathLike):
        raw = os.fsencode(address)
    else:
        raise TypeError(f"a bytes-like object is required, not '{type(address).__name__}'")
    if len(raw) > MAX_PATH:
        raise OSError("AF_UNIX path too long")
    return raw


def _shown(raw: bytes) -> str | bytes:
    """The name as ``getsockname`` shows it: bytes for an abstract name."""
    return raw if raw.startswith(b"\0") else os.fsdecode(raw)


def _abstract_key(world: World, raw: bytes) -> Hashable:
    return ("abstract", world._current_host()._net_id, raw)


def _path_key(raw: bytes) -> Hashable:
    info = os.stat(raw)  # FileNotFoundError etc., as a real connect raises
    if not stat.S_ISSOCK(info.st_mode):
        raise _error(errno.ECONNREFUSED)
    return ("path", info.st_dev, info.st_ino)


def _autobind_name(world: World) -> bytes:
    count: int = world.__dict__.get("_sim_unix_autobind", 0)
    while True:
        count += 1
        raw = b"\0" + f"{count:05x}".encode()
        if _abstract_key(world, raw) not in _names(world):
            world.__dict__["_sim_unix_autobind"] = count
            return raw


def _lookup(world: World, raw: bytes) -> UnixSocket | None:
    key = _abstract_key(world, raw) if raw.startswith(b"\0") else _path_key(raw)
    found = _names(world).get(key)
    if found is None and key not in _unadoptable(world):
        found = _adopt_named(world, key)
    return found


def _unadoptable(world: World) -> set[Hashable]:
    missed: set[Hashable] | None = world.__dict__.get("_sim_unix_missed")
    if missed is None:
        missed = world.__dict__["_sim_unix_missed"] = set()
    return missed


def _adopt_named(world: World, key: Hashable) -> UnixSocket | None:
    """A name no socket of the universe holds: a socket bound for real before the
    universe (a sync fixture's server) may hold it. The live socket objects are
    searched once per name (``gc.get_objects``, in creation order) and the one
    bound there is adopted (:func:`_adopt_real`)."""
    import gc

    for candidate in gc.get_objects():
        if (
            isinstance(candidate, _socket.socket)
            and candidate.family == socket.AF_UNIX
            and candidate.fileno() >= 0
            and _socket.socket.fileno(candidate) not in _table(world)
        ):
            state_of(world, candidate)
            if key in _names(world):
                return _names(world)[key]
    _unadoptable(world).add(key)
    return None


# ----------------------------------------------------------------- waiting


def _block(sock: Any, state: UnixSocket, done: Callable[[], bool], api: str, what: str) -> None:
    """Wait, as a blocking socket does, until ``done()``: a non-blocking socket
    raises BlockingIOError; a blocking one waits for the lockstep threads (the only
    other code that can run while this thread blocks), and with a timeout moves
    virtual time on and raises TimeoutError; otherwise it is a named escape."""
    if done():
        return
    timeout = _socket.socket.gettimeout(sock)
    if timeout == 0:
        raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
    if wait_hook is not None and wait_hook(done, timeout, f"{api} for {what}"):
        return
    if done():
        return
    if timeout is not None:
        loop = state.world.loop
        if _in_loop_thread():
            loop._advance_clock(timeout)
        raise TimeoutError("timed out")
    raise _escaped(
        api,
        f"this blocking Unix socket would wait for {what}, and nothing in the universe "
        "can bring it while this thread waits (a real program would hang here); use a "
        "non-blocking socket with the loop, a timeout, or a thread for the other end",
    )


# ------------------------------------------------------------ socket methods


def bind(world: World, sock: Any, address: Any) -> Any:
    state = state_of(world, sock)
    assert state is not None
    if state.key is not None or state.connected:
        raise _error(errno.EINVAL)
    raw = _address(address)
    if not raw:
        raw = _autobind_name(world)
    if raw.startswith(b"\0"):
        key = _abstract_key(world, raw)
        if key in _names(world):
            raise _error(errno.EADDRINUSE)
    else:
        try:
            os.mknod(raw, stat.S_IFSOCK | 0o777)
        except FileExistsError:
            raise _error(errno.EADDRINUSE) from None
        key = _path_key(raw)
    state.key = key
    state.name = _shown(raw)
    _names(world)[key] = state
    return None


def listen(world: World, sock: Any, backlog: int = 128, *args: Any) -> Any:
    state = state_of(world, sock)
    assert state is not None
    if state.kind == socket.SOCK_DGRAM:
        raise _error(errno.EOPNOTSUPP)
    if state.key is None or state.connected:
        raise _error(errno.EINVAL)
    state.listening = True
    state.backlog_limit = max(1, min(int(backlog), 4096)) if backlog >= 0 else 4096
    state.changed()
    return None


def accept(world: World, sock: Any) -> Any:
    state = state_of(world, sock)
    assert state is not None
    if not state.listening:
        raise _error(errno.EINVAL)
    _block(
        sock,
        state,
        lambda: bool(state.backlog) or state.closed,
        "socket.socket.accept",
        "a connection",
    )
    if state.closed:
        raise _error(errno.EBADF)
    accepted = state.backlog.popleft()
    fd = _register(world, accepted, state.kind)
    assert accepted.peer is not None
    state.changed()  # the connecting side may have been waiting for room
    accepted.peer.changed()
    return fd, accepted.peer.name


def connect(world: World, sock: Any, address: Any) -> Any:
    state = state_of(world, sock)
    assert state is not None
    raw = _address(address)
    if state.kind == socket.SOCK_DGRAM:
        target = _lookup(world, raw)
        if target is None:
            raise _error(errno.ECONNREFUSED)
        if target.kind != state.kind:
            raise _error(errno.EPROTOTYPE)
        state.peer, state.peer_name, state.connected = target, target.name, True
        return None
    if state.connected:
        raise _error(errno.EISCONN)
    if state.listening:
        raise _error(errno.EINVAL)

    def room() -> bool:
        target = _lookup(world, raw)
        return target is None or not target.listening or len(target.backlog) < target.backlog_limit

    _block(sock, state, room, "socket.socket.connect", "room in the listener's backlog")
    target = _lookup(world, raw)
    if target is None or not target.listening:
        if target is not None and target.kind != state.kind:
            raise _error(errno.EPROTOTYPE)
        raise _error(errno.ECONNREFUSED)
    if target.kind != state.kind:
        raise _error(errno.EPROTOTYPE)
    server_side = UnixSocket(world, state.kind)
    server_side.name = target.name
    server_side.key = None
    server_side.peer, server_side.connected = state, True
    server_side.peer_name = state.name
    state.peer, state.connected = server_side, True
    state.peer_name = target.name
    target.backlog.append(server_side)
    target.changed()
    state.changed()
    return None


def connect_ex(world: World, sock: Any, address: Any) -> Any:
    try:
        connect(world, sock, address)
    except BlockingIOError as error:
        return error.errno
    except OSError as error:
        if error.errno is None:
            raise
        return error.errno
    return 0


def _deliver(
    world: World,
    sock: Any,
    state: UnixSocket,
    data: bytes,
    fds: list[int],
    api: str,
    target: UnixSocket | None,
) -> int:
    if state.shut_write:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
    if state.kind == socket.SOCK_DGRAM:
        if target is None or target.closed:
            raise _error(errno.ECONNREFUSED)
        receiver = target
        _block(
            sock,
            state,
            lambda: len(receiver.messages) < MESSAGE_QUEUE or receiver.closed,
            api,
            "room in the receiver's queue",
        )
        if receiver.closed:
            raise _error(errno.ECONNREFUSED)
        receiver.messages.append((data, state.name or None, _dup(fds)))
        receiver.changed()
        return len(data)
    peer = state.peer
    if peer is None:
        raise _error(errno.ENOTCONN)

    def room() -> bool:
        assert peer is not None
        if peer.closed or peer.shut_read:
            return True
        if state.is_stream:
            return len(peer.inbound) < RECEIVE_BUFFER
        return len(peer.messages) < MESSAGE_QUEUE

    if peer.closed:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
    _block(sock, state, room, api, "room in the peer's receive buffer")
    if peer.closed:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))
    if not state.is_stream:
        peer.messages.append((data, state.name or None, _dup(fds)))
        peer.changed()
        return len(data)
    size = min(len(data), RECEIVE_BUFFER - len(peer.inbound))
    if fds:
        peer.inbound_fds.append((peer.received, _dup(fds)))
    peer.inbound += data[:size]
    peer.received += size
    peer.changed()
    return size


def _dup(fds: list[int]) -> list[int]:
    """The kernel holds a reference to each descriptor in flight: a duplicate."""
    return [os.dup(fd) for fd in fds]


def send(world: World, sock: Any, data: Any, flags: int = 0) -> Any:
    state = state_of(world, sock)
    assert state is not None
    payload = bytes(data)
    if state.kind == socket.SOCK_DGRAM:
        if state.peer is None:
            raise _error(errno.ENOTCONN)
        return _deliver(world, sock, state, payload, [], "socket.socket.send", state.peer)
    return _deliver(world, sock, state, payload, [], "socket.socket.send", None)


def sendall(world: World, sock: Any, data: Any, flags: int = 0) -> Any:
    view = memoryview(bytes(data))
    while True:
        sent = send(world, sock, view, flags)
        view = view[sent:]
        if not view:
            return None


def sendto(world: World, sock: Any, data: Any, *args: Any) -> Any:
    address = args[-1]
    state = state_of(world, sock)
    assert state is not None
    payload = bytes(data)
    if state.kind != socket.SOCK_DGRAM:
        if state.connected:
            raise _error(errno.EISCONN)
        raise _error(errno.ENOTCONN)
    target = _lookup(world, _address(address))
    if target is not None and target.kind != state.kind:
        raise _error(errno.EPROTOTYPE)
    return _deliver(world, sock, state, payload, [], "socket.socket.sendto", target)


def sendmsg(
    world: World, sock: Any, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None
) -> Any:
    state = state_of(world, sock)
    assert state is not None
    payload = b"".join(bytes(buffer) for buffer in buffers)
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            numbers = array.array("i")
            raw = bytes(data)
            numbers.frombytes(raw[: len(raw) - len(raw) % numbers.itemsize])
            for fd in numbers:
                os.fstat(fd)  # EBADF for a descriptor that is not open, as the kernel
            fds.extend(numbers)
        else:
            raise _error(errno.EINVAL)
    if state.kind == socket.SOCK_DGRAM:
        target = state.peer if address is None else _lookup(world, _address(address))
        if target is None and address is None:
            raise _error(errno.ENOTCONN)
        return _deliver(world, sock, state, payload, fds, "socket.socket.sendmsg", target)
    return _deliver(world, sock, state, payload, fds, "socket.socket.sendmsg", None)


def _receive(
    world: World, sock: Any, bufsize: int, flags: int, api: str
) -> tuple[bytes, str | bytes | None, list[int]]:
    state = state_of(world, sock)
    assert state is not None
    if bufsize < 0:
        raise ValueError("negative buffersize in recv")
    if state.listening or (state.is_stream and not state.connected):
        raise _error(errno.EINVAL if state.listening or state.is_stream else errno.ENOTCONN)
    peek = bool(flags & socket.MSG_PEEK)
    if flags & socket.MSG_DONTWAIT and not state.readable():
        raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
    _block(sock, state, state.readable, api, "data to arrive")
    if state.is_stream:
        if not state.inbound:
            if state.error is not None:
                error, state.error = state.error, None
                raise error
            return b"", None, []
        size = min(bufsize, len(state.inbound))
        data = bytes(state.inbound[:size])
        fds: list[int] = []
        if not peek:
            del state.inbound[:size]
            end = state.consumed + size
            while state.inbound_fds and state.inbound_fds[0][0] < end:
                fds.extend(state.inbound_fds.popleft()[1])
            state.consumed = end
            if state.peer is not None:
                state.peer.changed()  # room in this buffer: the peer may send
        return data, None, fds
    if not state.messages:
        return b"", None, []
    data, sender, fds = state.messages[0] if peek else state.messages.popleft()
    if not peek and state.peer is not None and state.kind != socket.SOCK_DGRAM:
        state.peer.changed()
    return data[:bufsize], sender, ([] if peek else fds)


def recv(world: World, sock: Any, bufsize: int, flags: int = 0) -> Any:
    data, _, fds = _receive(world, sock, bufsize, flags, "socket.socket.recv")
    _close_fds(fds)
    return data


def recv_into(world: World, sock: Any, buffer: Any, nbytes: int = 0, flags: int = 0) -> Any:
    view = memoryview(buffer).cast("B")
    wanted = len(view) if nbytes <= 0 else min(nbytes, len(view))
    data, _, fds = _receive(world, sock, wanted, flags, "socket.socket.recv_into")
    _close_fds(fds)
    view[: len(data)] = data
    return len(data)


def recvfrom(world: World, sock: Any, bufsize: int, flags: int = 0) -> Any:
    data, sender, fds = _receive(world, sock, bufsize, flags, "socket.socket.recvfrom")
    _close_fds(fds)
    return data, sender


def recvfrom_into(world: World, sock: Any, buffer: Any, nbytes: int = 0, flags: int = 0) -> Any:
    view = memoryview(buffer).cast("B")
    wanted = len(view) if nbytes <= 0 else min(nbytes, len(view))
    data, sender, fds = _receive(world, sock, wanted, flags, "socket.socket.recvfrom_into")
    _close_fds(fds)
    view[: len(data)] = data
    return len(data), sender


def recvmsg(world: World, sock: Any, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> Any:
    data, sender, fds = _receive(world, sock, bufsize, flags, "socket.socket.recvmsg")
    ancdata: list[tuple[int, int, bytes]] = []
    msg_flags = 0
    if fds:
        room = max(0, (ancbufsize - socket.CMSG_LEN(0)) // array.array("i").itemsize)
        kept, dropped = fds[:room], fds[room:]
        _close_fds(dropped)
        if dropped:
            msg_flags |= socket.MSG_CTRUNC
        if kept:
            ancdata.append((socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", kept).tobytes()))
    return data, ancdata, msg_flags, sender


def getsockname(world: World, sock: Any) -> Any:
    state = state_of(world, sock)
    assert state is not None
    return state.name


def getpeername(world: World, sock: Any) -> Any:
    state = state_of(world, sock)
    assert state is not None
    if not state.connected or state.peer_name is None:
        raise _error(errno.ENOTCONN)
    if state.peer is not None and state.kind != socket.SOCK_DGRAM:
        return state.peer.name
    return state.peer_name


def shutdown(world: World, sock: Any, how: int) -> Any:
    state = state_of(world, sock)
    assert state is not None
    if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
        raise _error(errno.EINVAL)
    if not state.connected:
        raise _error(errno.ENOTCONN)
    if how in (socket.SHUT_RD, socket.SHUT_RDWR):
        state.shut_read = True
    if how in (socket.SHUT_WR, socket.SHUT_RDWR):
        state.shut_write = True
        if state.peer is not None and state.kind != socket.SOCK_DGRAM:
            state.peer.eof = True
            state.peer.changed()
    state.changed()
    return None


def close(world: World, sock: Any) -> Any:
    try:
        fd = _socket.socket.fileno(sock)
    except (OSError, TypeError):
        return NotImplemented
    table = _table(world)
    state = table.get(fd)
    if state is not None and (sock in state.owners or state.adoptable):
        del table[fd]
        state.release()
    return NotImplemented  # the real descriptor closes as usual


def socketpair(world: World, family: int, kind: int, proto: int = 0) -> Any:
    """``socket.socketpair()``: two connected Unix sockets; ``(fd, fd)`` for
    ``socket.socket(fileno=...)``."""
    first, second = UnixSocket(world, kind), UnixSocket(world, kind)
    first.peer, second.peer = second, first
    first.connected = second.connected = True
    first.peer_name = second.peer_name = ""
    return _register(world, first, kind), _register(world, second, kind)


#: ``_socket.socket`` method name -> its simulation for an ``AF_UNIX`` socket.
METHODS: dict[str, Callable[..., Any]] = {
    "bind": bind,
    "listen": listen,
    "_accept": accept,
    "connect": connect,
    "connect_ex": connect_ex,
    "send": send,
    "sendall": sendall,
    "sendto": sendto,
    "sendmsg": sendmsg,
    "recv": recv,
    "recv_into": recv_into,
    "recvfrom": recvfrom,
    "recvfrom_into": recvfrom_into,
    "recvmsg": recvmsg,
    "getsockname": getsockname,
    "getpeername": getpeername,
    "shutdown": shutdown,
    "close": close,
}


# -------------------------------------------------------- the loop's methods


def watch(world: World, fd: Any, readable: bool, handle: asyncio.Handle | None) -> bool | None:
    """``loop.add_reader``/``add_writer`` (a handle) and ``remove_*`` (None) on a
    Unix socket of this universe; None when ``fd`` is not one."""
    number = fd if isinstance(fd, int) else _fileno(fd)
    if number is None:
        return None
    if number < 0 and is_unix(fd):
        # A closed socket: its watchers went with it (as the selector forgets a
        # closed descriptor); adding one is the selector's error.
        if handle is not None:
            raise ValueError(f"Invalid file descriptor: {number}")
        return False
    state = _table(world).get(number)
    if state is None:
        return None
    return state.watch(readable, handle)


def _fileno(fd: Any) -> int | None:
    try:
        number = fd.fileno()
    except (AttributeError, TypeError, ValueError, OSError):
        return None
    return number if isinstance(number, int) else None


async def sock_accept(world: World, sock: Any) -> tuple[Any, Any]:
    state = state_of(world, sock)
    assert state is not None
    if not state.listening:
        raise _error(errno.EINVAL)
    while not state.backlog and not state.closed:
        await state.wait_changed()
    return sock.accept()  # type: ignore[no-any-return]


async def sock_recv(world: World, sock: Any, nbytes: int) -> bytes:
    state = state_of(world, sock)
    assert state is not None
    while not state.readable():
        await state.wait_changed()
    return recv(world, sock, nbytes)  # type: ignore[no-any-return]


async def sock_sendall(world: World, sock: Any, data: Any) -> None:
    state = state_of(world, sock)
    assert state is not None
    view = memoryview(bytes(data))
    while view:
        while not state.writable():
            await state.wait_changed()
        sent = _deliver(world, sock, state, bytes(view), [], "loop.sock_sendall", state.peer)
        view = view[sent:]
