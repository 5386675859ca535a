"""The C-STORE fast path (dicom_node.receive.fastpath) against real peers and hand-made PDUs:
many instances per association, small PDUs, other services, release and abort on the same
association, protocol errors, timeouts. Whatever arrives the fast path's way or pynetdicom's,
the stored files are byte-identical and every answer is what pynetdicom alone would give."""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from pynetdicom.transport import AddressInformation

from dicom_node.config import load_settings
from dicom_node.receive import fastpath
from dicom_node.receive.handlers import StoreHandler
from dicom_node.receive.scp import NodeServer
from dicom_node.receive.wire import command_fields
from dicom_node.synthetic import StudySpec, ct_series, write_series
from tests.conftest import dcmtk, require, wait_for


def _dataset_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return data[144 + int.from_bytes(data[140:144], "little") :]


class Counter:
    """How many instances each path stored: pynetdicom calls StoreHandler(event), the fast path
    calls StoreHandler.store_file directly."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pynetdicom = self.all = 0
        call, store_file = StoreHandler.__call__, StoreHandler.store_file

        def counted_call(handler: StoreHandler, event: Any) -> int:
            self.pynetdicom += 1
            return call(handler, event)

        def counted_store(handler: StoreHandler, *args: Any) -> int:
            self.all += 1
            return store_file(handler, *args)

        monkeypatch.setattr(StoreHandler, "__call__", counted_call)
        monkeypatch.setattr(StoreHandler, "store_file", counted_store)

    @property
    def fast(self) -> int:
        return self.all - self.pynetdicom


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Counter:
    return Counter(monkeypatch)


@pytest.fixture
def series(tmp_path: Path) -> list[Path]:
    return write_series(ct_series(StudySpec(), shape=(40, 32, 32), lesion_radius=None), tmp_path / "src")


def _assert_stored(server: NodeServer, files: list[Path]) -> None:
    for src in files:
        ds = dcmread(src, stop_before_pixels=True)
        stored = server.store.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        assert _dataset_bytes(stored) == _dataset_bytes(src)
    assert not list(server.store.incoming.iterdir()), "no partial files left behind"


@pytest.mark.parametrize("pdu", [None, "4096"])
def test_storescu_many_instances_one_association(node_server, series, counter, pdu):
    require("storescu")
    extra = ["--max-send-pdu", pdu] if pdu else []
    result = dcmtk("storescu", *extra, "-aec", "DICOM_NODE", "127.0.0.1", str(node_server.port), *map(str, series))
    assert result.returncode == 0, result.stderr
    assert counter.fast == len(series) and counter.pynetdicom == 0
    node_server.writer.flush()
    _assert_stored(node_server, series)
    [study] = node_server.index.studies()
    assert study.instances == len(series)


def test_storescu_big_instance_in_small_pdus(node_server, tmp_path, counter):
    """A 2 MB image in 4 KiB PDUs: hundreds of fragments across many socket reads."""
    require("storescu")
    [src] = write_series(ct_series(StudySpec(), shape=(1, 1024, 1024), lesion_radius=None), tmp_path / "big")
    result = dcmtk("storescu", "--max-send-pdu", "4096", "-aec", "DICOM_NODE", "127.0.0.1", str(node_server.port), str(src))
    assert result.returncode == 0, result.stderr
    assert counter.fast == 1
    _assert_stored(node_server, [src])


@pytest.fixture
def qr_node(settings) -> Iterator[NodeServer]:
    server = NodeServer(settings, qr=True)
    server.start()
    yield server
    server.stop()


def test_echo_find_and_store_mixed_on_one_association(qr_node, series, counter):
    ae = AE(ae_title="MIXED")
    for uid in (CTImageStorage, Verification, StudyRootQueryRetrieveInformationModelFind):
        ae.add_requested_context(uid)
    assoc = ae.associate("127.0.0.1", qr_node.port, ae_title="DICOM_NODE")
    assert assoc.is_established
    try:
        assert assoc.send_c_echo().Status == 0
        assert [assoc.send_c_store(p).Status for p in series[:10]] == [0] * 10
        assert assoc.send_c_echo().Status == 0
        assert [assoc.send_c_store(p).Status for p in series[10:20]] == [0] * 10
        qr_node.writer.flush()
        query = Dataset()
        query.QueryRetrieveLevel, query.StudyInstanceUID = "STUDY", ""
        found = [ds for status, ds in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind) if status.Status in (0xFF00, 0xFF01)]
        assert len(found) == 1
        assert [assoc.send_c_store(p).Status for p in series[20:]] == [0] * 20
    finally:
        assoc.release()
    assert assoc.is_released
    assert counter.all == len(series) and counter.fast >= len(series) - 3  # the first after a hand-back may be pynetdicom's
    _assert_stored(qr_node, series)


def test_release_after_stores_and_node_serves_on(node_server, series, counter):
    ae = AE()
    ae.add_requested_context(CTImageStorage)
    for chunk in (series[:5], series[5:10]):
        assoc = ae.associate("127.0.0.1", node_server.port, ae_title="DICOM_NODE")
        assert [assoc.send_c_store(p).Status for p in chunk] == [0] * len(chunk)
        assoc.release()
        assert assoc.is_released
    assert counter.fast == 10
    _assert_stored(node_server, series[:10])


# -- hand-made PDUs ------------------------------------------------------------------------------


class RawPeer:
    """A storage SCU speaking PS3.8 by hand, to send what real peers rarely do."""

    def __init__(self, port: int, *contexts: tuple[str, str], max_pdu: int = 16384) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rq = A_ASSOCIATE()
        rq.application_context_name = "1.2.840.10008.3.1.1.1"
        rq.calling_ae_title, rq.called_ae_title = "RAWPEER", "DICOM_NODE"
        rq.calling_presentation_address = AddressInformation("127.0.0.1", 0)
        rq.called_presentation_address = AddressInformation("127.0.0.1", port)
        items = []
        for n, (abstract, syntax) in enumerate(contexts):
            cx = build_context(abstract, syntax)
            cx.context_id = 2 * n + 1
            items.append(cx)
        rq.presentation_context_definition_list = items
        length, impl = MaximumLengthNotification(), ImplementationClassUIDNotification()
        length.maximum_length_received, impl.implementation_class_uid = max_pdu, "1.2.826.0.1.3680043.9.3811.0"
        rq.user_information = [length, impl]
        pdu = A_ASSOCIATE_RQ()
        pdu.from_primitive(rq)
        self.sock.sendall(pdu.encode())
        kind, body = self.read_pdu()
        assert kind == 0x02, f"association not accepted (PDU 0x{kind:02X})"
        ac = A_ASSOCIATE_AC()
        ac.decode(bytes([kind, 0]) + struct.pack(">I", len(body)) + body)
        self.accepted = {cx.context_id for cx in ac.presentation_context if cx.result == 0}

    def read_exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def read_pdu(self) -> tuple[int, bytes]:
        kind, length = struct.unpack(">BxI", self.read_exact(6))
        return kind, self.read_exact(length)

    def response(self) -> dict[int, bytes]:
        """The next DIMSE response's command fields."""
        command = b""
        while True:
            kind, body = self.read_pdu()
            assert kind == 0x04, f"PDU 0x{kind:02X} instead of P-DATA-TF"
            pos = 0
            while pos < len(body):
                item, flags = struct.unpack_from(">I", body, pos)[0], body[pos + 5]
                command += body[pos + 6 : pos + 4 + item]
                pos += 4 + item
                if flags & 0x02:
                    fields = command_fields(command)
                    assert fields is not None
                    return fields

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def _pdv(context_id: int, flags: int, data: bytes) -> bytes:
    return struct.pack(">IBB", len(data) + 2, context_id, flags) + data


def _pdu(*pdvs: bytes) -> bytes:
    body = b"".join(pdvs)
    return struct.pack(">BxI", 0x04, len(body)) + body


def _command(primitive: Any, message: Any) -> bytes:
    msg = message()
    msg.primitive_to_message(primitive)
    command, *_data_set = msg.encode_msg(1, 0)  # P-DATA primitives: the command's first
    return bytes(command.presentation_data_value_list[0][1][1:])


def _store_command(path: Path, message_id: int) -> bytes:
    ds = dcmread(path, stop_before_pixels=True)
    rq = C_STORE()
    rq.MessageID, rq.Priority = message_id, 2
    rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    rq.DataSet = BytesIO(b"\x00\x00")  # a data set is present; the tests send their own
    return _command(rq, C_STORE_RQ)


def _echo_command(message_id: int) -> bytes:
    rq = C_ECHO()
    rq.MessageID, rq.AffectedSOPClassUID = message_id, Verification
    return _command(rq, C_ECHO_RQ)


def _status(fields: dict[int, bytes]) -> int:
    return int.from_bytes(fields[0x0900], "little")


@pytest.fixture
def raw(node_server) -> Iterator[RawPeer]:
    peer = RawPeer(node_server.port, (CTImageStorage, ExplicitVRLittleEndian), (Verification, ImplicitVRLittleEndian))
    yield peer
    peer.close()


def test_fragmented_commands_and_messages_sharing_a_pdu(node_server, raw, series, counter):
    """A command in three PDUs, a data set in many tiny PDVs, and one PDU holding the end of
    one data set and the whole command of the next message."""
    first, second = series[0], series[1]
    data1, data2 = _dataset_bytes(first), _dataset_bytes(second)
    command1 = _store_command(first, 1)
    raw.sock.sendall(b"".join(_pdu(_pdv(1, 0x01, command1[i : i + 20])) for i in range(0, 40, 20)))
    raw.sock.sendall(_pdu(_pdv(1, 0x03, command1[40:])))
    pieces = [data1[i : i + 100] for i in range(0, len(data1), 100)]
    raw.sock.sendall(_pdu(*(_pdv(1, 0x00, p) for p in pieces[:-1])))
    command2 = _store_command(second, 2)
    raw.sock.sendall(_pdu(_pdv(1, 0x02, pieces[-1]), _pdv(1, 0x03, command2), _pdv(1, 0x02, data2)))
    assert _status(raw.response()) == 0
    assert _status(raw.response()) == 0
    assert counter.fast == 2
    _assert_stored(node_server, [first, second])


def test_echo_split_over_pdus_is_replayed_to_pynetdicom(node_server, raw, series, counter):
    echo = _echo_command(5)
    raw.sock.sendall(_pdu(_pdv(3, 0x01, echo[:30])) + _pdu(_pdv(3, 0x03, echo[30:])))
    fields = raw.response()
    assert _status(fields) == 0 and int.from_bytes(fields[0x0100], "little") == 0x8030  # C-ECHO-RSP
    raw.sock.sendall(_pdu(_pdv(1, 0x03, _store_command(series[0], 6))) + _pdu(_pdv(1, 0x02, _dataset_bytes(series[0]))))
    assert _status(raw.response()) == 0
    assert counter.fast == 1  # taken over again once pynetdicom answered the echo


def test_release_is_answered(node_server, raw):
    raw.sock.sendall(struct.pack(">BxIxxxx", 0x05, 4))
    assert raw.read_pdu()[0] == 0x06  # A-RELEASE-RP


def test_abort_in_mid_data_set_leaves_nothing(node_server, raw, series, counter):
    raw.sock.sendall(_pdu(_pdv(1, 0x03, _store_command(series[0], 1))) + _pdu(_pdv(1, 0x00, _dataset_bytes(series[0])[:500])))
    raw.sock.sendall(struct.pack(">BxIxxBB", 0x07, 4, 0, 0))  # A-ABORT, service user
    wait_for(raw.closed, "node closes the aborted association")
    wait_for(lambda: not list(node_server.store.incoming.iterdir()), "partial file removed")
    assert counter.all == 0 and not list(node_server.store.iter_files())
    peer = RawPeer(node_server.port, (CTImageStorage, ExplicitVRLittleEndian))
    peer.sock.sendall(_pdu(_pdv(1, 0x03, _store_command(series[1], 1))) + _pdu(_pdv(1, 0x02, _dataset_bytes(series[1]))))
    assert _status(peer.response()) == 0
    peer.close()


def test_connection_lost_in_mid_data_set_leaves_nothing(node_server, raw, series, counter):
    raw.sock.sendall(_pdu(_pdv(1, 0x03, _store_command(series[0], 1))) + _pdu(_pdv(1, 0x00, _dataset_bytes(series[0])[:500])))
    raw.sock.shutdown(socket.SHUT_WR)
    wait_for(raw.closed, "node closes the broken association")
    wait_for(lambda: not list(node_server.store.incoming.iterdir()), "partial file removed")
    assert counter.all == 0


def test_command_fragment_inside_a_data_set_aborts(node_server, raw, series):
    data = _dataset_bytes(series[0])
    raw.sock.sendall(_pdu(_pdv(1, 0x03, _store_command(series[0], 1))) + _pdu(_pdv(1, 0x00, data[:500]), _pdv(1, 0x03, b"\x00" * 8)))
    assert raw.read_pdu()[0] == 0x07  # A-ABORT
    wait_for(lambda: not list(node_server.store.incoming.iterdir()), "partial file removed")


def test_failure_statuses_through_the_fast_path(node_server, raw, series, counter):
    """Truncated data set: 0xC000; SOP class in the command not the context's: pynetdicom's
    answer (the fast path hands it back)."""
    data = _dataset_bytes(series[0])
    raw.sock.sendall(_pdu(_pdv(1, 0x03, _store_command(series[0], 1))) + _pdu(_pdv(1, 0x02, data[:-300])))
    assert _status(raw.response()) == 0xC000
    assert counter.fast == 1
    rq = C_STORE()
    rq.MessageID, rq.Priority = 2, 2
    rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.481.2", "1.2.3.4"  # RT Dose
    rq.DataSet = BytesIO(b"\x00\x00")
    raw.sock.sendall(_pdu(_pdv(1, 0x03, _command(rq, C_STORE_RQ))) + _pdu(_pdv(1, 0x02, data)))
    assert _status(raw.response()) == 0x0122
    assert counter.fast == 1


def test_network_timeout_aborts_an_idle_association(tmp_path):
    settings = load_settings(data_dir=tmp_path / "node", port=0, host="127.0.0.1", min_free_disk_mb=0, network_timeout_s=1)
    server = NodeServer(settings, qr=False)
    server.start()
    try:
        peer = RawPeer(server.port, (CTImageStorage, ExplicitVRLittleEndian))
        peer.sock.settimeout(15)
        assert peer.read_pdu()[0] == 0x07  # A-ABORT after the network timeout
        peer.close()
    finally:
        server.stop()


def test_parallel_associations(node_server, series, counter):
    ae = AE()
    ae.add_requested_context(CTImageStorage)
    statuses: list[int] = []

    def send(chunk: list[Path]) -> None:
        assoc = ae.associate("127.0.0.1", node_server.port, ae_title="DICOM_NODE")
        statuses.extend(int(assoc.send_c_store(p).Status) for p in chunk)
        assoc.release()

    threads = [threading.Thread(target=send, args=(series[k::4],)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [0] * len(series) and counter.fast == len(series)
    _assert_stored(node_server, series)


def test_disk_full_while_writing_answers_a700(node_server, raw, series, monkeypatch, caplog):
    def full(fd: int, data: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fastpath, "_write", full)
    raw.sock.sendall(_pdu(_pdv(1, 0x03, _store_command(series[0], 1))) + _pdu(_pdv(1, 0x02, _dataset_bytes(series[0]))))
    assert _status(raw.response()) == 0xA700
    assert "disk full" in caplog.text
    assert not list(node_server.store.incoming.iterdir()) and not list(node_server.store.iter_files())
    monkeypatch.undo()
    raw.sock.sendall(_pdu(_pdv(1, 0x03, _store_command(series[0], 2))) + _pdu(_pdv(1, 0x02, _dataset_bytes(series[0]))))
    assert _status(raw.response()) == 0  # the association carries on
