"""TID 1600 Image Library for projection radiographs, describing only what the header holds.

highdicom's ``ImageLibrary`` writes the TID 1603 projection descriptors from Patient
Orientation and Imager Pixel Spacing unconditionally, and raises ``AttributeError`` for a CR
or DX without them — both are optional there (CR Image module: Imager Pixel Spacing Type 3;
General Image: Patient Orientation Type 2C, may be empty), and real CRs come without
(pydicom-data's RG1 has Pixel Spacing ``0\\0`` and no Imager Pixel Spacing, RG3 neither).
This builds the same structure — Image Library > Image Library Group > one "Source" IMAGE
item per image with its TID 1602 descriptors (Modality, Frame of Reference UID, Rows,
Columns) — and adds the TID 1603 rows (Patient Orientation Row/Column, Horizontal/Vertical
Pixel Spacing from Imager Pixel Spacing) only where the image has usable values.
Cross-sectional images keep highdicom's library.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from highdicom.sr import (
    CodeContentItem,
    CodedConcept,
    ContainerContentItem,
    ContentItem,
    ContentSequence,
    ImageContentItem,
    NumContentItem,
    RelationshipTypeValues,
    TextContentItem,
    UIDRefContentItem,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

__all__ = ["is_projection", "projection_image_library"]

logger = logging.getLogger(__name__)

_SOURCE = CodedConcept("260753009", "SCT", "Source")
_PIXELS = CodedConcept("{pixels}", "UCUM", "Pixels")
# CID 29 Acquisition Modality, for the projection modalities highdicom describes with TID 1603.
_MODALITIES = {
    "CR": codes.cid29.ComputedRadiography,
    "DX": codes.cid29.DigitalRadiography,
    "MG": codes.cid29.Mammography,
    "IO": codes.cid29.IntraOralRadiography,
    "PX": codes.cid29.PanoramicXRay,
    "RF": codes.cid29.Radiofluoroscopy,
    "XA": codes.cid29.XRayAngiography,
}


def is_projection(ds: Dataset) -> bool:
    """A projection radiograph, which highdicom would describe with TID 1603."""
    return str(ds.get("Modality", "")) in _MODALITIES


def projection_image_library(images: Sequence[Dataset]) -> ContainerContentItem:
    """The Image Library CONTAINER (for TID 1500's root) listing ``images``, all projections."""
    entries = [_entry(ds) for ds in images]
    group = ContainerContentItem(name=codes.DCM.ImageLibraryGroup, relationship_type=RelationshipTypeValues.CONTAINS)
    group.ContentSequence = ContentSequence(entries)
    library = ContainerContentItem(name=codes.DCM.ImageLibrary, relationship_type=RelationshipTypeValues.CONTAINS)
    library.ContentSequence = ContentSequence([group])
    return library


def _entry(ds: Dataset) -> ImageContentItem:
    if not is_projection(ds):
        raise ValueError(f"Modality {ds.get('Modality')!r} is not a projection radiograph.")
    entry = ImageContentItem(
        name=_SOURCE,
        referenced_sop_class_uid=ds.SOPClassUID,
        referenced_sop_instance_uid=ds.SOPInstanceUID,
        relationship_type=RelationshipTypeValues.CONTAINS,
    )
    context = RelationshipTypeValues.HAS_ACQ_CONTEXT
    items: list[ContentItem] = [CodeContentItem(codes.DCM.Modality, _MODALITIES[str(ds.Modality)], context)]
    if "FrameOfReferenceUID" in ds:
        items.append(UIDRefContentItem(codes.DCM.FrameOfReferenceUID, ds.FrameOfReferenceUID, context))
    items += [
        NumContentItem(codes.DCM.PixelDataRows, int(ds.Rows), _PIXELS, relationship_type=context),
        NumContentItem(codes.DCM.PixelDataColumns, int(ds.Columns), _PIXELS, relationship_type=context),
    ]
    orientation = ds.get("PatientOrientation")
    if orientation is not None and len(orientation) == 2:
        items += [
            TextContentItem(codes.DCM.PatientOrientationRow, str(orientation[0]), context),
            TextContentItem(codes.DCM.PatientOrientationColumn, str(orientation[1]), context),
        ]
    spacing = _imager_pixel_spacing(ds)
    if spacing is not None:
        items += [
            NumContentItem(codes.DCM.HorizontalPixelSpacing, spacing[1], codes.UCUM.Millimeter, relationship_type=context),
            NumContentItem(codes.DCM.VerticalPixelSpacing, spacing[0], codes.UCUM.Millimeter, relationship_type=context),
        ]
    else:
        logger.info("Image Library entry without pixel spacing: the image has no usable Imager Pixel Spacing")
    entry.ContentSequence = ContentSequence(items)
    return entry


def _imager_pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    value = ds.get("ImagerPixelSpacing")
    if value is None or len(value) != 2:
        return None
    rows, cols = float(value[0]), float(value[1])
    return (rows, cols) if rows > 0 and cols > 0 else None
