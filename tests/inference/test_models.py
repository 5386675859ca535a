"""Model loading: a zoo-style bundle (network in inference.json), TorchScript, cache, device."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from monai.networks.nets import UNet

from dicom_node.inference.device import select_device
from dicom_node.inference.models import (
    BundleLoader,
    ModelLoadError,
    TorchScriptLoader,
    clear_cache,
    load_model,
)

NETWORK_DEF = {
    "_target_": "UNet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [4, 8],
    "strides": [2],
    "num_res_units": 1,
    "norm": "batch",
}


def zoo_network() -> torch.nn.Module:
    torch.manual_seed(0)
    return UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,),
                num_res_units=1, norm="batch").eval()


def write_zoo_bundle(folder: Path, network: torch.nn.Module, torchscript: bool = False) -> Path:
    """The Model Zoo layout: configs/inference.json (with the zoo's usual keys) + models/model.pt|ts."""
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    config = {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": NETWORK_DEF,
        "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": [{"_target_": "LoadImaged", "keys": "image"}]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [16, 32, 32], "sw_batch_size": 1},
    }
    (folder / "configs" / "inference.json").write_text(json.dumps(config))
    (folder / "configs" / "metadata.json").write_text(json.dumps({"name": "zoo test", "version": "0.4.2"}))
    if torchscript:
        torch.jit.script(network).save(str(folder / "models" / "model.ts"))
    else:
        torch.save(network.state_dict(), folder / "models" / "model.pt")
    return folder


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    clear_cache()


def test_zoo_bundle_with_state_dict(tmp_path: Path) -> None:
    network = zoo_network()
    bundle = write_zoo_bundle(tmp_path / "zoo", network)
    model = load_model(bundle, "cpu")
    x = torch.rand(1, 1, 16, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.network(x), network(x))
    assert (model.name, model.version) == ("zoo test", "0.4.2")
    assert model.checksum == hashlib.sha256((bundle / "models" / "model.pt").read_bytes()).hexdigest()
    assert not model.torchscript and not model.network.training
    assert model.setting("inferer#roi_size") == [16, 32, 32]
    assert model.setting("dicom_node#threshold", 0.5) == 0.5


def test_zoo_bundle_with_torchscript(tmp_path: Path) -> None:
    network = zoo_network()
    model = load_model(write_zoo_bundle(tmp_path / "zoo", network, torchscript=True), "cpu")
    assert model.torchscript
    x = torch.rand(1, 1, 16, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.network(x), network(x))


def test_bare_torchscript_file(tmp_path: Path) -> None:
    network = zoo_network()
    path = tmp_path / "lesion_v3.ts"
    torch.jit.script(network).save(str(path))
    assert TorchScriptLoader().accept(path) and not BundleLoader().accept(path)
    model = load_model(path, "cpu")
    assert model.name == "lesion_v3" and model.parser is None and model.torchscript
    assert model.setting("dicom_node#threshold", 0.5) == 0.5
    # a state dict is a zip too, but not TorchScript
    torch.save(network.state_dict(), tmp_path / "weights.pt")
    assert not TorchScriptLoader().accept(tmp_path / "weights.pt")


def test_models_are_cached_until_the_weights_change(tmp_path: Path) -> None:
    bundle = write_zoo_bundle(tmp_path / "zoo", zoo_network())
    first = load_model(bundle, "cpu")
    assert load_model(bundle, "cpu") is first
    weights = bundle / "models" / "model.pt"
    torch.manual_seed(1)
    torch.save(UNet(3, 1, 2, (4, 8), (2,), num_res_units=1, norm="batch").state_dict(), weights)
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = load_model(bundle, "cpu")
    assert second is not first and second.checksum != first.checksum


def test_what_is_not_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "missing", "cpu")
    (tmp_path / "empty" / "configs").mkdir(parents=True)
    with pytest.raises(ModelLoadError, match="neither a MONAI bundle"):
        load_model(tmp_path / "empty", "cpu")


def test_bundle_without_network_def_for_state_dict(tmp_path: Path) -> None:
    bundle = write_zoo_bundle(tmp_path / "zoo", zoo_network())
    config = json.loads((bundle / "configs" / "inference.json").read_text())
    del config["network_def"], config["network"]
    (bundle / "configs" / "inference.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="no network_def"):
        load_model(bundle, "cpu")


def test_device_choice() -> None:
    assert select_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert select_device(None).type == "cuda"
    else:
        assert select_device(None) == torch.device("cpu")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            select_device("cuda")


def write_bundle_naming_weights(folder: Path, weights: list[Path], ensemble_size: int | None = None) -> Path:
    """A bundle without models/: its config names state dicts elsewhere (as a package installs them)."""
    (folder / "configs").mkdir(parents=True)
    settings: dict[str, object] = {"weights": [str(p) for p in weights]}
    if ensemble_size is not None:
        settings["ensemble_size"] = ensemble_size
    config = {"imports": ["$from pathlib import Path"], "network_def": NETWORK_DEF, "dicom_node": settings}
    (folder / "configs" / "inference.json").write_text(json.dumps(config))
    return folder


def _fold(seed: int, folder: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(seed)
    network = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,),
                   num_res_units=1, norm="batch").eval()
    path = folder / f"fold{seed}.pt"
    torch.save(network.state_dict(), path)
    return network, path


def test_weights_named_by_path_load_as_an_ensemble(tmp_path: Path) -> None:
    folds = [_fold(seed, tmp_path) for seed in range(3)]
    bundle = write_bundle_naming_weights(tmp_path / "b", [path for _, path in folds])
    model = load_model(bundle, "cpu")
    x = torch.rand(1, 1, 8, 16, 16)
    with torch.no_grad():
        for loaded, (original, _) in zip(model.ensemble, folds, strict=True):
            torch.testing.assert_close(loaded(x), original(x))
    digests = "".join(hashlib.sha256(path.read_bytes()).hexdigest() for _, path in folds)
    assert model.checksum == hashlib.sha256(digests.encode()).hexdigest()


def test_ensemble_size_loads_the_first_members_only(tmp_path: Path) -> None:
    folds = [_fold(seed, tmp_path) for seed in range(3)]
    model = load_model(write_bundle_naming_weights(tmp_path / "b", [p for _, p in folds], ensemble_size=1), "cpu")
    assert len(model.ensemble) == 1 and model.members == ()
    assert model.checksum == hashlib.sha256(folds[0][1].read_bytes()).hexdigest()


@pytest.mark.parametrize("size", [0, 4])
def test_ensemble_size_beyond_the_weights_is_a_load_error(tmp_path: Path, size: int) -> None:
    folds = [_fold(seed, tmp_path) for seed in range(3)]
    with pytest.raises(ModelLoadError, match="ensemble_size"):
        load_model(write_bundle_naming_weights(tmp_path / "b", [p for _, p in folds], ensemble_size=size), "cpu")


def test_missing_named_weights_are_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(write_bundle_naming_weights(tmp_path / "b", [tmp_path / "absent.pt"]), "cpu")


def test_auto_device_is_cuda_when_present_else_cpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected == select_device(None).type


def test_a_gpu_index_the_host_lacks_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.cuda mocked: this host has no GPU, and the index check only runs where CUDA is."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert select_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(RuntimeError, match="2 CUDA device"):
        select_device("cuda:2")
