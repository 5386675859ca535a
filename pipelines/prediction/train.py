"""Train the CKD-progression GRU-D on synthetic cohorts.

    python -m pipelines.prediction.train                       # writes pipelines/prediction/model/
    python -m pipelines.prediction.train --smoke --out /tmp/x  # seconds: tiny cohorts, 2 epochs

Cohorts: train seed 1, validation seed 2 (early stopping), test seed 3 (reported only).
One CPU thread; deterministic for the seeds.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipelines.prediction.cohort import HORIZON_MONTHS, OUTCOME, generate_cohort
from pipelines.prediction.evaluate import TEST_SEED, risk_metrics
from pipelines.prediction.features import make_batch
from pipelines.prediction.model import DEFAULT_MODEL_PATH, GRUD, RiskModel

__all__ = ["TrainConfig", "main", "train"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TrainConfig:
    n_train: int = 8000
    n_val: int = 2000
    n_test: int = 4000
    hidden: int = 32
    epochs: int = 40
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 6
    seed: int = 0


def train(cfg: TrainConfig, out: Path) -> dict[str, object]:
    """Train, keep the best validation epoch, save to ``out``, return (and write) metrics."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    started = time.perf_counter()
    train_set, val_set = generate_cohort(cfg.n_train, 1), generate_cohort(cfg.n_val, 2)
    data, val = make_batch(train_set.patients), make_batch(val_set.patients)
    y = torch.from_numpy(train_set.labels.astype(np.float32))
    y_val = torch.from_numpy(val_set.labels.astype(np.float32))
    network = GRUD(hidden=cfg.hidden)
    opt = torch.optim.Adam(network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    best, best_state, stale = float("inf"), None, 0
    for epoch in range(cfg.epochs):
        network.train()
        for idx in torch.randperm(len(y), generator=gen).split(cfg.batch_size):
            loss = loss_fn(network(data.select(idx)), y[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(network.parameters(), 5.0)
            opt.step()
        network.eval()
        with torch.no_grad():
            val_loss = float(loss_fn(network(val), y_val))
        log.info("epoch %d: validation loss %.4f", epoch, val_loss)
        if val_loss < best - 1e-4:
            best, stale = val_loss, 0
            best_state = {k: v.clone() for k, v in network.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    if best_state is not None:
        network.load_state_dict(best_state)
    model = RiskModel(network)
    test_set = generate_cohort(cfg.n_test, TEST_SEED)
    metrics: dict[str, object] = {
        "validation": risk_metrics(val_set.labels, model.predict(val_set.patients)),
        "test": risk_metrics(test_set.labels, model.predict(test_set.patients)),
        "epochs_run": epoch + 1,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    model.metadata = {
        "outcome": OUTCOME,
        "horizon_months": HORIZON_MONTHS,
        "cohort_seeds": {"train": 1, "validation": 2, "test": TEST_SEED},
        "config": asdict(cfg),
        "metrics": metrics,
    }
    model.save(out)
    (out.parent / f"{out.stem}.metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH, help="weights file (.pt) to write")
    parser.add_argument("--smoke", action="store_true", help="tiny cohorts, 2 epochs; for tests")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(1)  # the training host's cores are shared
    cfg = TrainConfig(n_train=300, n_val=100, n_test=200, epochs=2) if args.smoke else TrainConfig()
    out = args.out if args.out.suffix == ".pt" else args.out / "ckd_grud.pt"
    metrics = train(cfg, out)
    print(json.dumps({k: v for k, v in metrics.items() if k != "validation"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
