"""A thresholded mask → separate lesions: specks dropped, lesions numbered largest first."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dicom_node import synthetic as syn
from dicom_node.inference.lesions import separate_lesions
from pipelines.base import PipelineError

SPACING = (1.25, 0.75, 0.75)
VOXEL_MM3 = float(np.prod(SPACING))


def phantom_mask() -> tuple[np.ndarray, list[syn.PhantomLesion]]:
    lesions = [
        syn.PhantomLesion((14.0, 64.0, 80.4), (6.0, 8.0, 6.0)),
        syn.PhantomLesion((24.3, 110.5, 100.2), (10.0, 14.0, 12.0)),
        syn.PhantomLesion((35.0, 30.7, 88.0), (4.0, 5.0, 5.0)),
    ]
    _, labels = syn.ct_phantom(lesions, shape=(48, 160, 160), spacing=SPACING)
    return labels, lesions


def test_specks_are_dropped_and_lesions_numbered_largest_first() -> None:
    truth, lesions = phantom_mask()
    mask = truth > 0
    rng = np.random.default_rng(0)
    specks = rng.integers(0, [48, 160, 160], size=(500, 3))  # 500 one-voxel false positives
    mask[tuple(specks.T)] = True
    mask[2:4, 5:8, 5:8] = True  # 18 voxels = 25 mm³: still below 30 mm³

    labels = separate_lesions(mask, VOXEL_MM3, min_volume_mm3=30.0, max_lesions=20)

    assert labels.dtype == np.uint8 and labels.max() == 3
    by_size = sorted(range(3), key=lambda i: -lesions[i].volume_mm3)  # truth labels i + 1
    for number, index in enumerate(by_size, start=1):
        found = labels == number
        assert np.array_equal(found & (truth > 0), truth == index + 1), f"Lesion {number} is truth lesion {index + 1}"
    near = ndimage.binary_dilation(truth > 0, structure=np.ones((3, 3, 3), bool))
    assert not labels[~near].any(), "every speck that touches no lesion is gone"


def test_voxels_touching_at_a_corner_are_one_lesion() -> None:
    mask = np.zeros((4, 8, 8), bool)
    mask[0:2, 0:2, 0:2] = True
    mask[2:4, 2:4, 2:4] = True  # meets the first cube at one corner
    labels = separate_lesions(mask, 10.0, min_volume_mm3=30.0, max_lesions=5)
    assert labels.max() == 1 and (labels == 1).sum() == 16


def test_nothing_found_gives_an_empty_mask() -> None:
    labels = separate_lesions(np.zeros((3, 4, 4), bool), 1.0, min_volume_mm3=30.0, max_lesions=5)
    assert labels.shape == (3, 4, 4) and not labels.any()


def test_too_many_lesions_fail_with_a_reason() -> None:
    mask = np.zeros((4, 40, 40), bool)
    mask[:, ::4, ::4] = True  # 100 separate columns of 4 voxels
    with pytest.raises(PipelineError, match="100 separate lesions of at least 4 mm³ found, more than the 20"):
        separate_lesions(mask, 1.0, min_volume_mm3=4.0, max_lesions=20)
