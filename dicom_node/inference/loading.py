"""DICOM → arrays for the imaging pipelines, with the consistency checks a model cannot make.

A CT/MR series — single-frame instances or one Enhanced multi-frame instance — becomes a
:class:`Volume`: frames sorted along the slice normal (PS3.3 C.7.6.2.1.1: the normal is
row × column of Image Orientation (Patient), the position is Image Position (Patient)
projected on it), the Modality LUT applied (HU for CT), float32 (z, y, x). An X-ray becomes an
:class:`Image2D`: Modality and VOI LUT applied (PS3.3 C.11), MONOCHROME1 inverted, in [0, 1].

Input a model would silently mis-read (mixed series, mixed orientation or size, a gap left by
a missing slice, colour images, no pixel data) raises :class:`~pipelines.base.PipelineError`.
Compressed transfer syntaxes decode through pydicom's pixel plugins (pylibjpeg, GDCM).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi

from pipelines.base import PipelineError

__all__ = ["Volume", "Image2D", "load_volume", "load_xray"]

logger = logging.getLogger(__name__)

_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
_ORIENTATION_TOL = 1e-3  # direction cosines: scanners round, but never this much
_SPACING_REL_TOL = 0.02  # of the median slice interval
_SPACING_ABS_TOL = 0.01  # mm


@dataclass(frozen=True, eq=False)
class Volume:
    """A CT/MR volume in (z, y, x) order, sorted along the slice normal.

    ``datasets`` are the source instances in volume order, so frame ``i`` of a mask made on
    ``array`` belongs to ``datasets[i]`` for a single-frame series. An Enhanced multi-frame
    source is a single dataset whose stored frame order may differ: use
    :meth:`to_source_frames` to put a mask in the order the SEG must reference.
    """

    array: np.ndarray
    spacing: tuple[float, float, float]  # (z, y, x) in mm; z from the sorted positions
    orientation: tuple[float, ...]  # Image Orientation (Patient): row then column cosines
    origin: tuple[float, float, float]  # Image Position (Patient) of the first frame
    datasets: list[Dataset]
    frame_order: tuple[int, ...]  # volume frame i is stored frame frame_order[i] (0-based)

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal (row × column), the direction of increasing z."""
        row, col = np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:])
        return np.cross(row, col)

    def to_source_frames(self, array: np.ndarray) -> np.ndarray:
        """Reorder a (z, y, x) array from volume order to the source's stored frame order."""
        if array.shape[0] != len(self.frame_order):
            raise ValueError(f"array has {array.shape[0]} frames, the volume {len(self.frame_order)}")
        out = np.empty_like(array)
        out[list(self.frame_order)] = array
        return out


@dataclass(frozen=True, eq=False)
class Image2D:
    """A projection image as displayed: float32 (rows, cols) in [0, 1], bright = dense."""

    array: np.ndarray
    spacing: tuple[float, float] | None  # (row, column) mm; None when the header has none
    dataset: Dataset


def load_volume(datasets: Sequence[Dataset]) -> Volume:
    """Load a CT/MR series: several single-frame instances or one Enhanced multi-frame instance."""
    if not datasets:
        raise PipelineError("no instances to load")
    for ds in datasets:
        _check_pixels(ds)
    if len(datasets) == 1:
        if _frame_count(datasets[0]) < 2:
            raise PipelineError("a volume needs at least 2 slices; the series holds one single-frame image")
        return _load_multiframe(datasets[0])
    if any(_frame_count(ds) > 1 for ds in datasets):
        raise PipelineError(
            f"expected one multi-frame instance or single-frame slices, got {len(datasets)} instances "
            "of which some are multi-frame"
        )
    _check_same(datasets, "SeriesInstanceUID", "instances from more than one series")
    _check_same_size(datasets)
    geometry = [(_required(ds, "ImageOrientationPatient"), _required(ds, "ImagePositionPatient"),
                 _required(ds, "PixelSpacing")) for ds in datasets]
    order, spacing, orientation, origin = _sort(geometry)
    ordered = [datasets[i] for i in order]
    array = _stack(len(ordered), lambda i: apply_modality_lut(_decode(ordered[i]), ordered[i]), ordered[0])
    return Volume(array, spacing, orientation, origin, ordered, tuple(range(len(ordered))))


def load_xray(ds: Dataset) -> Image2D:
    """Load a CR/DX image for a model: the grey scale a reader would see, in [0, 1].

    Modality LUT, then VOI LUT Sequence or the first Window Center/Width (PS3.3 C.11.2.1.2),
    else the 0.5–99.5 percentile range; MONOCHROME1 (bright = low value) is inverted.
    """
    _check_pixels(ds)
    if _frame_count(ds) > 1:
        raise PipelineError(f"expected a single-frame radiograph, got {_frame_count(ds)} frames")
    values = apply_modality_lut(_decode(ds), ds)
    if ds.get("VOILUTSequence"):
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        grey = apply_voi(np.rint(values).astype(np.int64), ds).astype(np.float64) / (2**bits - 1)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        grey = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth),
                       str(ds.get("VOILUTFunction", "LINEAR")).upper())
    else:
        low, high = np.percentile(values, [0.5, 99.5])
        grey = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        grey = 1.0 - grey
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    return Image2D(
        np.ascontiguousarray(grey, dtype=np.float32),
        (float(spacing[0]), float(spacing[1])) if spacing else None,
        ds,
    )


def _load_multiframe(ds: Dataset) -> Volume:
    """Enhanced CT/MR: geometry and rescale per frame from the functional groups (PS3.3 C.7.6.16)."""
    n = _frame_count(ds)
    geometry = []
    for i in range(n):
        plane = _group(ds, i, "PlaneOrientationSequence")
        position = _group(ds, i, "PlanePositionSequence")
        measures = _group(ds, i, "PixelMeasuresSequence")
        if plane is None or position is None or measures is None:
            raise PipelineError(f"frame {i + 1} lacks plane orientation, position or pixel measures")
        geometry.append((_required(plane, "ImageOrientationPatient"), _required(position, "ImagePositionPatient"),
                         _required(measures, "PixelSpacing")))
    order, spacing, orientation, origin = _sort(geometry)
    frames = _decode(ds)

    def frame(i: int) -> np.ndarray:
        stored = order[i]
        transform = _group(ds, stored, "PixelValueTransformationSequence")
        slope = float(transform.get("RescaleSlope", 1.0)) if transform else 1.0
        intercept = float(transform.get("RescaleIntercept", 0.0)) if transform else 0.0
        return frames[stored].astype(np.float32) * slope + intercept

    return Volume(_stack(n, frame, ds), spacing, orientation, origin, [ds], tuple(order))


def _sort(
    geometry: list[tuple[Sequence[float], Sequence[float], Sequence[float]]],
) -> tuple[list[int], tuple[float, float, float], tuple[float, ...], tuple[float, float, float]]:
    """Sort frames along the normal and check they form one regular grid.

    Returns (order, (dz, dy, dx), orientation, origin). Checks: one orientation, one pixel
    spacing, no two frames at one position, uniform interval (a larger gap is a missing
    slice) and positions along the normal (a sheared stack — gantry tilt — is not a grid).
    """
    orientations = np.array([[float(v) for v in g[0]] for g in geometry])
    if np.abs(orientations - orientations[0]).max() > _ORIENTATION_TOL:
        raise PipelineError("slices have different orientations (Image Orientation (Patient) differs)")
    pixel_spacings = np.array([[float(v) for v in g[2]] for g in geometry])
    if np.abs(pixel_spacings - pixel_spacings[0]).max() > 1e-4:
        raise PipelineError("slices have different pixel spacings")
    row, col = orientations[0, :3], orientations[0, 3:]
    normal = np.cross(row, col)
    positions = np.array([[float(v) for v in g[1]] for g in geometry])
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    steps = np.diff(distance[order])
    if np.any(steps < _SPACING_ABS_TOL):
        i = int(np.argmin(steps))
        raise PipelineError(
            f"two slices share position {distance[order][i]:.2f} mm along the normal "
            "(duplicate instance or more than one acquisition in the series)"
        )
    dz = float(np.median(steps))
    deviation = np.abs(steps - dz)
    if deviation.max() > max(_SPACING_ABS_TOL, _SPACING_REL_TOL * dz):
        i = int(np.argmax(deviation))
        raise PipelineError(
            f"slice spacing is not uniform: expected {dz:.3g} mm, found {steps[i]:.3g} mm between "
            f"slices {i + 1} and {i + 2} of {len(order)} (missing slice?)"
        )
    delta = np.diff(positions[order], axis=0)
    in_plane = delta - np.outer(delta @ normal, normal)
    if np.linalg.norm(in_plane, axis=1).max() > max(_SPACING_ABS_TOL, _SPACING_REL_TOL * dz):
        raise PipelineError("slice positions do not lie along the slice normal (gantry tilt or sheared stack)")
    first = positions[order[0]]
    spacing = (dz, float(pixel_spacings[0, 0]), float(pixel_spacings[0, 1]))
    return ([int(i) for i in order], spacing, tuple(float(v) for v in orientations[0]),
            (float(first[0]), float(first[1]), float(first[2])))


def _stack(n: int, frame: Callable[[int], np.ndarray], first: Dataset) -> np.ndarray:
    """Fill a float32 (n, rows, cols) array one frame at a time, to keep peak memory at one copy."""
    out = np.empty((n, int(first.Rows), int(first.Columns)), dtype=np.float32)
    for i in range(n):
        out[i] = frame(i)
    return out


def _check_pixels(ds: Dataset) -> None:
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise PipelineError(f"instance {ds.get('InstanceNumber', '?')} has no pixel data")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric not in _MONOCHROME or int(ds.get("SamplesPerPixel", 1)) != 1:
        raise PipelineError(
            f"unsupported Photometric Interpretation {photometric or 'missing'!r}: "
            "only greyscale (MONOCHROME1/2) images can be analysed"
        )


def _check_same(datasets: Sequence[Dataset], keyword: str, problem: str) -> None:
    values = {str(ds.get(keyword, "")) for ds in datasets}
    if len(values) > 1:
        raise PipelineError(f"{problem}: {len(values)} different {keyword} values")


def _check_same_size(datasets: Sequence[Dataset]) -> None:
    sizes = {(int(ds.Rows), int(ds.Columns)) for ds in datasets}
    if len(sizes) > 1:
        listed = ", ".join(f"{r}x{c}" for r, c in sorted(sizes))
        raise PipelineError(f"slices differ in size (Rows x Columns: {listed})")


def _decode(ds: Dataset) -> np.ndarray:
    """Pixel data as stored; a codec that cannot decode it is a property of the input."""
    try:
        return ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = syntax.name if syntax is not None else "unknown transfer syntax"
        raise PipelineError(f"cannot decode pixel data ({name}): {exc}") from exc


def _frame_count(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames", 1) or 1)


def _group(ds: Dataset, frame: int, sequence: str) -> Dataset | None:
    """A functional group item for one frame: the per-frame one, else the shared one."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame < len(per_frame) and per_frame[frame].get(sequence):
        return per_frame[frame][sequence][0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get(sequence):
        return shared[0][sequence][0]
    return None


def _required(ds: Dataset, keyword: str) -> Sequence[float]:
    value = ds.get(keyword)
    if value is None or len(value) == 0:
        raise PipelineError(f"{keyword} is missing; the slices cannot be placed in a volume")
    return value


def _first(value: float | MultiValue) -> float:
    """Window Center/Width may be multi-valued (alternative views): the first is the default."""
    return float(value[0]) if isinstance(value, MultiValue) else float(value)


def _window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """VOI windowing to [0, 1] (PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT, SIGMOID)."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / max(width, 1e-6)))
    if function == "LINEAR_EXACT":
        return np.clip((values - center) / max(width, 1e-6) + 0.5, 0.0, 1.0)
    return np.clip((values - (center - 0.5)) / max(width - 1.0, 1e-6) + 0.5, 0.0, 1.0)
