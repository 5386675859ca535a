"""Builders for the inference and imaging pipeline tests (synthetic data only)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import EnhancedCTImageStorage, generate_uid

from dicom_node import synthetic as syn

CT_SHAPE = (32, 64, 64)
CT_SPACING = (2.5, 0.8, 0.8)

_PER_SLICE = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
              "SliceLocation", "RescaleIntercept", "RescaleSlope", "RescaleType", "InstanceNumber")


def ct_with_mask(seed: int = 0, radius: float | None = 6.0, shape: tuple[int, int, int] = CT_SHAPE,
                 spacing: tuple[float, float, float] = CT_SPACING) -> tuple[list[Dataset], np.ndarray]:
    """A synthetic CT series and its true lesion mask (same generator, same seed)."""
    datasets = syn.ct_series(shape=shape, lesion_radius=radius, spacing=spacing, seed=seed)
    _, mask = syn.ct_volume(shape, radius, np.random.default_rng(seed))
    return datasets, mask


def mr_with_mask(seed: int = 1, radius: float | None = 5.0) -> tuple[list[Dataset], np.ndarray]:
    datasets = syn.mr_series(lesion_radius=radius, seed=seed)
    _, mask = syn.mr_volume((24, 64, 64), radius, np.random.default_rng(seed))
    return datasets, mask


def enhanced_ct(datasets: Sequence[Dataset], frame_order: Sequence[int]) -> Dataset:
    """One Enhanced CT instance holding ``datasets[i]`` for i in ``frame_order`` as its frames,
    geometry and rescale in the functional groups (PS3.3 C.7.6.16)."""
    first = datasets[0]
    frames = [datasets[i] for i in frame_order]
    ds = copy.deepcopy(first)
    for keyword in _PER_SLICE:
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.NumberOfFrames = len(frames)
    ds.PixelData = b"".join(f.PixelData for f in frames)
    orientation, measures, transform = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = first.ImageOrientationPatient
    measures.PixelSpacing, measures.SliceThickness = first.PixelSpacing, first.SliceThickness
    transform.RescaleIntercept, transform.RescaleSlope, transform.RescaleType = (
        first.RescaleIntercept, first.RescaleSlope, first.RescaleType)
    shared = Dataset()
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelMeasuresSequence = [measures]
    shared.PixelValueTransformationSequence = [transform]
    ds.SharedFunctionalGroupsSequence = [shared]
    per_frame = []
    for frame in frames:
        position, item = Dataset(), Dataset()
        position.ImagePositionPatient = frame.ImagePositionPatient
        item.PlanePositionSequence = [position]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    return ds


def nodule_centre(seed: int, size: int = 128) -> tuple[int, int]:
    """Where ``xray_instance(seed=seed)`` puts its nodule: the same random stream draws the same
    background before the nodule, so the difference of the two images is the nodule alone."""
    with_nodule, _ = syn.xray_image(size, True, np.random.default_rng(seed))
    without, _ = syn.xray_image(size, False, np.random.default_rng(seed))
    row, col = np.unravel_index(np.argmax(with_nodule - without), with_nodule.shape)
    return int(row), int(col)


# Genuine radiographs from packages of the test extra (never downloaded at run time):
# pydicom-data's RG1 is a CR chest with Pixel Spacing 0\0 and no Imager Pixel Spacing, RG3 a CR
# with neither; deid-data's cat is a DX (For Presentation) with Imager Pixel Spacing 0.14 mm.
REAL_RADIOGRAPHS = {
    "CR RG1 (PixelSpacing 0\\0)": ("pydicom-data", "RG1_UNCI.dcm"),
    "CR RG3 (no spacing)": ("pydicom-data", "RG3_UNCI.dcm"),
    "DX cat": ("deid-data", "animals/cat.dcm"),
}


def real_radiograph(name: str) -> Dataset:
    """One of :data:`REAL_RADIOGRAPHS`, read from the installed package."""
    package, path = REAL_RADIOGRAPHS[name]
    if package == "pydicom-data":
        from data_store import DataStore  # pydicom-data's module

        return pydicom.dcmread(DataStore().get_path(path))
    from deid_data.data import get_dataset

    return pydicom.dcmread(Path(get_dataset(path.split("/")[0])) / path.split("/")[1])
