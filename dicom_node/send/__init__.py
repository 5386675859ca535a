"""Senders: C-STORE SCU and DICOMweb STOW-RS, chosen by the destination's kind."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from dicom_node.config import DicomDestination, DicomWebDestination, Settings
from dicom_node.errors import ConfigError
from dicom_node.send.report import SendReport

__all__ = ["SendReport", "send_files"]


def send_files(
    settings: Settings, destination: str, paths: Sequence[Path], progress: Callable[[int], None] | None = None
) -> SendReport:
    """Send ``paths`` to the named destination; the report lists what failed and why."""
    dest = settings.destinations.get(destination)
    if dest is None:
        raise ConfigError(f"unknown destination {destination!r}; known: {', '.join(settings.destinations) or 'none'}")
    if isinstance(dest, DicomDestination):
        from dicom_node.send.dimse import store_files

        return store_files(settings.ae_title, dest, paths, progress)
    if not isinstance(dest, DicomWebDestination):  # hl7/fhir/webhook destinations take notifications, not files
        raise ConfigError(f"destination {destination!r} is {dest.kind}: DICOM objects go to dicom or dicomweb destinations")
    from dicom_node.send.dicomweb import stow_files

    return stow_files(dest, paths, progress)
