"""DICOM audit messages (PS3.15 Annex A.5): the event, who took part, what was touched.

One :class:`AuditEvent` renders as the ``AuditMessage`` XML of the DICOM audit schema (A.5.1,
the RFC 3881 derivative): ``EventIdentification``, ``ActiveParticipant`` (each with a role),
``AuditSourceIdentification`` and ``ParticipantObjectIdentification``. Codes are the DCM
coding scheme's (PS3.16 CID 400-405), so a collector that knows the schema can sort them.
"""

from __future__ import annotations

import base64
import datetime as dt
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "Action",
    "AuditEvent",
    "Code",
    "EventID",
    "EventType",
    "Outcome",
    "Participant",
    "ParticipantObject",
    "Role",
]


@dataclass(frozen=True)
class Code:
    """A coded value as the schema writes it: ``csd-code``, ``codeSystemName``, ``originalText``."""

    code: str
    meaning: str
    scheme: str = "DCM"

    def attributes(self) -> dict[str, str]:
        return {
            "csd-code": self.code,
            "codeSystemName": self.scheme,
            "originalText": self.meaning,
        }


class EventID(Enum):
    """PS3.15 A.5.3 audit messages this node emits (CID 400, Audit Event ID)."""

    APPLICATION_ACTIVITY = Code("110100", "Application Activity")
    BEGIN_TRANSFERRING = Code("110102", "Begin Transferring DICOM Instances")
    INSTANCES_TRANSFERRED = Code("110104", "DICOM Instances Transferred")
    EXPORT = Code("110106", "Export")
    PATIENT_RECORD = Code("110110", "Patient Record")
    QUERY = Code("110112", "Query")
    SECURITY_ALERT = Code("110113", "Security Alert")
    USER_AUTHENTICATION = Code("110114", "User Authentication")


class EventType:
    """CID 401 Audit Event Type codes used with the events above."""

    APPLICATION_START = Code("110120", "Application Start")
    APPLICATION_STOP = Code("110121", "Application Stop")
    LOGIN = Code("110122", "Login")
    NODE_AUTHENTICATION = Code("110126", "Node Authentication")
    ACCESS_CONTROL = Code(
        "110130", "Unauthorized Access Attempt"
    )  # Security Alert subtype


class Role:
    """CID 402 Audit Active Participant Role ID codes."""

    APPLICATION = Code("110150", "Application")
    APPLICATION_LAUNCHER = Code("110151", "Application Launcher")
    DESTINATION = Code("110152", "Destination Role ID")
    SOURCE = Code("110153", "Source Role ID")
    DESTINATION_MEDIA = Code("110154", "Destination Media")


class Action(str, Enum):
    """EventActionCode (A.5.1): Create, Read, Update, Delete, Execute."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Outcome(str, Enum):
    """EventOutcomeIndicator (A.5.1): 0 success, 4 minor, 8 serious, 12 major failure."""

    SUCCESS = "0"
    MINOR_FAILURE = "4"
    SERIOUS_FAILURE = "8"
    MAJOR_FAILURE = "12"


@dataclass(frozen=True)
class Participant:
    """An ``ActiveParticipant``: an AE title (``user_id``), its host, whether it asked."""

    user_id: str
    requestor: bool
    role: Code | None = None
    host: str | None = None
    alternative_user_id: str | None = None

    def element(self) -> ET.Element:
        attrs = {
            "UserID": self.user_id,
            "UserIsRequestor": "true" if self.requestor else "false",
        }
        if self.alternative_user_id:
            attrs["AlternativeUserID"] = self.alternative_user_id
        if self.host:
            # 1: machine name, 2: IP address (A.5.1 NetworkAccessPointTypeCode)
            attrs["NetworkAccessPointTypeCode"] = "2" if _is_ip(self.host) else "1"
            attrs["NetworkAccessPointID"] = self.host
        node = ET.Element("ActiveParticipant", attrs)
        if self.role is not None:
            ET.SubElement(node, "RoleIDCode", self.role.attributes())
        return node


@dataclass(frozen=True)
class ParticipantObject:
    """A ``ParticipantObjectIdentification``: a study (by UID), a patient, a query, a node.

    ``type_code``/``role`` follow A.5.2: 2/3 for a study (system object, report), 1/1 for a
    patient (person, patient), 2/24 for a query. ``query`` is the C-FIND identifier, sent
    base64 as ``ParticipantObjectQuery``; ``details`` become ``ParticipantObjectDetail``.
    """

    object_id: str
    id_type: Code
    type_code: str
    role: str
    name: str | None = None
    query: bytes | None = None
    sop_classes: dict[str, int] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)

    def element(self) -> ET.Element:
        node = ET.Element(
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": self.object_id,
                "ParticipantObjectTypeCode": self.type_code,
                "ParticipantObjectTypeCodeRole": self.role,
            },
        )
        ET.SubElement(node, "ParticipantObjectIDTypeCode", self.id_type.attributes())
        if self.name:
            ET.SubElement(node, "ParticipantObjectName").text = self.name
        if self.query is not None:
            ET.SubElement(node, "ParticipantObjectQuery").text = base64.b64encode(
                self.query
            ).decode("ascii")
        for key, value in self.details.items():
            ET.SubElement(
                node,
                "ParticipantObjectDetail",
                {
                    "type": key,
                    "value": base64.b64encode(value.encode()).decode("ascii"),
                },
            )
        if self.sop_classes:
            description = ET.SubElement(node, "ParticipantObjectDescription")
            for uid, count in sorted(self.sop_classes.items()):
                ET.SubElement(
                    description,
                    "SOPClass",
                    {"UID": uid, "NumberOfInstances": str(count)},
                )
        return node

    @classmethod
    def study(
        cls, study_uid: str, sop_classes: dict[str, int] | None = None
    ) -> ParticipantObject:
        return cls(
            study_uid,
            Code("110180", "Study Instance UID"),
            "2",
            "3",
            sop_classes=sop_classes or {},
        )

    @classmethod
    def patient(cls, patient_id: str, name: str | None = None) -> ParticipantObject:
        return cls(
            patient_id, Code("2", "Patient Number", "RFC-3881"), "1", "1", name=name
        )

    @classmethod
    def sop_query(cls, sop_class_uid: str, identifier: bytes) -> ParticipantObject:
        return cls(
            sop_class_uid, Code("110181", "SOP Class UID"), "2", "3", query=identifier
        )

    @classmethod
    def node(cls, name: str, description: str) -> ParticipantObject:
        """The object of a Security Alert: the node (A.5.3.11, ID type 'URI' is the usual)."""
        return cls(
            name,
            Code("12", "URI", "RFC-3881"),
            "2",
            "13",
            details={"Alert Description": description},
        )


@dataclass(frozen=True)
class AuditEvent:
    """One audit message; :meth:`to_xml` gives the A.5 payload, :meth:`to_json` its JSON form."""

    event_id: EventID
    action: Action
    outcome: Outcome
    participants: tuple[Participant, ...]
    objects: tuple[ParticipantObject, ...] = ()
    event_type: Code | None = None
    outcome_description: str | None = None
    when: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def to_element(self, source_id: str) -> ET.Element:
        root = ET.Element("AuditMessage")
        event = ET.SubElement(
            root,
            "EventIdentification",
            {
                "EventActionCode": self.action.value,
                "EventDateTime": self.when.isoformat(timespec="milliseconds"),
                "EventOutcomeIndicator": self.outcome.value,
            },
        )
        ET.SubElement(event, "EventID", self.event_id.value.attributes())
        if self.event_type is not None:
            ET.SubElement(event, "EventTypeCode", self.event_type.attributes())
        if self.outcome_description:
            ET.SubElement(
                event, "EventOutcomeDescription"
            ).text = self.outcome_description
        for participant in self.participants:
            root.append(participant.element())
        source = ET.SubElement(
            root, "AuditSourceIdentification", {"AuditSourceID": source_id}
        )
        # 4: Application Server process tier (A.5.1 AuditSourceTypeCode)
        ET.SubElement(
            source,
            "AuditSourceTypeCode",
            {
                "csd-code": "4",
                "codeSystemName": "DCM",
                "originalText": "Application Server",
            },
        )
        for obj in self.objects:
            root.append(obj.element())
        return root

    def to_xml(self, source_id: str) -> str:
        return ET.tostring(self.to_element(source_id), encoding="unicode")

    def to_json(self, source_id: str) -> dict[str, Any]:
        """The same content as the XML, for the local JSON-lines trail (greppable by field)."""
        return {
            "time": self.when.isoformat(timespec="milliseconds"),
            "source": source_id,
            "event_id": self.event_id.value.code,
            "event": self.event_id.value.meaning,
            "event_type": self.event_type.meaning if self.event_type else None,
            "action": self.action.value,
            "outcome": self.outcome.value,
            "outcome_description": self.outcome_description,
            "participants": [
                {
                    "user_id": p.user_id,
                    "requestor": p.requestor,
                    "host": p.host,
                    "role": p.role.meaning if p.role else None,
                }
                for p in self.participants
            ],
            "objects": [
                {
                    "id": o.object_id,
                    "id_type": o.id_type.meaning,
                    "name": o.name,
                    "sop_classes": o.sop_classes,
                }
                for o in self.objects
            ],
            "xml": self.to_xml(source_id),
        }


def _is_ip(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False
