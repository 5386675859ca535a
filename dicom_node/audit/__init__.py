"""The audit trail (PS3.15 Annex A.5): DICOM audit messages to an RFC 5424 syslog collector
and/or a local JSON-lines file.

``message`` builds the A.5 XML, ``events`` one builder per audited activity, ``syslog`` and
``jsonl`` are the sinks, ``trail`` sends an event to every configured sink.
"""

from dicom_node.audit.message import Action, AuditEvent, EventID, Outcome
from dicom_node.audit.settings import AuditFileSettings, AuditSettings, SyslogSettings
from dicom_node.audit.trail import AuditTrail

__all__ = [
    "Action",
    "AuditEvent",
    "AuditFileSettings",
    "AuditSettings",
    "AuditTrail",
    "EventID",
    "Outcome",
    "SyslogSettings",
]
