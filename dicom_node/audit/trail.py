"""The audit trail: hands each :class:`AuditEvent` to the configured sinks.

Recording never raises into the DICOM or HTTP path that audits: a sink that fails is logged
at ERROR (the event's ID and outcome, no PHI) so the loss is visible, and the operation
itself goes on — refusing studies because the collector is down would stop a hospital's
imaging for a logging outage.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from dicom_node.audit.jsonl import JsonLinesTrail
from dicom_node.audit.message import AuditEvent, Outcome
from dicom_node.audit.settings import AuditSettings
from dicom_node.audit.syslog import SyslogSender, format_message

if TYPE_CHECKING:
    from dicom_node.config import Settings

__all__ = ["AuditTrail"]

log = logging.getLogger(__name__)


class AuditTrail:
    """Sinks built once from the settings; :meth:`record` sends one event to each."""

    def __init__(
        self,
        settings: AuditSettings,
        default_source_id: str,
        default_file: Path | None = None,
    ) -> None:
        self.settings = settings
        self.source_id = settings.source_id or default_source_id
        self._syslog = SyslogSender(settings.syslog) if settings.syslog else None
        self._file: JsonLinesTrail | None = None
        if settings.file is not None:
            path = settings.file.path or default_file
            if path is None:
                raise ValueError("audit.file needs a path")
            self._file = JsonLinesTrail(
                Path(path),
                int(settings.file.max_mb * 1024 * 1024),
                settings.file.backups,
            )

    @classmethod
    def for_node(cls, settings: Settings) -> AuditTrail:
        """The trail of a node: named by its AE title, the file under ``data_dir/audit``."""
        return cls(
            settings.audit,
            settings.ae_title,
            settings.data_dir / "audit" / "audit.jsonl",
        )

    @property
    def enabled(self) -> bool:
        return self._syslog is not None or self._file is not None

    @property
    def patient_names(self) -> bool:
        return self.settings.patient_names

    def record(self, event: AuditEvent) -> None:
        if self._syslog is not None:
            try:
                failure = event.outcome is not Outcome.SUCCESS
                self._syslog.send(
                    format_message(event.to_xml(self.source_id), failure, event.when)
                )
            except OSError as exc:
                log.error(
                    "audit message %s (outcome %s) not sent to syslog: %s",
                    event.event_id.value.code,
                    event.outcome.value,
                    exc,
                )
        if self._file is not None:
            try:
                self._file.write(event.to_json(self.source_id))
            except OSError as exc:
                log.error(
                    "audit message %s (outcome %s) not written: %s",
                    event.event_id.value.code,
                    event.outcome.value,
                    exc,
                )

    def close(self) -> None:
        if self._syslog is not None:
            self._syslog.close()
