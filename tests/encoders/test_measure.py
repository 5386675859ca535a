"""Mask measurements in patient space: voxel-summed volume and maximum Feret diameter."""

from __future__ import annotations

import numpy as np
import pytest

from dicom_node import synthetic as syn
from dicom_node.encoders.measure import _HULL_ABOVE, Geometry, _boundary, mean_values, measure_segment


def brute_force_diameter(points: np.ndarray) -> float:
    best = 0.0
    for start in range(0, len(points), 512):
        block = points[start : start + 512]
        best = max(best, float(((block[:, None] - points[None]) ** 2).sum(-1).max()))
    return float(np.sqrt(best))


def test_large_segment_diameter_uses_the_hull_and_matches_brute_force() -> None:
    shape = (48, 48, 48)
    source = syn.ct_series(shape=shape, lesion_radius=None, spacing=(1.5, 0.9, 0.9))
    zz, yy, xx = np.ogrid[:48, :48, :48]
    mask = ((zz - 24) / 16.0) ** 2 + ((yy - 22) / 19.0) ** 2 + ((xx - 25) / 13.0) ** 2 <= 1
    geometry = Geometry.of(source)
    measures = measure_segment(mask, geometry)
    assert geometry.slice_spacing == pytest.approx(1.5)
    assert measures.volume_mm3 == pytest.approx(mask.sum() * 1.5 * 0.9 * 0.9)
    boundary = _boundary(mask)
    assert boundary.sum() > _HULL_ABOVE  # the convex hull path is taken
    # The farthest pair of voxels lies on the boundary; brute force over it is the reference.
    expected = brute_force_diameter(np.argwhere(boundary) * [1.5, 0.9, 0.9])
    assert measures.max_diameter_mm == pytest.approx(expected)


def test_frame_order_does_not_change_measures() -> None:
    source = syn.ct_series(shape=(10, 32, 32), lesion_radius=3.0, seed=4)
    _, mask = syn.ct_volume((10, 32, 32), 3.0, np.random.default_rng(4))
    forward = measure_segment(mask, Geometry.of(source))
    backward = measure_segment(mask[::-1], Geometry.of(source[::-1]))
    assert backward.volume_mm3 == pytest.approx(forward.volume_mm3)
    assert backward.max_diameter_mm == pytest.approx(forward.max_diameter_mm)
    means = mean_values(source, mask.astype(np.uint8), [1])
    assert means[1] > 100  # the synthetic lesion is ~160 HU in ~40 HU tissue
