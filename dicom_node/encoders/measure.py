"""Measurements of a mask on its source images, in patient space (PS3.3 C.7.6.2 geometry).

Frame ``i`` of a mask lies on ``source[i]``. A voxel ``(i, r, c)`` sits at
``IPP_i + c·Δcol·row_dir + r·Δrow·col_dir`` (Image Position/Orientation (Patient), Pixel
Spacing = [between rows, between columns]). Projection radiographs have no patient-space
position: they are measured in the image plane from Pixel Spacing, else Imager Pixel Spacing.

- volume = voxel count × voxel volume, the voxel's depth being the slice spacing (median gap
  between slice positions along the normal; Spacing Between Slices or Slice Thickness for a
  single slice): volume by voxel summation (IBSI YEKZ);
- long axis = the longest in-plane diameter: in each frame, the largest distance between two
  points of the segment's outline, the maximum over frames (axial for an axial series, as
  RECIST measures). The outline's points are the midpoints of the pixel edges between the
  segment and the rest, where marching squares puts a binary mask's contour (pyradiomics'
  "Maximum 2D diameter (slice)"); between pixel centres it would come out a pixel short;
- area (projections) = pixel count × pixel area;
- mean intensity in modality units (Rescale Slope/Intercept applied: HU for CT).

Without a usable pixel spacing (absent, or ``0\\0`` as some CRs carry) nothing in mm can be
measured: ``pixel_spacing`` is None and every size is None — not assessable, never guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut
from scipy.spatial import ConvexHull, QhullError

__all__ = ["Geometry", "SegmentMeasures", "measure_segment", "mean_values", "pixel_spacing"]

logger = logging.getLogger(__name__)

_HULL_ABOVE = 2000  # outline points beyond which the diameter is taken over the convex hull
_CHUNK = 256


def pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(between rows, between columns) in mm: Pixel Spacing, else Imager Pixel Spacing (projection
    radiographs, PS3.3 C.8.11.7); None when neither holds two positive values."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is None or len(value) == 0:
            continue
        try:
            spacing = (float(value[0]), float(value[1]))
        except (IndexError, TypeError, ValueError):
            spacing = (0.0, 0.0)
        if spacing[0] > 0 and spacing[1] > 0:
            return spacing
        logger.warning("%s %s is not a usable spacing; ignored", keyword, list(value))
    return None


@dataclass(frozen=True)
class Geometry:
    """Where the pixels of a stack of single-frame images lie."""

    pixel_spacing: tuple[float, float] | None  # (between rows, between columns), mm; None: unknown
    slice_spacing: float | None  # mm; None for projection images
    origins: np.ndarray | None  # (frames, 3) Image Position (Patient); None for projections
    row_dir: np.ndarray  # direction of increasing column index
    col_dir: np.ndarray  # direction of increasing row index

    @classmethod
    def of(cls, source: Sequence[Dataset]) -> Geometry:
        first = source[0]
        spacing = pixel_spacing(first)
        if "ImagePositionPatient" not in first or "ImageOrientationPatient" not in first:
            return cls(spacing, None, None, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
        orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
        row_dir, col_dir = orientation[:3], orientation[3:]
        origins = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in source])
        return cls(spacing, _slice_spacing(source, origins, np.cross(row_dir, col_dir)), origins, row_dir, col_dir)

    @property
    def projection(self) -> bool:
        """A projection radiograph: no patient-space position, measured in the image plane."""
        return self.origins is None

    @property
    def voxel_volume(self) -> float | None:
        """mm³ per voxel; None for projection images or an unknown spacing."""
        if self.slice_spacing is None or self.pixel_spacing is None:
            return None
        return self.pixel_spacing[0] * self.pixel_spacing[1] * self.slice_spacing

    @property
    def pixel_area(self) -> float | None:
        """mm² per pixel; None when the spacing is unknown."""
        if self.pixel_spacing is None:
            return None
        return self.pixel_spacing[0] * self.pixel_spacing[1]


def _slice_spacing(source: Sequence[Dataset], origins: np.ndarray, normal: np.ndarray) -> float | None:
    if len(origins) > 1:
        gaps = np.diff(np.sort(origins @ normal))
        spacing = float(np.median(gaps))
        if spacing > 0:
            if np.ptp(gaps) > 0.01 * spacing:
                logger.warning("Irregular slice spacing (%.3f-%.3f mm); volumes use the median %.3f mm",
                               gaps.min(), gaps.max(), spacing)
            return spacing
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = source[0].get(keyword)
        if value:
            return float(value)
    return None


@dataclass(frozen=True)
class SegmentMeasures:
    """What was measured on one segment; a size is None when it cannot be measured (unknown spacing)."""

    voxel_count: int
    projection: bool  # area rather than volume
    volume_mm3: float | None
    area_mm2: float | None
    long_axis_mm: float | None  # longest in-plane diameter


def measure_segment(mask: np.ndarray, geometry: Geometry) -> SegmentMeasures:
    """Measure one non-empty boolean mask (frames, rows, cols)."""
    mask = np.asarray(mask, dtype=bool)
    count = int(mask.sum())
    if count == 0:
        raise ValueError("Cannot measure an empty segment.")
    voxel_volume, pixel_area = geometry.voxel_volume, geometry.pixel_area
    return SegmentMeasures(
        voxel_count=count,
        projection=geometry.projection,
        volume_mm3=None if geometry.projection or voxel_volume is None else count * voxel_volume,
        area_mm2=count * pixel_area if geometry.projection and pixel_area is not None else None,
        long_axis_mm=None if geometry.pixel_spacing is None else _long_axis(mask, geometry.pixel_spacing),
    )


def mean_values(source: Sequence[Dataset], labels: np.ndarray, values: Sequence[int]) -> dict[int, float]:
    """Mean source value, in modality units, under each label value of ``labels`` (frames, rows, cols).

    One pass over the frames that hold any label, converting only the labelled pixels, so a
    large series is never held as floats.
    """
    size = max(values) + 1
    sums = np.zeros(size)
    counts = np.zeros(size, dtype=np.int64)
    for ds, frame in zip(source, labels):
        labelled = (frame > 0) & (frame < size)
        if not labelled.any():
            continue
        index = frame[labelled].astype(np.intp)
        pixels = apply_modality_lut(ds.pixel_array[labelled], ds)
        sums += np.bincount(index, weights=pixels, minlength=size)
        counts += np.bincount(index, minlength=size)
    return {value: float(sums[value] / counts[value]) for value in values if counts[value]}


def _long_axis(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """The largest in-plane distance between outline points, over the frames of ``mask``."""
    best = 0.0
    for frame in np.flatnonzero(mask.any(axis=(1, 2))):
        best = max(best, _max_distance(_outline(mask[frame]) * np.asarray(spacing)))
    return best


def _outline(frame: np.ndarray) -> np.ndarray:
    """(row, col) midpoints of the pixel edges between ``frame`` and its outside, in pixels."""
    rows, cols = np.flatnonzero(frame.any(axis=1)), np.flatnonzero(frame.any(axis=0))
    crop = frame[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    padded = np.pad(crop, 1)
    points = []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = padded[1 + dr : padded.shape[0] - 1 + dr, 1 + dc : padded.shape[1] - 1 + dc]
        edge = np.argwhere(crop & ~neighbour).astype(float)
        points.append(edge + [rows[0] + dr / 2, cols[0] + dc / 2])
    return np.concatenate(points)


def _max_distance(points: np.ndarray) -> float:
    if len(points) > _HULL_ABOVE:
        try:
            points = points[ConvexHull(points, qhull_options="QJ").vertices]
        except QhullError:  # degenerate (e.g. collinear) point sets: fall back to all points
            logger.debug("Convex hull failed; measuring diameter over %d points", len(points))
    best = 0.0
    for start in range(0, len(points), _CHUNK):
        block = points[start : start + _CHUNK]
        dist2 = ((block[:, None, :] - points[None, :, :]) ** 2).sum(axis=-1)
        best = max(best, float(dist2.max()))
    return float(np.sqrt(best))
