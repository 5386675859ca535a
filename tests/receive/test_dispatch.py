"""The dispatcher hands each accepted connection to the ready receiver with the fewest
associations, over real sockets; here the receivers are the test itself, reading the lanes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from dicom_node.errors import NodeError
from dicom_node.receive.dispatch import CONNECTION, DONE, READY, Dispatcher
from tests.conftest import wait_for


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    dispatcher = Dispatcher("127.0.0.1", 0)
    dispatcher.start()
    yield dispatcher
    dispatcher.stop()


def handed(lane: socket.socket, count: int) -> list[socket.socket]:
    """The next ``count`` connections handed over on ``lane``, as sockets."""
    conns = []
    for _ in range(count):
        message, fds, _, _ = socket.recv_fds(lane, 16, 1)
        assert message == CONNECTION and len(fds) == 1
        conns.append(socket.socket(fileno=fds[0]))
    return conns


def nothing_waiting(lane: socket.socket) -> bool:
    lane.setblocking(False)
    try:
        lane.recv(16)
    except BlockingIOError:
        return True
    finally:
        lane.setblocking(True)
    return False


def connect(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


def test_connections_are_spread_evenly_and_follow_the_freed_receiver(dispatcher):
    lanes = {name: dispatcher.add_lane(name) for name in ("a", "b")}
    for lane in lanes.values():
        lane.send(READY)
    dispatcher.wait_ready(["a", "b"], timeout_s=10)
    peers = connect(dispatcher.port, 4)
    a, b = handed(lanes["a"], 2), handed(lanes["b"], 2)
    assert nothing_waiting(lanes["a"]) and nothing_waiting(lanes["b"])
    # A handed-over connection is the peer's: bytes go through, nothing stays with the dispatcher.
    peers[0].sendall(b"ping")
    (theirs,) = [conn for conn in a + b if conn.getpeername() == peers[0].getsockname()]
    assert theirs.recv(4) == b"ping"

    for _ in range(2):  # a's associations end: the next two go to a
        lanes["a"].send(DONE)
    more = connect(dispatcher.port, 2)
    assert len(handed(lanes["a"], 2)) == 2
    assert nothing_waiting(lanes["b"])
    for sock in peers + more + a + b:
        sock.close()


def test_a_receiver_gets_connections_only_once_ready(dispatcher):
    ready, starting = dispatcher.add_lane("ready"), dispatcher.add_lane("starting")
    ready.send(READY)
    dispatcher.wait_ready(["ready"], timeout_s=10)
    peers = connect(dispatcher.port, 3)
    assert len(handed(ready, 3)) == 3
    assert nothing_waiting(starting)
    for sock in peers:
        sock.close()


def test_a_dead_receivers_share_goes_to_the_others(dispatcher):
    alive, dead = dispatcher.add_lane("alive"), dispatcher.add_lane("dead")
    alive.send(READY)
    dead.send(READY)
    dispatcher.wait_ready(["alive", "dead"], timeout_s=10)
    dead.close()
    wait_for(lambda: dispatcher._lanes["dead"].closed, "the dispatcher to see the lane close")
    peers = connect(dispatcher.port, 3)
    assert len(handed(alive, 3)) == 3
    for sock in peers:
        sock.close()


def test_a_receiver_that_exits_before_serving_fails_the_wait(dispatcher):
    dispatcher.add_lane("receiver-1").close()  # as when the child dies before it serves
    with pytest.raises(NodeError, match="receiver-1 exited before it was listening"):
        dispatcher.wait_ready(["receiver-1"], timeout_s=10)


def test_a_receiver_that_never_serves_fails_the_wait_in_time(dispatcher):
    lane = dispatcher.add_lane("receiver-1")
    with pytest.raises(NodeError, match="receiver-1 not listening after"):
        dispatcher.wait_ready(["receiver-1"], timeout_s=0.1)
    lane.close()
