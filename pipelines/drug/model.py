"""The learned part of the screen: a Morgan-fingerprint autoencoder and an activity regressor,
saved together in one small weights file.

* Autoencoder (2048 → 128 → 32 → 128 → 2048 logits): novelty is the per-molecule mean binary
  cross-entropy of reconstructing the fingerprint (high = unlike the training chemistry); the
  32-d code gives a cosine similarity to a reference set of known drugs.
* Regressor (2048 → 128 → 1): pIC50 of the aryl-sulfonamide series shipped with RDKit
  (Contrib/FreeWilson CHEMBL2321810). A prediction is only trusted inside the applicability
  domain: max Tanimoto to a training molecule ≥ :data:`DOMAIN_TANIMOTO`.

Weights are stored as float16 to keep the committed file small and computed in float32.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipelines.drug.chem import FP_BITS

__all__ = [
    "DEFAULT_MODEL_PATH",
    "DOMAIN_TANIMOTO",
    "ActivityRegressor",
    "DrugModel",
    "FingerprintAutoencoder",
    "ModelScores",
    "max_tanimoto",
    "reconstruction_error",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = Path(__file__).parent / "model" / "drug_model.pt"
DOMAIN_TANIMOTO = 0.4
_BATCH = 2048


class FingerprintAutoencoder(nn.Module):
    def __init__(self, n_bits: int = FP_BITS, hidden: int = 128, latent: int = 32) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_bits, hidden), nn.ReLU(), nn.Linear(hidden, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, n_bits))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (latent code, reconstruction logits)."""
        z = self.encoder(x)
        return z, self.decoder(z)


class ActivityRegressor(nn.Module):
    """Predicts a standardised pIC50; :class:`DrugModel` undoes the standardisation."""

    def __init__(self, n_bits: int = FP_BITS, hidden: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_bits, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def reconstruction_error(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-molecule mean binary cross-entropy over the fingerprint bits."""
    return nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").mean(dim=1)


def max_tanimoto(queries: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max Tanimoto of each query bit vector to any reference, and that reference's index.

    Bit vectors as 0/1 arrays; intersections by matrix product, in batches to bound memory.
    """
    ref = torch.from_numpy(references.astype(np.float32))
    ref_counts = ref.sum(dim=1)
    best = np.zeros(len(queries), dtype=np.float32)
    best_idx = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(queries), _BATCH):
        q = torch.from_numpy(queries[start : start + _BATCH].astype(np.float32))
        inter = q @ ref.T
        union = q.sum(dim=1, keepdim=True) + ref_counts[None, :] - inter
        sim = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
        values, idx = sim.max(dim=1)
        best[start : start + len(q)] = values.numpy()
        best_idx[start : start + len(q)] = idx.numpy()
    return best, best_idx


@dataclass
class ModelScores:
    """Model outputs for a batch, one entry per molecule."""

    novelty: np.ndarray
    latent: np.ndarray
    pic50: np.ndarray
    domain_similarity: np.ndarray


@dataclass
class DrugModel:
    """Autoencoder + regressor + what scoring needs from training (target scaling, the training
    fingerprints for the applicability domain, the novelty threshold)."""

    autoencoder: FingerprintAutoencoder
    regressor: ActivityRegressor
    target_mean: float
    target_std: float
    domain_fps: np.ndarray
    novelty_threshold: float
    metadata: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""

    def __post_init__(self) -> None:
        self.autoencoder.eval()
        self.regressor.eval()

    @torch.no_grad()
    def encode(self, fps: np.ndarray) -> np.ndarray:
        return self.autoencoder.encoder(torch.from_numpy(fps.astype(np.float32))).numpy()

    @torch.no_grad()
    def score(self, fps: np.ndarray) -> ModelScores:
        """Score a (N, FP_BITS) 0/1 fingerprint matrix in batches."""
        novelty, latent, pic50 = [], [], []
        for start in range(0, len(fps), _BATCH):
            x = torch.from_numpy(fps[start : start + _BATCH].astype(np.float32))
            z, logits = self.autoencoder(x)
            novelty.append(reconstruction_error(logits, x).numpy())
            latent.append(z.numpy())
            pic50.append((self.regressor(x) * self.target_std + self.target_mean).numpy())
        domain, _ = max_tanimoto(fps, self.domain_fps)
        empty = np.zeros(0, dtype=np.float32)
        return ModelScores(
            novelty=np.concatenate(novelty) if novelty else empty,
            latent=np.concatenate(latent) if latent else np.zeros((0, self._latent_dim()), np.float32),
            pic50=np.concatenate(pic50) if pic50 else empty,
            domain_similarity=domain,
        )

    def _latent_dim(self) -> int:
        return self.autoencoder.encoder[-1].out_features

    def save(self, path: Path) -> None:
        payload = {
            "autoencoder": {k: v.half() for k, v in self.autoencoder.state_dict().items()},
            "regressor": {k: v.half() for k, v in self.regressor.state_dict().items()},
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "domain_fps": torch.from_numpy(np.packbits(self.domain_fps.astype(np.uint8), axis=1)),
            "novelty_threshold": self.novelty_threshold,
            "metadata": self.metadata,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL_PATH) -> DrugModel:
        raw = Path(path).read_bytes()
        payload = torch.load(path, map_location="cpu", weights_only=True)
        autoencoder = FingerprintAutoencoder()
        autoencoder.load_state_dict({k: v.float() for k, v in payload["autoencoder"].items()})
        regressor = ActivityRegressor()
        regressor.load_state_dict({k: v.float() for k, v in payload["regressor"].items()})
        domain = np.unpackbits(payload["domain_fps"].numpy(), axis=1)[:, :FP_BITS]
        model = cls(
            autoencoder=autoencoder,
            regressor=regressor,
            target_mean=float(payload["target_mean"]),
            target_std=float(payload["target_std"]),
            domain_fps=domain,
            novelty_threshold=float(payload["novelty_threshold"]),
            metadata=dict(payload["metadata"]),
            checksum=hashlib.sha256(raw).hexdigest(),
        )
        log.debug("loaded drug model %s (sha256 %s)", Path(path).name, model.checksum[:12])
        return model
