"""Re-identification of what a de-identifying destination sends back (a SEG, an SR, a series
made from the pseudonymous study): its references are mapped back to the original UIDs and
the original patient and study attributes are put back, before it is stored and routed.

Only pseudonyms this node handed to that destination are mapped; UIDs the destination made
itself (the SEG's own SOP Instance UID) stay as they are.
"""

from __future__ import annotations

import logging

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from dicom_node.deid.keys import PseudonymKeys

__all__ = ["reidentify"]

log = logging.getLogger(__name__)


def reidentify(dataset: Dataset, keys: PseudonymKeys) -> bool:
    """Map ``dataset`` back in place; False (and unchanged) when it references nothing of ours."""
    identity: dict[str, str] | None = None
    mapped = 0

    def visit(ds: Dataset, element: DataElement) -> None:
        nonlocal identity, mapped
        if element.VR != "UI" or not element.value:
            return
        values = list(element.value) if element.VM > 1 else [element.value]
        new = []
        for value in values:
            found = keys.original(str(value))
            if found is None:
                new.append(value)
                continue
            mapped += 1
            new.append(found[0])
            if found[1] is not None and identity is None:
                identity = found[1]
        element.value = new if element.VM > 1 else new[0]

    dataset.walk(visit)
    if not mapped:
        return False
    if identity is not None:
        for keyword, value in identity.items():
            setattr(dataset, keyword, value)
    else:
        log.warning(
            "re-identified %d UIDs of a returned object, but found no original study to restore the patient from",
            mapped,
        )
    for keyword in (
        "PatientIdentityRemoved",
        "DeidentificationMethod",
        "DeidentificationMethodCodeSequence",
    ):
        if keyword in dataset:
            delattr(dataset, keyword)
    if getattr(dataset, "file_meta", None) is not None and "SOPInstanceUID" in dataset:
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    return True
