"""DICOM → array loading: slice order, rescale, greyscale display, multi-frame, and each refusal."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, RLELossless

from dicom_node import synthetic as syn
from dicom_node.inference.loading import load_volume, load_xray
from pipelines.base import PipelineError

from .helpers import CT_SHAPE, ct_with_mask, enhanced_ct


@pytest.fixture(scope="module")
def ct() -> list[Dataset]:
    datasets, _ = ct_with_mask(seed=0)
    return datasets


def expected_hu(seed: int = 0) -> np.ndarray:
    """What the synthetic CT stores, in HU: 12-bit values with intercept -1024."""
    volume, _ = syn.ct_volume(CT_SHAPE, 6.0, np.random.default_rng(seed))
    return np.clip(np.round(volume + 1024), 0, 4095) - 1024


def fresh(datasets: list[Dataset]) -> list[Dataset]:
    return [copy.deepcopy(ds) for ds in datasets]


def test_shuffled_slices_are_sorted_along_the_normal(ct: list[Dataset]) -> None:
    shuffled = list(ct)
    random.Random(3).shuffle(shuffled)
    volume = load_volume(shuffled)
    assert [int(ds.InstanceNumber) for ds in volume.datasets] == list(range(1, 33))
    assert volume.array.dtype == np.float32 and volume.array.shape == CT_SHAPE
    assert volume.spacing == pytest.approx((2.5, 0.8, 0.8))
    np.testing.assert_array_equal(volume.array, expected_hu())
    np.testing.assert_allclose(volume.normal, [0, 0, 1])


def test_sort_follows_the_normal_not_instance_numbers(ct: list[Dataset]) -> None:
    """Feet-first numbering (instance 1 at the top) still gives slices in increasing position."""
    datasets = fresh(ct)
    for ds in datasets:
        ds.InstanceNumber = 33 - int(ds.InstanceNumber)
    volume = load_volume(datasets)
    z = [float(ds.ImagePositionPatient[2]) for ds in volume.datasets]
    assert z == sorted(z)


def test_rescale_slope_and_intercept_apply_per_slice(ct: list[Dataset]) -> None:
    datasets = fresh(ct)
    datasets[5].RescaleSlope, datasets[5].RescaleIntercept = 2.0, -2000.0
    volume = load_volume(datasets)
    raw = datasets[5].pixel_array.astype(np.float32)
    np.testing.assert_array_equal(volume.array[5], raw * 2.0 - 2000.0)
    np.testing.assert_array_equal(volume.array[6], datasets[6].pixel_array - 1024.0)


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
def test_compressed_slices_decode(ct: list[Dataset], syntax: str) -> None:
    datasets = fresh(ct[:4])
    for ds in datasets:
        ds.compress(syntax)
    volume = load_volume(datasets)
    np.testing.assert_array_equal(volume.array, expected_hu()[:4])


def test_enhanced_multiframe_volume_and_frame_order(ct: list[Dataset]) -> None:
    order = list(np.random.default_rng(1).permutation(len(ct)))
    volume = load_volume([enhanced_ct(ct, order)])
    np.testing.assert_array_equal(volume.array, expected_hu())
    assert volume.spacing == pytest.approx((2.5, 0.8, 0.8))
    assert len(volume.datasets) == 1
    # stored frame j holds slice order[j]: a mask in volume order goes back to stored order
    marker = np.arange(len(ct))[:, None, None] * np.ones((1, 2, 2), dtype=int)
    np.testing.assert_array_equal(volume.to_source_frames(marker)[:, 0, 0], order)


def test_monochrome1_radiograph_is_inverted() -> None:
    plain = load_xray(syn.xray_instance(seed=4, modality="DX"))
    inverted = load_xray(syn.xray_instance(seed=4, modality="DX", monochrome1=True))
    assert plain.array.dtype == np.float32
    assert 0.0 <= plain.array.min() and plain.array.max() <= 1.0
    np.testing.assert_allclose(inverted.array, plain.array, atol=2e-3)


def test_radiograph_window_voi_lut_and_percentile_paths() -> None:
    ds = syn.xray_instance(seed=4, modality="DX")
    ds.WindowCenter, ds.WindowWidth = 1000, 200  # narrow: lungs (≈900) grey, mediastinum white
    windowed = load_xray(ds).array
    assert windowed.max() == 1.0 and 0.0 < np.median(windowed[40:90, 35:45]) < 1.0

    lut = copy.deepcopy(ds)
    del lut.WindowCenter, lut.WindowWidth
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.LUTData = [v * 16 for v in range(4096)]
    lut.VOILUTSequence = [item]
    np.testing.assert_allclose(load_xray(lut).array, ds.pixel_array * 16 / 65535, atol=1e-6)

    cr = load_xray(syn.xray_instance(seed=4, modality="CR"))  # no VOI: robust min/max
    assert cr.array.min() == 0.0 and cr.array.max() == 1.0


def test_radiograph_spacing_prefers_pixel_spacing() -> None:
    ds = syn.xray_instance(seed=4)
    ds.PixelSpacing, ds.ImagerPixelSpacing = [0.4, 0.4], [0.5, 0.6]
    assert load_xray(ds).spacing == (0.4, 0.4)
    del ds.PixelSpacing
    assert load_xray(ds).spacing == (0.5, 0.6)
    del ds.ImagerPixelSpacing
    assert load_xray(ds).spacing is None


def _broken(ct: list[Dataset], how: str) -> list[Dataset]:
    datasets = fresh(ct[:8])
    if how == "one slice":
        return datasets[:1]
    if how == "orientation":
        datasets[3].ImageOrientationPatient = [1, 0, 0, 0, 0.8660254, -0.5]
    elif how == "size":
        datasets[2].Rows = 32
    elif how == "series":
        datasets[4].SeriesInstanceUID = "1.2.3.4"
    elif how == "gap":
        del datasets[4]
    elif how == "duplicate":
        datasets[4].ImagePositionPatient = datasets[3].ImagePositionPatient
    elif how == "tilt":
        for k, ds in enumerate(datasets):
            ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1] + 0.7 * k,
                                       ds.ImagePositionPatient[2]]
    elif how == "rgb":
        datasets[0].PhotometricInterpretation, datasets[0].SamplesPerPixel = "RGB", 3
    elif how == "palette":
        datasets[0].PhotometricInterpretation = "PALETTE COLOR"
    elif how == "no pixels":
        del datasets[6].PixelData
    elif how == "no position":
        del datasets[1].ImagePositionPatient
    elif how == "undecodable":
        datasets[0].PixelData = datasets[0].PixelData[:100]
    return datasets


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("one slice", "at least 2 slices"),
        ("orientation", "different orientations"),
        ("size", "differ in size"),
        ("series", "more than one series"),
        ("gap", "not uniform.*missing slice"),
        ("duplicate", "share position"),
        ("tilt", "gantry tilt"),
        ("rgb", "Photometric Interpretation 'RGB'"),
        ("palette", "Photometric Interpretation 'PALETTE COLOR'"),
        ("no pixels", "no pixel data"),
        ("no position", "ImagePositionPatient is missing"),
        ("undecodable", "cannot decode pixel data"),
    ],
)
def test_inconsistent_series_is_refused_with_a_reason(ct: list[Dataset], how: str, message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        load_volume(_broken(ct, how))


def test_multiframe_radiograph_and_colour_radiograph_are_refused() -> None:
    ds = syn.xray_instance(seed=4)
    ds.PhotometricInterpretation = "YBR_FULL"
    with pytest.raises(PipelineError, match="greyscale"):
        load_xray(ds)
    ds = syn.xray_instance(seed=4)
    ds.NumberOfFrames = 2
    with pytest.raises(PipelineError, match="single-frame"):
        load_xray(ds)
