"""Unix-domain sockets inside a universe with a world (simloom._sim_unix): bind to a
path (a real socket inode) or an abstract name, listen/accept/connect, send/recv,
datagrams, socketpair, descriptor passing, the loop's reader/writer watchers, a
blocking call waiting for a lockstep thread, and a sync fixture's real listener
adopted by the universe."""

from __future__ import annotations

import array
import asyncio
import os
import socket
import stat
import threading
from pathlib import Path

import pytest
import simloom
from simloom.errors import EscapedSimulationError


def run(main, **kwargs):  # type: ignore[no-untyped-def]
    # The sockets' names are real inodes in pytest's tmp_path here (files=False);
    # with files simulated they are names in the host's tree (test_hostfs.py).
    kwargs.setdefault("files", False)
    result = simloom.run(main, scheduler="faithful", **kwargs)
    if result.error is not None:
        raise result.error
    return result.value


def test_bind_makes_a_socket_inode_and_connect_reaches_the_listener(tmp_path: Path) -> None:
    path = str(tmp_path / "sock")

    async def main() -> tuple[object, ...]:
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen()
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        accepted, address = server.accept()
        client.sendall(b"ping")
        request = accepted.recv(10)
        accepted.sendall(request[::-1])
        reply = client.recv(10)
        names = (server.getsockname(), client.getpeername(), address, accepted.getpeername())
        for each in (client, accepted, server):
            each.close()
        return request, reply, names, stat.S_ISSOCK(os.stat(path).st_mode)

    request, reply, names, is_socket = run(main)
    assert (request, reply) == (b"ping", b"gnip")
    assert names == (path, path, "", "")
    assert is_socket  # the file stays after close, as a real bind leaves it


def test_closed_listener_refuses_and_a_bound_path_is_in_use(tmp_path: Path) -> None:
    path = str(tmp_path / "sock")

    async def main() -> list[str]:
        seen = []
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        try:
            socket.socket(socket.AF_UNIX).bind(path)
        except OSError as error:
            seen.append(f"rebind {error.errno}")
        server.close()
        try:
            socket.socket(socket.AF_UNIX).connect(path)
        except ConnectionRefusedError:
            seen.append("refused")
        try:
            socket.socket(socket.AF_UNIX).connect(str(tmp_path / "missing"))
        except FileNotFoundError:
            seen.append("no such file")
        return seen

    assert run(main) == ["rebind 98", "refused", "no such file"]


def test_abstract_names_datagrams_and_socketpair() -> None:
    async def main() -> tuple[object, ...]:
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(b"\0simloom-test")
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.sendto(b"anonymous", b"\0simloom-test")
        sender.bind("")  # autobind: an abstract name
        sender.sendto(b"named", b"\0simloom-test")
        first = receiver.recvfrom(100)
        second = receiver.recvfrom(100)
        left, right = socket.socketpair()
        left.sendall(b"pair")
        paired = right.recv(10)
        for each in (receiver, sender, left, right):
            each.close()
        return receiver.family, first, second[0], isinstance(second[1], bytes), paired

    family, first, second, named, paired = run(main)
    assert family == socket.AF_UNIX
    assert first == (b"anonymous", None)
    assert (second, named, paired) == (b"named", True, b"pair")


def test_descriptors_pass_with_scm_rights(tmp_path: Path) -> None:
    data_file = tmp_path / "data"
    data_file.write_bytes(b"contents")

    async def main() -> bytes:
        left, right = socket.socketpair()
        with open(data_file, "rb") as file:
            fds = array.array("i", [file.fileno()])
            left.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        message, ancdata, _, _ = right.recvmsg(10, socket.CMSG_LEN(fds.itemsize))
        received = array.array("i")
        received.frombytes(ancdata[0][2])
        with os.fdopen(received[0], "rb") as passed:
            contents = passed.read()
        left.close()
        right.close()
        return message + contents

    assert run(main) == b"xcontents"


def test_reader_watcher_fires_when_bytes_arrive_in_virtual_time() -> None:
    async def main() -> tuple[float, bytes]:
        loop = asyncio.get_running_loop()
        left, right = socket.socketpair()
        right.setblocking(False)
        readable = loop.create_future()
        loop.add_reader(right, readable.set_result, None)
        readable.add_done_callback(lambda _: loop.remove_reader(right))
        loop.call_later(2.5, left.send, b"late")
        with pytest.raises(BlockingIOError):
            right.recv(10)
        await readable
        when, data = loop.time(), right.recv(10)
        left.close()
        right.close()
        return when, data

    assert run(main) == (2.5, b"late")


def test_blocking_recv_waits_for_a_lockstep_thread_and_replays() -> None:
    async def main() -> bytes:
        left, right = socket.socketpair()

        def peer() -> None:
            left.sendall(b"from the thread")

        thread = threading.Thread(target=peer)
        thread.start()
        data = right.recv(100)  # the loop's thread blocks; the thread runs
        await asyncio.to_thread(thread.join)
        left.close()
        right.close()
        return data

    first = simloom.run(main, scheduler="faithful", seed=3)
    again = simloom.run(main, scheduler="faithful", seed=3)
    assert first.error is None and first.value == b"from the thread"
    assert first.digest == again.digest


def test_blocking_recv_that_nothing_can_satisfy_is_a_named_escape() -> None:
    async def main() -> None:
        left, right = socket.socketpair()
        try:
            right.recv(10)
        finally:
            left.close()
            right.close()

    with pytest.raises(EscapedSimulationError, match=r"socket\.socket\.recv"):
        run(main)


def test_blocking_recv_with_a_timeout_moves_virtual_time() -> None:
    async def main() -> float:
        left, right = socket.socketpair()
        right.settimeout(4.0)
        with pytest.raises(TimeoutError):
            right.recv(10)
        left.close()
        right.close()
        return asyncio.get_running_loop().time()

    assert run(main) == 4.0


def test_a_listener_bound_for_real_before_the_universe_is_adopted(tmp_path: Path) -> None:
    path = str(tmp_path / "fixture.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)  # a sync fixture: outside any universe, for real
    server.listen()

    async def main() -> bytes:
        # simloom.run freezes the heap, which hides the fixture's socket from the
        # search by name; its first use in the universe adopts it all the same.
        assert server.getsockname() == path
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        accepted, _ = server.accept()
        client.sendall(b"adopted")
        data = accepted.recv(10)
        accepted.close()
        client.close()
        return data

    try:
        assert run(main) == b"adopted"
    finally:
        server.close()


def test_watchers_on_other_descriptors_are_still_escapes() -> None:
    async def main() -> None:
        read_end, write_end = os.pipe()
        try:
            asyncio.get_running_loop().add_reader(read_end, lambda: None)
        finally:
            os.close(read_end)
            os.close(write_end)

    with pytest.raises(EscapedSimulationError, match="add_reader"):
        run(main)
