"""Print the held-out metrics of a drug model file.

    python -m pipelines.drug.evaluate [--model pipelines/drug/model/drug_model.pt]

Activity: the test molecules whose ids were recorded at training time (never seen in training
or early stopping). Autoencoder: the background split rebuilt from the recorded seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from pipelines.drug.chem import Standardiser
from pipelines.drug.datasets import (
    fingerprint_smiles,
    load_activity_data,
    load_background_smiles,
)
from pipelines.drug.model import DEFAULT_MODEL_PATH, DrugModel
from pipelines.drug.train import autoencoder_metrics, regression_metrics, split_indices

__all__ = ["evaluate", "main"]


def evaluate(path: Path = DEFAULT_MODEL_PATH) -> dict[str, object]:
    model = DrugModel.load(path)
    config = model.metadata["config"]
    standardise = Standardiser(tautomer=False)
    smiles, pic50, ids = load_activity_data()
    test_ids = set(model.metadata["activity_test_ids"])
    pick = [i for i, mol_id in enumerate(ids) if mol_id in test_ids]
    fps, keep = fingerprint_smiles([smiles[i] for i in pick], standardise)
    y = pic50[pick][keep]
    scores = model.score(fps)

    background = load_background_smiles()
    if config.get("subset"):
        background = background[:: max(len(background) // (config["subset"] * 2), 1)]
    bg_fps = np.unique(fingerprint_smiles(background, standardise)[0], axis=0)
    _, heldout = split_indices(len(bg_fps), (0.9, 0.1), config["seed"])
    return {
        "model": path.name,
        "sha256": model.checksum,
        "activity_test": regression_metrics(y, scores.pic50, model.target_mean),
        "activity_test_in_domain_fraction": round(
            float(np.mean(scores.domain_similarity >= model.domain_threshold)), 4
        ),
        "domain_threshold": round(model.domain_threshold, 4),
        "autoencoder_heldout": autoencoder_metrics(model.autoencoder, bg_fps[heldout]),
        "novelty_threshold": round(model.novelty_threshold, 5),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(json.dumps(evaluate(args.model), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
