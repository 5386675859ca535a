"""MR lesion segmentation: one label, "Lesion", from a 3D MONAI bundle (demo: UNet on synthetic MR)."""

from __future__ import annotations

from pathlib import Path

from dicom_node.inference.segmentation import VolumeSegmentationPipeline
from pipelines.registry import register

__all__ = ["MRSegmentation"]


@register
class MRSegmentation(VolumeSegmentationPipeline):
    name = "mr_seg"
    version = "1.1.0"
    description = "MR lesion segmentation (3D MONAI UNet; demo model trained on synthetic MR, not for clinical use)"
    modalities = ("MR",)
    demo_bundle = Path(__file__).parent / "bundle"
