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
