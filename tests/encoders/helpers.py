"""Shared constants and SR-reading helpers for the encoder tests."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from pipelines.base import Code, ImagingResult, SegmentationOutput, SegmentLabel

ABNORMAL = Code("49755003", "SCT", "Morphologically Abnormal Structure")
ANATOMY = Code("91723000", "SCT", "Anatomical Structure")
LESION = SegmentLabel("Lesion", ABNORMAL, Code("52988006", "SCT", "Lesion"), Code("39607008", "SCT", "Lung"))
LIVER = SegmentLabel("Liver", ANATOMY, Code("10200004", "SCT", "Liver"))
NODULE = Code("427359005", "SCT", "Solitary nodule of lung")

CT_SHAPE = (32, 64, 64)
CT_SPACING = (2.5, 0.8, 0.8)  # (slice, row, column) mm


def imaging_result(source: list[Dataset], mask: np.ndarray, labels: dict[int, SegmentLabel],
                   pipeline: str = "ct-lesion", version: str = "1.0.0") -> ImagingResult:
    return ImagingResult(
        pipeline=pipeline,
        version=version,
        model_name="unet-demo",
        model_checksum="sha256:0123abcd",
        source=source,
        segmentation=SegmentationOutput(mask=mask, labels=labels),
    )


def content_items(ds: Dataset, meaning: str) -> list[Dataset]:
    """All SR content items (any depth) whose concept name has this meaning."""
    found = []
    stack = list(ds.get("ContentSequence", []))
    while stack:
        item = stack.pop(0)
        names = item.get("ConceptNameCodeSequence", [])
        if names and names[0].CodeMeaning == meaning:
            found.append(item)
        stack.extend(item.get("ContentSequence", []))
    return found


def measurement_groups(ds: Dataset) -> list[Dataset]:
    return content_items(ds, "Measurement Group")


def num_value(group: Dataset, meaning: str) -> float:
    (item,) = content_items(group, meaning)
    return float(item.MeasuredValueSequence[0].NumericValue)


def code_value(group: Dataset, meaning: str) -> str:
    (item,) = content_items(group, meaning)
    return str(item.ConceptCodeSequence[0].CodeMeaning)
