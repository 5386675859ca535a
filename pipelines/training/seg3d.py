"""Training and held-out evaluation of the 3D lesion segmentation demo models.

Every step draws fresh synthetic cases, so there is no fixed training set to overfit; the
held-out sets come from seeds the training stream never uses. Evaluation runs the real
pipeline on synthetic DICOM series (the node's end-to-end input) and the model on varied
synthetic volumes, and reports Dice on lesion cases and false-positive voxels on clean ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.utils import convert_to_tensor
from pydicom.dataset import Dataset

from dicom_node.inference.loading import Volume
from dicom_node.inference.models import LoadedModel
from dicom_node.inference.segmentation import (
    VolumeSegmentationPipeline,
    foreground_probability,
    prepare_volume,
    source_grid_mask,
)
from pipelines.base import PipelineError

__all__ = ["SegTrainConfig", "train_segmentation", "dice", "SegScores", "score_series", "score_volumes"]

logger = logging.getLogger(__name__)

Case = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class SegTrainConfig:
    steps: int
    batch_size: int = 4
    learning_rate: float = 3e-3
    seed: int = 0


def train_segmentation(
    network: torch.nn.Module,
    case: Case,
    intensity: Callable[[torch.Tensor], torch.Tensor],
    config: SegTrainConfig,
) -> torch.nn.Module:
    """Adam + Dice/cross-entropy on fresh synthetic cases; returns the network in eval mode."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=config.steps)
    network.train()
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        images, labels = [], []
        for _ in range(config.batch_size):
            volume, mask = case(rng)
            image = intensity(torch.from_numpy(volume)[None])
            images.append(convert_to_tensor(image, dtype=torch.float32, track_meta=False))
            labels.append(torch.from_numpy(mask)[None].float())
        loss = loss_fn(network(torch.stack(images)), torch.stack(labels))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 50 == 0 or step == config.steps:
            logger.info("step %d/%d loss %.4f (%.0f s)", step, config.steps, loss.item(), time.perf_counter() - start)
    return network.eval()


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Sørensen–Dice overlap of two binary masks (1.0 when both are empty)."""
    p, t = prediction.astype(bool), truth.astype(bool)
    total = p.sum() + t.sum()
    return 1.0 if total == 0 else float(2.0 * (p & t).sum() / total)


@dataclass(frozen=True)
class SegScores:
    dice_mean: float
    dice_min: float
    lesion_cases: int
    clean_cases: int
    clean_false_positive_voxels: float  # mean over lesion-free cases
    refused: int = 0  # series the pipeline refused (PipelineError); a refused lesion case scores Dice 0

    def summary(self) -> str:
        refused = f"; {self.refused} refused" if self.refused else ""
        return (f"Dice mean {self.dice_mean:.3f} (min {self.dice_min:.3f}) on {self.lesion_cases} lesion cases; "
                f"{self.clean_false_positive_voxels:.1f} false-positive voxels per lesion-free case "
                f"({self.clean_cases} cases){refused}")


def score_series(
    pipeline: VolumeSegmentationPipeline,
    series: Callable[[int], tuple[list[Dataset], np.ndarray]],
    seeds: range,
) -> SegScores:
    """Run the full pipeline on synthetic DICOM series; ``series(seed)`` gives datasets + true mask.

    A series the pipeline refuses (e.g. too many lesions from an untrained model) counts as a
    miss: Dice 0 if it has a lesion, left out of the false-positive mean if not.
    """
    pairs, refused = [], 0
    for seed in seeds:
        datasets, truth = series(seed)
        try:
            result = pipeline.run(datasets)
        except PipelineError as exc:
            logger.warning("seed %d refused: %s", seed, exc)
            refused += 1
            if truth.any():
                pairs.append((np.zeros_like(truth), truth))
            continue
        if result.segmentation is None:
            raise RuntimeError(f"{pipeline.name} returned no segmentation")
        pairs.append((result.segmentation.mask, truth))
    return replace(_scores(pairs), refused=refused)


def score_volumes(model: LoadedModel, case: Case, seeds: range, spacing: tuple[float, float, float],
                  default_roi: tuple[int, int, int], threshold: float = 0.5) -> SegScores:
    """Run the model on varied synthetic volumes, one per seed, through the pipeline's own steps."""
    pairs = []
    for seed in seeds:
        array, truth = case(np.random.default_rng(seed))
        volume = Volume(array, spacing, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0), [],
                        tuple(range(array.shape[0])))
        probability = foreground_probability(model, prepare_volume(model, volume), default_roi)
        pairs.append((source_grid_mask(probability, volume, threshold), truth))
    return _scores(pairs)


def _scores(pairs: list[tuple[np.ndarray, np.ndarray]]) -> SegScores:
    dices = [dice(p, t) for p, t in pairs if t.any()]
    clean = [int(np.count_nonzero(p)) for p, t in pairs if not t.any()]  # masks may hold labels 1…n
    return SegScores(
        dice_mean=float(np.mean(dices)) if dices else float("nan"),
        dice_min=float(np.min(dices)) if dices else float("nan"),
        lesion_cases=len(dices),
        clean_cases=len(clean),
        clean_false_positive_voxels=float(np.mean(clean)) if clean else 0.0,
    )
