"""Event handlers of the SCP. They never raise to the peer: every outcome is a DIMSE status
(PS3.4 Annex B.2.3) and a log line saying why.

C-STORE order of events — the success status leaves only after step 4:
1. the data set is streamed to a temp file in ``incoming`` — by the C-STORE fast path
   (:mod:`dicom_node.receive.fastpath`) on established associations, else by pynetdicom
   (STORE_RECV_CHUNKED_DATASET) — so a 1 GB multi-frame object never sits in memory;
2. every element of the file is checked and its index values read
   (:func:`~dicom_node.store.header.read_header`), and its UIDs are compared with the request's;
3. the file is fdatasync'ed and renamed to its place in the store, its folder fsync'ed;
4. its index record is queued for the batched index writer (reconciliation covers a crash).

Bad input is refused, not stored and quarantined: the sender learns at once, and nothing the
node cannot read enters the store, where a loop shared by every study (the router reads every
element of a series' first instance) would fail on it at every round.

* 0xC000: a data set pydicom cannot read in full — truncated, not encoded in its transfer
  syntax, or with an element it cannot convert to a value (an unknown VR, a US value of 3 bytes,
  a sequence whose items do not fill it).
* 0xA900: a UID missing, longer than 64 characters or not digits and dots (PS3.5 9.1: a UID is
  never cut short, since one cut short may be another instance's), or a SOP Class or SOP
  Instance UID other than the request's Affected SOP Class / Instance UID (PS3.4 B.2.3).

Step 2 walks every element header, sequence items included, and converts no value: some
5–15 µs more an instance than reading the index values alone, where converting every value with
pydicom costs 0.6–1.6 ms (timeit on 64² and 512² CT slices, explicit and implicit VR, on a busy
2-core machine). Files the walk cannot vouch for, pydicom reads and converts in full.
"""

from __future__ import annotations

import errno
import logging
from enum import IntEnum
from pathlib import Path

from pynetdicom.events import Event

from dicom_node.config import Settings
from dicom_node.deid.inbound import Reidentifier
from dicom_node.receive.access import PeerPolicy, refusal_comment
from dicom_node.receive.auditing import TransferAudit
from dicom_node.store.filestore import FileStore
from dicom_node.store.header import HeaderError, read_header
from dicom_node.store.writer import IndexWriter

__all__ = ["AccessControl", "Status", "StoreHandler"]

log = logging.getLogger(__name__)


class Status(IntEnum):
    """The DIMSE statuses the storage SCP answers with."""

    SUCCESS = 0x0000
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    OUT_OF_RESOURCES = 0xA700
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000


class AccessControl:
    """Calling-AE allowlist (optionally pinned to a host): others get A-ASSOCIATE-RJ
    (rejected-permanent, service-user, calling-AE-title-not-recognized)."""

    def __init__(self, settings: Settings, audit: TransferAudit | None = None) -> None:
        self.peers = settings.allowed_peers
        self.audit = audit

    def on_requested(self, event: Event) -> None:
        if not self.peers:
            return
        calling = event.assoc.requestor.primitive.calling_ae_title.strip()
        address = event.assoc.requestor.address
        for peer in self.peers:
            if peer.ae_title == calling and (peer.host is None or peer.host == address):
                return
        log.warning("association from %r at %s rejected: not in allowed_peers", calling, address)
        if self.audit is not None:
            self.audit.rejected(calling, address, "calling AE title not in allowed_peers")
        event.assoc.acse.send_reject(0x01, 0x01, 0x03)
        event.assoc.kill()  # as pynetdicom's own rejection does: lets the DUL send the RJ first


class StoreHandler:
    """EVT_C_STORE: validate, make durable, index, answer."""

    def __init__(
        self, settings: Settings, store: FileStore, writer: IndexWriter, accepted: set[str],
        audit: TransferAudit | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.store = store
        self.writer = writer
        self.accepted = accepted
        self.min_free = settings.min_free_disk_mb * 1024 * 1024
        self.reidentifier = Reidentifier(settings)
        self.policy = PeerPolicy(settings)
        self.audit = audit

    def __call__(self, event: Event) -> int:
        req = event.request
        calling = event.assoc.requestor.ae_title.strip()
        return self.store_file(Path(event.dataset_path), str(req.AffectedSOPClassUID), str(req.AffectedSOPInstanceUID), calling)

    def store_file(self, temp: Path, sop_class: str, sop_instance: str, calling: str, fd: int | None = None) -> int:
        """Steps 2–4 for the received Part 10 file ``temp`` (in ``incoming``; ``fd``: open on it
        for reading, if the caller has it); the status to answer. Also called by the fast path
        (:mod:`dicom_node.receive.fastpath`)."""
        try:
            status = self._store(temp, sop_class, sop_instance, calling, fd)
            if status != Status.SUCCESS and self.audit is not None:
                self.audit.refused()
            return status
        except Exception:  # a bug must not take the association or the node down
            log.exception("C-STORE from %s failed unexpectedly; answering 0xC000", calling)
            return Status.CANNOT_UNDERSTAND
        finally:
            temp.unlink(missing_ok=True)  # anything not committed was never acknowledged

    def _store(self, temp: Path, sop_class: str, sop_instance: str, calling: str, fd: int | None) -> int:
        if not self.policy.permits(calling, None, "store"):
            log.warning("C-STORE from %s refused (0x0122): %s", calling, refusal_comment("store", calling))
            return Status.SOP_CLASS_NOT_SUPPORTED
        if sop_class not in self.accepted:
            log.warning("C-STORE from %s refused: SOP class %s not supported", calling, sop_class)
            return Status.SOP_CLASS_NOT_SUPPORTED
        if self.store.free_bytes() < self.min_free:
            log.error("C-STORE from %s refused: less than %d MB free in the store", calling, self.settings.min_free_disk_mb)
            return Status.OUT_OF_RESOURCES
        try:
            record = read_header(temp, fd)
        except HeaderError as exc:
            log.warning("C-STORE %s from %s refused (0x%04X): %s", sop_instance, calling, exc.status, exc.reason)
            return exc.status
        if record.sop_class_uid != sop_class:
            log.warning(
                "C-STORE %s from %s refused (0xA900): dataset SOP class %s, request says %s",
                sop_instance, calling, record.sop_class_uid or "(none)", sop_class,
            )  # fmt: skip
            return Status.DATASET_DOES_NOT_MATCH_SOP_CLASS
        if record.sop_instance_uid != sop_instance:
            log.warning(
                "C-STORE %s from %s refused (0xA900): dataset SOP Instance UID is %s",
                sop_instance, calling, record.sop_instance_uid,
            )  # fmt: skip
            return Status.DATASET_DOES_NOT_MATCH_SOP_CLASS
        if self.reidentifier.applies(calling) and self.reidentifier.rewrite(temp, calling):
            fd, record = None, read_header(temp)  # what returns from a de-identifying destination, mapped back
        final = self.store.path_for(record.study_uid, record.series_uid, record.sop_instance_uid)
        if self.settings.duplicate_policy == "keep" and final.exists():
            log.info("C-STORE %s from %s: already stored, kept the first copy", record.sop_instance_uid, calling)
            return Status.SUCCESS
        try:
            final = self.store.commit(temp, record.study_uid, record.series_uid, record.sop_instance_uid, fd)
        except OSError as exc:
            return self.not_stored(exc, record.sop_instance_uid, calling)
        record.path, record.calling_ae = str(final), calling
        self.writer.put(record)
        if self.audit is not None:
            self.audit.stored(record)
        log.debug("stored %s (%d bytes) from %s", record.sop_instance_uid, record.size, calling)
        return Status.SUCCESS

    def not_stored(self, exc: OSError, sop_instance: str, calling: str) -> int:
        """The received file could not be written or committed: out of resources."""
        reason = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else str(exc)
        log.error("C-STORE %s from %s not stored (0xA700): %s", sop_instance, calling, reason)
        return Status.OUT_OF_RESOURCES


def handle_echo(event: Event) -> int:
    """C-ECHO: we are up."""
    return Status.SUCCESS

