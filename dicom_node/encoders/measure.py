"""Measurements of a mask on its source images, in patient space (PS3.3 C.7.6.2 geometry).

Frame ``i`` of a mask lies on ``source[i]``. A voxel ``(i, r, c)`` sits at
``IPP_i + c·Δcol·row_dir + r·Δrow·col_dir`` (Image Position/Orientation (Patient), Pixel
Spacing = [between rows, between columns]). Projection radiographs have no patient-space
position: they are measured in the image plane from (Imager) Pixel Spacing.

- volume = voxel count × voxel volume, the voxel's depth being the slice spacing (median gap
  between slice positions along the normal; Spacing Between Slices or Slice Thickness for a
  single slice): volume by voxel summation (IBSI YEKZ);
- maximum diameter = the largest distance between the centres of two voxels of the segment
  (maximum 3D Feret diameter between voxel centres, so one voxel shorter than the outer extent);
- mean intensity in modality units (Rescale Slope/Intercept applied: HU for CT).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut
from scipy.spatial import ConvexHull, QhullError

__all__ = ["Geometry", "SegmentMeasures", "measure_segment", "mean_values"]

logger = logging.getLogger(__name__)

_HULL_ABOVE = 2000  # boundary points beyond which the diameter is taken over the convex hull
_CHUNK = 256


@dataclass(frozen=True)
class Geometry:
    """Where the pixels of a stack of single-frame images lie."""

    pixel_spacing: tuple[float, float]  # (between rows, between columns), mm
    slice_spacing: float | None  # mm; None for projection images
    origins: np.ndarray | None  # (frames, 3) Image Position (Patient); None for projections
    row_dir: np.ndarray  # direction of increasing column index
    col_dir: np.ndarray  # direction of increasing row index

    @classmethod
    def of(cls, source: Sequence[Dataset]) -> Geometry:
        first = source[0]
        spacing = first.get("PixelSpacing") or first.get("ImagerPixelSpacing")
        if not spacing:
            raise ValueError("Source images have neither Pixel Spacing nor Imager Pixel Spacing.")
        pixel_spacing = (float(spacing[0]), float(spacing[1]))
        if "ImagePositionPatient" not in first or "ImageOrientationPatient" not in first:
            return cls(pixel_spacing, None, None, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
        orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
        row_dir, col_dir = orientation[:3], orientation[3:]
        origins = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in source])
        return cls(pixel_spacing, _slice_spacing(source, origins, np.cross(row_dir, col_dir)),
                   origins, row_dir, col_dir)

    @property
    def voxel_volume(self) -> float | None:
        """mm³ per voxel; None for projection images."""
        if self.slice_spacing is None:
            return None
        return self.pixel_spacing[0] * self.pixel_spacing[1] * self.slice_spacing

    @property
    def pixel_area(self) -> float:
        return self.pixel_spacing[0] * self.pixel_spacing[1]

    def points(self, index: np.ndarray) -> np.ndarray:
        """Patient-space (or image-plane) coordinates in mm of voxel indices (N, 3) = (i, r, c)."""
        rows = index[:, 1:2] * self.pixel_spacing[0]
        cols = index[:, 2:3] * self.pixel_spacing[1]
        offset = cols * self.row_dir + rows * self.col_dir
        if self.origins is None:
            return offset
        return self.origins[index[:, 0]] + offset


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
    """What was measured on one segment; volume for cross-sections, area for projections."""

    voxel_count: int
    volume_mm3: float | None
    area_mm2: float | None
    max_diameter_mm: float


def measure_segment(mask: np.ndarray, geometry: Geometry) -> SegmentMeasures:
    """Measure one non-empty boolean mask (frames, rows, cols)."""
    count = int(mask.sum())
    if count == 0:
        raise ValueError("Cannot measure an empty segment.")
    box = _bounding_box(mask)
    offset = np.array([s.start for s in box])
    voxel_volume = geometry.voxel_volume
    return SegmentMeasures(
        voxel_count=count,
        volume_mm3=None if voxel_volume is None else count * voxel_volume,
        area_mm2=count * geometry.pixel_area if voxel_volume is None else None,
        max_diameter_mm=_max_diameter(geometry.points(np.argwhere(_boundary(mask[box])) + offset)),
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


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (in-plane only for a single frame)."""
    padded = np.pad(mask, 1)
    interior = mask.copy()
    for axis in (1, 2) if mask.shape[0] == 1 else (0, 1, 2):
        for shift in (-1, 1):
            interior &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return mask & ~interior


def _max_diameter(points: np.ndarray) -> float:
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
