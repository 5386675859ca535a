"""The ``audit:`` section of the settings: where the PS3.15 A.5 trail goes.

Kept beside the audit package (``dicom_node.config`` embeds it) so the audit code needs no
import of the whole settings module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

__all__ = ["AuditFileSettings", "AuditSettings", "SyslogSettings"]


class SyslogSettings(BaseModel):
    """An audit record repository (collector) taking RFC 5424 messages.

    ``udp`` (RFC 5426) loses messages silently when the collector is down; ``tcp`` (RFC 6587)
    and ``tls`` (RFC 5425, what IHE ATNA asks for) frame each by its octet count.
    """

    host: str
    port: int = Field(6514, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] = "tls"
    ca_certificates: Path | None = Field(
        None, description="CA bundle the collector's certificate is checked against"
    )
    certificate: Path | None = Field(
        None, description="our client certificate, if the collector asks for one"
    )
    private_key: Path | None = None
    timeout_s: float = Field(5.0, gt=0)

    @model_validator(mode="after")
    def _check_pair(self) -> SyslogSettings:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private_key go together")
        return self


class AuditFileSettings(BaseModel):
    """The local append-only JSON-lines trail; rotated past ``max_mb`` keeping ``backups`` files."""

    path: Path | None = Field(None, description="None: data_dir/audit/audit.jsonl")
    max_mb: float = Field(50.0, gt=0)
    backups: int = Field(10, ge=1)


class AuditSettings(BaseModel):
    """Off unless a sink is set; ``source_id`` names the node in AuditSourceIdentification."""

    syslog: SyslogSettings | None = None
    file: AuditFileSettings | None = None
    source_id: str | None = Field(None, description="None: the node's AE title")
    patient_names: bool = Field(
        False, description="put patient names in audit messages (IDs and UIDs always)"
    )
