"""Chest-like CT of clinical size for the ct_seg demo model: analytic anatomy, rendered on any grid.

The first demo model was trained on 32×64×64 volumes holding a whole (5 cm) "body"; on a
300 × 512² CT it took the vertebra for a lesion (Dice 0.61, 3,265 components at 2.5 mm
slices). Here one random chest — body outline, fat rim, lungs, vertebra, ribs, 0–3 ellipsoid
lesions, all in mm — is described once and rendered wherever it is needed:

- :func:`ct_patch`, for training: a patch the size of the training window, rendered at a random
  native spacing (0.6–1 mm in-plane, 1–5 mm slices) and resampled to the model's spacing as the
  pipeline resamples (trilinear, ``align_corners=False``), so the network sees the partial-volume
  blur of real input; the label is the analytic lesion mask on the model's grid;
- :func:`ct_study`, for held-out evaluation: a whole series of any size and spacing, written as
  DICOM by :func:`dicom_node.synthetic.ct_series_from_volume`, with its true mask.

Lesions are 60–250 HU above soft tissue (≤ 320 HU); bone is 400–1,000 HU, so intensity and
shape, not size, tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from pydicom.dataset import Dataset

from dicom_node.synthetic import StudySpec, ct_series_from_volume

__all__ = ["Chest", "random_chest", "ct_patch", "ct_study"]

_NATIVE_SLICES_MM = (1.0, 1.25, 2.0, 2.5, 3.0, 5.0)


@dataclass(frozen=True)
class Blob:
    """An axis-aligned ellipsoid: centre and semi-axes in mm (z, y, x), and its HU."""

    centre: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    hu: float


@dataclass(frozen=True)
class Chest:
    """One random chest, in mm about the body's centre (z along the table, y anterior→posterior)."""

    body: tuple[float, float]  # semi-axes (y, x) of the skin outline
    fat_mm: float
    fat_hu: float
    tissue_hu: float
    lungs: tuple[tuple[float, float, float, float], ...]  # (centre y, centre x, semi y, semi x)
    lung_hu: float
    spine: tuple[float, float, float] | None  # (centre y, radius, HU): a cylinder along z
    ribs: tuple[Blob, ...]
    lesions: tuple[Blob, ...]
    noise_hu: float


def random_chest(rng: np.random.Generator, z_extent_mm: float, field: tuple[float, float] | None = None,
                 small: float = 0.0) -> Chest:
    """A chest with 0–3 lesions in soft tissue within ``z_extent_mm`` (centred on z = 0) and,
    given a ``field`` (half the field of view, y and x, mm), wholly inside it.

    With probability ``small`` it is instead a 2–6 cm phantom without lungs or ribs, like
    :func:`dicom_node.synthetic.ct_volume`'s (the node's canonical test series).
    """
    is_small = rng.random() < small
    if is_small:
        body = (float(rng.uniform(20.0, 60.0)), float(rng.uniform(20.0, 60.0)))
        fat = float(rng.uniform(0.0, 0.15) * min(body))
    else:
        body = (float(rng.uniform(100.0, 190.0)), float(rng.uniform(130.0, 240.0)))
        fat = float(rng.uniform(3.0, 25.0))
    lungs: tuple[tuple[float, float, float, float], ...] = ()
    if not is_small and rng.random() < 0.7:
        sy, sx = rng.uniform(0.45, 0.7) * body[0], rng.uniform(0.22, 0.32) * body[1]
        cy, cx = rng.uniform(-0.25, 0.0) * body[0], rng.uniform(0.38, 0.5) * body[1]
        lungs = ((cy, -cx, sy, sx), (cy, cx, sy, sx))
    spine = None
    if rng.random() < (0.5 if is_small else 0.8):
        radius = rng.uniform(0.05, 0.12) * body[0] if is_small else rng.uniform(10.0, 25.0)
        spine = (float(rng.uniform(0.55, 0.75) * body[0]), float(radius), float(rng.uniform(400, 1000)))
    ribs = []
    if not is_small and rng.random() < 0.6:
        for angle in rng.uniform(0, 2 * np.pi, size=int(rng.integers(3, 10))):
            depth = rng.uniform(0.8, 0.95)
            centre = (rng.uniform(-0.5, 0.5) * z_extent_mm, depth * body[0] * np.sin(angle),
                      depth * body[1] * np.cos(angle))
            semi = (rng.uniform(5.0, 20.0), rng.uniform(3.0, 8.0), rng.uniform(3.0, 8.0))
            ribs.append(Blob(centre, semi, float(rng.uniform(400, 1000))))
    tissue = float(rng.uniform(10.0, 70.0))
    chest = Chest(body, fat, float(rng.uniform(-120.0, -60.0)), tissue, lungs, float(rng.uniform(-900.0, -700.0)),
                  spine, tuple(ribs), (), float(rng.uniform(6.0, 25.0)))
    lesions = []
    for _ in range(int(rng.choice([0, 1, 1, 2, 3]))):
        r = rng.uniform(2.0, min(22.0, 0.4 * min(body)))
        # in-plane semi-axes within ±30 %; along z up to 3× (the canonical series' spheres are
        # drawn in voxels, so 2.5 mm slices stretch them 3× along z)
        semi = (float(r * rng.uniform(0.75, 3.0)), float(r * rng.uniform(0.75, 1.3)), float(r * rng.uniform(0.75, 1.3)))
        for _attempt in range(50):  # a centre in soft tissue, away from lungs and bone
            centre = (float(rng.uniform(-0.4, 0.4) * z_extent_mm), float(rng.uniform(-0.8, 0.8) * body[0]),
                      float(rng.uniform(-0.8, 0.8) * body[1]))
            inside = field is None or all(abs(c) + s < f for c, s, f in zip(centre[1:], semi[1:], field))
            if inside and _tissue_at(chest, centre[1], centre[2], margin=max(semi[1:])):
                lesions.append(Blob(centre, semi, tissue + float(rng.uniform(60.0, 250.0))))
                break
    return replace(chest, lesions=tuple(lesions))


def _tissue_at(chest: Chest, y: float, x: float, margin: float) -> bool:
    """Whether (y, x) is soft tissue at least ``margin`` mm (roughly) from any other structure."""
    inner = (chest.body[0] - chest.fat_mm - margin, chest.body[1] - chest.fat_mm - margin)
    if min(inner) <= 0 or (y / inner[0]) ** 2 + (x / inner[1]) ** 2 > 1.0:
        return False
    for cy, cx, sy, sx in chest.lungs:
        if ((y - cy) / (sy + margin)) ** 2 + ((x - cx) / (sx + margin)) ** 2 <= 1.0:
            return False
    if chest.spine is not None:
        sy, radius, _ = chest.spine
        if np.hypot(y - sy, x) <= radius + margin + 3.0:
            return False
    return True


def render(chest: Chest, z: np.ndarray, y: np.ndarray, x: np.ndarray,
           rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """HU (float32) and lesion labels (uint8, lesion i → i + 1) at voxel centres ``z × y × x`` (mm).

    Noise is added when ``rng`` is given.
    """
    yy, xx = y[:, None], x[None, :]
    plane = np.full((len(y), len(x)), -1000.0, dtype=np.float32)
    by, bx = chest.body
    plane[(yy / by) ** 2 + (xx / bx) ** 2 <= 1.0] = chest.fat_hu
    plane[(yy / (by - chest.fat_mm)) ** 2 + (xx / (bx - chest.fat_mm)) ** 2 <= 1.0] = chest.tissue_hu
    for cy, cx, sy, sx in chest.lungs:
        plane[((yy - cy) / sy) ** 2 + ((xx - cx) / sx) ** 2 <= 1.0] = chest.lung_hu
    if chest.spine is not None:
        sy, radius, hu = chest.spine
        plane[(yy - sy) ** 2 + xx**2 <= radius**2] = hu
    volume = np.broadcast_to(plane, (len(z), *plane.shape)).copy()
    labels = np.zeros(volume.shape, dtype=np.uint8)
    for rib in chest.ribs:
        _paint(volume, None, rib, z, y, x, 0)
    for number, lesion in enumerate(chest.lesions, start=1):
        _paint(volume, labels, lesion, z, y, x, number)
    if rng is not None:
        volume += rng.standard_normal(volume.shape, dtype=np.float32) * np.float32(chest.noise_hu)
    return volume, labels


def _paint(volume: np.ndarray, labels: np.ndarray | None, blob: Blob, z: np.ndarray, y: np.ndarray,
           x: np.ndarray, number: int) -> None:
    """Set the voxels whose centres lie inside ``blob`` (coordinates sorted ascending)."""
    box, terms = [], []
    for axis, centre, semi in zip((z, y, x), blob.centre, blob.semi_axes):
        low, high = np.searchsorted(axis, centre - semi), np.searchsorted(axis, centre + semi, side="right")
        if low >= high:
            return
        box.append(slice(int(low), int(high)))
        terms.append(((axis[low:high] - centre) / semi) ** 2)
    inside = terms[0][:, None, None] + terms[1][None, :, None] + terms[2][None, None, :] <= 1.0
    volume[tuple(box)][inside] = blob.hu
    if labels is not None:
        labels[tuple(box)][inside] = number


def _centres(start: float, count: int, step: float) -> np.ndarray:
    """Voxel centres of ``count`` voxels of ``step`` mm whose first edge is at ``start``."""
    return start + (np.arange(count) + 0.5) * step


def ct_patch(
    rng: np.random.Generator,
    shape: tuple[int, int, int] = (32, 80, 80),
    spacing: tuple[float, float, float] = (2.5, 0.8, 0.8),
) -> tuple[np.ndarray, np.ndarray]:
    """A training patch on the model's grid, HU (z, y, x) float32, and its boolean lesion mask.

    Rendered at a random native spacing and resampled to ``spacing`` as the pipeline does; the
    patch is centred on a lesion 2 times in 3 when there is one, else anywhere over the body.
    """
    extent = np.array(shape) * np.array(spacing)
    chest = random_chest(rng, z_extent_mm=float(rng.uniform(1.5, 4.0) * extent[0]), small=0.15)
    if chest.lesions and rng.random() < 2 / 3:
        target = chest.lesions[int(rng.integers(len(chest.lesions)))]
        centre = np.array(target.centre) + rng.uniform(-0.35, 0.35, size=3) * extent
    else:
        centre = np.array([rng.uniform(-1, 1) * extent[0],
                           rng.uniform(-1.1, 1.1) * chest.body[0], rng.uniform(-1.1, 1.1) * chest.body[1]])
    native = np.array([rng.choice(_NATIVE_SLICES_MM), *(rng.uniform(0.6, 1.0),) * 2])
    counts = np.maximum(1, np.round(extent / native)).astype(int)
    native = extent / counts  # the patch covers the same mm on both grids
    start = centre - extent / 2
    volume, _ = render(chest, *(_centres(s, n, d) for s, n, d in zip(start, counts, native)), rng)
    image = torch.from_numpy(volume)[None, None]
    if tuple(counts) != tuple(shape):
        image = F.interpolate(image, size=shape, mode="trilinear", align_corners=False)
    grid = [_centres(s, n, d) for s, n, d in zip(start, shape, spacing)]
    _, labels = render(chest, *grid, None)
    return image[0, 0].numpy(), labels > 0


def ct_study(
    seed: int,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    study: StudySpec | None = None,
) -> tuple[list[Dataset], np.ndarray]:
    """A held-out CT series of ``shape`` at ``spacing`` (mm) and its boolean lesion mask."""
    rng = np.random.default_rng(seed)
    extent = np.array(shape) * np.array(spacing)
    chest = random_chest(rng, z_extent_mm=float(extent[0]), field=(extent[1] / 2, extent[2] / 2))
    grid = [_centres(-e / 2, n, d) for e, n, d in zip(extent, shape, spacing)]
    volume, labels = render(chest, *grid, rng)
    return ct_series_from_volume(volume, spacing, study or StudySpec()), labels > 0
