"""mr_seg end to end on synthetic MR: it finds the lesion whatever the scanner's grey scale."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from dicom_node import synthetic as syn
from pipelines import registry
from pipelines.base import PipelineError
from pipelines.mr_seg import train
from pipelines.mr_seg.pipeline import MRSegmentation
from pipelines.training.seg3d import dice
from tests.inference.helpers import mr_with_mask

MIN_DICE = 0.85  # the demo model scores ≈0.9+ held out (docs/README.md)


@pytest.fixture(scope="module")
def pipeline() -> MRSegmentation:
    return MRSegmentation(device="cpu")


def test_registered() -> None:
    assert registry.get("mr_seg") is MRSegmentation and MRSegmentation.modalities == ("MR",)


@pytest.mark.parametrize("seed", [1, 8])
def test_finds_the_lesion(pipeline: MRSegmentation, seed: int) -> None:
    datasets, truth = mr_with_mask(seed=seed)
    result = pipeline.run(datasets[::-1])
    assert result.segmentation is not None
    assert result.segmentation.mask.shape == truth.shape
    assert [ds.SOPInstanceUID for ds in result.source] == [ds.SOPInstanceUID for ds in datasets]
    assert dice(result.segmentation.mask, truth) >= MIN_DICE
    assert result.segmentation.labels[1].type.meaning == "Lesion"


def test_grey_scale_of_another_scanner(pipeline: MRSegmentation) -> None:
    """MR values have no unit: the same image stored ×0.25 (another scanner) gives the same mask."""
    datasets, truth = mr_with_mask(seed=1)
    scaled = []
    for ds in datasets:
        ds = copy.deepcopy(ds)
        ds.PixelData = (ds.pixel_array // 4).astype(np.uint16).tobytes()
        scaled.append(ds)
    result = pipeline.run(scaled)
    assert result.segmentation is not None and dice(result.segmentation.mask, truth) >= MIN_DICE


def test_lesion_free_series(pipeline: MRSegmentation) -> None:
    datasets, _ = mr_with_mask(seed=4, radius=None)
    result = pipeline.run(datasets)
    assert result.segmentation is not None and int(result.segmentation.mask.sum()) == 0


def test_ct_is_refused(pipeline: MRSegmentation) -> None:
    with pytest.raises(PipelineError, match="analyses MR images, got CT"):
        pipeline.run(syn.ct_series())


def test_smoke_training(tmp_path: Path) -> None:
    assert train.main(["--smoke", "--out", str(tmp_path / "smoke")]) == 0
    assert (tmp_path / "smoke" / "models" / "model.pt").is_file()
