"""Reading an imaging order (HL7 ORM^O01 or OMI^O23) and recording it in the index.

Where each fact is read (IHE RAD SWF, v2.3.1 ORM and v2.5.1 OMI):

- accession number: IPC-1 (OMI), else OBR-18 (ORM "placer field 1");
- requested procedure: OBR-44 procedure code, else OBR-4 universal service ID (code^text);
- priority: TQ1-9 (OMI), else OBR-27.6 / ORC-7.6 (ORM quantity/timing): S stat, A ASAP, R routine;
- Study Instance UID when the RIS assigns it: IPC-3 (OMI) or ZDS-1 (ORM);
- placer order number ORC-2, patient ID PID-3, order control ORC-1.

An order without an accession number cannot be matched to a study and is refused (the caller
answers AE). A STAT order moves the jobs of its study that wait to be dispatched (pending or
waiting to retry) to the front: the relay hands out jobs by priority. Jobs already handed to
the broker keep their place there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import hl7
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from dicom_node.errors import NodeError
from dicom_node.routing.rules import PRIORITY
from dicom_node.store.index import Index
from dicom_node.store.models import Job, JobEvent, Order, Study

__all__ = ["OrderError", "OrderFacts", "order_attributes", "read_order", "record_order"]

log = logging.getLogger(__name__)

_PRIORITY = {"S": "stat", "A": "asap", "R": "routine"}  # HL7 table 0485
STAT_PRIORITY = PRIORITY["stat"]


class OrderError(NodeError):
    """A message that is not a usable order; its text goes back in the ACK (AE)."""


@dataclass(frozen=True)
class OrderFacts:
    accession_number: str
    priority: str
    procedure_code: str
    procedure: str
    placer_order: str
    patient_id: str
    study_uid: str
    order_control: str
    message_type: str


def _get(message: hl7.Message, segment: str, field: int, component: int = 1) -> str:
    """The unescaped component of the first ``segment``'s field, '' when absent."""
    try:
        seg = message.segment(segment)
    except KeyError:
        return ""
    if len(seg) <= field:
        return ""
    parts = str(seg[field]).split("~")[0].split("^")
    return message.unescape(parts[component - 1]) if len(parts) >= component else ""


def read_order(message: hl7.Message) -> OrderFacts:
    """The order in ``message``; OrderError when it is not one or names no accession number."""
    kind = f"{_get(message, 'MSH', 9, 1)}^{_get(message, 'MSH', 9, 2)}"
    if kind not in ("ORM^O01", "OMI^O23"):
        raise OrderError(f"{kind} is not an imaging order (ORM^O01 or OMI^O23)")
    accession = _get(message, "IPC", 1) or _get(message, "OBR", 18)
    if not accession:
        raise OrderError("the order has no accession number (IPC-1 or OBR-18)")
    code = _get(message, "OBR", 44) or _get(message, "OBR", 4)
    text = _get(message, "OBR", 44, 2) or _get(message, "OBR", 4, 2)
    flag = _get(message, "TQ1", 9) or _get(message, "OBR", 27, 6) or _get(message, "ORC", 7, 6)
    return OrderFacts(
        accession_number=accession, priority=_PRIORITY.get(flag.upper(), "routine"), procedure_code=code,
        procedure=text, placer_order=_get(message, "ORC", 2), patient_id=_get(message, "PID", 3),
        study_uid=_get(message, "IPC", 3) or _get(message, "ZDS", 1), order_control=_get(message, "ORC", 1) or "NW",
        message_type=kind,
    )  # fmt: skip


def record_order(index: Index, facts: OrderFacts) -> int:
    """Store (or update) the order; for a STAT order, move its study's waiting jobs to the
    front. Returns how many jobs moved."""
    with index.sessions.begin() as session:
        row = session.scalar(select(Order).where(Order.accession_number == facts.accession_number))
        if row is None:
            row = Order(accession_number=facts.accession_number)
            session.add(row)
        for name in ("study_uid", "patient_id", "placer_order", "procedure_code", "procedure", "priority", "order_control", "message_type"):
            setattr(row, name, getattr(facts, name))
        moved = _move_to_front(session, facts) if facts.priority == "stat" else 0
    log.info("order %s recorded (%s, %s); %d job(s) moved to the front", facts.message_type, facts.priority, facts.order_control, moved)
    return moved


def _move_to_front(session: Session, facts: OrderFacts) -> int:
    studies = select(Study.study_uid).where(Study.accession_number == facts.accession_number)
    match = Job.study_uid.in_(studies) if not facts.study_uid else or_(Job.study_uid.in_(studies), Job.study_uid == facts.study_uid)
    waiting = session.scalars(
        select(Job).where(match, Job.state.in_(("pending", "retry")), Job.priority > STAT_PRIORITY)
    ).all()
    for job in waiting:
        session.add(JobEvent(study_uid=job.study_uid, job_id=job.id, event="priority", detail=f"STAT order: priority {job.priority} → {STAT_PRIORITY}"))
    if waiting:
        session.execute(update(Job).where(Job.id.in_([j.id for j in waiting])).values(priority=STAT_PRIORITY))
    return len(waiting)


def order_attributes(session: Session, accession_number: str, study_uid: str) -> dict[str, Any]:
    """``order.*`` attributes for the routing rules: the order with this accession number (or
    assigned this Study Instance UID); empty when the RIS sent none."""
    clauses = [Order.accession_number == accession_number] if accession_number else []
    if study_uid:
        clauses.append(Order.study_uid == study_uid)
    if not clauses:
        return {}
    row = session.scalars(select(Order).where(or_(*clauses)).order_by(Order.received_at.desc())).first()
    if row is None:
        return {}
    return {
        "order.accession_number": row.accession_number, "order.priority": row.priority,
        "order.procedure_code": row.procedure_code, "order.procedure": row.procedure, "order.placer_order": row.placer_order,
    }  # fmt: skip
