"""Re-identification on receipt: what a de-identifying DICOM destination stores back to the
node (its calling AE title is the destination's) is mapped to the original patient and UIDs
(:mod:`dicom_node.deid.reidentify`) before it is committed, indexed and routed.

The storage SCP calls :meth:`Reidentifier.rewrite` after it has checked the instance against
the request, so those checks see what the peer sent; the file is rewritten beside itself and
renamed over it (the same temp path), so a crash leaves either the original or the mapped one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydicom import dcmread

from dicom_node.config import DicomDestination, Settings
from dicom_node.deid.keys import PseudonymKeys
from dicom_node.deid.reidentify import reidentify
from dicom_node.store.index import make_engine

__all__ = ["Reidentifier"]

log = logging.getLogger(__name__)


class Reidentifier:
    """Calling AE title → the de-identifying destination it is, with that destination's keys."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.destinations = {
            dest.ae_title: name
            for name, dest in settings.destinations.items()
            if isinstance(dest, DicomDestination) and dest.deidentify is not None
        }
        self._keys: dict[str, PseudonymKeys] = {}

    def applies(self, calling_ae: str) -> bool:
        return calling_ae in self.destinations

    def rewrite(self, path: Path, calling_ae: str) -> bool:
        """Map the Part 10 file at ``path`` back in place; False when it holds nothing of ours."""
        name = self.destinations[calling_ae]
        if name not in self._keys:
            self._keys[name] = PseudonymKeys(
                make_engine(self.settings.database_url or ""), name
            )
        dataset = dcmread(path)
        if not reidentify(dataset, self._keys[name]):
            log.info(
                "an instance from de-identifying destination %s references nothing sent there; stored as is",
                name,
            )
            return False
        mapped = path.with_name(path.name + ".reid")
        try:
            dataset.save_as(mapped, enforce_file_format=True)
            os.replace(mapped, path)
        finally:
            mapped.unlink(missing_ok=True)
        log.debug("re-identified an instance from de-identifying destination %s", name)
        return True
