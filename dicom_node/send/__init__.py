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
    if not isinstance(dest, DicomDestination | DicomWebDestination):  # hl7/fhir/webhook take notifications
        raise ConfigError(f"destination {destination!r} is {dest.kind}: DICOM objects go to dicom or dicomweb destinations")
    if dest.deidentify is not None:
        from dicom_node.deid.outbound import send_deidentified

        return send_deidentified(
            settings, destination, dest, dest.deidentify, paths, lambda copies: _send(settings, dest, copies, progress)
        )
    return _send(settings, dest, paths, progress)


def _send(
    settings: Settings,
    dest: DicomDestination | DicomWebDestination,
    paths: Sequence[Path],
    progress: Callable[[int], None] | None,
) -> SendReport:
    if isinstance(dest, DicomDestination):
        from dicom_node.send.dimse import store_files

        return store_files(settings.ae_title, dest, paths, progress)
    from dicom_node.send.dicomweb import stow_files

    return stow_files(dest, paths, progress)
