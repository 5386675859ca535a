"""Mask measurements in patient space: voxel-summed volume and the longest in-plane diameter."""

from __future__ import annotations

import numpy as np
import pytest

from dicom_node import synthetic as syn
from dicom_node.encoders.measure import _HULL_ABOVE, Geometry, _outline, mean_values, measure_segment


def brute_force_diameter(points: np.ndarray) -> float:
    return float(np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1).max()))


@pytest.mark.parametrize(
    ("spacing", "semi_axes_mm"),
    [
        ((1.25, 0.75, 0.75), (15.0, 20.0, 14.0)),
        ((1.25, 0.75, 0.75), (6.0, 7.0, 7.0)),
        ((2.5, 0.8, 0.8), (10.0, 5.0, 12.0)),
        ((5.0, 0.6, 0.9), (8.0, 22.0, 9.0)),  # anisotropic pixels: rows 0.6 mm apart, columns 0.9
    ],
)
def test_long_axis_and_volume_of_an_analytic_ellipsoid(spacing, semi_axes_mm) -> None:
    """An axis-aligned ellipsoid's longest axial diameter is 2·max(b, c); its volume 4/3·π·abc.

    A mask drawn by voxel centres is within about one pixel of the analytic outline, so the long
    axis is held to 1.5 pixel spacings; the volume to 5 % (partial voxels at the surface).
    """
    shape = tuple(int(2 * s / d) + 8 for s, d in zip(semi_axes_mm, spacing))
    lesion = syn.PhantomLesion(tuple(n / 2 + 0.3 for n in shape), semi_axes_mm)
    source, labels = syn.ct_phantom([lesion], shape=shape, spacing=spacing)
    measures = measure_segment(labels == 1, Geometry.of(source))
    assert measures.long_axis_mm == pytest.approx(lesion.longest_axial_diameter_mm, abs=1.5 * max(spacing[1:]))
    assert measures.volume_mm3 == pytest.approx(lesion.volume_mm3, rel=0.05)
    assert measures.volume_mm3 == pytest.approx((labels == 1).sum() * np.prod(spacing))
    assert not measures.projection and measures.area_mm2 is None


def test_long_axis_is_in_plane_not_3d() -> None:
    """A lesion long along z: the 3D Feret diameter would be its length, the long axis its width."""
    source = syn.ct_series(shape=(40, 32, 32), lesion_radius=None, spacing=(2.0, 1.0, 1.0))
    mask = np.zeros((40, 32, 32), bool)
    mask[5:35, 10:14, 10:20] = True  # 60 mm along z, 4 × 10 pixels across
    measures = measure_segment(mask, Geometry.of(source))
    # farthest outline points: the left edge midpoint of one corner pixel, the right of the opposite
    assert measures.long_axis_mm == pytest.approx(np.hypot(3, 10))


def test_large_outline_uses_the_hull_and_matches_brute_force() -> None:
    source = syn.ct_series(shape=(2, 700, 700), lesion_radius=None, spacing=(1.0, 0.5, 0.5))
    yy, xx = np.ogrid[:700, :700]
    mask = np.zeros((2, 700, 700), bool)
    mask[1] = ((yy - 340.2) / 330.0) ** 2 + ((xx - 351.7) / 250.0) ** 2 <= 1
    outline = _outline(mask[1])
    assert len(outline) > _HULL_ABOVE  # the convex hull path is taken
    expected = brute_force_diameter(outline[::2] * 0.5)  # every other point keeps brute force in memory
    assert measure_segment(mask, Geometry.of(source)).long_axis_mm == pytest.approx(expected, abs=0.5)


def test_frame_order_does_not_change_measures() -> None:
    source = syn.ct_series(shape=(10, 32, 32), lesion_radius=3.0, seed=4)
    _, mask = syn.ct_volume((10, 32, 32), 3.0, np.random.default_rng(4))
    forward = measure_segment(mask, Geometry.of(source))
    backward = measure_segment(mask[::-1], Geometry.of(source[::-1]))
    assert backward.volume_mm3 == pytest.approx(forward.volume_mm3)
    assert backward.long_axis_mm == pytest.approx(forward.long_axis_mm)
    means = mean_values(source, mask.astype(np.uint8), [1])
    assert means[1] > 100  # the synthetic lesion is ~160 HU in ~40 HU tissue


@pytest.mark.parametrize("spacing", [None, [0, 0], [0.0, 0.2]])
def test_projection_without_usable_spacing_measures_nothing_in_mm(spacing, caplog) -> None:
    """A CR with Pixel Spacing 0\\0 (or none at all): sizes are unknown, not computed from 0 or 1 mm."""
    image = syn.xray_instance(size=64, modality="CR")
    del image.ImagerPixelSpacing
    if spacing is None:
        del image.PixelSpacing
    else:
        image.PixelSpacing = spacing
    mask = np.zeros((1, 64, 64), bool)
    mask[0, 20:30, 20:28] = True
    geometry = Geometry.of([image])
    measures = measure_segment(mask, geometry)
    assert geometry.pixel_spacing is None and measures.projection
    assert (measures.area_mm2, measures.long_axis_mm, measures.volume_mm3) == (None, None, None)
    assert measures.voxel_count == 80
    if spacing is not None:
        assert "not a usable spacing" in caplog.text


def test_projection_falls_back_to_imager_pixel_spacing() -> None:
    image = syn.xray_instance(size=64, modality="DX")
    image.PixelSpacing = [0, 0]
    image.ImagerPixelSpacing = [0.2, 0.3]
    mask = np.zeros((1, 64, 64), bool)
    mask[0, 20:30, 20:28] = True
    measures = measure_segment(mask, Geometry.of([image]))
    assert measures.area_mm2 == pytest.approx(80 * 0.06)
    # 10 rows × 8 columns: edge midpoints 9 rows and 8 columns, or 10 rows and 7 columns, apart
    assert measures.long_axis_mm == pytest.approx(max(np.hypot(9 * 0.2, 8 * 0.3), np.hypot(10 * 0.2, 7 * 0.3)))
