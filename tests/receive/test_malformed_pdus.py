"""Malformed PDUs — random bytes and hand-made faults: other PDU types, lengths that lie, cut
association requests, AE titles and UIDs with control characters, damaged items — before and
after an association is established. Each rejected or aborted association is one escaped
WARNING line naming the peer (address and port) and the reason, never a traceback, and the node
serves on. The requests go in parallel; one cut short is closed at the node's deadline (2 s)."""

from __future__ import annotations

import logging
import random
import socket
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification

from dicom_node.config import load_settings
from dicom_node.receive.scp import NodeServer
from dicom_node.synthetic import StudySpec, ct_series
from tests.receive.test_admission import association_request

SEED = 20261204
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")  # pydicom on damaged UIDs
AC, RJ, ABORT = 0x02, 0x03, 0x07
_CALLED, _CALLING = slice(10, 26), slice(26, 42)  # AE title fields of an A-ASSOCIATE-RQ (PS3.8 9.3.2)


def _with_length(pdu: bytes, length: int) -> bytes:
    return pdu[:2] + struct.pack(">I", length) + pdu[6:]


def _titled(field: slice, title: bytes) -> bytes:
    rq = bytearray(association_request())
    rq[field] = title.ljust(16, b" ")
    return bytes(rq)


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NodeServer]:
    monkeypatch.setattr(_config, "LOG_HANDLER_LEVEL", "none")  # as the node's logging set-up has it
    settings = load_settings(
        data_dir=tmp_path / "node", port=0, host="127.0.0.1", min_free_disk_mb=0,
        association_timeout_s=2, max_associations_per_peer=64,
    )  # fmt: skip
    server = NodeServer(settings, qr=False)
    server.start()
    yield server
    server.stop()
    server.index.close()


def _before_association() -> Iterator[tuple[str, bytes]]:
    """(what, bytes sent as the connection's first and only bytes)."""
    rng = random.Random(SEED)
    rq = association_request()
    for n in range(40):
        yield f"random {n}", rng.randbytes(rng.randrange(1, 300))
    for kind in (0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x00, 0x08, 0x7F, 0xFF):
        yield f"PDU type 0x{kind:02X} first", bytes([kind]) + rq[1:]
    yield "length past the end", _with_length(rq, len(rq) - 6 + 1000)
    yield "length of 4 GiB", _with_length(rq, 0xFFFFFFFF)
    yield "length short of the items", _with_length(rq, 80)
    yield "length of zero", _with_length(rq, 0)[:6]
    for cut in (3, 6, 10, 42, 74, 80, len(rq) // 2, len(rq) - 1):
        yield f"request cut at {cut} bytes", rq[:cut]
    for title in (b"EVIL\x00NUL", b"\x1b[31mRED\x1b[0m", b"LINE\nBREAK", b"DEL\x7f", b"BACK\\SLASH", b"\xff\xfe\xfd"):
        yield f"called AE title {title!r}", _titled(_CALLED, title)
        yield f"calling AE title {title!r}", _titled(_CALLING, title)
    explicit = b"1.2.840.10008.1.2.1"
    yield "transfer syntax UID with an escape sequence", rq.replace(explicit, b"1.2.8\x1b[2J.10008.1.2", 1)
    for n in range(40):  # damaged items: any outcome but a crash will do
        damaged = bytearray(rq)
        for _ in range(rng.randrange(1, 4)):
            damaged[rng.randrange(74, len(rq))] = rng.randrange(256)
        yield f"damaged item {n}", bytes(damaged)


def _after_association() -> Iterator[tuple[str, bytes]]:
    """(what, bytes sent once the node has accepted a well-formed request)."""
    rq = association_request()
    yield "second A-ASSOCIATE-RQ with a control character", _titled(_CALLING, b"TWICE\x1b[2J")
    yield "A-ASSOCIATE-AC cut short", bytes([0x02, 0]) + struct.pack(">I", 10) + b"\x00\x01" + b"\x00" * 8
    yield "P-DATA-TF whose PDV overruns it", bytes([0x04, 0]) + struct.pack(">I", 8) + struct.pack(">I", 400) + b"\x01\x03\x00\x00"
    yield "A-ASSOCIATE-RQ of the wrong version", rq[:6] + b"\x00\x09" + rq[8:]


def _exchange(port: int, data: bytes, source: str, associate_first: bool = False) -> list[int]:
    """Send ``data`` on a new connection from address ``source`` (after a well-formed request
    when ``associate_first``); the types of the PDUs the node sent until it closed the
    connection or accepted an association. Each case comes from an address of its own, which
    names it in the node's log (a port may be reused by the next connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0)) as sock:
        answer: list[int] = []
        if associate_first:
            sock.sendall(association_request())
            answer = _pdu_types(_read(sock, until_accepted=True))
            assert answer == [AC]
        try:
            sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed on us already: what it sent before is still to be read
        return answer + _pdu_types(_read(sock, until_accepted=not associate_first))


def _read(sock: socket.socket, until_accepted: bool) -> bytes:
    """What the node sends until it closes the connection (or sends an A-ASSOCIATE-AC)."""
    data = bytearray()
    try:
        while not (until_accepted and AC in _pdu_types(bytes(data))):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return bytes(data)


def _pdu_types(data: bytes) -> list[int]:
    """The types of the whole PDUs in ``data``."""
    types, pos = [], 0
    while pos + 6 <= len(data):
        end = pos + 6 + struct.unpack(">I", data[pos + 2 : pos + 6])[0]
        if end > len(data):
            break
        types.append(data[pos])
        pos = end
    return types


def _lines_for(caplog: pytest.LogCaptureFixture, source: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and f" {source}:" in r.getMessage()]


def _still_serving(port: int) -> bool:
    ae = AE(ae_title="AFTERWARDS")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOM_NODE")
    ok = assoc.is_established and assoc.send_c_echo().Status == 0
    assoc.release()
    return ok


def _assert_clean(caplog: pytest.LogCaptureFixture) -> None:
    """No traceback anywhere, and no character of a peer's raw on any line."""
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]
    unprintable = [r.getMessage() for r in caplog.records if not r.getMessage().isprintable()]
    assert not unprintable


def test_malformed_association_requests_get_one_escaped_warning_each(node, caplog):
    caplog.set_level(logging.DEBUG)
    cases = [(what, data, f"127.0.1.{n + 1}") for n, (what, data) in enumerate(_before_association())]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda case: _exchange(node.port, case[1], case[2]), cases))
    accepted = 0
    for (what, _, source), answer in zip(cases, answers):
        if answer[:1] == [AC]:  # damage the node could live with: accepted, then the peer left
            accepted += 1
            continue
        lines = _lines_for(caplog, source)
        assert len(lines) == 1, f"{what}: {[r.getMessage() for r in lines]}"
        [line] = lines
        assert line.levelname == "WARNING" and "rejected" in line.getMessage(), what
        assert answer in ([], [ABORT]), f"{what}: the node answered {answer}"
    assert accepted < 40, "the damaged requests are mostly refused"
    _assert_clean(caplog)
    assert "\\x1b[31mRED" in caplog.text and "\x1b" not in caplog.text
    assert _still_serving(node.port)


@pytest.mark.parametrize(("what", "data"), list(_after_association()), ids=[w for w, _ in _after_association()])
def test_a_malformed_pdu_on_an_established_association_aborts_it_in_one_line(node, caplog, what, data):
    caplog.set_level(logging.DEBUG)
    answer = _exchange(node.port, data, "127.0.2.1", associate_first=True)
    assert answer[1:] == [ABORT], f"the node answered {answer}"
    [line] = _lines_for(caplog, "127.0.2.1")
    assert line.levelname == "WARNING" and "aborted" in line.getMessage()
    _assert_clean(caplog)
    assert _still_serving(node.port)


def test_pynetdicoms_lines_about_a_uid_with_an_escape_sequence_are_escaped(node, caplog):
    """pynetdicom logs a non-conformant UID of a DIMSE command as it came; the node's filter
    escapes such lines."""
    caplog.set_level(logging.INFO)
    ds = ct_series(StudySpec(), shape=(1, 8, 8), lesion_radius=None)[0]
    ds.SOPInstanceUID = "1.2.3.\x1b[31m4"
    ae = AE(ae_title="BADUID")
    ae.add_requested_context(ds.SOPClassUID)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="DICOM_NODE")
    assert assoc.is_established
    try:
        assert assoc.send_c_store(ds).Status == 0xA900
    finally:
        assoc.release()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("pynetdicom")]
    assert any("1.2.3.\\x1b[31m4" in line for line in lines), "pynetdicom's line is there, escaped"
    assert all(line.isprintable() for line in lines)
    assert _still_serving(node.port)
