"""Admission of connections (dicom_node.receive.admission), with real sockets, in both ways the
node serves — pynetdicom's own server (one receiver) and the dispatcher handing connections to
receiver processes (two): a connection trickling its association request is closed at the
deadline however its bytes come, a peer address holds at most its share of connections, and
neither keeps anyone else from being served.

Peers whose connections the node refuses connect from 127.0.0.2; the well-behaved ones from
127.0.0.1, so the per-peer limit never stands in their way."""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import CTImageStorage, Verification
from pynetdicom.transport import AddressInformation

from dicom_node.config import load_settings
from dicom_node.node import Node
from dicom_node.receive.scp import NodeServer
from dicom_node.synthetic import StudySpec, ct_series, write_series
from tests.conftest import dcmtk, require, wait_for

BAD_PEER = "127.0.0.2"
OVER_LIMIT_RJ = bytes.fromhex("03000000000400020302")  # rejected-transient, provider (presentation), local limit


def association_request(calling: str = "TRICKLER", called: str = "DICOM_NODE") -> bytes:
    """A well-formed A-ASSOCIATE-RQ PDU (PS3.8 9.3.2) proposing Verification and CT storage."""
    rq = A_ASSOCIATE()
    rq.application_context_name = "1.2.840.10008.3.1.1.1"
    rq.calling_ae_title, rq.called_ae_title = calling, called
    rq.calling_presentation_address = AddressInformation("127.0.0.1", 0)
    rq.called_presentation_address = AddressInformation("127.0.0.1", 11112)
    contexts = [build_context(Verification), build_context(CTImageStorage)]
    for n, cx in enumerate(contexts):
        cx.context_id = 2 * n + 1
    rq.presentation_context_definition_list = contexts
    length, impl = MaximumLengthNotification(), ImplementationClassUIDNotification()
    length.maximum_length_received, impl.implementation_class_uid = 16384, "1.2.826.0.1.3680043.9.3811.0"
    rq.user_information = [length, impl]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(rq)
    return bytes(pdu.encode())


@contextmanager
def serving(tmp_path: Path, receivers: int, **settings: object) -> Iterator[int]:
    """A node on a free port, on pynetdicom's own server (``receivers`` 1: a NodeServer in this
    process) or on the dispatcher with receiver processes (2: a Node); yields its port."""
    loaded = load_settings(
        data_dir=tmp_path / "node", host="127.0.0.1", port=0, min_free_disk_mb=0, receivers=receivers, **settings
    )
    if receivers == 1:
        server = NodeServer(loaded, qr=False)
        server.start()
        try:
            yield server.port
        finally:
            server.stop()
            server.index.close()
        return
    node = Node(loaded, workers=False)
    node.start()
    try:
        yield node.port
    finally:
        node.stop()


def connect(port: int, source: str = BAD_PEER) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def rejections(caplog: pytest.LogCaptureFixture, peer: str = BAD_PEER) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(f"association from {peer}:")]


class Trickle:
    """Connections sending a well-formed association request one byte every ``interval_s``
    each, noting when the node closes each one (EOF or reset)."""

    def __init__(self, port: int, count: int, interval_s: float) -> None:
        self.request = association_request()
        self.socks = [connect(port) for _ in range(count)]
        self.opened = time.monotonic()
        self.sent = dict.fromkeys(self.socks, 0)
        self.closed_after: dict[socket.socket, float] = {}
        self.interval_s = interval_s
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        for sock in self.socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = self.opened + 60
        while len(self.closed_after) < len(self.socks) and time.monotonic() < deadline:
            for key, _ in selector.select(self.interval_s):
                try:
                    ended = not key.fileobj.recv(4096)  # type: ignore[union-attr]
                except BlockingIOError:
                    ended = False
                except OSError:
                    ended = True
                if ended:
                    self._ended(selector, key.fileobj)  # type: ignore[arg-type]
            for sock in [s for s in self.socks if s not in self.closed_after]:
                try:
                    sock.send(self.request[self.sent[sock] : self.sent[sock] + 1])
                    self.sent[sock] += 1
                except BlockingIOError:
                    pass
                except OSError:
                    self._ended(selector, sock)
        selector.close()

    def _ended(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        self.closed_after[sock] = time.monotonic() - self.opened
        selector.unregister(sock)

    def join(self) -> None:
        self._thread.join()
        for sock in self.socks:
            sock.close()


@pytest.mark.parametrize("receivers", [1, 2], ids=["pynetdicom-server", "dispatcher"])
def test_trickling_requests_are_closed_at_the_deadline_while_storescu_is_served(tmp_path, receivers, caplog):
    require("storescu")
    files = write_series(ct_series(StudySpec(), shape=(5, 16, 16), lesion_radius=None), tmp_path / "src")
    caplog.set_level(logging.INFO)
    with serving(tmp_path, receivers, association_timeout_s=1, max_associations_per_peer=64) as port:
        trickle = Trickle(port, count=50, interval_s=0.2)
        sent = dcmtk("storescu", "-aec", "DICOM_NODE", "127.0.0.1", str(port), *map(str, files), timeout=60)
        trickle.join()
    assert sent.returncode == 0, sent.stderr
    assert len(list((tmp_path / "node" / "store").rglob("*.dcm"))) == len(files)
    assert len(trickle.closed_after) == 50, "every trickling connection closed"
    # Closed at the deadline, though a byte came every 0.2 s: the trickle never reset it. Slack
    # for a loaded machine; without the deadline none closes at all.
    assert max(trickle.closed_after.values()) < 1 + 3
    assert min(trickle.sent.values()) >= 3, "each connection was trickling when it was closed"
    assert all(n < len(trickle.request) for n in trickle.sent.values())
    if receivers == 1:  # the dispatcher's receiver processes log elsewhere
        lines = rejections(caplog)
        assert len(lines) == 50 and all(r.levelname == "WARNING" for r in lines)
        assert all("no whole A-ASSOCIATE-RQ within 1 s" in r.getMessage() for r in lines)


@pytest.mark.parametrize("receivers", [1, 2], ids=["pynetdicom-server", "dispatcher"])
def test_connections_over_the_per_peer_limit_are_rejected_at_once(tmp_path, receivers, caplog):
    require("echoscu")
    caplog.set_level(logging.INFO)
    with serving(tmp_path, receivers, association_timeout_s=30, max_associations_per_peer=3) as port:
        held = [connect(port) for _ in range(3)]  # silent: each holds its place until its deadline
        for _ in range(2):
            over = connect(port)
            started = time.monotonic()
            over.sendall(association_request())
            assert over.recv(64) == OVER_LIMIT_RJ
            assert time.monotonic() - started < 5, "rejected at once, not at the deadline"
            over.close()  # as the requestor does on A-ASSOCIATE-RJ (PS3.8 9.2, AR-3)
        silent = connect(port)
        assert silent.recv(64) == b"", "one that asks nothing is closed at ARTIM, with nothing said"
        silent.close()
        # Another address is not held back.
        assert dcmtk("echoscu", "-aec", "DICOM_NODE", "127.0.0.1", str(port), timeout=30).returncode == 0

        for sock in held:  # their connections end: the peer is let in again
            sock.close()
        ae = AE(ae_title="OVERLIMIT")
        ae.add_requested_context(Verification)

        def echo_from_bad_peer() -> bool:
            assoc = ae.associate("127.0.0.1", port, ae_title="DICOM_NODE", bind_address=(BAD_PEER, 0))
            if not assoc.is_established:
                return False
            ok = assoc.send_c_echo().Status == 0
            assoc.release()
            return ok

        wait_for(echo_from_bad_peer, "the peer served once its connections ended", timeout=20)
    lines = [r for r in rejections(caplog) if "max_associations_per_peer" in r.getMessage()]
    assert len(lines) >= 3 and all(r.levelname == "WARNING" and "rejected" in r.getMessage() for r in lines)
