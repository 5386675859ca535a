"""TID 1500 reports: valid (dciodvfy, dsrdump), measuring correctly, referencing the right objects."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from dicom_node import synthetic as syn
from dicom_node.encoders import (
    AlgorithmInfo,
    encode_classification_report,
    encode_heatmap,
    encode_segmentation,
    encode_segmentation_report,
)
from pipelines.base import ImagingResult

from tests.inference.helpers import real_radiograph

from .helpers import CT_SHAPE, CT_SPACING, LESION, LIVER, code_value, content_items, imaging_result, measurement_groups, num_value


def report(result: ImagingResult, save, dciodvfy, dsrdump, name: str, urgent: bool = False) -> tuple[Dataset, Dataset, str]:
    """Encode SEG + SR, validate both, return (SEG, SR read back, dsrdump text)."""
    algorithm = AlgorithmInfo.from_result(result)
    seg = encode_segmentation(result, algorithm)
    dciodvfy(save(seg, f"{name}_seg"))
    path = save(encode_segmentation_report(result, seg, algorithm, urgent=urgent), f"{name}_sr")
    dciodvfy(path)
    return seg, pydicom.dcmread(path), dsrdump(path)


def referenced_uids(ds: Dataset) -> set[str]:
    return {
        instance.ReferencedSOPInstanceUID
        for series in ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
        for instance in series.ReferencedSOPSequence
    }


def test_ct_report_measures_and_references_the_segment(ct_result: ImagingResult, ct_mask: np.ndarray,
                                                       save, dciodvfy, dsrdump) -> None:
    seg, sr, dump = report(ct_result, save, dciodvfy, dsrdump, "ct")
    source = ct_result.source
    algorithm = AlgorithmInfo.from_result(ct_result)
    assert "Imaging Measurement Report" in dump
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.StudyInstanceUID == source[0].StudyInstanceUID == seg.StudyInstanceUID
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("COMPLETE", "UNVERIFIED")

    # Who made it: device observer, TID 4019, AIR contributing equipment.
    (observer,) = content_items(sr, "Device Observer UID")
    assert observer.UID == algorithm.device_uid
    assert code_value(sr, "Procedure reported") == "CT unspecified body region"
    assert any(item.get("DeviceUID") == algorithm.device_uid for item in sr.ContributingEquipmentSequence)

    (group,) = measurement_groups(sr)
    (name,) = content_items(group, "Algorithm Name")
    assert name.TextValue == "ct-lesion"
    (tracking_id,) = content_items(group, "Tracking Identifier")
    (tracking_uid,) = content_items(group, "Tracking Unique Identifier")
    assert tracking_id.TextValue == "Lesion 1"
    assert tracking_uid.UID == seg.SegmentSequence[0].TrackingUID
    assert code_value(group, "Lesion") == "Present"

    # References: SEG segment 1, source series, Image Library, evidence.
    (segment,) = content_items(group, "Referenced Segment")
    assert segment.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert segment.ReferencedSOPSequence[0].ReferencedSegmentNumber == 1
    (series,) = content_items(group, "Source Series for Segmentation")
    assert series.UID == source[0].SeriesInstanceUID
    library = {item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for item in content_items(sr, "Source")}
    assert library == {ds.SOPInstanceUID for ds, frame in zip(source, ct_mask) if frame.any()}, "the slices with the finding"
    assert referenced_uids(sr) == library | {seg.SOPInstanceUID}

    # Measurements: volume by voxel summation, long axis (in-plane), mean HU.
    dz, dy, dx = CT_SPACING
    assert num_value(group, "Volume") == pytest.approx(ct_mask.sum() * dz * dy * dx, rel=1e-9)
    # the synthetic lesion is a sphere of radius 6 voxels: 2 × 6 × 0.8 mm across in-plane
    assert num_value(group, "Long axis") == pytest.approx(2 * 6 * dy, abs=1.5 * dy)
    assert not content_items(group, "Diameter")
    volume, _ = syn.ct_volume(CT_SHAPE, 6.0, np.random.default_rng(0))
    stored_hu = np.clip(np.round(volume + 1024), 0, 4095) - 1024
    assert num_value(group, "Attenuation Coefficient") == pytest.approx(stored_hu[ct_mask].mean(), rel=1e-9)


def test_report_uids_are_deterministic(ct_result: ImagingResult, algorithm: AlgorithmInfo) -> None:
    seg = encode_segmentation(ct_result, algorithm)
    first = encode_segmentation_report(ct_result, seg, algorithm)
    second = encode_segmentation_report(ct_result, seg, algorithm)
    assert (first.SOPInstanceUID, first.SeriesInstanceUID) == (second.SOPInstanceUID, second.SeriesInstanceUID)
    assert first.SeriesInstanceUID != seg.SeriesInstanceUID
    assert first.SeriesNumber == 901


def test_no_finding_report_says_absent(ct_source: list[Dataset], save, dciodvfy, dsrdump) -> None:
    result = imaging_result(ct_source, np.zeros((len(ct_source), 64, 64), np.uint8), {1: LESION})
    _, sr, dump = report(result, save, dciodvfy, dsrdump, "ct_empty")
    (group,) = measurement_groups(sr)
    assert code_value(group, "Lesion") == "Absent"
    assert not content_items(group, "Referenced Segment")
    assert not content_items(group, "Volume")
    assert "Absent" in dump

    algorithm = AlgorithmInfo.from_result(result)
    with pytest.raises(ValueError, match="urgent"):
        encode_segmentation_report(result, encode_segmentation(result, algorithm), algorithm, urgent=True)


def test_found_and_absent_labels_in_one_report(ct_source: list[Dataset], ct_mask: np.ndarray,
                                               save, dciodvfy, dsrdump) -> None:
    result = imaging_result(ct_source, ct_mask.astype(np.uint8) * 2, {1: LIVER, 2: LESION})
    seg, sr, _ = report(result, save, dciodvfy, dsrdump, "ct_mixed", urgent=True)
    liver, lesion = measurement_groups(sr)
    assert code_value(liver, "Liver") == "Absent"
    assert not content_items(liver, "Priority")
    assert code_value(lesion, "Lesion") == "Present"
    assert code_value(lesion, "Priority") == "ACR Category 1 Actionable Finding"
    (segment,) = content_items(lesion, "Referenced Segment")
    assert segment.ReferencedSOPSequence[0].ReferencedSegmentNumber == 2
    (tracking_uid,) = content_items(lesion, "Tracking Unique Identifier")
    assert tracking_uid.UID == seg.SegmentSequence[1].TrackingUID


def test_mr_report_gives_mean_signal_without_units(study: syn.StudySpec, save, dciodvfy, dsrdump) -> None:
    source = syn.mr_series(study, shape=(12, 48, 48), lesion_radius=4.0)
    _, mask = syn.mr_volume((12, 48, 48), 4.0, np.random.default_rng(1))
    result = imaging_result(source, mask.astype(np.uint8), {1: LESION}, pipeline="mr-lesion")
    _, sr, _ = report(result, save, dciodvfy, dsrdump, "mr")
    (group,) = measurement_groups(sr)
    (signal,) = content_items(group, "MR signal intensity")
    assert signal.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue == "1"
    assert num_value(group, "Volume") == pytest.approx(mask.sum() * 4.0 * 1.0 * 1.0)
    assert code_value(sr, "Procedure reported") == "MRI unspecified body region"


def test_radiograph_segment_report_is_planar(study: syn.StudySpec, save, dciodvfy, dsrdump) -> None:
    xray = syn.xray_instance(study, size=64, modality="CR")
    mask = np.zeros((64, 64), np.uint8)
    mask[20:30, 20:28] = 1
    result = imaging_result([xray], mask, {1: LESION}, pipeline="cxr-seg")
    seg, sr, _ = report(result, save, dciodvfy, dsrdump, "cr")
    (group,) = measurement_groups(sr)
    assert num_value(group, "Area") == pytest.approx(80 * 0.25)
    # 10 rows × 8 columns at 0.5 mm: outline points (edge midpoints) 10 rows and 7 columns apart
    assert num_value(group, "Long axis") == pytest.approx(np.hypot(10, 7) * 0.5)
    (frame,) = content_items(group, "Referenced Segmentation Frame")
    assert frame.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert frame.ReferencedSOPSequence[0].ReferencedFrameNumber == 1


def test_each_lesion_has_its_own_group_and_segment(study: syn.StudySpec, save, dciodvfy, dsrdump) -> None:
    """Three lesions of a phantom: three segments, three groups, each measured on its own."""
    shape, spacing = (48, 160, 160), (1.25, 0.75, 0.75)
    lesions = [
        syn.PhantomLesion((24.3, 110.5, 100.2), (10.0, 14.0, 12.0)),
        syn.PhantomLesion((14.0, 64.0, 80.4), (6.0, 8.0, 6.0)),
        syn.PhantomLesion((35.0, 30.7, 88.0), (4.0, 5.0, 5.0), hu=120.0),
    ]
    source, labels = syn.ct_phantom(lesions, shape=shape, spacing=spacing, study=study)
    result = imaging_result(source, labels, {1: LESION, 2: LESION, 3: LESION})
    seg, sr, dump = report(result, save, dciodvfy, dsrdump, "ct_three")

    segments = seg.SegmentSequence
    assert [s.SegmentLabel for s in segments] == ["Lesion 1", "Lesion 2", "Lesion 3"]
    groups = measurement_groups(sr)
    assert len(groups) == 3
    assert len({s.TrackingUID for s in segments}) == 3
    for number, (group, lesion, segment) in enumerate(zip(groups, lesions, segments), start=1):
        (tracking_id,) = content_items(group, "Tracking Identifier")
        (tracking_uid,) = content_items(group, "Tracking Unique Identifier")
        (reference,) = content_items(group, "Referenced Segment")
        assert tracking_id.TextValue == f"Lesion {number}" == segment.TrackingID
        assert tracking_uid.UID == segment.TrackingUID
        assert reference.ReferencedSOPSequence[0].ReferencedSegmentNumber == number
        assert num_value(group, "Long axis") == pytest.approx(lesion.longest_axial_diameter_mm, abs=1.5 * spacing[1])
        assert num_value(group, "Volume") == pytest.approx(lesion.volume_mm3, rel=0.05)
        assert num_value(group, "Attenuation Coefficient") == pytest.approx(lesion.hu, abs=3.0)
    assert dump.count("Lesion 3") >= 1


def test_radiograph_without_spacing_reports_sizes_not_assessable(save, dciodvfy, dsrdump) -> None:
    """A real CR with Pixel Spacing 0\\0: area and long axis are "Measurement not attempted", not numbers."""
    image = real_radiograph("CR RG1 (PixelSpacing 0\\0)")
    mask = np.zeros((image.Rows, image.Columns), np.uint8)
    mask[900:960, 700:780] = 1
    result = imaging_result([image], mask, {1: LESION}, pipeline="cxr-seg")
    seg, sr, dump = report(result, save, dciodvfy, dsrdump, "cr_no_spacing")
    (group,) = measurement_groups(sr)
    for name in ("Area", "Long axis"):
        assert code_value(group, name) == "Measurement not attempted", f"{name} without a spacing"
    assert not [item for item in content_items(group, "Long axis") + content_items(group, "Area")
                if "MeasuredValueSequence" in item], "no size is computed without a pixel spacing"
    assert code_value(group, "Lesion") == "Present"
    (frame,) = content_items(group, "Referenced Segmentation Frame")
    assert frame.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert "Measurement not attempted" in dump


def test_report_refuses_a_seg_from_another_study(ct_result: ImagingResult, algorithm: AlgorithmInfo) -> None:
    seg = encode_segmentation(ct_result, algorithm)
    foreign = copy.deepcopy(seg)
    foreign.StudyInstanceUID = pydicom.uid.generate_uid()
    with pytest.raises(ValueError, match="same study|source's study"):
        encode_segmentation_report(ct_result, foreign, algorithm)


def test_positive_classification_references_the_heatmap(xray_result: ImagingResult,
                                                        save, dciodvfy, dsrdump) -> None:
    algorithm = AlgorithmInfo.from_result(xray_result)
    heatmap = encode_heatmap(xray_result, algorithm)
    dciodvfy(save(heatmap, "cxr_heatmap"))
    path = save(encode_classification_report(xray_result, heatmap, algorithm, urgent=True), "cxr_sr")
    dciodvfy(path)
    dump = dsrdump(path)
    sr = pydicom.dcmread(path)
    assert "Probability" in dump and sr.SeriesNumber == 903

    (group,) = measurement_groups(sr)
    assert code_value(group, "Solitary nodule of lung") == "Present"
    assert code_value(group, "Priority") == "ACR Category 1 Actionable Finding"
    assert num_value(group, "Probability") == pytest.approx(0.87)
    assert num_value(group, "Threshold Value") == pytest.approx(0.5)
    (frame,) = content_items(group, "Referenced Segmentation Frame")
    reference = frame.ReferencedSOPSequence[0]
    assert reference.ReferencedSOPInstanceUID == heatmap.SOPInstanceUID
    assert reference.ReferencedFrameNumber == 1 and "ReferencedSegmentNumber" not in reference
    (tracking_uid,) = content_items(group, "Tracking Unique Identifier")
    assert tracking_uid.UID == heatmap.SegmentSequence[0].TrackingUID
    assert referenced_uids(sr) == {xray_result.source[0].SOPInstanceUID, heatmap.SOPInstanceUID}
    assert code_value(sr, "Procedure reported") == "XR unspecified body region"


def test_negative_classification_without_heatmap(xray_result: ImagingResult, save, dciodvfy, dsrdump) -> None:
    xray_result.classification.probability = 0.12
    algorithm = AlgorithmInfo.from_result(xray_result)
    path = save(encode_classification_report(xray_result, None, algorithm), "cxr_negative_sr")
    dciodvfy(path)
    dsrdump(path)
    (group,) = measurement_groups(pydicom.dcmread(path))
    assert code_value(group, "Solitary nodule of lung") == "Absent"
    assert not content_items(group, "Priority")
    (image,) = content_items(group, "Source of Measurement")
    assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == xray_result.source[0].SOPInstanceUID
    with pytest.raises(ValueError, match="negative"):
        encode_classification_report(xray_result, None, algorithm, urgent=True)
