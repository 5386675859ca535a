"""Writing a MONAI bundle folder the node's model loader (and MONAI's tools) can read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser

__all__ = ["parse_config", "write_bundle"]


def parse_config(inference: dict[str, Any]) -> ConfigParser:
    """The inference configuration as the loader will parse it, for training with the same
    network definition and intensity transform that inference will use."""
    parser = ConfigParser()
    parser.read_config(json.loads(json.dumps(inference)))  # a copy: parsing must not alter the dict written
    parser["bundle_root"] = "."
    parser["device"] = "cpu"
    return parser


def write_bundle(
    folder: Path, inference: dict[str, Any], metadata: dict[str, Any], network: torch.nn.Module, card: str
) -> Path:
    """Write configs/inference.json, configs/metadata.json, models/model.pt and docs/README.md."""
    (folder / "configs").mkdir(parents=True, exist_ok=True)
    (folder / "models").mkdir(exist_ok=True)
    (folder / "docs").mkdir(exist_ok=True)
    (folder / "configs" / "inference.json").write_text(json.dumps(inference, indent=2) + "\n", encoding="utf-8")
    (folder / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
    torch.save(state, folder / "models" / "model.pt")
    (folder / "docs" / "README.md").write_text(card, encoding="utf-8")
    return folder
