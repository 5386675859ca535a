"""One listening socket for several receiver processes: every accepted connection is handed to
the receiver serving the fewest associations.

SO_REUSEPORT let the kernel choose by a hash of the peer's address and port. Four associations
over two receivers then met one process with three or four of them in five runs of eight, and
that process's GIL set the pace (1000 × 64² images: 0.93–1.18 s). Here the node's main process
accepts (:class:`Dispatcher`) and passes each connection's descriptor (SCM_RIGHTS) over a
``SOCK_SEQPACKET`` socket pair, a *lane*, to a receiver (:class:`HandedServer`, a pynetdicom
server that takes its connections from the lane instead of ``accept``).

One message each way on a lane:

- dispatcher → receiver: ``c`` and the peer's address, carrying one connection's descriptor;
- receiver → dispatcher: ``r`` once it serves (only then does it get connections), ``d`` and
  the peer's address each time an association it served has ended.

The dispatcher sees every connection, so it alone can hold a peer address to
``max_associations_per_peer`` at once: one over it is rejected here, before any receiver sees
it (:func:`~dicom_node.receive.admission.refuse_over_limit`). The receivers read each
association request against its deadline (:class:`~dicom_node.receive.admission.AdmittingHandler`).

A receiver that dies closes its lane; the connections still queued in it are closed with it,
none of them acknowledged anything. Its restart gets a new lane.
"""

from __future__ import annotations

import itertools
import logging
import selectors
import socket
import threading
import time
from collections import Counter
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer

from dicom_node.errors import NodeError
from dicom_node.receive.admission import (
    Admission,
    AdmittingHandler,
    PeerCount,
    refuse_over_limit,
)

__all__ = ["Dispatcher", "HandedServer"]

log = logging.getLogger(__name__)

CONNECTION, READY, DONE = b"c", b"r", b"d"
_BACKLOG = 64  # bursts of associations wait in the kernel while the dispatcher catches up
_MESSAGE = 64  # bytes: a message and an IPv6 address


class _Lane:
    """The dispatcher's end of one receiver's socket pair, and what it knows of that receiver."""

    def __init__(self, name: str, sock: socket.socket) -> None:
        self.name = name
        self.sock = sock
        self.peers: Counter[str] = Counter()  # associations handed over and not yet done, by peer address
        self.ready = False
        self.closed = False
        self.registered = False  # with the dispatcher's selector

    @property
    def active(self) -> int:
        return sum(self.peers.values())


class Dispatcher:
    """Accepts on ``(host, port)`` and hands each connection to the ready receiver with the
    fewest active associations (ties in turn), up to ``per_peer`` at once from one address; runs
    in a thread of the node's main process."""

    def __init__(self, host: str, port: int, per_peer: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=_BACKLOG)
        self._listener.setblocking(False)
        self._lanes: dict[str, _Lane] = {}  # each receiver's current lane
        self._every: list[_Lane] = []  # every lane whose socket is open, retired ones too
        self._changed = threading.Condition()  # lanes added, ready or closed
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._wake_recv, self._wake_send = socket.socketpair()
        self._selector.register(self._wake_recv, selectors.EVENT_READ)
        self._turn = itertools.count()
        self._peers = PeerCount(per_peer)  # the lanes' peers together
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def add_lane(self, name: str) -> socket.socket:
        """A new lane for receiver ``name`` (retiring its earlier one); the receiver's end, for
        the receiver to serve (:class:`HandedServer`) and the caller to close once passed on."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        with self._changed:
            old = self._lanes.get(name)
            if old is not None:
                old.closed = True
            self._lanes[name] = lane = _Lane(name, ours)
            self._every.append(lane)
        self._wake_send.send(b"\0")  # the loop registers the new lane
        return theirs

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self, names: list[str], timeout_s: float) -> None:
        """Return once each receiver in ``names`` serves; NodeError if one ends first or time runs out."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                lanes = [self._lanes[name] for name in names]
                gone = [lane.name for lane in lanes if lane.closed]
                if gone:
                    raise NodeError(f"{', '.join(gone)} exited before it was listening; see its log")
                waiting = [lane.name for lane in lanes if not lane.ready]
                if not waiting:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NodeError(f"{', '.join(waiting)} not listening after {timeout_s:g} s")
                self._changed.wait(left)

    def stop(self) -> None:
        """Stop accepting; close the listening socket and every lane."""
        self._stopping = True
        self._wake_send.send(b"\0")
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._changed:
            for lane in self._every:
                lane.closed = True
        self._release_closed()
        self._selector.close()
        for sock in (self._listener, self._wake_recv, self._wake_send):
            sock.close()

    # -- the dispatcher thread: the only one that uses the selector until stop() ------------

    def _run(self) -> None:
        while not self._stopping:
            self._release_closed()
            with self._changed:
                new = [lane for lane in self._every if not lane.closed and not lane.registered]
            for lane in new:
                self._selector.register(lane.sock, selectors.EVENT_READ, lane)
                lane.registered = True
            for key, _ in self._selector.select():
                if key.fileobj is self._listener:
                    self._accept()
                elif key.fileobj is self._wake_recv:
                    self._wake_recv.recv(4096)
                else:
                    self._hear(key.data)

    def _release_closed(self) -> None:
        with self._changed:
            closed = [lane for lane in self._every if lane.closed]
            self._every = [lane for lane in self._every if not lane.closed]
        for lane in closed:
            if lane.registered:
                self._selector.unregister(lane.sock)
            lane.sock.close()
            for address, count in lane.peers.items():  # its receiver closed these with the lane
                self._peers.release(address, count)
            lane.peers.clear()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # out of descriptors: the peer waits in the backlog
                log.error("cannot accept a connection: %s", exc)
                return
            try:
                peer = conn.getpeername()
            except OSError:  # the peer left already
                conn.close()
                continue
            address = str(peer[0])
            if not self._peers.admit(address):
                refuse_over_limit(conn, peer, self._peers.limit)
                continue
            with conn:  # the receiver holds its own descriptor once handed over
                if not self._hand_over(conn, address):
                    self._peers.release(address)

    def _hand_over(self, conn: socket.socket, address: str) -> bool:
        """Pass ``conn`` to a receiver; False if none takes it (then it is closed)."""
        with self._changed:
            lanes = [lane for lane in self._lanes.values() if not lane.closed]
        if lanes:  # start the tie-breaking with the next receiver in turn
            turn = next(self._turn) % len(lanes)
            lanes = lanes[turn:] + lanes[:turn]
        # Ready receivers, fewest associations first; a starting one only when none is ready.
        for lane in sorted(lanes, key=lambda lane: (not lane.ready, lane.active)):
            try:
                socket.send_fds(lane.sock, [CONNECTION + address.encode()], [conn.fileno()])
            except BlockingIOError:  # its queue is full: it is not keeping up
                continue
            except OSError as exc:
                log.error("%s no longer takes connections (%s)", lane.name, exc)
                self._close(lane)
                continue
            lane.peers[address] += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("connection from %s to %s (%d associations there)", address, lane.name, lane.active)
            return True
        log.error("no receiver takes connections: closed one from %s", address)
        return False

    def _hear(self, lane: _Lane) -> None:
        while not lane.closed:
            try:
                message = lane.sock.recv(_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                message = b""
            if not message:
                if not self._stopping:
                    log.warning("%s closed its lane", lane.name)
                self._close(lane)
            elif message[:1] == DONE:
                address = message[1:].decode()
                if lane.peers[address] > 0:
                    lane.peers[address] -= 1
                    if not lane.peers[address]:
                        del lane.peers[address]
                    self._peers.release(address)
            elif message == READY:
                with self._changed:
                    lane.ready = True
                    self._changed.notify_all()

    def _close(self, lane: _Lane) -> None:
        """Mark ``lane`` closed; the loop releases its socket."""
        with self._changed:
            lane.closed = True
            self._changed.notify_all()


class HandedServer(ThreadedAssociationServer):
    """A pynetdicom association server whose connections come from a :class:`Dispatcher`'s
    lane instead of its own listening socket. ``server_address`` is the dispatcher's. Its
    ``admission`` gives the association request's deadline; the dispatcher counts the peers."""

    daemon_threads = True  # a handler thread lives as long as its association: never joined

    def __init__(self, *args: Any, lane: socket.socket, admission: Admission, **kwargs: Any) -> None:
        self.lane = lane
        self.lane_closed = threading.Event()
        self.admission = admission
        kwargs["request_handler"] = AdmittingHandler
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        self.socket.close()  # the TCP socket socketserver made: never bound
        self.socket = self.lane

    def server_activate(self) -> None:
        """Nothing to listen on: the dispatcher does."""

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        message, fds, _, _ = socket.recv_fds(self.lane, _MESSAGE, 1)
        if not fds:
            if not message:  # the dispatcher closed the lane: the node is stopping or gone
                self.lane_closed.set()
                time.sleep(0.05)  # until serve_forever is told to stop, do not spin
            raise OSError("no connection on the lane")
        conn = socket.socket(fileno=fds[0])
        address = message[1:].decode()
        try:
            port = int(conn.getpeername()[1])
        except OSError:  # the peer left while the connection was queued
            conn.close()
            self.association_ended(address)
            raise
        return conn, (address, port)

    def association_ended(self, address: str) -> None:
        """The association of a connection from ``address`` has ended (or never began)."""
        self.report(DONE + address.encode())

    def report(self, message: bytes) -> None:
        """Tell the dispatcher (READY, DONE); nobody to tell once the lane is closed."""
        try:
            self.lane.send(message)
        except OSError:
            pass
