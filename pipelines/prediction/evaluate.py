"""Held-out metrics of a CKD-progression model on fresh synthetic patients.

    python -m pipelines.prediction.evaluate [--model ...] [--n 4000] [--seed 3]

Prints AUC, Brier score and a calibration table by deciles of predicted risk. The default
seed is the test seed used for the model card; training used other seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from pipelines.prediction.cohort import generate_cohort
from pipelines.prediction.model import DEFAULT_MODEL_PATH, RiskModel

__all__ = ["TEST_SEED", "evaluate", "main", "risk_metrics"]

TEST_SEED = 3


def risk_metrics(labels: np.ndarray, risk: np.ndarray) -> dict[str, object]:
    """AUC, Brier score, prevalence and a decile calibration table (mean predicted vs observed)."""
    order = np.argsort(risk, kind="stable")
    table = []
    for decile, part in enumerate(np.array_split(order, 10), start=1):
        table.append({
            "decile": decile,
            "n": len(part),
            "mean_predicted": round(float(risk[part].mean()), 4),
            "observed": round(float(labels[part].mean()), 4),
        })  # fmt: skip
    return {
        "n": len(labels),
        "prevalence": round(float(labels.mean()), 4),
        "auc": round(float(roc_auc_score(labels, risk)), 4),
        "brier": round(float(np.mean((risk - labels) ** 2)), 4),
        "brier_prevalence_only": round(float(labels.mean() * (1 - labels.mean())), 4),
        "calibration_deciles": table,
    }


def evaluate(path: Path = DEFAULT_MODEL_PATH, n: int = 4000, seed: int = TEST_SEED) -> dict[str, object]:
    model = RiskModel.load(path)
    cohort = generate_cohort(n, seed)
    return {"model": Path(path).name, "sha256": model.checksum, "seed": seed,
            **risk_metrics(cohort.labels, model.predict(cohort.patients))}  # fmt: skip


def _print_table(metrics: dict[str, object]) -> None:
    print(f"AUC {metrics['auc']:.3f}  Brier {metrics['brier']:.4f} "
          f"(prevalence-only {metrics['brier_prevalence_only']:.4f})  n {metrics['n']}  "
          f"prevalence {metrics['prevalence']:.3f}")  # fmt: skip
    print("decile  n     mean predicted  observed")
    for row in metrics["calibration_deciles"]:  # type: ignore[union-attr]
        print(f"{row['decile']:>6}  {row['n']:<5} {row['mean_predicted']:>14.3f}  {row['observed']:>8.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=TEST_SEED)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    metrics = evaluate(args.model, args.n, args.seed)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        _print_table(metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
