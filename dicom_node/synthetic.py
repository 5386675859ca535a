"""Synthetic DICOM studies, so tests, benchmarks and demos never need patient data.

Every generated object is a valid instance of its IOD (CT Image, MR Image, Digital X-Ray /
CR), with a made-up patient ("SYNTHETIC^PATIENT") and UIDs from pydicom's generator. CT and
MR volumes may carry a bright spherical "lesion" so the demo segmentation models have
something to find; X-rays may carry a round "nodule". :func:`ct_phantom` makes a CT of
clinical size with several ellipsoid lesions of known size, to check what is measured on them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    PYDICOM_IMPLEMENTATION_UID,
    generate_uid,
)

__all__ = [
    "StudySpec",
    "PhantomLesion",
    "ct_phantom",
    "ct_volume",
    "mr_volume",
    "xray_image",
    "ct_series",
    "ct_series_from_volume",
    "mr_series",
    "xray_instance",
    "write_series",
]


@dataclass
class StudySpec:
    """Patient/study level attributes shared by every series of one synthetic study."""

    patient_id: str = "SYN0001"
    patient_name: str = "SYNTHETIC^PATIENT"
    birth_date: str = "19700101"
    sex: str = "O"
    study_uid: str = field(default_factory=generate_uid)
    study_date: str = "20260101"
    study_time: str = "120000"
    accession: str = "ACC0001"
    description: str = "SYNTHETIC STUDY"
    referring: str = "SYNTHETIC^REFERRER"


def _sphere(shape: tuple[int, ...], center: tuple[float, ...], radius: float) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    dist2 = sum((g - c) ** 2 for g, c in zip(grids, center))
    return dist2 <= radius**2


def ct_volume(
    shape: tuple[int, int, int] = (32, 64, 64),
    lesion_radius: float | None = 6.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like volume in HU (z, y, x) — air, body ellipse, soft tissue — and its lesion mask."""
    rng = rng or np.random.default_rng(0)
    z, y, x = shape
    vol = np.full(shape, -1000.0, dtype=np.float32)
    yy, xx = np.ogrid[:y, :x]
    body = ((yy - y / 2) / (0.42 * y)) ** 2 + ((xx - x / 2) / (0.46 * x)) ** 2 <= 1.0
    vol[:, body] = 40.0
    vol += rng.normal(0, 12, shape).astype(np.float32)
    mask = np.zeros(shape, dtype=bool)
    if lesion_radius:
        margin = lesion_radius + 2
        center = (
            rng.uniform(margin, z - margin),
            rng.uniform(y * 0.3, y * 0.7),
            rng.uniform(x * 0.3, x * 0.7),
        )
        mask = _sphere(shape, center, lesion_radius)
        vol[mask] = 160.0 + rng.normal(0, 12, int(mask.sum()))
    return vol, mask


def mr_volume(
    shape: tuple[int, int, int] = (24, 64, 64),
    lesion_radius: float | None = 5.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """An MR-like (T2-ish, arbitrary units) volume with a bias field and a bright lesion."""
    rng = rng or np.random.default_rng(1)
    z, y, x = shape
    yy, xx = np.ogrid[:y, :x]
    head = ((yy - y / 2) / (0.4 * y)) ** 2 + ((xx - x / 2) / (0.35 * x)) ** 2 <= 1.0
    vol = np.zeros(shape, dtype=np.float32)
    vol[:, head] = 300.0
    bias = 1.0 + 0.2 * np.sin(np.linspace(0, np.pi, x))[None, None, :]
    vol = vol * bias + rng.normal(0, 15, shape).astype(np.float32)
    mask = np.zeros(shape, dtype=bool)
    if lesion_radius:
        margin = lesion_radius + 2
        center = (
            rng.uniform(margin, z - margin),
            rng.uniform(y * 0.35, y * 0.65),
            rng.uniform(x * 0.35, x * 0.65),
        )
        mask = _sphere(shape, center, lesion_radius) & head[None]
        vol[mask] = 800.0 + rng.normal(0, 30, int(mask.sum()))
    return np.clip(vol, 0, None), mask


def xray_image(
    size: int = 128, nodule: bool = True, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, bool]:
    """A chest-X-ray-like 12-bit image (MONOCHROME2) and whether it has a nodule."""
    rng = rng or np.random.default_rng(2)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    img = np.full((size, size), 3000.0, dtype=np.float32)
    for cx in (0.32, 0.68):  # two dark lung fields
        lung = ((yy - 0.5 * size) / (0.36 * size)) ** 2 + ((xx - cx * size) / (0.15 * size)) ** 2 <= 1
        img[lung] = 900.0
    img += rng.normal(0, 80, img.shape).astype(np.float32)
    if nodule:
        cx = rng.choice([0.32, 0.68]) * size + rng.uniform(-0.05, 0.05) * size
        cy = rng.uniform(0.35, 0.65) * size
        r = rng.uniform(0.03, 0.06) * size
        blob = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2)))
        img += 1500.0 * blob
    return np.clip(img, 0, 4095), nodule


def _base(study: StudySpec, sop_class: str, modality: str, series_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.birth_date
    ds.PatientSex = study.sex
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = study.study_date
    ds.StudyTime = study.study_time
    ds.StudyID = "1"
    ds.AccessionNumber = study.accession
    ds.StudyDescription = study.description
    ds.ReferringPhysicianName = study.referring
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.Manufacturer = "dicom-node synthetic"
    ds.ManufacturerModelName = "synthetic"
    ds.SeriesDate = study.study_date
    ds.SeriesTime = study.study_time
    ds.ContentDate = study.study_date
    ds.ContentTime = study.study_time
    ds.InstanceCreationDate = dt.date.today().strftime("%Y%m%d")
    return ds


def _pixels(ds: Dataset, arr: np.ndarray, signed: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16 if signed else 12
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    dtype = np.int16 if signed else np.uint16
    ds.PixelData = np.ascontiguousarray(arr.astype(dtype)).tobytes()


def _volume_series(
    volume: np.ndarray,
    study: StudySpec,
    sop_class: str,
    modality: str,
    spacing: tuple[float, float, float],
    series_number: int,
    description: str,
    rescale: tuple[float, float] | None,
) -> Iterator[Dataset]:
    series_uid = generate_uid()
    frame_uid = generate_uid()
    dz, dy, dx = spacing
    for k in range(volume.shape[0]):
        ds = _base(study, sop_class, modality, series_uid)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = series_number
        ds.SeriesDescription = description
        ds.InstanceNumber = k + 1
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.BodyPartExamined = "CHEST" if modality == "CT" else "HEAD"
        ds.PatientPosition = "HFS"
        ds.ImagePositionPatient = [-volume.shape[2] * dx / 2, -volume.shape[1] * dy / 2, k * dz]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = dz
        ds.SliceLocation = k * dz
        ds.PixelSpacing = [dy, dx]
        ds.AcquisitionNumber = 1
        if modality == "CT":
            ds.KVP = 120
            intercept, slope = rescale or (-1024.0, 1.0)
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = intercept, slope, "HU"
            raw = np.round((volume[k] - intercept) / slope)
            _pixels(ds, np.clip(raw, 0, 4095), signed=False)
            ds.WindowCenter, ds.WindowWidth = 40, 400
        else:
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "NONE", ""
            ds.MRAcquisitionType = "2D"
            ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = 4000.0, 90.0, 1
            ds.MagneticFieldStrength = 1.5
            _pixels(ds, np.clip(np.round(volume[k]), 0, 4095), signed=False)
        yield ds


def ct_series(
    study: StudySpec | None = None,
    shape: tuple[int, int, int] = (32, 64, 64),
    lesion_radius: float | None = 6.0,
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.8),
    seed: int = 0,
    series_number: int = 1,
) -> list[Dataset]:
    """A synthetic axial CT series (one instance per slice), lesion included unless radius is None."""
    vol, _ = ct_volume(shape, lesion_radius, np.random.default_rng(seed))
    return list(
        _volume_series(vol, study or StudySpec(), CTImageStorage, "CT", spacing, series_number, "SYNTHETIC CT", None)
    )


def ct_series_from_volume(
    volume: np.ndarray,
    spacing: tuple[float, float, float],
    study: StudySpec | None = None,
    series_number: int = 1,
    description: str = "SYNTHETIC CT",
) -> list[Dataset]:
    """An axial CT series holding ``volume`` (HU, (z, y, x)) at ``spacing`` (mm), for generators
    of their own (stored as 12-bit values with Rescale Intercept −1024: HU −1024…3071)."""
    return list(_volume_series(volume, study or StudySpec(), CTImageStorage, "CT", spacing, series_number,
                               description, None))


def mr_series(
    study: StudySpec | None = None,
    shape: tuple[int, int, int] = (24, 64, 64),
    lesion_radius: float | None = 5.0,
    spacing: tuple[float, float, float] = (4.0, 1.0, 1.0),
    seed: int = 1,
    series_number: int = 1,
) -> list[Dataset]:
    """A synthetic axial T2-like MR series."""
    vol, _ = mr_volume(shape, lesion_radius, np.random.default_rng(seed))
    return list(
        _volume_series(vol, study or StudySpec(), MRImageStorage, "MR", spacing, series_number, "SYNTHETIC MR T2", None)
    )


@dataclass(frozen=True)
class PhantomLesion:
    """An axis-aligned ellipsoid lesion of :func:`ct_phantom`.

    ``centre`` is in voxel indices (z, y, x), ``semi_axes_mm`` in mm along (z, y, x), so its
    true size does not depend on the grid it is drawn on.
    """

    centre: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]
    hu: float = 160.0

    @property
    def longest_axial_diameter_mm(self) -> float:
        """The analytic longest in-plane diameter: the larger axis of the central axial ellipse."""
        return 2.0 * max(self.semi_axes_mm[1:])

    @property
    def volume_mm3(self) -> float:
        """The analytic ellipsoid volume, 4/3·π·a·b·c."""
        a, b, c = self.semi_axes_mm
        return 4.0 / 3.0 * np.pi * a * b * c


def ct_phantom(
    lesions: list[PhantomLesion],
    shape: tuple[int, int, int] = (300, 512, 512),
    spacing: tuple[float, float, float] = (1.25, 0.75, 0.75),
    study: StudySpec | None = None,
    seed: int = 0,
    series_number: int = 1,
) -> tuple[list[Dataset], np.ndarray]:
    """A chest-like CT of clinical size with known lesions, and its label mask (lesion ``i`` → ``i + 1``).

    Air around an elliptic body with a subcutaneous fat rim (−100 HU), two lungs (−850 HU), a
    vertebra (700 HU) and soft tissue (40 HU); Gaussian noise σ 12 HU. Built slice by slice so
    a 300 × 512² series needs no float64 volume.
    """
    rng = np.random.default_rng(seed)
    z, y, x = shape
    yy, xx = np.ogrid[:y, :x]
    cy, cx = y / 2, x / 2

    def ellipse(ay: float, ax: float, oy: float = 0.0, ox: float = 0.0) -> np.ndarray:
        return ((yy - cy - oy * y) / (ay * y)) ** 2 + ((xx - cx - ox * x) / (ax * x)) ** 2 <= 1.0

    plane = np.full((y, x), -1000.0, dtype=np.float32)
    plane[ellipse(0.40, 0.46)] = -100.0
    plane[ellipse(0.37, 0.43)] = 40.0
    for side in (-1, 1):
        plane[ellipse(0.24, 0.14, -0.04, side * 0.19)] = -850.0
    plane[ellipse(0.05, 0.05, 0.27, 0.0)] = 700.0
    volume = np.empty(shape, dtype=np.float32)
    for k in range(z):
        volume[k] = plane + rng.normal(0.0, 12.0, (y, x)).astype(np.float32)
    mask = np.zeros(shape, dtype=np.uint8)
    for number, lesion in enumerate(lesions, start=1):
        box, inside = _ellipsoid(shape, spacing, lesion)
        mask[box][inside] = number
        volume[box][inside] = lesion.hu + rng.normal(0.0, 12.0, int(inside.sum())).astype(np.float32)
    return ct_series_from_volume(volume, spacing, study, series_number, "SYNTHETIC CT PHANTOM"), mask


def _ellipsoid(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], lesion: PhantomLesion
) -> tuple[tuple[slice, ...], np.ndarray]:
    """The bounding box of ``lesion`` in the grid and, within it, the voxels whose centres lie inside."""
    box, axes = [], []
    for n, centre, semi, step in zip(shape, lesion.centre, lesion.semi_axes_mm, spacing):
        reach = semi / step
        low, high = max(0, int(np.floor(centre - reach))), min(n, int(np.ceil(centre + reach)) + 1)
        box.append(slice(low, high))
        axes.append(((np.arange(low, high) - centre) * step / semi) ** 2)
    inside = axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :] <= 1.0
    return tuple(box), inside


def xray_instance(
    study: StudySpec | None = None,
    size: int = 128,
    nodule: bool = True,
    seed: int = 2,
    modality: str = "DX",
    monochrome1: bool = False,
) -> Dataset:
    """A synthetic PA chest radiograph as DX (For Presentation) or CR."""
    study = study or StudySpec()
    img, _ = xray_image(size, nodule, np.random.default_rng(seed))
    sop_class = DigitalXRayImageStorageForPresentation if modality == "DX" else ComputedRadiographyImageStorage
    ds = _base(study, sop_class, modality, generate_uid())
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesNumber = 1
    ds.SeriesDescription = "SYNTHETIC CHEST PA"
    ds.InstanceNumber = 1
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ImagerPixelSpacing = [0.5, 0.5]
    ds.PixelSpacing = [0.5, 0.5]
    ds.KVP = 120
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "DIRECT"
        ds.BurnedInAnnotation = "NO"
        ds.PixelIntensityRelationship = "LOG"
        ds.PixelIntensityRelationshipSign = 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
        ds.FrameOfReferenceUID = generate_uid()
        ds.PositionReferenceIndicator = ""
        ds.ImageLaterality = "U"
        ds.PresentationLUTShape = "IDENTITY"
        ds.LossyImageCompression = "00"
        chest = Dataset()
        chest.CodeValue, chest.CodingSchemeDesignator, chest.CodeMeaning = "51185008", "SCT", "Chest"
        ds.AnatomicRegionSequence = [chest]
        ds.PositionerType = ""
        ds.AcquisitionContextSequence = []
        view = Dataset()
        view.CodeValue, view.CodingSchemeDesignator, view.CodeMeaning = "399348003", "SCT", "postero-anterior"
        ds.ViewCodeSequence = [view]
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
    _pixels(ds, np.round(4095 - img) if monochrome1 else np.round(img), signed=False)
    if monochrome1:
        ds.PhotometricInterpretation = "MONOCHROME1"
    return ds


def write_series(datasets: list[Dataset], folder: Path) -> list[Path]:
    """Write datasets as DICOM Part 10 files named by SOP Instance UID; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
