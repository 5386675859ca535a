"""CT lesion segmentation: one label, "Lesion", from a 3D MONAI bundle (demo: UNet on synthetic CT)."""

from __future__ import annotations

from pathlib import Path

from dicom_node.inference.segmentation import VolumeSegmentationPipeline
from pipelines.registry import register

__all__ = ["CTSegmentation"]


@register
class CTSegmentation(VolumeSegmentationPipeline):
    name = "ct_seg"
    version = "1.1.0"
    description = "CT lesion segmentation (3D MONAI UNet; demo model trained on synthetic CT, not for clinical use)"
    modalities = ("CT",)
    demo_bundle = Path(__file__).parent / "bundle"
