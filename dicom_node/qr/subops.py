"""The C-STORE sub-operations of C-MOVE and C-GET (PS3.4 C.4.2.3, C.4.3.3): which presentation
contexts to propose, and each stored file made ready for what the peer accepted.

Files go out in the transfer syntax they were stored in, so the pixel data is never
transcoded unless the peer refused that syntax. Then, in order: an uncompressed syntax
(pynetdicom converts between those itself; an encapsulated file is decompressed first), or a
lossless compressed syntax the peer accepted instead (a C-GET requestor may offer several
syntaxes in one context and get a compressed one). Lossy syntaxes are never produced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context

from dicom_node.qr.query import InstanceRef
from dicom_node.qr.rawsend import RawSender, StoredFile

__all__ = ["proposed_contexts", "PeerContexts", "prepare"]

log = logging.getLogger(__name__)

_MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: odd context IDs 1..255
_UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
_LOSSLESS = [JPEGLSLossless, JPEG2000Lossless, RLELossless]  # pydicom can encode these


def proposed_contexts(pairs: Iterable[tuple[str, str]]) -> list[PresentationContext]:
    """One context per SOP class offering the uncompressed syntaxes (the fallback, so first:
    it is what makes every instance sendable), then, per stored (SOP class, transfer syntax)
    other than Explicit VR Little Endian, a context offering exactly that syntax."""
    exact: list[PresentationContext] = []
    fallback: dict[str, PresentationContext] = {}
    for sop_class, ts in sorted(set(pairs)):
        if ts and ts != ExplicitVRLittleEndian:
            exact.append(build_context(sop_class, [ts]))
        fallback.setdefault(sop_class, build_context(sop_class, _UNCOMPRESSED))
    contexts = [*fallback.values(), *exact]
    if len(contexts) > _MAX_CONTEXTS:
        log.warning("%d presentation contexts needed, proposing the first %d", len(contexts), _MAX_CONTEXTS)
    return contexts[:_MAX_CONTEXTS]


class PeerContexts:
    """What the storage SCP of the sub-operations accepted, with us as SCU.

    For C-MOVE the sub-operation association is opened by pynetdicom after the handler's
    second yield; ``capture`` (bound to its EVT_ESTABLISHED) records it. For C-GET it is the
    requestor's own association.
    """

    def __init__(self) -> None:
        self.accepted: set[tuple[str, str]] = set()
        self.sender: RawSender | None = None

    def capture(self, event: Event, own_reads: bool = False) -> None:
        """Record the accepted contexts and send sub-operations raw where possible (reading
        their responses too with ``own_reads``: the C-MOVE sub-operation association)."""
        self.sender = RawSender.install(event.assoc, own_reads)
        self.accepted = {
            (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
            for cx in event.assoc.accepted_contexts
            if cx.as_scu and cx.transfer_syntax
        }

    def capture_move(self, event: Event) -> None:
        self.capture(event, own_reads=True)

    def release(self) -> None:
        """The sub-operations are over: hand the association back to pynetdicom."""
        if self.sender is not None:
            self.sender.resume()

    def allows(self, sop_class: str, ts: str) -> bool:
        return (sop_class, ts) in self.accepted

    def conversion_target(self, sop_class: str) -> str | None:
        """The syntax to convert to when the stored one was refused, or None."""
        for ts in (*_UNCOMPRESSED, *_LOSSLESS):
            if (sop_class, ts) in self.accepted:
                return ts
        return None


def _unsendable(ref: InstanceRef) -> Dataset:
    """A dataset pynetdicom cannot send (no file meta): it counts the sub-operation as failed
    and lists the SOP Instance UID in the Failed SOP Instance UID List (C.4.2.1.4.2)."""
    ds = Dataset()
    ds.SOPClassUID = ref.sop_class_uid
    ds.SOPInstanceUID = ref.sop_instance_uid
    return ds


def prepare(ref: InstanceRef, peer: PeerContexts) -> Dataset:
    """The dataset to send for ``ref``: the stored file itself where the peer accepts its
    transfer syntax, converted losslessly where it accepts another one."""
    if peer.allows(ref.sop_class_uid, ref.transfer_syntax) and peer.sender is not None:
        return StoredFile(ref)
    try:
        ds = dcmread(ref.path)
    except (OSError, ValueError, EOFError) as exc:
        log.error("stored file for a retrieve sub-operation is unreadable: %s", exc)
        return _unsendable(ref)
    ts = UID(str(ds.file_meta.get("TransferSyntaxUID", ref.transfer_syntax)))
    if peer.allows(ref.sop_class_uid, ts):
        return ds
    target = peer.conversion_target(ref.sop_class_uid)
    if target is None or (target in _UNCOMPRESSED and not ts.is_compressed):
        return ds  # pynetdicom converts, or fails the sub-operation and lists the UID
    try:
        # Same pixels, so the same instance (PS3.5 8.2): keep the SOP Instance UID.
        if ts.is_compressed:
            ds.decompress(generate_instance_uid=False)
        if target not in _UNCOMPRESSED:
            ds.compress(target, generate_instance_uid=False)
    except (AttributeError, RuntimeError, ValueError, NotImplementedError) as exc:
        log.error("cannot convert %s to %s for a peer that refused it: %s", ts.name, UID(target).name, exc)
        return _unsendable(ref)
    log.info("sub-operation converted from %s to %s: the peer refused the stored syntax", ts.name, UID(target).name)
    return ds
