"""Held-out Dice of a mr_seg bundle on fresh synthetic MR: ``python -m pipelines.mr_seg.evaluate``."""

from __future__ import annotations

import sys

from pipelines.mr_seg.train import SPEC
from pipelines.training.seg_cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main(SPEC, sys.argv[1:]))
