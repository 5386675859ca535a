"""A patient's observations as the recurrent model sees them.

Observations (time, feature, value) are grouped into *steps* (one per distinct time). For
each step and feature the model gets, GRU-D style (Che et al., Sci Rep 8 (2018) 6085):

* ``x``     the normalised value where observed, else 0;
* ``mask``  1 where observed at this step, else 0 (missingness is explicit, never imputed away);
* ``last``  the last normalised value observed *before* this step (0 = population centre);
* ``delta`` years since that last observation (capped), which drives the learned decay;

plus per step the gap to the previous step and the time before the index date, both in years.
Only the most recent :data:`MAX_STEPS` steps are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipelines.prediction.codes import FEATURES

__all__ = ["MAX_STEPS", "N_FEATURES", "Batch", "PatientSeries", "make_batch", "normalise"]

MAX_STEPS = 48
N_FEATURES = len(FEATURES)
_DELTA_CAP_YEARS = 5.0


@dataclass
class PatientSeries:
    """Observations in long form: ``times`` in years relative to the index date (≤ 0),
    ``features`` indexes into :data:`~pipelines.prediction.codes.FEATURES`, ``values`` in
    canonical units."""

    times: np.ndarray
    features: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=np.float64)
        self.features = np.asarray(self.features, dtype=np.int64)
        self.values = np.asarray(self.values, dtype=np.float64)
        order = np.lexsort((self.features, self.times))
        self.times, self.features, self.values = self.times[order], self.features[order], self.values[order]


@dataclass
class Batch:
    """Padded tensors for a batch (B patients, L steps, F features); steps are left-aligned
    and ``lengths`` says how many are real."""

    x: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor
    delta: torch.Tensor
    step: torch.Tensor  # (B, L, 2): gap to previous step, time before index (years)
    lengths: torch.Tensor

    def select(self, idx: torch.Tensor) -> Batch:
        """The patients ``idx``, trimmed to their longest series (cheap minibatches)."""
        lengths = self.lengths[idx]
        width = int(lengths.max()) if len(idx) else 0
        return Batch(
            *(t[idx, :width] for t in (self.x, self.mask, self.last, self.delta, self.step)), lengths=lengths
        )


_LOG = np.array([f.log for f in FEATURES])
_CENTRE = np.array([f.centre for f in FEATURES])
_SCALE = np.array([f.scale for f in FEATURES])


def normalise(features: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Vectorised :meth:`Feature.normalise` for (feature index, value) pairs."""
    v = np.where(_LOG[features], np.log(np.maximum(values, 1e-6)), values)
    return (v - _CENTRE[features]) / _SCALE[features]


def _steps(series: PatientSeries) -> tuple[np.ndarray, np.ndarray]:
    """(step times, normalised values (L, F) with NaN where missing) of the last MAX_STEPS steps."""
    times, inverse = np.unique(series.times, return_inverse=True)
    grid = np.full((len(times), N_FEATURES), np.nan)
    grid[inverse, series.features] = normalise(series.features, series.values)  # duplicates: later row wins
    return times[-MAX_STEPS:], grid[-MAX_STEPS:]


def _encode(series: PatientSeries) -> tuple[np.ndarray, ...]:
    times, grid = _steps(series)
    n = len(times)
    mask = ~np.isnan(grid)
    x = np.where(mask, grid, 0.0)
    last = np.zeros_like(x)
    delta = np.full_like(x, _DELTA_CAP_YEARS)
    seen_value = np.zeros(N_FEATURES)
    seen_time = np.full(N_FEATURES, np.nan)
    for k in range(n):
        last[k] = seen_value
        delta[k] = np.where(np.isnan(seen_time), _DELTA_CAP_YEARS, np.minimum(times[k] - seen_time, _DELTA_CAP_YEARS))
        seen_value = np.where(mask[k], x[k], seen_value)
        seen_time = np.where(mask[k], times[k], seen_time)
    gaps = np.diff(times, prepend=times[0] if n else 0.0)
    step = np.stack([gaps, -times], axis=1) if n else np.zeros((0, 2))
    return x, mask.astype(np.float64), last, delta, step


def make_batch(patients: Sequence[PatientSeries]) -> Batch:
    """Encode and pad a batch; a patient without observations is an error for the caller."""
    encoded = [_encode(p) for p in patients]
    lengths = [len(e[0]) for e in encoded]
    if min(lengths, default=1) == 0:
        raise ValueError("a patient without observations cannot be scored")
    width = max(lengths, default=1)
    arrays = []
    for i, dim in enumerate((N_FEATURES,) * 4 + (2,)):
        out = np.zeros((len(encoded), width, dim), dtype=np.float32)
        for b, e in enumerate(encoded):
            out[b, : lengths[b]] = e[i]
        arrays.append(torch.from_numpy(out))
    x, mask, last, delta, step = arrays
    return Batch(x, mask, last, delta, step, torch.tensor(lengths, dtype=torch.long))
