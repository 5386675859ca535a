"""Imaging inference: DICOM → arrays, model loading, device choice, the 3D/2D runners.

    loading         load_volume / load_xray → Volume / Image2D (PipelineError on bad input)
    models          load_model(path, device) → LoadedModel (MONAI bundle or TorchScript, cached)
    device          select_device, autocast (CUDA + AMP when available, else CPU)
    segmentation    VolumeSegmentationPipeline: load → intensity/resample → sliding window → mask
    classification  prepare_image, finding_probability, explanation_map (Grad-CAM / occlusion)

Nothing here knows about networking, queues or DICOM encoding.
"""

from dicom_node.inference.device import autocast, select_device
from dicom_node.inference.loading import Image2D, Volume, load_volume, load_xray
from dicom_node.inference.models import LoadedModel, ModelLoadError, clear_cache, load_model

__all__ = [
    "Volume",
    "Image2D",
    "load_volume",
    "load_xray",
    "LoadedModel",
    "ModelLoadError",
    "load_model",
    "clear_cache",
    "select_device",
    "autocast",
]
