"""The segmentation mask back on the source grid: the same voxels as interpolating the whole
probability map with F.interpolate and thresholding it, computed only where it can matter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dicom_node.inference.loading import Volume
from dicom_node.inference.segmentation import source_grid_mask


def volume_of(shape: tuple[int, int, int]) -> Volume:
    return Volume(np.zeros(shape, np.float32), (1.0, 1.0, 1.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0), [],
                  tuple(range(shape[0])))  # fmt: skip


def full_interpolation(probability: torch.Tensor, shape: tuple[int, int, int], threshold: float) -> np.ndarray:
    resampled = F.interpolate(probability[None, None], size=shape, mode="trilinear", align_corners=False)[0, 0]
    return (resampled >= threshold).numpy().astype(np.uint8)


def blobs(shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """A smooth probability map with a few bright blobs, some at the volume's edges."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(np.float32)
    field = np.zeros(shape, np.float32)
    for _ in range(3):
        centre = rng.uniform(0, shape)
        centre[rng.integers(3)] = rng.choice([0, shape[0] - 1])  # one on a face
        field += np.exp(-sum((g - c) ** 2 for g, c in zip(grid, centre)) / (2 * rng.uniform(1, 3) ** 2))
    return torch.from_numpy(np.clip(field, 0, 1))


@pytest.mark.parametrize(
    ("model_shape", "source_shape"),
    [((12, 40, 40), (30, 46, 46)), ((20, 30, 30), (20, 64, 64)), ((16, 32, 32), (9, 20, 20)), ((8, 8, 8), (25, 17, 31))],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_interpolating_everything(model_shape, source_shape, seed) -> None:
    probability = blobs(model_shape, seed)
    expected = full_interpolation(probability, source_shape, 0.5)
    got = source_grid_mask(probability, volume_of(source_shape), 0.5)
    near = (F.interpolate(probability[None, None], size=source_shape, mode="trilinear", align_corners=False)[0, 0] - 0.5).abs() < 1e-5
    assert expected.any()
    assert got.dtype == np.uint8 and got.shape == source_shape
    assert np.array_equal(got[~near.numpy()], expected[~near.numpy()])  # float rounding aside, voxel for voxel


def test_nothing_above_the_threshold_is_an_empty_mask() -> None:
    got = source_grid_mask(torch.full((8, 16, 16), 0.2), volume_of((20, 32, 32)), 0.5)
    assert got.shape == (20, 32, 32) and not got.any()


def test_same_grid_is_a_plain_threshold() -> None:
    probability = blobs((10, 20, 20), 4)
    got = source_grid_mask(probability, volume_of((10, 20, 20)), 0.5)
    assert np.array_equal(got, (probability >= 0.5).numpy().astype(np.uint8))
