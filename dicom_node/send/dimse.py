"""C-STORE SCU: one association for a whole set of files, every response status checked.

Files are sent in the transfer syntax they are stored in; Explicit/Implicit VR Little Endian
are proposed too, so an uncompressed file still goes to a peer that accepts only those.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from dicom_node.config import DicomDestination
from dicom_node.errors import DestinationError
from dicom_node.net import NO_DELAY_HANDLER
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


def echo(calling_ae: str, dest: DicomDestination) -> int:
    """C-ECHO ``dest``; returns the status (raises DestinationError when unreachable)."""
    ae = _ae(calling_ae)
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title, evt_handlers=[NO_DELAY_HANDLER])
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
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title, max_pdu=0, evt_handlers=[NO_DELAY_HANDLER])
    if not assoc.is_established:
        raise DestinationError(f"{dest.ae_title}@{dest.host}:{dest.port} refused or unreachable", [str(p) for p in paths])
    try:
        for path in paths:
            try:
                status = assoc.send_c_store(dcmread(path))
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
            assoc.release()
    for path in paths:
        if path not in report.sent and path not in report.failed:
            report.failed[path] = "not sent: association ended"
