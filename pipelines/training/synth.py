"""Varied synthetic training data for the demo models.

``dicom_node.synthetic`` makes one kind of study (fixed contrast, one spherical lesion); a
model trained only on that would learn a single grey value. These generators vary what a
detector should not depend on — body size, tissue grey level, noise, bias field, lesion
count, size, shape and contrast, distracting bright structures — so the demo models find
"a compact blob brighter than its surroundings" and still score well on the canonical
studies the node's end-to-end flow uses. CT patches of clinical size come from
:mod:`pipelines.training.ct_chest`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mr_case", "xray_case"]


def _ellipsoids(
    shape: tuple[int, int, int], rng: np.random.Generator, body: np.ndarray, count: int, radius: tuple[float, float]
) -> np.ndarray:
    """Up to ``count`` random ellipsoids centred inside ``body`` (a 2D in-plane mask)."""
    z, y, x = shape
    grid = np.ogrid[:z, :y, :x]
    inside = np.argwhere(body)
    mask = np.zeros(shape, dtype=bool)
    for _ in range(count):
        r = rng.uniform(*radius)
        radii = r * rng.uniform(0.75, 1.3, size=3)
        cy, cx = inside[rng.integers(len(inside))] + rng.uniform(-0.5, 0.5, size=2)
        cz = rng.uniform(min(radii[0], z / 2), max(z - radii[0], z / 2))
        dist = sum(((g - c) / s) ** 2 for g, c, s in zip(grid, (cz, cy, cx), radii))
        mask |= dist <= 1.0
    return mask & body[None]


def _body(y: int, x: int, rng: np.random.Generator, scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """An elliptic body outline and its core (where lesions may sit)."""
    yy, xx = np.ogrid[:y, :x]
    ay, ax = rng.uniform(*scale) * y, rng.uniform(*scale) * x
    cy, cx = y / 2 + rng.uniform(-0.05, 0.05) * y, x / 2 + rng.uniform(-0.05, 0.05) * x
    r2 = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2
    return r2 <= 1.0, r2 <= 0.45


def mr_case(
    rng: np.random.Generator, shape: tuple[int, int, int] = (24, 64, 64)
) -> tuple[np.ndarray, np.ndarray]:
    """A T2-like MR volume (arbitrary units, random scanner scale and bias field) and its mask."""
    z, y, x = shape
    head, core = _body(y, x, rng, (0.30, 0.44))
    scale = rng.uniform(80.0, 1500.0)
    vol = np.zeros(shape, dtype=np.float32)
    vol[:, head] = scale
    if rng.random() < 0.5:  # a darker "ventricle" pair
        yy, xx = np.ogrid[:y, :x]
        for side in (-1, 1):
            ventricle = ((yy - y / 2) / (0.12 * y)) ** 2 + ((xx - x / 2 - side * 0.07 * x) / (0.04 * x)) ** 2 <= 1
            vol[:, ventricle & head] = scale * rng.uniform(0.3, 0.6)
    count = int(rng.choice([0, 1, 1, 1, 2]))
    mask = _ellipsoids(shape, rng, core, count, (2.5, 8.0))
    vol[mask] = scale * rng.uniform(1.6, 3.5)
    axis = rng.integers(3)
    ramp = np.linspace(0, np.pi, shape[axis]).reshape([-1 if a == axis else 1 for a in range(3)])
    vol = vol * (1.0 + rng.uniform(0.0, 0.3) * np.sin(ramp + rng.uniform(-0.5, 0.5)))
    vol += rng.normal(0.0, rng.uniform(0.03, 0.08) * scale, shape)
    return np.clip(vol, 0, None).astype(np.float32), mask


def xray_case(rng: np.random.Generator, size: int = 128, nodule: bool = True) -> np.ndarray:
    """A 12-bit chest-radiograph-like image (MONOCHROME2 sense), with a nodule or without."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    img = np.full((size, size), rng.uniform(2500.0, 3400.0), dtype=np.float32)
    lung_grey = rng.uniform(650.0, 1150.0)
    centres = []
    for cx in (0.32, 0.68):
        cx += rng.uniform(-0.03, 0.03)
        ry, rx = rng.uniform(0.3, 0.4), rng.uniform(0.12, 0.17)
        lung = ((yy - 0.5 * size) / (ry * size)) ** 2 + ((xx - cx * size) / (rx * size)) ** 2 <= 1
        img[lung] = lung_grey
        centres.append((cx, ry, rx))
    if rng.random() < 0.6:  # ribs: faint bright bands a nodule detector must ignore
        phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(0.08, 0.14) * size
        ribs = np.sin(2 * np.pi * (yy + 0.15 * np.abs(xx - size / 2)) / period + phase) > 0.6
        img += ribs * rng.uniform(100.0, 350.0)
    img += rng.normal(0.0, rng.uniform(50.0, 120.0), img.shape).astype(np.float32)
    if nodule:
        cx, ry, rx = centres[rng.integers(2)]
        ny = 0.5 + rng.uniform(-0.6, 0.6) * ry
        nx = cx + rng.uniform(-0.5, 0.5) * rx
        r = rng.uniform(0.025, 0.07) * size
        img += rng.uniform(700.0, 2000.0) * np.exp(-((yy - ny * size) ** 2 + (xx - nx * size) ** 2) / (2 * r**2))
    return np.clip(img, 0, 4095)
