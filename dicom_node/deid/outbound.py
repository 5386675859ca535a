"""Sending to a de-identifying destination: each file is de-identified into a private temp
folder beside the store, the copies are sent, and the report names the stored originals.

An instance the profile refuses (BurnedInAnnotation YES) is reported failed with the reason
and not sent; the rest of the set still goes. The copies never outlive the send. One Export
audit message (PS3.15 A.5.3.7) records what left, per study.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom import dcmread

from dicom_node.audit import AuditTrail
from dicom_node.audit import events as audit_events
from dicom_node.config import DicomDestination, DicomWebDestination, Settings
from dicom_node.deid.keys import PseudonymKeys
from dicom_node.deid.profile import BurnedInAnnotationError, deidentify
from dicom_node.deid.settings import DeidentifySettings
from dicom_node.send.report import SendReport
from dicom_node.store.index import make_engine

__all__ = ["send_deidentified"]

log = logging.getLogger(__name__)

Sender = Callable[[Sequence[Path]], SendReport]


def send_deidentified(
    settings: Settings,
    name: str,
    dest: DicomDestination | DicomWebDestination,
    deid: DeidentifySettings,
    paths: Sequence[Path],
    send: Sender,
) -> SendReport:
    """De-identify ``paths`` for destination ``name`` and ``send`` the copies."""
    keys = PseudonymKeys(make_engine(settings.database_url or ""), name)
    report = SendReport()
    copies: dict[Path, Path] = {}
    studies: dict[str, dict[str, int]] = {}
    folder = Path(tempfile.mkdtemp(prefix="deid-", dir=settings.data_dir))  # mode 0700
    try:
        for path in paths:
            dataset = dcmread(path)
            original_study = str(dataset.get("StudyInstanceUID", ""))
            try:
                deidentify(dataset, keys, deid)
            except BurnedInAnnotationError as exc:
                log.warning(
                    "instance not sent to de-identifying destination %s: %s", name, exc
                )
                report.failed[path] = str(exc)
                continue
            copy = folder / f"{len(copies)}.dcm"
            dataset.save_as(copy, enforce_file_format=True)
            copies[copy] = path
            classes = studies.setdefault(original_study, {})
            classes[str(dataset.SOPClassUID)] = (
                classes.get(str(dataset.SOPClassUID), 0) + 1
            )
        sent = send(list(copies))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report.sent.extend(copies[p] for p in sent.sent)
    report.warnings.extend(copies[p] for p in sent.warnings)
    report.failed.update({copies[p]: why for p, why in sent.failed.items()})
    peer = (
        (dest.ae_title, dest.host)
        if isinstance(dest, DicomDestination)
        else (name, dest.url)
    )
    trail = AuditTrail.for_node(settings)
    if trail.enabled and studies:
        trail.record(
            audit_events.export(
                settings.ae_title, peer, studies, ok=not sent.failed, deidentified=True
            )
        )
        trail.close()
    return report
