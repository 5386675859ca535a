"""The learned part of the screen: a Morgan-fingerprint autoencoder and an activity regressor,
saved together in one small weights file.

* Autoencoder (2048 → 128 → 32 → 128 → 2048 logits): novelty is the per-molecule mean binary
  cross-entropy of reconstructing the fingerprint (high = unlike the training chemistry); the
  32-d code gives a cosine similarity to a reference set of known drugs.
* Regressor (2048 → 128 → 1): pIC50 of the aryl-sulfonamide series shipped with RDKit
  (Contrib/FreeWilson CHEMBL2321810); ``DrugModel.activity`` names what the number is. A
  prediction applies only inside the applicability domain: max Tanimoto to a training
  molecule ≥ ``DrugModel.domain_threshold``, a threshold drawn at training from the training
  set's own nearest-neighbour similarities (:func:`pipelines.drug.train.applicability_domain`).

Weights are stored as float16 to keep the committed file small and computed in float32.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipelines.drug.chem import FP_BITS
from pipelines.drug.datasets import ActivityEndpoint

__all__ = [
    "DEFAULT_MODEL_PATH",
    "ActivityRegressor",
    "DrugModel",
    "FingerprintAutoencoder",
    "ModelScores",
    "max_tanimoto",
    "nearest_neighbour_similarity",
    "reconstruction_error",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = Path(__file__).parent / "model" / "drug_model.pt"
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


def _similarity_blocks(queries: np.ndarray, references: np.ndarray) -> Iterator[tuple[int, torch.Tensor]]:
    """Tanimoto similarities of the query bit vectors (0/1 rows) to every reference, a block of
    queries at a time: intersections by matrix product, blocks to bound memory."""
    ref = torch.from_numpy(references.astype(np.float32))
    ref_counts = ref.sum(dim=1)
    for start in range(0, len(queries), _BATCH):
        q = torch.from_numpy(queries[start : start + _BATCH].astype(np.float32))
        inter = q @ ref.T
        union = q.sum(dim=1, keepdim=True) + ref_counts[None, :] - inter
        yield start, torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def max_tanimoto(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Max Tanimoto of each query bit vector to any reference."""
    best = np.zeros(len(queries), dtype=np.float32)
    for start, sim in _similarity_blocks(queries, references):
        best[start : start + len(sim)] = sim.max(dim=1).values.numpy()
    return best


def nearest_neighbour_similarity(fps: np.ndarray) -> np.ndarray:
    """Max Tanimoto of each bit vector to the *other* rows (leave-one-out nearest neighbour)."""
    best = np.zeros(len(fps), dtype=np.float32)
    for start, sim in _similarity_blocks(fps, fps):
        rows = torch.arange(len(sim))
        sim[rows, start + rows] = -1.0  # not itself
        best[start : start + len(sim)] = sim.max(dim=1).values.numpy()
    return best


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
    fingerprints and threshold of the applicability domain, the novelty threshold)."""

    autoencoder: FingerprintAutoencoder
    regressor: ActivityRegressor
    target_mean: float
    target_std: float
    domain_fps: np.ndarray
    domain_threshold: float
    novelty_threshold: float
    activity: ActivityEndpoint
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
        domain = max_tanimoto(fps, self.domain_fps)
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
            "domain_threshold": self.domain_threshold,
            "activity": asdict(self.activity),
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
            domain_threshold=float(payload["domain_threshold"]),
            activity=ActivityEndpoint(**payload["activity"]),
            novelty_threshold=float(payload["novelty_threshold"]),
            metadata=dict(payload["metadata"]),
            checksum=hashlib.sha256(raw).hexdigest(),
        )
        log.debug("loaded drug model %s (sha256 %s)", Path(path).name, model.checksum[:12])
        return model
