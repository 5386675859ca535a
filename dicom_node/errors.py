"""The node's exception tree.

    NodeError
    ├── ConfigError          invalid settings or rules; raised at start-up, names the field
    ├── PermanentError       retrying cannot help (bad study, unknown pipeline): dead-letter at once
    │   └── StudyError       a study/series a pipeline cannot process
    └── TransientError       retry with back-off (destination refused, broker hiccup, disk busy)
        └── DestinationError a DICOM/DICOMweb peer refused or failed part of a transfer

Handlers convert these to DIMSE statuses only at the network boundary.
"""

from __future__ import annotations

__all__ = [
    "NodeError",
    "ConfigError",
    "PermanentError",
    "StudyError",
    "TransientError",
    "DestinationError",
]


class NodeError(Exception):
    """Base of every error the node raises on purpose."""


class ConfigError(NodeError):
    """Settings or routing rules are invalid; the message names the offending field."""


class PermanentError(NodeError):
    """Retrying the same work gives the same failure."""


class StudyError(PermanentError):
    """A study or series cannot be processed as it is (inconsistent, unsupported)."""


class TransientError(NodeError):
    """A failure that may pass: retry with back-off."""


class DestinationError(TransientError):
    """A destination refused the association or failed some instances."""

    def __init__(self, message: str, failed_instances: list[str] | None = None) -> None:
        super().__init__(message)
        self.failed_instances = failed_instances or []
