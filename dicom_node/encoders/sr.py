"""AI results as TID 1500 Measurement Reports in Comprehensive 3D SR (PS3.16 A.35), per IHE AIR.

Every report has:

- a device observer (TID 1002/1004) whose Device Observer UID is the algorithm's Device UID;
- Procedure Reported = the imaging procedure analysed (CID 100, by source Modality), not the
  algorithm;
- an Image Library listing the source images (older OHIF needs one; projection radiographs get
  one of :mod:`.library`, which copes with a CR/DX without Imager Pixel Spacing);
- TID 4019 Algorithm Identification on each measurement group, with a tracking identifier
  ("Lesion 1") and the tracking UID of the matching SEG segment;
- highdicom's defaults for AI output: COMPLETE, UNVERIFIED, PRELIMINARY, evidence in Current
  Requested Procedure Evidence, plus the AIR Contributing Equipment item;
- UIDs derived from source series, pipeline and version, so a re-run replaces the report.

Everything referenced must be in the source's study (OHIF refuses cross-study references).

Segmentation reports: each segment with voxels gives a TID 1411 volumetric group referencing its
SEG segment (a TID 1410 planar group referencing the SEG frame on projection radiographs) with
volume (area on projections), long axis (the longest in-plane diameter) and, for CT/MR, mean
intensity; see :mod:`.measure` for how each is computed. Measurements are per segment: the
segmentation pipelines give each lesion its own label, so each lesion is a segment and a group,
sharing its tracking UID ("Lesion 1" is the largest). A size that needs a pixel spacing the
image lacks is not assessable: instead of a number, a qualitative evaluation names the size
with the value "Measurement not attempted" (CID 42), never a value from a guessed spacing. A segment without
voxels gives a TID 1501 group saying the finding is "Absent": that is the "no finding" report.
``urgent=True`` adds a priority evaluation to the groups with a finding (see :mod:`.coding`);
it is refused when nothing was found.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import count

from highdicom.seg import Segmentation
from highdicom.sr import (
    CodedConcept,
    Comprehensive3DSR,
    FindingSite,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    ReferencedSegment,
    ReferencedSegmentationFrame,
    SourceImageForMeasurementGroup,
    SourceImageForSegmentation,
    SourceSeriesForSegmentation,
    TrackingIdentifier,
    VolumetricROIMeasurementsAndQualitativeEvaluations,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from pipelines.base import ImagingResult, SegmentLabel

from .algorithm import MANUFACTURER, AlgorithmInfo, add_contributing_equipment
from .coding import (
    ABSENT,
    NO_UNITS,
    PRESENT,
    PRIORITY,
    PROBABILITY,
    PROBABILITY_UNIT,
    THRESHOLD,
    URGENT,
    coded,
    procedure_for_modality,
)
from .library import is_projection, projection_image_library
from .measure import Geometry, SegmentMeasures, mean_values, measure_segment
from .seg import aligned_frames, segment_values, tracking_uid
from .uids import result_uid

__all__ = ["encode_segmentation_report", "encode_classification_report"]

logger = logging.getLogger(__name__)

Group = (
    VolumetricROIMeasurementsAndQualitativeEvaluations
    | PlanarROIMeasurementsAndQualitativeEvaluations
    | MeasurementsAndQualitativeEvaluations
)

# Mean intensity concept and unit per modality (CID 7469, CID 7181); others get none.
_INTENSITY = {
    "CT": (codes.cid7469.AttenuationCoefficient, codes.cid7181.HounsfieldUnit),
    "MR": (codes.cid7469.MRSignalIntensity, NO_UNITS),
}


def encode_segmentation_report(
    result: ImagingResult,
    seg: Segmentation,
    algorithm: AlgorithmInfo,
    series_number: int = 901,
    urgent: bool = False,
) -> Comprehensive3DSR:
    """A TID 1500 report measuring each segment of ``seg`` (made from ``result``) on the source."""
    segmentation = result.segmentation
    if segmentation is None:
        raise ValueError("The result has no segmentation to report on.")
    source = result.source
    _check_same_study(source, [seg])
    values = segment_values(segmentation)
    if len(seg.SegmentSequence) != len(values):
        raise ValueError(f"The SEG has {len(seg.SegmentSequence)} segments; the result has {len(values)} labels.")
    mask = aligned_frames(segmentation.mask, source, "Segmentation mask")
    geometry = Geometry.of(source)
    intensity = _INTENSITY.get(str(source[0].Modality))
    means = mean_values(source, mask, values) if intensity else {}

    groups: list[Group] = []
    found = False
    for number, value, item in zip(count(1), values, seg.SegmentSequence):
        label = segmentation.labels[value]
        tracking = TrackingIdentifier(uid=item.TrackingUID, identifier=str(item.TrackingID))
        segment_mask = mask == value
        if not segment_mask.any():
            groups.append(_absent_group(tracking, label, algorithm))
            continue
        found = True
        measures = measure_segment(segment_mask, geometry)
        mean = (intensity[0], means[value], intensity[1]) if intensity else None
        evaluations = [QualitativeEvaluation(coded(label.type), PRESENT), *_priority(urgent)]
        groups.append(_segment_group(seg, number, source, tracking, label, algorithm, measures, mean, evaluations))
    if urgent and not found:
        raise ValueError("urgent=True but the segmentation found nothing to flag.")
    # The Image Library lists the images the findings lie on (the SEG references every source
    # image): building an entry per slice of a 300-slice CT costs seconds in highdicom and
    # tells a viewer nothing the SEG doesn't. With no finding, the middle image stands for the series.
    shown = [ds for ds, frame in zip(source, mask) if frame.any()] or [source[len(source) // 2]]
    return _document(result, algorithm, groups, [*shown, seg], series_number, "seg-report",
                     f"AI report {algorithm.name}", images=shown)


def encode_classification_report(
    result: ImagingResult,
    heatmap_seg: Segmentation | None,
    algorithm: AlgorithmInfo,
    series_number: int = 903,
    urgent: bool = False,
) -> Comprehensive3DSR:
    """A TID 1500 report of a classification: finding present/absent, probability, threshold.

    With a heatmap SEG the group is a TID 1410 planar ROI referencing the heatmap frame on the
    source image; without one it is a TID 1501 group naming the source images.
    """
    classification = result.classification
    if classification is None:
        raise ValueError("The result has no classification to report on.")
    if urgent and not classification.positive:
        raise ValueError("urgent=True but the classification is negative.")
    source = result.source
    finding = coded(classification.finding)
    tracking = TrackingIdentifier(
        uid=tracking_uid(result, "classification"), identifier=f"{classification.finding.meaning} 1"[:64]
    )
    measurements = [
        Measurement(name=PROBABILITY, value=classification.probability, unit=PROBABILITY_UNIT),
        Measurement(name=THRESHOLD, value=classification.threshold, unit=PROBABILITY_UNIT),
    ]
    evaluations = [
        QualitativeEvaluation(finding, PRESENT if classification.positive else ABSENT),
        *_priority(urgent),
    ]
    group: Group
    evidence: list[Dataset] = list(source)
    if heatmap_seg is not None:
        _check_same_study(source, [heatmap_seg])
        group = PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            referenced_segment=_segmentation_frame(heatmap_seg, 1, source[0]),
            finding_type=finding,
            algorithm_id=algorithm.sr_identification(),
            measurements=measurements,
            qualitative_evaluations=evaluations,
        )
        evidence.append(heatmap_seg)
    else:
        group = MeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking,
            finding_type=finding,
            algorithm_id=algorithm.sr_identification(),
            measurements=measurements,
            qualitative_evaluations=evaluations,
            source_images=[SourceImageForMeasurementGroup.from_source_image(ds) for ds in source],
        )
    return _document(result, algorithm, [group], evidence, series_number, "classification-report",
                     f"AI report {algorithm.name}", images=source)


def _segment_group(
    seg: Segmentation,
    number: int,
    source: Sequence[Dataset],
    tracking: TrackingIdentifier,
    label: SegmentLabel,
    algorithm: AlgorithmInfo,
    measures: SegmentMeasures,
    mean: tuple[Code | CodedConcept, float, Code | CodedConcept] | None,
    evaluations: list[QualitativeEvaluation],
) -> Group:
    sizes = [
        (codes.SCT.Area, measures.area_mm2, codes.cid7181.SquareMillimeter) if measures.projection
        else (codes.cid7469.Volume, measures.volume_mm3, codes.cid7181.CubicMillimeter),
        (codes.cid7470.LongAxis, measures.long_axis_mm, codes.cid7181.Millimeter),
    ]
    measurements = [Measurement(name, value, unit) for name, value, unit in sizes if value is not None]
    # Not assessable without a pixel spacing: said as "<size>: Measurement not attempted" (CID 42).
    # A NUM item with an empty Measured Value Sequence would say it too (PS3.3 C.18.1), but
    # highdicom, and viewers built like it, read MeasuredValueSequence[0] and fail on it.
    missing = [name for name, value, _ in sizes if value is None]
    if missing:
        logger.info("Segment %d: %s not assessable, the source has no usable pixel spacing", number,
                    " and ".join(name.meaning for name in missing))
    evaluations = evaluations + [QualitativeEvaluation(name, codes.cid42.MeasurementNotAttempted) for name in missing]
    if mean is not None:
        name, value, unit = mean
        measurements.append(Measurement(name, value, unit, derivation=codes.cid7464.Mean))
    common = dict(
        tracking_identifier=tracking,
        finding_type=coded(label.type),
        finding_category=coded(label.category),
        finding_sites=[FindingSite(coded(label.anatomic_region))] if label.anatomic_region else None,
        algorithm_id=algorithm.sr_identification(),
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )
    if measures.projection:  # projection radiograph: the segment is one SEG frame
        return PlanarROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=_segmentation_frame(seg, number, source[0]),
            **common,
        )
    # Built directly: ReferencedSegment.from_segmentation() fails on one-segment SEGs.
    return VolumetricROIMeasurementsAndQualitativeEvaluations(
        referenced_segment=ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=number,
            source_series=SourceSeriesForSegmentation(str(source[0].SeriesInstanceUID)),
        ),
        **common,
    )


def _absent_group(tracking: TrackingIdentifier, label: SegmentLabel, algorithm: AlgorithmInfo) -> Group:
    """TID 1501 group for a label the algorithm looked for and did not find."""
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_type=coded(label.type),
        finding_category=coded(label.category),
        finding_sites=[FindingSite(coded(label.anatomic_region))] if label.anatomic_region else None,
        algorithm_id=algorithm.sr_identification(),
        qualitative_evaluations=[QualitativeEvaluation(coded(label.type), ABSENT)],
    )


def _priority(urgent: bool) -> list[QualitativeEvaluation]:
    return [QualitativeEvaluation(PRIORITY, URGENT)] if urgent else []


def _segmentation_frame(seg: Segmentation, segment_number: int, image: Dataset) -> ReferencedSegmentationFrame:
    """TID 1410 reference to the SEG frame holding a segment on a single source image.

    highdicom writes Referenced Segment Number beside Referenced Frame Number, which the Image
    SOP Instance Reference macro forbids (PS3.3 Table 10-3: the segment number "shall not be
    present" with a frame number; dciodvfy reports it as an error). The frame already
    identifies its segment through its Segment Identification Sequence, so it is removed.
    """
    reference = ReferencedSegmentationFrame(
        sop_class_uid=seg.SOPClassUID,
        sop_instance_uid=seg.SOPInstanceUID,
        frame_number=_segment_frames(seg, segment_number)[0],
        segment_number=segment_number,
        source_image=SourceImageForSegmentation.from_source_image(image),
    )
    del reference[0].ReferencedSOPSequence[0].ReferencedSegmentNumber
    return reference


def _segment_frames(seg: Segmentation, segment_number: int) -> list[int]:
    """1-based SEG frame numbers holding ``segment_number``.

    highdicom puts the Segment Identification in the Shared Functional Groups when the SEG has a
    single segment, so both places are read.
    """
    shared = seg.SharedFunctionalGroupsSequence[0]
    if "SegmentIdentificationSequence" in shared:
        number = int(shared.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        return list(range(1, int(seg.NumberOfFrames) + 1)) if number == segment_number else []
    return [
        index
        for index, frame in enumerate(seg.PerFrameFunctionalGroupsSequence, start=1)
        if int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber) == segment_number
    ]


def _check_same_study(source: Sequence[Dataset], others: Sequence[Dataset]) -> None:
    if not source:
        raise ValueError("The result has no source images.")
    study = source[0].StudyInstanceUID
    for ds in [*source, *others]:
        if ds.StudyInstanceUID != study:
            raise ValueError("Every instance a report references must be in the source's study.")


def _document(
    result: ImagingResult,
    algorithm: AlgorithmInfo,
    groups: list[Group],
    evidence: list[Dataset],
    series_number: int,
    role: str,
    description: str,
    images: Sequence[Dataset],
) -> Comprehensive3DSR:
    source = result.source
    projections = all(is_projection(ds) for ds in images)
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=algorithm.observer_context()),
        procedure_reported=procedure_for_modality(str(source[0].Modality)),
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
        referenced_images=None if projections else list(images),
    )
    if projections:  # TID 1500 row order: Image Library just before Imaging Measurements, the last item
        report[0].ContentSequence.insert(len(report[0].ContentSequence) - 1, projection_image_library(images))
    series_uid = str(source[0].SeriesInstanceUID)
    sr = Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=result_uid(series_uid, result.pipeline, result.version, f"{role}-series"),
        series_number=series_number,
        sop_instance_uid=result_uid(series_uid, result.pipeline, result.version, role),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        manufacturer_model_name=algorithm.name,
        software_versions=algorithm.version,
        device_serial_number=str(algorithm.device_uid),
        series_description=description[:64],
    )
    add_contributing_equipment(sr, algorithm)
    logger.debug("Encoded %s with %d measurement group(s)", role, len(groups),
                 extra={"series_uid": series_uid, "pipeline": result.pipeline})
    return sr
