"""Audit messages of the storage SCP (PS3.15 A.5.3): one User Authentication message per
association request (accepted or refused), and one DICOM Instances Transferred message per
association that stored anything — when it is released or aborted — naming every study in it
with its SOP classes and counts, never one per instance.

C-STOREs run in the association's own thread (pynetdicom's or the fast path's reactor), the
thread that later fires EVT_RELEASED/EVT_ABORTED, so the tally is kept per that thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from pynetdicom import evt
from pynetdicom.events import Event

from dicom_node.audit import AuditTrail
from dicom_node.audit import events as audit
from dicom_node.store.header import InstanceRecord

__all__ = ["TransferAudit"]


@dataclass
class _Tally:
    studies: dict[str, Counter[str]] = field(default_factory=dict)
    patients: set[tuple[str, str | None]] = field(default_factory=set)
    refused: int = 0


class TransferAudit:
    """Collects what each association stored; EVT handlers send the messages."""

    def __init__(self, node_ae: str, trail: AuditTrail) -> None:
        self.node = node_ae
        self.trail = trail
        self._tallies: dict[int, _Tally] = {}
        self._lock = threading.Lock()

    def _tally(self) -> _Tally:
        with self._lock:
            return self._tallies.setdefault(threading.get_ident(), _Tally())

    def stored(self, record: InstanceRecord) -> None:
        tally = self._tally()
        tally.studies.setdefault(record.study_uid, Counter())[record.sop_class_uid] += 1
        name = str(record.patient_name) if self.trail.patient_names else None
        tally.patients.add((record.patient_id or "", name))

    def refused(self) -> None:
        self._tally().refused += 1

    def accepted(self, event: Event) -> None:
        requestor = event.assoc.requestor
        self.trail.record(
            audit.association(
                self.node,
                (requestor.ae_title.strip(), requestor.address),
                accepted=True,
            )
        )

    def rejected(self, calling: str, host: str, reason: str) -> None:
        self.trail.record(
            audit.association(self.node, (calling, host), accepted=False, reason=reason)
        )
        self.trail.record(audit.security_alert(self.node, (calling, host), reason))

    def ended(self, event: Event) -> None:
        with self._lock:
            tally = self._tallies.pop(threading.get_ident(), None)
        if tally is None or not (tally.studies or tally.refused):
            return
        requestor = event.assoc.requestor
        reason = f"{tally.refused} instance(s) refused" if tally.refused else None
        self.trail.record(
            audit.instances_transferred(
                self.node, (requestor.ae_title.strip(), requestor.address), True,
                {uid: dict(c) for uid, c in tally.studies.items()}, ok=not tally.refused,
                patients=tally.patients, reason=reason,
            )
        )  # fmt: skip

    def handlers(self) -> list[tuple[evt.NotificationEvent, object]]:
        return [
            (evt.EVT_ACCEPTED, self.accepted),
            (evt.EVT_RELEASED, self.ended),
            (evt.EVT_ABORTED, self.ended),
        ]
