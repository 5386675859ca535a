"""Train the drug model (autoencoder + activity regressor) on RDKit-shipped data.

    python -m pipelines.drug.train                      # full run, writes pipelines/drug/model/
    python -m pipelines.drug.train --smoke --out /tmp/x  # seconds: a subset, few epochs

Deterministic for a given seed on one thread. Splits: activity series 80/10/10
(train/validation/test, random, seed), background set 90/10 (autoencoder train/held-out).
The test ids are stored in the weights file so ``evaluate.py`` scores exactly the held-out set.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from pipelines.drug.chem import FP_BITS, FP_RADIUS, Standardiser
from pipelines.drug.datasets import (
    ACTIVITY_SOURCE,
    fingerprint_smiles,
    load_activity_data,
    load_background_smiles,
)
from pipelines.drug.model import (
    DEFAULT_MODEL_PATH,
    ActivityRegressor,
    DrugModel,
    FingerprintAutoencoder,
    nearest_neighbour_similarity,
    reconstruction_error,
)

__all__ = [
    "DOMAIN_QUANTILE",
    "TrainConfig",
    "applicability_domain",
    "autoencoder_metrics",
    "main",
    "regression_metrics",
    "split_indices",
    "train",
]

log = logging.getLogger(__name__)

DOMAIN_QUANTILE = 0.05


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    ae_epochs: int = 60
    reg_epochs: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-5
    patience: int = 40
    subset: int | None = None  # smoke mode: N evenly spaced activity molecules, ~2N background


def split_indices(n: int, fractions: tuple[float, ...], seed: int) -> list[np.ndarray]:
    """A seeded random partition of ``range(n)``; the last part takes the remainder."""
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([round(f * n) for f in fractions[:-1]])
    return [np.sort(part) for part in np.split(order, bounds)]


def regression_metrics(y: np.ndarray, pred: np.ndarray, train_mean: float) -> dict[str, float]:
    rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
    ss_res = float(np.sum((y - pred) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {
        "n": len(y),
        "rmse": round(rmse, 4),
        "mae": round(float(np.mean(np.abs(pred - y))), 4),
        "r2": round(1.0 - ss_res / ss_tot, 4) if ss_tot > 0 else float("nan"),
        "spearman": round(float(spearmanr(y, pred).statistic), 4),
        "baseline_rmse_train_mean": round(float(np.sqrt(np.mean((y - train_mean) ** 2))), 4),
    }


@torch.no_grad()
def autoencoder_metrics(ae: FingerprintAutoencoder, fps: np.ndarray) -> dict[str, float]:
    """Held-out reconstruction: mean BCE, and bit recall/precision at logit 0."""
    x = torch.from_numpy(fps.astype(np.float32))
    _, logits = ae(x)
    pred = logits > 0
    on = x > 0.5
    tp = float((pred & on).sum())
    return {
        "n": len(fps),
        "mean_bce": round(float(reconstruction_error(logits, x).mean()), 5),
        "bit_recall": round(tp / max(float(on.sum()), 1.0), 4),
        "bit_precision": round(tp / max(float(pred.sum()), 1.0), 4),
    }


def applicability_domain(train_fps: np.ndarray) -> tuple[float, dict[str, object]]:
    """The activity model's applicability-domain threshold on max Tanimoto to a training
    molecule, and its description for the metadata.

    The threshold is the :data:`DOMAIN_QUANTILE` quantile of the training molecules' own
    leave-one-out nearest-neighbour Tanimoto: a molecule in domain is as close to some training
    molecule as 95 % of the training molecules are to their nearest other one. Drawn from the
    data, not fixed, because a congeneric series sits far tighter than a diverse set (here 0.69
    against the fixed 0.4 used before, which let in molecules farther from the training set
    than any training molecule is from its neighbour)."""
    nn_sim = nearest_neighbour_similarity(train_fps)
    threshold = float(np.quantile(nn_sim, DOMAIN_QUANTILE))
    return threshold, {
        "measure": "max Tanimoto (Morgan fingerprint) to a training molecule",
        "rule": f"{DOMAIN_QUANTILE:.0%} quantile of the training molecules' leave-one-out nearest-neighbour Tanimoto",
        "threshold": round(threshold, 4),
        "training_nn_tanimoto_quantiles": {str(q): round(float(np.quantile(nn_sim, q)), 4) for q in (0.01, 0.05, 0.5)},
    }


def _batches(n: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(n, generator=generator).split(size))


def _train_autoencoder(fps: np.ndarray, cfg: TrainConfig, gen: torch.Generator) -> FingerprintAutoencoder:
    ae = FingerprintAutoencoder()
    opt = torch.optim.Adam(ae.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_all = torch.from_numpy(fps.astype(np.float32))
    for epoch in range(cfg.ae_epochs):
        ae.train()
        total = 0.0
        for idx in _batches(len(x_all), cfg.batch_size, gen):
            x = x_all[idx]
            _, logits = ae(x)
            loss = nn.functional.binary_cross_entropy_with_logits(logits, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if epoch % 10 == 0 or epoch == cfg.ae_epochs - 1:
            log.info("autoencoder epoch %d: train BCE %.5f", epoch, total / len(x_all))
    return ae.eval()


def _train_regressor(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    cfg: TrainConfig,
    gen: torch.Generator,
) -> ActivityRegressor:
    """MSE on the standardised target with early stopping on validation RMSE."""
    reg = ActivityRegressor()
    opt = torch.optim.Adam(reg.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay * 10)
    xt, yt = torch.from_numpy(x_train.astype(np.float32)), torch.from_numpy(y_train)
    xv, yv = torch.from_numpy(x_val.astype(np.float32)), torch.from_numpy(y_val)
    best, best_state, stale = float("inf"), None, 0
    for epoch in range(cfg.reg_epochs):
        reg.train()
        for idx in _batches(len(xt), cfg.batch_size // 2, gen):
            loss = nn.functional.mse_loss(reg(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        reg.eval()
        with torch.no_grad():
            val = float(nn.functional.mse_loss(reg(xv), yv))
        if val < best - 1e-5:
            best, stale = val, 0
            best_state = {k: v.clone() for k, v in reg.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                log.info("regressor early stop at epoch %d (best val MSE %.4f)", epoch, best)
                break
    if best_state is not None:
        reg.load_state_dict(best_state)
    return reg.eval()


def train(cfg: TrainConfig, out: Path) -> dict[str, object]:
    """Train both networks, save ``out`` and return the metrics written beside it."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    started = time.perf_counter()
    standardise = Standardiser(tautomer=False)  # as the screen's default

    smiles, pic50, ids = load_activity_data()
    if cfg.subset:  # evenly spaced: the shipped file is ordered by activity
        pick = np.linspace(0, len(smiles) - 1, cfg.subset).astype(int)
        smiles, pic50, ids = [smiles[i] for i in pick], pic50[pick], [ids[i] for i in pick]
    fps, keep = fingerprint_smiles(smiles, standardise)
    pic50, ids = pic50[keep], [i for i, k in zip(ids, keep, strict=True) if k]
    tr, va, te = split_indices(len(fps), (0.8, 0.1, 0.1), cfg.seed)
    mean, std = float(pic50[tr].mean()), float(pic50[tr].std())
    reg = _train_regressor(fps[tr], (pic50[tr] - mean) / std, fps[va], (pic50[va] - mean) / std, cfg, gen)

    background = load_background_smiles()
    if cfg.subset:
        background = background[:: max(len(background) // (cfg.subset * 2), 1)]
    bg_fps, _ = fingerprint_smiles(background, standardise)
    bg_fps = np.unique(bg_fps, axis=0)  # duplicates (salts, repeats) would leak into the held-out part
    ae_tr, ae_te = split_indices(len(bg_fps), (0.9, 0.1), cfg.seed)
    ae = _train_autoencoder(bg_fps[ae_tr], cfg, gen)
    with torch.no_grad():
        x = torch.from_numpy(bg_fps[ae_tr].astype(np.float32))
        train_err = reconstruction_error(ae(x)[1], x).numpy()

    threshold, domain = applicability_domain(fps[tr])
    model = DrugModel(
        autoencoder=ae,
        regressor=reg,
        target_mean=mean,
        target_std=std,
        domain_fps=fps[tr],
        domain_threshold=threshold,
        novelty_threshold=float(np.quantile(train_err, 0.99)),
        activity=ACTIVITY_SOURCE,
    )
    pred = model.score(fps[te]).pic50
    metrics: dict[str, object] = {
        "activity_test": regression_metrics(pic50[te], pred, mean),
        "autoencoder_heldout": autoencoder_metrics(ae, bg_fps[ae_te]),
        "sizes": {"activity_train": len(tr), "activity_val": len(va), "activity_test": len(te),
                  "autoencoder_train": len(ae_tr), "autoencoder_heldout": len(ae_te)},
        "train_seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    model.metadata = {
        "fingerprint": f"Morgan radius {FP_RADIUS}, {FP_BITS} bits, after standardisation (no tautomer step)",
        "applicability_domain": domain,
        "background_data": "RDKit Data/NCI/first_5K.smi + Contrib fraggle ChEMBL_11265 actives + Fastcluster cdk2",
        "config": cfg.__dict__,
        "activity_test_ids": [ids[i] for i in te],
        "autoencoder_heldout_count": len(ae_te),
        "metrics": metrics,
    }
    model.save(out)
    (out.parent / f"{out.stem}.metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH, help="weights file (.pt) to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="tiny subset and few epochs; for tests")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)  # the training host's cores are shared
    cfg = TrainConfig(seed=args.seed)
    if args.smoke:
        cfg = TrainConfig(seed=args.seed, ae_epochs=2, reg_epochs=3, subset=120)
    out = args.out if args.out.suffix == ".pt" else args.out / "drug_model.pt"
    print(json.dumps(train(cfg, out), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
