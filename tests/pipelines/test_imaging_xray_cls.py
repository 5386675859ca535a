"""xray_cls end to end on synthetic radiographs: nodule scores above no nodule, and the map points at it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dicom_node import synthetic as syn
from dicom_node.inference.models import load_model
from pipelines import registry
from pipelines.base import PipelineError
from pipelines.xray_cls import train
from pipelines.xray_cls.pipeline import XRayClassification
from tests.inference.helpers import nodule_centre

SEEDS = (2, 11, 12, 13)


@pytest.fixture(scope="module")
def pipeline() -> XRayClassification:
    return XRayClassification(device="cpu")


def test_registered() -> None:
    assert registry.get("xray_cls") is XRayClassification
    assert XRayClassification.modalities == ("CR", "DX")


@pytest.mark.parametrize("seed", SEEDS)
def test_nodule_scores_higher_than_no_nodule(pipeline: XRayClassification, seed: int) -> None:
    with_nodule = pipeline.run([syn.xray_instance(seed=seed, nodule=True)])
    without = pipeline.run([syn.xray_instance(seed=seed, nodule=False)])
    assert with_nodule.classification is not None and without.classification is not None
    assert with_nodule.classification.probability > without.classification.probability
    assert with_nodule.classification.positive and not without.classification.positive
    finding = with_nodule.classification.finding
    assert (finding.value, finding.scheme, finding.meaning) == ("27925004", "SCT", "Nodule")
    assert set(with_nodule.timings) == {"load", "pre", "inference", "post"}
    assert with_nodule.model_checksum.startswith("sha256:")


@pytest.mark.parametrize("seed", SEEDS)
def test_heatmap_is_on_the_source_grid_and_points_at_the_nodule(pipeline: XRayClassification, seed: int) -> None:
    result = pipeline.run([syn.xray_instance(seed=seed, nodule=True)])
    assert result.classification is not None
    heatmap = result.classification.heatmap
    assert heatmap.shape == (128, 128) and heatmap.dtype == np.float32
    assert heatmap.min() >= 0.0 and heatmap.max() == pytest.approx(1.0)
    row, col = nodule_centre(seed)
    assert heatmap[row, col] >= 0.5


def test_monochrome1_cr_reads_like_monochrome2_dx(pipeline: XRayClassification) -> None:
    dx = pipeline.run([syn.xray_instance(seed=2, modality="DX")])
    cr = pipeline.run([syn.xray_instance(seed=2, modality="CR", monochrome1=True)])
    assert dx.classification is not None and cr.classification is not None
    assert cr.classification.positive and abs(cr.classification.probability - dx.classification.probability) < 0.2


def test_torchscript_bundle_explains_by_occlusion(tmp_path: Path) -> None:
    """TorchScript has no module hooks for Grad-CAM: the map comes from occlusion instead."""
    bundle = tmp_path / "bundle"
    shutil.copytree(XRayClassification.demo_bundle / "configs", bundle / "configs")
    (bundle / "models").mkdir()
    demo = load_model(XRayClassification.demo_bundle, "cpu")
    torch.jit.trace(demo.network, torch.zeros(1, 1, 128, 128)).save(str(bundle / "models" / "model.ts"))
    result = XRayClassification(bundle_dir=bundle, device="cpu").run([syn.xray_instance(seed=2)])
    assert result.classification is not None and result.classification.positive
    row, col = nodule_centre(2)
    assert result.classification.heatmap[row, col] >= 0.5


def test_other_input_is_refused(pipeline: XRayClassification) -> None:
    with pytest.raises(PipelineError, match="one radiograph per series, got 2"):
        pipeline.run([syn.xray_instance(seed=1), syn.xray_instance(seed=2)])
    with pytest.raises(PipelineError, match="analyses CR/DX images, got CT"):
        pipeline.run(syn.ct_series()[:1])


def test_smoke_training(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    assert train.main(["--smoke", "--out", str(out)]) == 0
    result = XRayClassification(bundle_dir=out, device="cpu").run([syn.xray_instance(seed=2)])
    assert result.classification is not None and 0.0 <= result.classification.probability <= 1.0
