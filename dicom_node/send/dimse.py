"""C-STORE SCU: one association for a whole set of files, every response status checked.

Files are sent in the transfer syntax they are stored in, as their stored bytes;
Explicit/Implicit VR Little Endian are proposed too, so an uncompressed file still goes to a
peer that accepts only those (pynetdicom converts it).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE

from dicom_node.config import DicomDestination
from dicom_node.errors import DestinationError
from dicom_node.net import NO_DELAY_HANDLER, pause_reactor, resume_reactor
from dicom_node.send.report import SendReport

__all__ = ["store_files", "echo"]

log = logging.getLogger(__name__)
_MAX_CONTEXTS = 128  # PS3.8: at most 128 presentation contexts per association


def _sop_class_and_syntax(path: Path) -> tuple[str, str]:
    meta = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"]).file_meta
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)


def _ae(calling_ae: str) -> AE:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    return ae


def _tls_args(dest: DicomDestination) -> tuple[ssl.SSLContext, str] | None:
    """DICOM TLS (PS3.15 B.1) where the destination has a ``tls:`` section."""
    return dest.tls.tls_args(dest.host) if dest.tls is not None else None


def echo(calling_ae: str, dest: DicomDestination) -> int:
    """C-ECHO ``dest``; returns the status (raises DestinationError when unreachable)."""
    ae = _ae(calling_ae)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate(
        dest.host, dest.port, ae_title=dest.ae_title, evt_handlers=[NO_DELAY_HANDLER], tls_args=_tls_args(dest)
    )
    if not assoc.is_established:
        raise DestinationError(f"{dest.ae_title}@{dest.host}:{dest.port} refused or unreachable")
    try:
        status = assoc.send_c_echo()
        if not status:
            raise DestinationError(f"{dest.ae_title}: no C-ECHO response")
        return int(status.Status)
    finally:
        assoc.release()


def store_files(
    calling_ae: str, dest: DicomDestination, paths: Sequence[Path], progress: Callable[[int], None] | None = None
) -> SendReport:
    """C-STORE ``paths`` to ``dest``; raises DestinationError when no association can be made."""
    report = SendReport()
    if not paths:
        return report
    by_class: dict[str, list[Path]] = {}
    syntaxes: dict[str, set[str]] = {}
    for path in paths:
        sop, ts = _sop_class_and_syntax(path)
        by_class.setdefault(sop, []).append(path)
        syntaxes.setdefault(sop, {ExplicitVRLittleEndian, ImplicitVRLittleEndian}).add(ts)
    classes = list(by_class)
    for start in range(0, len(classes), _MAX_CONTEXTS):
        batch = {sop: sorted(syntaxes[sop]) for sop in classes[start : start + _MAX_CONTEXTS]}
        files = [p for sop in batch for p in by_class[sop]]
        _send_batch(calling_ae, dest, files, batch, report, progress)
    return report


def _store_one(assoc: Association, path: Path, msg_id: int, paused: bool) -> Dataset:
    """C-STORE one file. With the reactor held (see ``pause_reactor``) and a context in the
    file's own transfer syntax, the stored bytes go as they are — no decoding, no re-encoding —
    and this thread reads the response; otherwise pynetdicom converts and sends it."""
    meta = dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"]).file_meta
    sop_class, syntax = str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)
    context = next(
        (cx for cx in assoc.accepted_contexts if cx.abstract_syntax == sop_class and cx.transfer_syntax[0] == syntax),
        None,
    )
    if not paused or context is None:
        status = assoc.send_c_store(dcmread(path))
        if paused and assoc.is_established:
            pause_reactor(assoc)  # pynetdicom's send_c_store lets the reactor go again
        return status
    data = path.read_bytes()
    req = C_STORE()
    req.MessageID = msg_id
    req.AffectedSOPClassUID = sop_class
    req.AffectedSOPInstanceUID = meta.MediaStorageSOPInstanceUID
    req.Priority = 2  # low: forwarding must not crowd out a modality's own traffic at the PACS
    req.DataSet = BytesIO(data[_dataset_offset(data) :])
    assoc.dimse.send_msg(req, context.context_id)
    _, rsp = assoc.dimse.get_msg(block=True)
    status = Dataset()
    if rsp is None:  # DIMSE timeout, as pynetdicom handles it
        assoc.abort()
        return status
    status.Status = rsp.Status
    return status


def _dataset_offset(data: bytes) -> int:
    """Where the data set starts: after the preamble, "DICM" and the File Meta group."""
    if data[128:132] != b"DICM" or data[132:136] != b"\x02\x00\x00\x00":
        raise ValueError("not a DICOM Part 10 file with a File Meta group length")
    return 144 + int.from_bytes(data[140:144], "little")


def _send_batch(
    calling_ae: str,
    dest: DicomDestination,
    paths: list[Path],
    contexts: dict[str, list[str]],
    report: SendReport,
    progress: Callable[[int], None] | None,
) -> None:
    ae = _ae(calling_ae)
    for sop, syntaxes in contexts.items():
        ae.add_requested_context(sop, syntaxes)
    assoc = ae.associate(
        dest.host, dest.port, ae_title=dest.ae_title, max_pdu=0, evt_handlers=[NO_DELAY_HANDLER],
        tls_args=_tls_args(dest),
    )  # fmt: skip
    if not assoc.is_established:
        raise DestinationError(f"{dest.ae_title}@{dest.host}:{dest.port} refused or unreachable", [str(p) for p in paths])
    try:
        paused = pause_reactor(assoc)
        for msg_id, path in enumerate(paths, start=1):
            try:
                status = _store_one(assoc, path, msg_id, paused)
            except (ValueError, RuntimeError) as exc:  # no usable context for this file
                report.failed[path] = str(exc)
                continue
            if not assoc.is_established:
                report.failed[path] = "association lost"
                break
            code = int(status.Status) if status and "Status" in status else None
            if code == 0x0000:
                report.sent.append(path)
            elif code is not None and code in (0xB000, 0xB006, 0xB007):
                report.warnings.append(path)
                report.sent.append(path)
            else:
                report.failed[path] = "no response" if code is None else f"status 0x{code:04X}"
            if progress:
                progress(1)
    finally:
        if assoc.is_established:
            resume_reactor(assoc)
            assoc.release()
    for path in paths:
        if path not in report.sent and path not in report.failed:
            report.failed[path] = "not sent: association ended"
