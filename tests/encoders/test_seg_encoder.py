"""BINARY and FRACTIONAL SEG encoding, checked with dciodvfy and read back frame by frame."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from dicom_node import synthetic as syn
from dicom_node.encoders import AlgorithmInfo, encode_heatmap, encode_segmentation
from dicom_node.encoders.algorithm import PROCESSING_ALGORITHM
from pipelines.base import ImagingResult

from .helpers import LESION, LIVER, imaging_result


def frames(seg: Dataset, source: list[Dataset]) -> dict[tuple[int, int], np.ndarray]:
    """Each SEG frame keyed by (segment number, index of its source image)."""
    index = {ds.SOPInstanceUID: i for i, ds in enumerate(source)}
    shared = seg.SharedFunctionalGroupsSequence[0]
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    out = {}
    for number, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        ident = (frame if "SegmentIdentificationSequence" in frame else shared).SegmentIdentificationSequence[0]
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        out[(int(ident.ReferencedSegmentNumber), index[uid])] = pixels[number]
    return out


def air_items(ds: Dataset) -> list[Dataset]:
    return [
        item for item in ds.ContributingEquipmentSequence
        if item.PurposeOfReferenceCodeSequence[0].CodeValue == PROCESSING_ALGORITHM.value
    ]


def test_one_segment_ct_seg_is_valid_aligned_and_attributed(
    ct_result: ImagingResult, algorithm: AlgorithmInfo, save, dciodvfy
) -> None:
    seg = encode_segmentation(ct_result, algorithm)
    path = save(seg, "ct_seg")
    dciodvfy(path)

    back = pydicom.dcmread(path)
    source = ct_result.source
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # BINARY SEG
    assert back.SegmentationType == "BINARY"
    assert back.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert int(back.NumberOfFrames) == len(source)  # empty frames kept
    assert back.StudyInstanceUID == source[0].StudyInstanceUID
    assert back.PatientID == source[0].PatientID and back.PatientName == source[0].PatientName
    assert back.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    for (segment, i), pixels in frames(back, source).items():
        assert segment == 1
        np.testing.assert_array_equal(pixels, ct_result.segmentation.mask[i])

    (segment,) = back.SegmentSequence
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    ident = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert (ident.AlgorithmName, ident.AlgorithmVersion) == ("ct-lesion", "1.0.0")
    assert ident.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"
    assert segment.AnatomicRegionSequence[0].CodeValue == "39607008"
    assert segment.TrackingID == "Lesion 1" and segment.TrackingUID
    assert "RecommendedDisplayCIELabValue" in segment

    (air,) = air_items(back)
    assert air.DeviceUID == algorithm.device_uid
    assert air.Manufacturer == "dicom-node" and air.ManufacturerModelName == "unet-demo"
    assert air.SoftwareVersions == "1.0.0"


def test_uids_are_deterministic(ct_result: ImagingResult, algorithm: AlgorithmInfo) -> None:
    first, second = encode_segmentation(ct_result, algorithm), encode_segmentation(ct_result, algorithm)
    assert first.SOPInstanceUID == second.SOPInstanceUID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID
    assert first.SegmentSequence[0].TrackingUID == second.SegmentSequence[0].TrackingUID
    assert first.SeriesInstanceUID != ct_result.source[0].SeriesInstanceUID

    ct_result.version = "1.0.1"
    bumped = encode_segmentation(ct_result, AlgorithmInfo.from_result(ct_result))
    assert bumped.SOPInstanceUID != first.SOPInstanceUID


def test_labels_map_to_consecutive_segments(
    ct_source: list[Dataset], ct_mask: np.ndarray, save, dciodvfy
) -> None:
    mask = np.zeros(ct_mask.shape, np.uint8)
    mask[:, 10:50, 10:50] = 3  # liver-ish block, label value 3
    mask[ct_mask] = 7  # lesion inside it, label value 7
    result = imaging_result(ct_source, mask, {3: LIVER, 7: LESION})
    seg = encode_segmentation(result, AlgorithmInfo.from_result(result))
    path = save(seg, "ct_two_segments")
    dciodvfy(path)

    back = pydicom.dcmread(path)
    assert [s.SegmentLabel for s in back.SegmentSequence] == ["Liver", "Lesion"]
    assert [s.SegmentNumber for s in back.SegmentSequence] == [1, 2]
    assert int(back.NumberOfFrames) == 2 * len(ct_source)
    for (segment, i), pixels in frames(back, ct_source).items():
        np.testing.assert_array_equal(pixels, mask[i] == (3 if segment == 1 else 7))


def test_empty_mask_is_encoded_explicitly(ct_source: list[Dataset], save, dciodvfy) -> None:
    result = imaging_result(ct_source, np.zeros((len(ct_source), 64, 64), np.uint8), {1: LESION})
    seg = encode_segmentation(result, AlgorithmInfo.from_result(result))
    path = save(seg, "ct_empty_seg")
    dciodvfy(path)
    back = pydicom.dcmread(path)
    assert int(back.NumberOfFrames) == len(ct_source)
    assert not back.pixel_array.any()


def test_mr_seg_is_valid(study: syn.StudySpec, save, dciodvfy) -> None:
    source = syn.mr_series(study, shape=(12, 48, 48), lesion_radius=4.0)
    _, mask = syn.mr_volume((12, 48, 48), 4.0, np.random.default_rng(1))
    result = imaging_result(source, mask, {1: LESION}, pipeline="mr-lesion")  # a boolean mask
    path = save(encode_segmentation(result, AlgorithmInfo.from_result(result)), "mr_seg")
    dciodvfy(path)
    for (_, i), pixels in frames(pydicom.dcmread(path), source).items():
        np.testing.assert_array_equal(pixels, mask[i])


@pytest.mark.parametrize("modality", ["DX", "CR"])
def test_segmentation_on_a_radiograph_is_valid(study: syn.StudySpec, modality: str, save, dciodvfy) -> None:
    xray = syn.xray_instance(study, size=64, modality=modality)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:30, 20:28] = 1
    result = imaging_result([xray], mask, {1: LESION}, pipeline="cxr-seg")
    seg = encode_segmentation(result, AlgorithmInfo.from_result(result))
    path = save(seg, f"{modality}_seg")
    dciodvfy(path)
    np.testing.assert_array_equal(pydicom.dcmread(path).pixel_array, mask)


def test_bad_masks_are_refused(ct_result: ImagingResult, algorithm: AlgorithmInfo) -> None:
    ct_result.segmentation.mask = ct_result.segmentation.mask * 2  # label 2 is not described
    with pytest.raises(ValueError, match="no SegmentLabel"):
        encode_segmentation(ct_result, algorithm)
    ct_result.segmentation.mask = np.zeros((3, 64, 64), np.uint8)
    with pytest.raises(ValueError, match="shape"):
        encode_segmentation(ct_result, algorithm)


@pytest.mark.parametrize("modality", ["DX", "CR"])
def test_heatmap_is_a_fractional_probability_seg(
    study: syn.StudySpec, xray_result: ImagingResult, modality: str, save, dciodvfy
) -> None:
    xray_result.source = [syn.xray_instance(study, size=128, modality=modality)]
    algorithm = AlgorithmInfo.from_result(xray_result)
    heatmap = encode_heatmap(xray_result, algorithm)
    path = save(heatmap, f"{modality}_heatmap")
    dciodvfy(path)

    back = pydicom.dcmread(path)
    assert back.SegmentationType == "FRACTIONAL"
    assert back.SegmentationFractionalType == "PROBABILITY"
    assert back.ContentLabel == "HEATMAP"
    assert back.StudyInstanceUID == xray_result.source[0].StudyInstanceUID
    assert back.SeriesNumber == 902
    stored = back.pixel_array.astype(float) / back.MaximumFractionalValue
    np.testing.assert_allclose(stored, xray_result.classification.heatmap, atol=1 / 255)
    assert len(air_items(back)) == 1
    assert encode_heatmap(xray_result, algorithm).SOPInstanceUID == heatmap.SOPInstanceUID


def test_heatmap_needs_one_image_of_matching_size(xray_result: ImagingResult) -> None:
    algorithm = AlgorithmInfo.from_result(xray_result)
    xray_result.classification.heatmap = np.zeros((64, 64))
    with pytest.raises(ValueError, match="shape"):
        encode_heatmap(xray_result, algorithm)
    xray_result.source = xray_result.source * 2
    with pytest.raises(ValueError, match="exactly one"):
        encode_heatmap(xray_result, algorithm)


def test_algorithm_info_refuses_values_dicom_cannot_hold() -> None:
    with pytest.raises(ValueError, match="name"):
        AlgorithmInfo("x" * 65, "1", "m", "c")
    with pytest.raises(ValueError, match="checksum"):
        AlgorithmInfo("x", "1", "m", "")
