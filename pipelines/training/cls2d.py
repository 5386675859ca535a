"""Training and held-out evaluation of the radiograph classification demo model.

Training images go through the same DICOM path as inference — pixels written into a CR or
DX instance (MONOCHROME1 or 2), read back with ``load_xray``, resized and normalised by the
bundle's own ``prepare_image`` — so the model never sees a normalisation inference won't give it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from pydicom.dataset import Dataset
from sklearn.metrics import roc_auc_score

from dicom_node.inference.classification import finding_probability, prepare_image
from dicom_node.inference.loading import load_xray
from dicom_node.inference.models import LoadedModel
from dicom_node.synthetic import xray_instance
from pipelines.base import ImagingPipeline
from pipelines.training.synth import xray_case

__all__ = ["ClsTrainConfig", "varied_xray", "train_classifier", "ClsScores", "score_pipeline", "score_model"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClsTrainConfig:
    steps: int
    batch_size: int = 32
    learning_rate: float = 3e-3
    seed: int = 0


def varied_xray(rng: np.random.Generator) -> tuple[Dataset, bool]:
    """A varied synthetic radiograph as DICOM (CR or DX, MONOCHROME1 or 2), half with a nodule."""
    nodule = bool(rng.random() < 0.5)
    pixels = xray_case(rng, nodule=nodule)
    monochrome1 = bool(rng.random() < 0.3)
    ds = xray_instance(nodule=False, modality=str(rng.choice(["CR", "DX"])), monochrome1=monochrome1)
    stored = np.round(4095 - pixels) if monochrome1 else np.round(pixels)
    ds.PixelData = stored.astype(np.uint16).tobytes()
    return ds, nodule


def train_classifier(
    model: LoadedModel, sample: Callable[[np.random.Generator], tuple[Dataset, bool]],
    default_size: tuple[int, int], config: ClsTrainConfig,
) -> torch.nn.Module:
    """Adam + binary cross-entropy on fresh synthetic radiographs; returns the network in eval mode."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    network = model.network
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=config.steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    network.train()
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        tensors, labels = [], []
        for _ in range(config.batch_size):
            ds, nodule = sample(rng)
            tensors.append(prepare_image(model, load_xray(ds), default_size))
            labels.append(float(nodule))
        logits = network(torch.cat(tensors))[:, 0]
        loss = loss_fn(logits, torch.tensor(labels))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 50 == 0 or step == config.steps:
            logger.info("step %d/%d loss %.4f (%.0f s)", step, config.steps, loss.item(), time.perf_counter() - start)
    return network.eval()


@dataclass(frozen=True)
class ClsScores:
    auc: float
    sensitivity: float
    specificity: float
    threshold: float
    positives: int
    negatives: int

    def summary(self) -> str:
        return (f"AUC {self.auc:.3f}; at threshold {self.threshold:.2f} sensitivity {self.sensitivity:.3f}, "
                f"specificity {self.specificity:.3f} ({self.positives} with nodule, {self.negatives} without)")


def score_pipeline(pipeline: ImagingPipeline, seeds: range, threshold: float) -> ClsScores:
    """The full pipeline on canonical ``dicom_node.synthetic.xray_instance`` images, alternating
    nodule/no nodule and DX/CR/MONOCHROME1."""
    truth, scores = [], []
    for i, seed in enumerate(seeds):
        nodule = i % 2 == 0
        ds = xray_instance(nodule=nodule, seed=seed, modality=("DX", "CR")[(i // 2) % 2], monochrome1=i % 3 == 0)
        result = pipeline.run([ds])
        if result.classification is None:
            raise RuntimeError(f"{pipeline.name} returned no classification")
        truth.append(nodule)
        scores.append(result.classification.probability)
    return _scores(truth, scores, threshold)


def score_model(model: LoadedModel, sample: Callable[[np.random.Generator], tuple[Dataset, bool]],
                seeds: range, default_size: tuple[int, int], threshold: float) -> ClsScores:
    """The model on varied synthetic radiographs, one per seed."""
    truth, scores = [], []
    for seed in seeds:
        ds, nodule = sample(np.random.default_rng(seed))
        truth.append(nodule)
        scores.append(finding_probability(model, prepare_image(model, load_xray(ds), default_size))[0])
    return _scores(truth, scores, threshold)


def _scores(truth: list[bool], scores: list[float], threshold: float) -> ClsScores:
    t, s = np.array(truth), np.array(scores)
    predicted = s >= threshold
    return ClsScores(
        auc=float(roc_auc_score(t, s)) if 0 < t.sum() < len(t) else float("nan"),
        sensitivity=float((predicted & t).sum() / max(t.sum(), 1)),
        specificity=float((~predicted & ~t).sum() / max((~t).sum(), 1)),
        threshold=threshold,
        positives=int(t.sum()),
        negatives=int((~t).sum()),
    )
