"""Model loading: a MONAI bundle folder or a bare TorchScript file, cached per process.

As in the MONAI Deploy App SDK's model factory, the loader is picked by what it finds at the
path (``accept(path)``), so an operator swaps models by configuration alone:

* a bundle (``configs/inference.json|yaml`` with ``network_def`` as in the MONAI Model Zoo, and
  ``models/model.pt`` — a state dict — or ``models/model.ts`` — TorchScript);
* a TorchScript archive on its own.

The SHA-256 of the weights file identifies the model in the algorithm identification of
every SEG/SR made with it, so a retrained model is never mistaken for the old one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from monai.bundle import ConfigParser

from dicom_node.errors import PermanentError
from dicom_node.inference.device import select_device

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "ModelLoader",
    "BundleLoader",
    "TorchScriptLoader",
    "LOADERS",
    "load_model",
    "clear_cache",
    "sha256_file",
]

logger = logging.getLogger(__name__)

_CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")


class ModelLoadError(PermanentError):
    """The configured path holds no model this node can load (a deployment problem, not the study's):
    retrying cannot help, so the job is a dead letter until the configuration is fixed."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A network in eval mode on its device, with what identifies it."""

    network: torch.nn.Module
    name: str
    version: str
    checksum: str  # SHA-256 (hex) of the weights file
    path: Path  # the bundle folder or the TorchScript file
    device: torch.device
    parser: ConfigParser | None  # the bundle's parsed configuration; None for a bare TorchScript file

    @property
    def torchscript(self) -> bool:
        return isinstance(self.network, torch.jit.ScriptModule)

    def setting(self, key: str, default: Any = None) -> Any:
        """A bundle setting by MONAI id (``"dicom_node#roi_size"``), instantiated if it has a ``_target_``."""
        if self.parser is None or key not in self.parser:
            return default
        return self.parser.get_parsed_content(key)


class ModelLoader(Protocol):
    def accept(self, path: Path) -> bool: ...

    def load(self, path: Path, device: torch.device) -> LoadedModel: ...


class BundleLoader:
    """A MONAI bundle folder; ``model.pt`` with ``network_def`` is preferred over ``model.ts``
    because a plain module supports hooks (Grad-CAM) that TorchScript does not."""

    def accept(self, path: Path) -> bool:
        return path.is_dir() and _config_file(path) is not None and _weights_file(path) is not None

    def load(self, path: Path, device: torch.device) -> LoadedModel:
        config, weights = _config_file(path), _weights_file(path)
        if config is None or weights is None:
            raise ModelLoadError(f"{path} lacks configs/inference.json or models/model.pt|.ts")
        parser = ConfigParser()
        parser.read_config(str(config))
        parser["bundle_root"] = str(path)
        parser["device"] = str(device)
        metadata = _read_metadata(path / "configs" / "metadata.json")
        if weights.suffix == ".ts":
            network = torch.jit.load(str(weights), map_location=device)
        else:
            if "network_def" not in parser:
                raise ModelLoadError(f"{config} defines no network_def for {weights.name}")
            network = parser.get_parsed_content("network_def", instantiate=True)
            state = torch.load(weights, map_location=device, weights_only=True)
            network.load_state_dict(state)
        return LoadedModel(
            network=network.to(device).eval(),
            name=str(metadata.get("name", path.name)),
            version=str(metadata.get("version", "")),
            checksum=sha256_file(weights),
            path=path,
            device=device,
            parser=parser,
        )


class TorchScriptLoader:
    """A bare TorchScript archive (a zip holding ``code/`` and ``constants.pkl``)."""

    def accept(self, path: Path) -> bool:
        if not path.is_file() or not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") for name in archive.namelist())

    def load(self, path: Path, device: torch.device) -> LoadedModel:
        network = torch.jit.load(str(path), map_location=device)
        return LoadedModel(network.eval(), path.stem, "", sha256_file(path), path, device, None)


LOADERS: tuple[ModelLoader, ...] = (BundleLoader(), TorchScriptLoader())

_cache: dict[tuple[str, str], tuple[int, LoadedModel]] = {}
_lock = threading.Lock()


def load_model(path: Path, device: torch.device | str | None = None) -> LoadedModel:
    """The model at ``path`` on ``device`` (default: CUDA if available), loaded once per process.

    The cache is keyed by path and device and checked against the newest modification time
    under the path, so replacing the weights on disk takes effect on the next job.
    """
    path = Path(path).resolve()
    if not path.exists():
        raise ModelLoadError(f"model path {path} does not exist")
    device = device if isinstance(device, torch.device) else select_device(device)
    key = (str(path), str(device))
    stamp = _mtime(path)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        loader = next((candidate for candidate in LOADERS if candidate.accept(path)), None)
        if loader is None:
            raise ModelLoadError(
                f"{path} is neither a MONAI bundle (configs/inference.json + models/model.pt|.ts) "
                "nor a TorchScript file"
            )
        model = loader.load(path, device)
        _cache[key] = (stamp, model)
    logger.info("loaded model %s %s (sha256 %s…) on %s", model.name, model.version, model.checksum[:12], device)
    return model


def clear_cache() -> None:
    """Forget every loaded model (tests; freeing GPU memory)."""
    with _lock:
        _cache.clear()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _config_file(bundle: Path) -> Path | None:
    return next((bundle / "configs" / n for n in _CONFIG_NAMES if (bundle / "configs" / n).is_file()), None)


def _weights_file(bundle: Path) -> Path | None:
    return next((bundle / "models" / n for n in ("model.pt", "model.ts") if (bundle / "models" / n).is_file()), None)


def _read_metadata(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as stream:
        data = json.load(stream)
    return data if isinstance(data, dict) else {}


def _mtime(path: Path) -> int:
    if path.is_file():
        return path.stat().st_mtime_ns
    return max((p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()), default=0)
