"""xray_cls end to end on synthetic radiographs: nodule scores above no nodule, and the map points at it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from dicom_node import synthetic as syn
from dicom_node.encoders import AlgorithmInfo, encode_classification_report, encode_heatmap
from dicom_node.inference.models import load_model
from pipelines import registry
from pipelines.base import PipelineError
from pipelines.xray_cls import train
from pipelines.xray_cls.pipeline import XRayClassification
from tests.encoders.helpers import content_items
from tests.inference.helpers import REAL_RADIOGRAPHS, nodule_centre, real_radiograph

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


@pytest.mark.parametrize("name", REAL_RADIOGRAPHS)
def test_real_radiographs_give_valid_heatmap_and_report(pipeline: XRayClassification, name: str, tmp_path: Path,
                                                        dciodvfy, dsrdump) -> None:
    """Real CR/DX files, with and without (usable) pixel spacing, end in a valid SEG and SR.

    A CR with Pixel Spacing 0\\0 and no Imager Pixel Spacing failed in highdicom's Image Library
    (AttributeError) and the job returned nothing.
    """
    image = real_radiograph(name)
    result = pipeline.run([image])
    assert result.classification is not None
    assert result.classification.heatmap.shape == (image.Rows, image.Columns)
    algorithm = AlgorithmInfo.from_result(result)
    heatmap = encode_heatmap(result, algorithm)
    heatmap.save_as(tmp_path / "heatmap.dcm", enforce_file_format=True)
    dciodvfy(tmp_path / "heatmap.dcm")
    encode_classification_report(result, heatmap, algorithm).save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    dciodvfy(tmp_path / "sr.dcm")
    dsrdump(tmp_path / "sr.dcm")

    sr = pydicom.dcmread(tmp_path / "sr.dcm")
    (entry,) = content_items(sr, "Source")  # the Image Library lists the radiograph
    assert entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
    (modality,) = content_items(entry, "Modality")
    assert modality.ConceptCodeSequence[0].CodeValue == image.Modality
    spacing = content_items(entry, "Horizontal Pixel Spacing")
    if "ImagerPixelSpacing" in image:
        assert float(spacing[0].MeasuredValueSequence[0].NumericValue) == pytest.approx(float(image.ImagerPixelSpacing[1]))
    else:
        assert not spacing, "no spacing is made up for an image that has none"


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
