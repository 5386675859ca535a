"""The dispatcher hands each accepted connection to the ready receiver with the fewest
associations, over real sockets; here the receivers are the test itself, reading the lanes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from dicom_node.errors import NodeError
from dicom_node.receive.dispatch import CONNECTION, DONE, READY, Dispatcher
from tests.conftest import wait_for
from tests.receive.test_admission import association_request

PER_PEER = 8


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    dispatcher = Dispatcher("127.0.0.1", 0, per_peer=PER_PEER)
    dispatcher.start()
    yield dispatcher
    dispatcher.stop()


def handed(lane: socket.socket, count: int) -> list[socket.socket]:
    """The next ``count`` connections handed over on ``lane``, as sockets."""
    conns = []
    for _ in range(count):
        message, fds, _, _ = socket.recv_fds(lane, 64, 1)
        conn = socket.socket(fileno=fds[0])
        assert message == CONNECTION + conn.getpeername()[0].encode() and len(fds) == 1
        conns.append(conn)
    return conns


def done(lane: socket.socket, address: str = "127.0.0.1") -> None:
    """Tell the dispatcher, as a receiver does, that an association from ``address`` ended."""
    lane.send(DONE + address.encode())


def nothing_waiting(lane: socket.socket) -> bool:
    lane.setblocking(False)
    try:
        lane.recv(16)
    except BlockingIOError:
        return True
    finally:
        lane.setblocking(True)
    return False


def connect(port: int, count: int, source: str = "127.0.0.1") -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), source_address=(source, 0)) for _ in range(count)]


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
        done(lanes["a"])
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


def test_a_peer_over_its_limit_is_rejected_and_others_are_not(dispatcher, caplog):
    lane = dispatcher.add_lane("a")
    lane.send(READY)
    dispatcher.wait_ready(["a"], timeout_s=10)
    busy = connect(dispatcher.port, PER_PEER, source="127.0.0.2")
    conns = handed(lane, PER_PEER)
    over = connect(dispatcher.port, 1, source="127.0.0.2")[0]
    over.settimeout(10)
    over.sendall(association_request())
    # A-ASSOCIATE-RJ: rejected-transient, service-provider (presentation), local-limit-exceeded,
    # and the connection closed by the node when the peer does not (ARTIM).
    assert over.recv(64) == bytes.fromhex("03000000000400020302")
    assert over.recv(64) == b""
    assert nothing_waiting(lane)
    [line] = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert line.levelname == "WARNING" and "127.0.0.2" in line.getMessage()
    other = connect(dispatcher.port, 1)  # another address is not held back
    conns += handed(lane, 1)
    done(lane, "127.0.0.2")  # one of the busy ones ended: that peer may connect once more
    wait_for(lambda: dispatcher._lanes["a"].peers["127.0.0.2"] == PER_PEER - 1, "the dispatcher to hear it")
    again = connect(dispatcher.port, 1, source="127.0.0.2")
    conns += handed(lane, 1)
    for sock in busy + conns + other + again + [over]:
        sock.close()


def test_a_closed_lane_gives_its_peers_their_connections_back(dispatcher):
    first = dispatcher.add_lane("a")
    first.send(READY)
    dispatcher.wait_ready(["a"], timeout_s=10)
    busy = connect(dispatcher.port, PER_PEER, source="127.0.0.2")
    conns = handed(first, PER_PEER)
    second = dispatcher.add_lane("a")  # a's restart: the first lane is retired, its connections gone
    second.send(READY)
    dispatcher.wait_ready(["a"], timeout_s=10)
    more = connect(dispatcher.port, PER_PEER, source="127.0.0.2")
    conns += handed(second, PER_PEER)
    for sock in busy + conns + more + [first, second]:
        sock.close()
