"""Segmentation results as DICOM SEG (PS3.3 A.51), the IHE AIR way.

``encode_segmentation`` writes a BINARY SEG with one segment per label of the mask (the
segmentation pipelines label each lesion apart: "Lesion 1", "Lesion 2"…, each with the
tracking UID its SR measurement group carries);
``encode_heatmap`` writes a classifier's explanation map as a FRACTIONAL (probability) SEG with
Content Label ``HEATMAP``. Both:

- are pixel-aligned with the source (frame ``i`` on ``source[i]``, every frame carrying its
  Derivation Image Sequence), uncompressed (Explicit VR Little Endian), with
  ``omit_empty_frames=False`` (viewers have misplaced masks of SEGs that omit frames);
- inherit patient and study from the source, so they land in the same study;
- mark every segment AUTOMATIC with an Algorithm Identification Sequence and carry the AIR
  Contributing Equipment item (:mod:`.algorithm`);
- get UIDs derived from source series, pipeline and version (:mod:`.uids`): a re-run replaces.

A BINARY SEG has one frame per source image and segment: a 300-slice CT with 3 labels gives
900 frames (Weasis 4.6 ignored SEGs over 400 frames; most PACS and OHIF do not mind).

No finding: an all-empty mask is still encoded, explicitly, with every frame present (with
``omit_empty_frames=False`` highdicom has nothing to warn about). The node sends it together
with the SR that says "Absent" (:func:`dicom_node.encoders.sr.encode_segmentation_report`):
because the SEG keeps its deterministic UIDs, it overwrites a positive SEG that an earlier run
of the same pipeline version stored for that series, rather than leaving a stale mask behind.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np
from highdicom import color
from highdicom.seg import (
    SegmentAlgorithmTypeValues,
    SegmentationFractionalTypeValues,
    SegmentationTypeValues,
    Segmentation,
    SegmentDescription,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from pipelines.base import ClassificationOutput, ImagingResult, SegmentationOutput

from .algorithm import MANUFACTURER, AlgorithmInfo, add_contributing_equipment
from .coding import coded
from .uids import result_uid

__all__ = ["encode_segmentation", "encode_heatmap", "segment_values", "tracking_uid", "aligned_frames"]

logger = logging.getLogger(__name__)

# Distinct display colours (sRGB), cycled over segments.
_PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
            (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
_HEATMAP_COLOUR = (255, 140, 0)


def segment_values(segmentation: SegmentationOutput) -> list[int]:
    """Label values in segment order: segment ``n`` (1-based) holds the ``n``-th smallest label."""
    return sorted(segmentation.labels)


def tracking_uid(result: ImagingResult, key: str) -> str:
    """The Tracking UID shared by a SEG segment and the SR group that measures it."""
    return result_uid(_series_uid(result.source), result.pipeline, result.version, f"tracking/{key}")


def encode_segmentation(result: ImagingResult, algorithm: AlgorithmInfo, series_number: int = 900) -> Segmentation:
    """``result.segmentation`` as a BINARY SEG, one segment per label (see module notes)."""
    if result.segmentation is None:
        raise ValueError("The result has no segmentation to encode.")
    source = _check_source(result.source)
    mask = aligned_frames(result.segmentation.mask, source, "Segmentation mask")
    values = segment_values(result.segmentation)
    segments = _segment_numbers(mask, values)
    descriptions = []
    shared = Counter(result.segmentation.labels[value].label for value in values)
    for number, value in enumerate(values, start=1):
        label = result.segmentation.labels[value]
        tracking_id = f"{label.label} {number}"[:64]
        descriptions.append(
            SegmentDescription(
                segment_number=number,
                # several segments of one kind (a pipeline's lesions) are told apart as the SR does
                segment_label=(tracking_id if shared[label.label] > 1 else label.label)[:64],
                segmented_property_category=coded(label.category),
                segmented_property_type=coded(label.type),
                algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm.seg_identification(),
                tracking_uid=tracking_uid(result, f"label/{value}"),
                tracking_id=tracking_id,
                anatomic_regions=[coded(label.anatomic_region)] if label.anatomic_region else None,
                display_color=color.CIELabColor.from_rgb(*_PALETTE[(number - 1) % len(_PALETTE)]),
            )
        )
    if not segments.any():
        logger.info("Encoding an empty segmentation (no finding) with all %d frames", mask.shape[0])
    return _segmentation(
        result, algorithm, source, segments, SegmentationTypeValues.BINARY, descriptions,
        series_number, role="seg", content_label="SEGMENTATION",
        series_description=f"AI segmentation {algorithm.name}",
    )


def encode_heatmap(result: ImagingResult, algorithm: AlgorithmInfo, series_number: int = 902) -> Segmentation:
    """A classifier's explanation map on a single 2D image as a FRACTIONAL probability SEG."""
    classification: ClassificationOutput | None = result.classification
    if classification is None:
        raise ValueError("The result has no classification whose heatmap could be encoded.")
    source = _check_source(result.source)
    if len(source) != 1 or int(source[0].get("NumberOfFrames", 1)) != 1:
        raise ValueError("A heatmap is encoded on exactly one single-frame source image.")
    heatmap = np.asarray(classification.heatmap, dtype=np.float32)
    if not np.isfinite(heatmap).all():
        raise ValueError("The heatmap contains NaN or infinite values.")
    heatmap = aligned_frames(np.clip(heatmap, 0.0, 1.0), source, "Heatmap")
    description = SegmentDescription(
        segment_number=1,
        segment_label=f"{classification.finding.meaning} heatmap"[:64],
        segmented_property_category=codes.cid7150.MorphologicallyAbnormalStructure,
        segmented_property_type=coded(classification.finding),
        algorithm_type=SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm.seg_identification(),
        tracking_uid=tracking_uid(result, "classification"),
        tracking_id=f"{classification.finding.meaning} 1"[:64],
        display_color=color.CIELabColor.from_rgb(*_HEATMAP_COLOUR),
    )
    return _segmentation(
        result, algorithm, source, heatmap[..., np.newaxis], SegmentationTypeValues.FRACTIONAL,
        [description], series_number, role="heatmap", content_label="HEATMAP",
        series_description=f"AI heatmap {algorithm.name}",
    )


def _segmentation(
    result: ImagingResult,
    algorithm: AlgorithmInfo,
    source: list[Dataset],
    pixels: np.ndarray,
    kind: SegmentationTypeValues,
    descriptions: Sequence[SegmentDescription],
    series_number: int,
    role: str,
    content_label: str,
    series_description: str,
) -> Segmentation:
    series_uid = _series_uid(source)
    seg = Segmentation(
        source_images=source,
        pixel_array=pixels,
        segmentation_type=kind,
        segment_descriptions=descriptions,
        series_instance_uid=result_uid(series_uid, result.pipeline, result.version, f"{role}-series"),
        series_number=series_number,
        sop_instance_uid=result_uid(series_uid, result.pipeline, result.version, role),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.name,
        software_versions=algorithm.version,
        # The Device UID identifies this algorithm and model exactly, as a serial number would.
        device_serial_number=str(algorithm.device_uid),
        fractional_type=SegmentationFractionalTypeValues.PROBABILITY,
        max_fractional_value=255,
        content_description=f"{algorithm.name} {algorithm.version}"[:64],
        content_label=content_label,
        transfer_syntax_uid=ExplicitVRLittleEndian,
        omit_empty_frames=False,
        series_description=series_description[:64],
    )
    if "ImageOrientationPatient" not in source[0]:
        _projection_geometry(seg, source[0])
    add_contributing_equipment(seg, algorithm)
    return seg


def _projection_geometry(seg: Segmentation, image: Dataset) -> None:
    """Describe a SEG on a projection radiograph as the radiograph itself is described.

    A DX image may carry a Frame of Reference UID without any patient-space position; highdicom
    copies the UID, and with a Frame of Reference dciodvfy asks for a Slice Thickness in the Pixel
    Measures macro (PS3.3 C.7.6.16.2.1) that a projection does not have. Such a SEG is located by its Derivation Image Sequence,
    not by patient coordinates, so the UID is dropped and Patient Orientation (General Image,
    Type 2C when there is no Image Orientation (Patient)) is copied instead. A Pixel Spacing of
    zero copied from the source is dropped with its Pixel Measures item.
    """
    for keyword in ("FrameOfReferenceUID", "PositionReferenceIndicator"):
        if keyword in seg:
            delattr(seg, keyword)
    seg.PatientOrientation = image.get("PatientOrientation", "")
    shared = seg.SharedFunctionalGroupsSequence[0]
    measures = shared.get("PixelMeasuresSequence")
    if measures and any(float(v) <= 0 for v in measures[0].get("PixelSpacing") or [0]):
        # highdicom copies the source's Pixel Spacing; a CR's "0\\0" is no spacing (dciodvfy: "Value
        # is zero"), and without a Frame of Reference the Pixel Measures macro is not required.
        del shared.PixelMeasuresSequence


def _segment_numbers(mask: np.ndarray, values: list[int]) -> np.ndarray:
    """The mask with label values replaced by segment numbers 1..n (0 stays background).

    Label-map style input keeps memory at one byte per voxel however many labels there are;
    highdicom still writes one BINARY frame per segment and source image.
    """
    if not values:
        raise ValueError("The segmentation has no labels.")
    if mask.dtype.kind not in "biu":
        raise ValueError(f"The mask must hold integer labels, not {mask.dtype}.")
    if min(values) < 1:
        raise ValueError("Label values must be positive; 0 is background.")
    if mask.dtype == bool:
        mask = mask.view(np.uint8)
    if int(mask.min()) < 0:
        raise ValueError("The mask holds negative values.")
    if mask.dtype == np.uint8 and values == list(range(1, len(values) + 1)) and int(mask.max()) <= len(values):
        return mask  # labels already are 1..n: a lookup would copy a 300-slice CT for nothing
    lookup = np.zeros(max(int(mask.max()), *values) + 1, dtype=np.uint8 if len(values) < 256 else np.uint16)
    lookup[values] = np.arange(1, len(values) + 1)
    segments = lookup[mask]
    stray = (segments == 0) & (mask != 0)
    if stray.any():
        raise ValueError(f"Mask values {np.unique(mask[stray]).tolist()} have no SegmentLabel.")
    return segments


def _check_source(source: list[Dataset]) -> list[Dataset]:
    if not source:
        raise ValueError("The result has no source images.")
    return source


def _series_uid(source: Sequence[Dataset]) -> str:
    return str(source[0].SeriesInstanceUID)


def aligned_frames(array: np.ndarray, source: Sequence[Dataset], what: str) -> np.ndarray:
    """``array`` as (frames, rows, cols) matching the source frame for frame."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[np.newaxis]
    expected = (len(source), int(source[0].Rows), int(source[0].Columns))
    if array.shape != expected:
        raise ValueError(f"{what} has shape {array.shape}; the source needs {expected} (frames, rows, cols).")
    return array
