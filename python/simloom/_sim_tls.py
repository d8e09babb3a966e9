"""TLS on a simulated ``socket.socket`` (``SSLContext.wrap_socket``).

OpenSSL would read and write the socket's real descriptor, which the simulation
never connects. Instead the ``ssl.SSLSocket`` gets an OpenSSL object over memory
BIOs (``SSLContext._wrap_bio``), the same C type with the same methods, and its
records travel through the simulated socket: what OpenSSL wants to send is sent
with the socket's own ``sendall``, what it wants to read is received with the
socket's ``recv`` (so blocking, timeouts and non-blocking sockets are the
socket's: ``SSLWantReadError`` where the socket would block).

Owns: the pumping between the BIOs and the simulated socket. Must not: change how
the simulated socket behaves (``_sim_socket``) or the loop's own TLS (``net``).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from typing import Any

__all__: list[str] = []

#: How much one ``recv`` on the socket asks for to feed OpenSSL.
_CHUNK = 65536


class SimulatedTLS:
    """Stands for ``_ssl._SSLSocket`` inside an ``ssl.SSLSocket`` whose socket is
    simulated: OpenSSL over memory BIOs, pumped through the socket."""

    def __init__(
        self,
        context: Any,
        sock: socket.socket,
        server_side: bool,
        server_hostname: str | None,
        owner: Any,
        session: Any,
    ) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sock = sock
        self._tls = context._wrap_bio(
            self._incoming,
            self._outgoing,
            server_side,
            server_hostname,
            owner=owner,
            session=session,
        )

    def __getattr__(self, name: str) -> Any:
        # Everything that does no I/O (getpeercert, cipher, version, session, ...).
        return getattr(self._tls, name)

    @property
    def context(self) -> Any:
        return self._tls.context

    @context.setter
    def context(self, value: Any) -> None:
        self._tls.context = value

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            socket.socket.sendall(self._sock, data)

    def _fill(self) -> None:
        try:
            data = socket.socket.recv(self._sock, _CHUNK)
        except BlockingIOError:
            raise ssl.SSLWantReadError(
                ssl.SSL_ERROR_WANT_READ, "The operation did not complete (read)"
            ) from None
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    def _pump(self, operation: Any, *args: Any) -> Any:
        while True:
            try:
                result = operation(*args)
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            except ssl.SSLWantWriteError:
                self._flush()
            except BaseException:
                # (an alert OpenSSL queued, such as a failed handshake's, still goes)
                with contextlib.suppress(OSError):
                    self._flush()
                raise
            else:
                self._flush()
                return result

    def do_handshake(self) -> None:
        self._pump(self._tls.do_handshake)

    def read(self, length: int = 1024, buffer: Any = None) -> Any:
        if buffer is None:
            return self._pump(self._tls.read, length)
        return self._pump(self._tls.read, length, buffer)

    def write(self, data: Any) -> int:
        written: int = self._pump(self._tls.write, data)
        return written

    def pending(self) -> int:
        count: int = self._tls.pending()
        return count

    def shutdown(self) -> socket.socket:
        """The TLS close (both close_notify alerts); the plain socket is left."""
        self._pump(self._tls.shutdown)
        return self._sock
