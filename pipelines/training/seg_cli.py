"""The train/evaluate commands shared by the ``ct_seg`` and ``mr_seg`` demo models.

Each pipeline describes its model in a :class:`SegModelSpec` (bundle configuration, data
generators) and exposes ``python -m pipelines.<name>.train`` / ``.evaluate`` through these.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import monai
import numpy as np
import torch
from pydicom.dataset import Dataset

from dicom_node.inference.models import clear_cache, load_model
from dicom_node.inference.segmentation import VolumeSegmentationPipeline
from pipelines.training.bundle import parse_config, write_bundle
from pipelines.training.seg3d import Case, SegScores, SegTrainConfig, score_series, score_volumes, train_segmentation

__all__ = ["HeldOutSeries", "SegModelSpec", "train_main", "evaluate_main", "evaluate"]

logger = logging.getLogger(__name__)

HELD_OUT_SEED = 1_000_000  # training draws from seed 0's stream; held-out cases from seeds above this


@dataclass(frozen=True)
class HeldOutSeries:
    """A further held-out set scored through the full pipeline: ``series(seed)`` gives DICOM + true mask."""

    name: str
    series: Callable[[int], tuple[list[Dataset], np.ndarray]]
    cases: int


@dataclass(frozen=True)
class SegModelSpec:
    pipeline: type[VolumeSegmentationPipeline]
    inference: dict[str, Any]  # configs/inference.json
    metadata: dict[str, Any]  # configs/metadata.json
    case: Case  # varied training/held-out volumes (array, mask) on the grid of ``spacing``
    spacing: tuple[float, float, float]
    canonical: Callable[[int], tuple[list[Dataset], np.ndarray]]  # seed → DICOM series + true mask
    data_description: str  # for the model card
    steps: int
    held_out: tuple[HeldOutSeries, ...] = ()  # e.g. clinical sizes; scored beside the canonical series


def train_main(spec: SegModelSpec, argv: list[str] | None = None) -> int:
    """``train [--steps N] [--out DIR] [--smoke]``: train, evaluate on held-out data, write the bundle."""
    parser = argparse.ArgumentParser(description=f"Train the {spec.pipeline.name} demo model on synthetic data.")
    parser.add_argument("--out", type=Path, default=spec.pipeline.demo_bundle, help="bundle folder to write")
    parser.add_argument("--steps", type=int, default=spec.steps)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (keep low on shared hosts)")
    parser.add_argument("--eval-cases", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="3 steps, 2 evaluation cases, into a temporary folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    if args.smoke:
        args.steps, args.eval_cases = 3, 2
        if args.out == spec.pipeline.demo_bundle:
            args.out = Path(tempfile.mkdtemp(prefix=f"{spec.pipeline.name}-smoke-"))

    config = parse_config(spec.inference)
    network = config.get_parsed_content("network_def")
    intensity = config.get_parsed_content("dicom_node#intensity")
    start = time.perf_counter()
    train_segmentation(network, spec.case, intensity, SegTrainConfig(steps=args.steps, batch_size=args.batch_size))
    seconds = time.perf_counter() - start
    write_bundle(args.out, spec.inference, spec.metadata, network, "pending evaluation\n")
    clear_cache()
    scores = evaluate(spec, args.out, args.eval_cases, held_out=not args.smoke)
    command = (f"python -m pipelines.{spec.pipeline.name}.train --steps {args.steps} --batch-size {args.batch_size} "
               f"--threads {args.threads}")
    card = _card(spec, network, args, seconds, command, scores)
    write_bundle(args.out, spec.inference, spec.metadata, network, card)
    for name, score in scores.items():
        print(f"{name}: {score.summary()}")
    print(f"bundle written to {args.out}")
    return 0


def evaluate(spec: SegModelSpec, bundle: Path, cases: int, held_out: bool = True) -> dict[str, SegScores]:
    """Held-out scores: the full pipeline on canonical DICOM series and, with ``held_out``, on each
    of ``spec.held_out`` (``cases`` caps their size too); the model on varied volumes."""
    pipeline = spec.pipeline(bundle_dir=bundle, device="cpu")
    seeds = range(HELD_OUT_SEED, HELD_OUT_SEED + cases)
    model = load_model(bundle, "cpu")
    threshold = float(model.setting("dicom_node#threshold", 0.5))
    scores = {
        "canonical DICOM series (dicom_node.synthetic, full pipeline)": score_series(pipeline, spec.canonical, seeds),
        f"varied synthetic volumes ({spec.case.__module__})": score_volumes(
            model, spec.case, seeds, spec.spacing, spec.pipeline.default_roi, threshold
        ),
    }
    for held in spec.held_out if held_out else ():
        logger.info("scoring %s", held.name)
        scores[held.name] = score_series(pipeline, held.series, range(HELD_OUT_SEED, HELD_OUT_SEED + min(cases, held.cases)))
    return scores


def evaluate_main(spec: SegModelSpec, argv: list[str] | None = None) -> int:
    """``evaluate [--bundle DIR] [--cases N]``: print held-out Dice of a bundle."""
    parser = argparse.ArgumentParser(description=f"Held-out Dice of a {spec.pipeline.name} bundle.")
    parser.add_argument("--bundle", type=Path, default=spec.pipeline.demo_bundle)
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name, score in evaluate(spec, args.bundle, args.cases).items():
        print(f"{name}: {score.summary()}")
    return 0


def _card(spec: SegModelSpec, network: torch.nn.Module, args: argparse.Namespace, seconds: float, command: str,
          scores: dict[str, SegScores]) -> str:
    params = sum(p.numel() for p in network.parameters())
    net = spec.inference["network_def"]
    dn = spec.inference["dicom_node"]
    rows = "\n".join(
        f"| {name} | {s.lesion_cases} + {s.clean_cases} clean{f' ({s.refused} refused)' if s.refused else ''} | "
        f"{s.dice_mean:.3f} | {s.dice_min:.3f} | "
        f"{s.clean_false_positive_voxels:.1f} |"
        for name, s in scores.items()
    )
    return f"""# {spec.metadata["name"]} — model card

**NOT FOR CLINICAL USE.** A demonstration model trained only on synthetic images generated by
dicom-node. It has never seen a patient image and finds bright synthetic blobs, nothing more.
It exists so the node's pipeline, SEG encoding and PACS round trip can be exercised end to end.

## Model
- MONAI `{net["_target_"]}` (3D), {params:,} parameters, {params * 4 / 1e6:.2f} MB of float32 weights
  (`models/model.pt`, a state dict for `network_def` in `configs/inference.json`).
- Input: one channel, (z, y, x) in DICOM acquisition order, intensity `{dn["intensity"]["_target_"]}`
  ({", ".join(f"{k}={v}" for k, v in dn["intensity"].items() if k != "_target_")}), resampled to
  {dn["spacing"]} mm; sliding-window ROI {spec.inference["inferer"]["roi_size"]}.
- Output: 2 channels (background, lesion), softmax; lesion where P ≥ {dn["threshold"]}.
- Post-processing (the pipeline's, `dicom_node.inference.lesions`): connected components (26-connectivity)
  under {dn.get("min_lesion_volume_mm3", spec.pipeline.min_lesion_volume_mm3):g} mm³ are dropped; each other one is
  a lesion, numbered largest first, with its own SEG segment and SR measurement group.

## Training data
{spec.data_description}

## Training
`{command}` — {args.steps} steps of {args.batch_size} fresh cases, Adam with a one-cycle
learning rate (max 3e-3), Dice + cross-entropy loss, {args.threads} CPU thread(s), {seconds:.0f} s;
torch {torch.__version__}, MONAI {monai.__version__}.

## Held-out evaluation
`python -m pipelines.{spec.pipeline.name}.evaluate --cases {args.eval_cases}` (seeds {HELD_OUT_SEED}+, never used
in training). Dice on cases with a lesion; false-positive voxels on lesion-free cases.

| held-out set | cases | mean Dice | min Dice | FP voxels / clean case |
|---|---|---|---|---|
{rows}

## Limitations
Synthetic, blob-shaped lesions on uniform tissue only. No real anatomy, pathology, scanner
or artefact was involved. Replace this bundle with a validated one (`bundle_dir`) for any real use.
"""
