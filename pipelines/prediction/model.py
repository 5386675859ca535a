"""GRU-D-style recurrent risk model (Che et al., "Recurrent neural networks for multivariate
time series with missing values", Sci Rep 8 (2018) 6085), and its batched scorer.

Irregular sampling and missingness are handled explicitly, not imputed away beforehand:

* a missing input decays from its last observed value towards the population centre at a
  learned per-feature rate, ``γx = exp(−relu(wx·δ + bx))``;
* the hidden state decays with the time since each feature was last seen,
  ``γh = exp(−relu(Wh·δ + bh))``, before every step;
* the observation mask and the step's time gap / time-before-index are inputs too;
* the head also sees the time from the last observation to the index date.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipelines.prediction.features import N_FEATURES, Batch, PatientSeries, make_batch

__all__ = ["DEFAULT_MODEL_PATH", "GRUD", "RiskModel"]

log = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = Path(__file__).parent / "model" / "ckd_grud.pt"
_BATCH = 1024


class GRUD(nn.Module):
    """GRU-D cell unrolled over left-aligned, padded steps; returns one logit per patient."""

    def __init__(self, n_features: int = N_FEATURES, hidden: int = 32) -> None:
        super().__init__()
        self.hidden = hidden
        self.input_decay_w = nn.Parameter(torch.full((n_features,), 0.5))
        self.input_decay_b = nn.Parameter(torch.zeros(n_features))
        self.hidden_decay = nn.Linear(n_features, hidden)
        self.cell = nn.GRUCell(2 * n_features + 2, hidden)
        self.head = nn.Sequential(nn.Linear(hidden + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, b: Batch) -> torch.Tensor:
        n, steps, _ = b.x.shape
        h = b.x.new_zeros(n, self.hidden)
        for k in range(steps):
            delta, mask = b.delta[:, k], b.mask[:, k]
            gamma_x = torch.exp(-torch.relu(self.input_decay_w * delta + self.input_decay_b))
            x_hat = mask * b.x[:, k] + (1 - mask) * gamma_x * b.last[:, k]  # decays to the centre, 0
            gamma_h = torch.exp(-torch.relu(self.hidden_decay(delta)))
            h_next = self.cell(torch.cat([x_hat, mask, torch.log1p(b.step[:, k])], dim=1), gamma_h * h)
            h = torch.where((k < b.lengths)[:, None], h_next, h)
        gap = b.step[torch.arange(n), b.lengths - 1, 1:2]  # time from the last step to the index date
        return self.head(torch.cat([h, torch.log1p(gap)], dim=1)).squeeze(-1)


@dataclass
class RiskModel:
    """A trained :class:`GRUD` with its metadata (horizon, metrics, training config)."""

    network: GRUD
    metadata: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""

    def __post_init__(self) -> None:
        self.network.eval()

    @torch.no_grad()
    def predict(self, patients: Sequence[PatientSeries], batch_size: int = _BATCH) -> np.ndarray:
        """Risk (probability of progression within the horizon) per patient, scored in batches."""
        out = []
        for start in range(0, len(patients), batch_size):
            out.append(torch.sigmoid(self.network(make_batch(patients[start : start + batch_size]))).numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"state_dict": self.network.state_dict(), "hidden": self.network.hidden, "metadata": self.metadata}
        torch.save(payload, path)

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL_PATH) -> RiskModel:
        raw = Path(path).read_bytes()
        payload = torch.load(path, map_location="cpu", weights_only=True)
        network = GRUD(hidden=int(payload["hidden"]))
        network.load_state_dict(payload["state_dict"])
        model = cls(network, dict(payload["metadata"]), hashlib.sha256(raw).hexdigest())
        log.debug("loaded risk model %s (sha256 %s)", Path(path).name, model.checksum[:12])
        return model
