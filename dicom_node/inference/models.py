"""Model loading: a MONAI bundle folder or a bare TorchScript file, cached per process.

As in the MONAI Deploy App SDK's model factory, the loader is picked by what it finds at the
path (``accept(path)``), so an operator swaps models by configuration alone:

* a bundle (``configs/inference.json|yaml`` with ``network_def`` as in the MONAI Model Zoo, and
  ``models/model.pt`` — a state dict — or ``models/model.ts`` — TorchScript);
* a bundle whose weights live elsewhere — in an installed package, say — named by path in the
  config (``dicom_node#weights``: one state-dict file or a list of them, an ensemble such as
  cross-validation folds; ``dicom_node#ensemble_size`` [all] of them are loaded, the first as
  ``network`` and the others as ``members``), so published weights are used where the package
  installed them, never copied or downloaded;
* a TorchScript archive on its own.

The SHA-256 of the weights file identifies the model in the algorithm identification of
every SEG/SR made with it, so a retrained model is never mistaken for the old one (for an
ensemble, the SHA-256 of the members' digests in order).
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
    "LOADERS",
    "BundleLoader",
    "LoadedModel",
    "ModelLoadError",
    "ModelLoader",
    "TorchScriptLoader",
    "clear_cache",
    "load_model",
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
    members: tuple[torch.nn.Module, ...] = ()  # further ensemble members (folds), same architecture

    @property
    def ensemble(self) -> tuple[torch.nn.Module, ...]:
        """Every network of the model: ``network`` first, then the other members."""
        return (self.network, *self.members)

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
    because a plain module supports hooks (Grad-CAM) that TorchScript does not. Weights in the
    bundle's ``models/`` take precedence over ``dicom_node#weights``, so exporting a bundle to
    TorchScript is dropping a ``model.ts`` beside a copy of its configs."""

    def accept(self, path: Path) -> bool:
        config = _config_file(path) if path.is_dir() else None
        return config is not None and (_weights_file(path) is not None or _names_weights(config))

    def load(self, path: Path, device: torch.device) -> LoadedModel:
        config = _config_file(path)
        if config is None:
            raise ModelLoadError(f"{path} lacks configs/inference.json")
        parser = ConfigParser()
        parser.read_config(str(config))
        parser["bundle_root"] = str(path)
        parser["device"] = str(device)
        if "imports" in parser:  # the bundle's own "$import …" lines, before anything that uses them
            parser.get_parsed_content("imports")
        metadata = _read_metadata(path / "configs" / "metadata.json")
        local = _weights_file(path)
        files = [local] if local is not None else _configured_weights(parser, config)
        if files[0].suffix == ".ts":
            networks = [torch.jit.load(str(files[0]), map_location=device)]
        else:
            if "network_def" not in parser:
                raise ModelLoadError(f"{config} defines no network_def for {files[0].name}")
            networks = []
            for file in files:
                network = parser.get_parsed_content("network_def", instantiate=True, lazy=False)
                network.load_state_dict(torch.load(file, map_location=device, weights_only=True))
                networks.append(network)
        digests = [sha256_file(file) for file in files]
        checksum = digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
        ready = [network.to(device).eval() for network in networks]
        return LoadedModel(
            network=ready[0],
            name=str(metadata.get("name", path.name)),
            version=str(metadata.get("version", "")),
            checksum=checksum,
            path=path,
            device=device,
            parser=parser,
            members=tuple(ready[1:]),
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


def _names_weights(config: Path) -> bool:
    """Whether the config names weights outside the bundle (``dicom_node#weights``)."""
    parser = ConfigParser()
    parser.read_config(str(config))
    return "dicom_node#weights" in parser


def _configured_weights(parser: ConfigParser, config: Path) -> list[Path]:
    """The state-dict files ``dicom_node#weights`` names, cut to ``dicom_node#ensemble_size``."""
    if "dicom_node#weights" not in parser:
        raise ModelLoadError(f"{config.parent.parent} has no models/model.pt|.ts and {config} names no dicom_node#weights")
    try:
        named = parser.get_parsed_content("dicom_node#weights")
    except (ImportError, ModuleNotFoundError) as exc:  # weights from a package that is not installed
        raise ModelLoadError(f"{config}: the weights' package is not installed ({exc})") from exc
    files = [Path(str(p)) for p in (named if isinstance(named, (list, tuple)) else [named])]
    size = parser.get_parsed_content("dicom_node#ensemble_size") if "dicom_node#ensemble_size" in parser else None
    if size is not None:
        if not 1 <= int(size) <= len(files):
            raise ModelLoadError(f"{config}: ensemble_size {size} is not between 1 and {len(files)} (the weights named)")
        files = files[: int(size)]
    missing = [str(p) for p in files if not p.is_file()]
    if not files or missing:
        raise ModelLoadError(f"{config}: weights file(s) not found: {', '.join(missing) or 'none named'}")
    return files


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
