"""Held-out AUC of an xray_cls bundle on fresh synthetic radiographs: ``python -m pipelines.xray_cls.evaluate``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from pipelines.xray_cls.pipeline import XRayClassification
from pipelines.xray_cls.train import evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, default=XRayClassification.demo_bundle)
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name, score in evaluate(args.bundle, args.cases).items():
        print(f"{name}: {score.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
