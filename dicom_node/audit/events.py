"""Builders for the audit messages of PS3.15 A.5.3, one per kind of thing the node does.

The node is always one participant (its AE title, role by the event); the peer is the
other, named by AE title and address (or an API token's name for the web face). Studies
are named by Study Instance UID with their SOP classes and counts — one message per
transfer or query, never one per instance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dicom_node.audit.message import (
    Action,
    AuditEvent,
    EventID,
    EventType,
    Outcome,
    Participant,
    ParticipantObject,
    Role,
)

__all__ = [
    "Peer",
    "application_activity",
    "association",
    "export",
    "instances_transferred",
    "patient_record",
    "query",
    "security_alert",
]

Peer = tuple[str, str | None]  # (AE title or token name, host)


def _outcome(ok: bool) -> Outcome:
    return Outcome.SUCCESS if ok else Outcome.MINOR_FAILURE


def _studies(studies: Mapping[str, Mapping[str, int]]) -> tuple[ParticipantObject, ...]:
    return tuple(
        ParticipantObject.study(uid, dict(classes))
        for uid, classes in sorted(studies.items())
    )


def _patients(
    patients: Iterable[tuple[str, str | None]],
) -> tuple[ParticipantObject, ...]:
    return tuple(
        ParticipantObject.patient(pid, name)
        for pid, name in sorted(set(patients), key=lambda p: p[0])
    )


def application_activity(
    node_ae: str, started: bool, host: str | None = None
) -> AuditEvent:
    """A.5.3.1: the node started or stopped."""
    return AuditEvent(
        EventID.APPLICATION_ACTIVITY,
        Action.EXECUTE,
        Outcome.SUCCESS,
        (Participant(node_ae, False, Role.APPLICATION, host),),
        event_type=EventType.APPLICATION_START
        if started
        else EventType.APPLICATION_STOP,
    )


def association(
    node_ae: str, peer: Peer, accepted: bool, reason: str | None = None
) -> AuditEvent:
    """A.5.3.12 User Authentication (Node Authentication): a peer asked to associate.

    A refusal is also a Security Alert's business; :func:`security_alert` is sent beside it
    by the caller when the refusal was for access control, not load.
    """
    return AuditEvent(
        EventID.USER_AUTHENTICATION,
        Action.EXECUTE,
        _outcome(accepted),
        (
            Participant(peer[0], True, None, peer[1]),
            Participant(node_ae, False, Role.APPLICATION),
        ),
        event_type=EventType.NODE_AUTHENTICATION,
        outcome_description=reason,
    )


def instances_transferred(
    node_ae: str,
    peer: Peer,
    received: bool,
    studies: Mapping[str, Mapping[str, int]],
    ok: bool,
    patients: Iterable[tuple[str, str | None]] = (),
    reason: str | None = None,
) -> AuditEvent:
    """A.5.3.5 DICOM Instances Transferred: one message per association/send, all studies in it.

    ``received``: the peer sent to us (we are the destination, action Create); otherwise we
    sent to it (action Read, the node is the source).
    """
    source, dest = (peer, (node_ae, None)) if received else ((node_ae, None), peer)
    return AuditEvent(
        EventID.INSTANCES_TRANSFERRED,
        Action.CREATE if received else Action.READ,
        _outcome(ok),
        (
            Participant(source[0], not received, Role.SOURCE, source[1]),
            Participant(dest[0], received, Role.DESTINATION, dest[1]),
        ),
        _studies(studies) + _patients(patients),
        outcome_description=reason,
    )


def query(
    node_ae: str,
    peer: Peer,
    sop_class_uid: str,
    identifier: bytes,
    ok: bool,
    reason: str | None = None,
) -> AuditEvent:
    """A.5.3.10 Query: the C-FIND identifier as the peer sent it (base64 in the message)."""
    return AuditEvent(
        EventID.QUERY,
        Action.EXECUTE,
        _outcome(ok),
        (
            Participant(peer[0], True, Role.SOURCE, peer[1]),
            Participant(node_ae, False, Role.DESTINATION),
        ),
        (ParticipantObject.sop_query(sop_class_uid, identifier),),
        outcome_description=reason,
    )


def export(
    node_ae: str,
    destination: Peer,
    studies: Mapping[str, Mapping[str, int]],
    ok: bool,
    deidentified: bool = False,
    reason: str | None = None,
) -> AuditEvent:
    """A.5.3.7 Export: studies leaving the node's trust domain (a forward, de-identified or not)."""
    objects = _studies(studies)
    if deidentified:
        objects = tuple(
            ParticipantObject(o.object_id, o.id_type, o.type_code, o.role, sop_classes=o.sop_classes,
                              details={"De-identified": "PS3.15 Annex E Basic Application Level Confidentiality Profile"})
            for o in objects
        )  # fmt: skip
    return AuditEvent(
        EventID.EXPORT,
        Action.READ,
        _outcome(ok),
        (
            Participant(node_ae, True, Role.SOURCE),
            Participant(destination[0], False, Role.DESTINATION_MEDIA, destination[1]),
        ),
        objects,
        outcome_description=reason,
    )


def security_alert(node_ae: str, peer: Peer, description: str) -> AuditEvent:
    """A.5.3.11 Security Alert: an access-control refusal (unknown peer, operation not permitted)."""
    return AuditEvent(
        EventID.SECURITY_ALERT,
        Action.EXECUTE,
        Outcome.MINOR_FAILURE,
        (
            Participant(peer[0], True, None, peer[1]),
            Participant(node_ae, False, Role.APPLICATION),
        ),
        (ParticipantObject.node(node_ae, description),),
        event_type=EventType.ACCESS_CONTROL,
        outcome_description=description,
    )


def patient_record(
    node_ae: str, user: Peer, action: Action, study_uids: Iterable[str], ok: bool
) -> AuditEvent:
    """A.5.3.9 Patient Record: a user of the web face read (or changed) a study."""
    return AuditEvent(
        EventID.PATIENT_RECORD,
        action,
        _outcome(ok),
        (
            Participant(user[0], True, None, user[1]),
            Participant(node_ae, False, Role.APPLICATION),
        ),
        _studies({uid: {} for uid in study_uids}),
    )
