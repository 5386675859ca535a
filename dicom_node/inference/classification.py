"""2D classification of a radiograph with a MONAI model, and the map that explains it.

The probability of one finding comes from a single sigmoid logit, or from softmax over
several outputs with channel 1 the finding. The explanation map is Grad-CAM
(``monai.visualize.GradCAM``) on a layer the bundle names; a TorchScript model has no
module hooks, so it gets occlusion sensitivity (``monai.visualize.OcclusionSensitivity``)
instead. Either map is resampled to the source Rows × Columns, so an encoder can store it
pixel-aligned with the image (a Parametric Map or FRACTIONAL SEG, PS3.3 A.75 / A.51).

Bundle settings (``configs/inference.json``, MONAI ids; defaults in brackets):
``dicom_node#spatial_size`` [caller's default], ``dicom_node#intensity`` (a MONAI array
transform on the (1, H, W) image in [0, 1]) [none], ``dicom_node#threshold`` [0.5],
``dicom_node#heatmap#target_layers`` [none: occlusion], ``dicom_node#finding``
({value, scheme, meaning}) [caller's default].
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import Resize
from monai.visualize import GradCAM, OcclusionSensitivity

from dicom_node.inference.device import autocast
from dicom_node.inference.loading import Image2D
from dicom_node.inference.models import LoadedModel

__all__ = ["prepare_image", "finding_probability", "explanation_map"]

logger = logging.getLogger(__name__)

# One Grad-CAM per network: its hooks stay registered on the (cached, shared) module, so
# building a new one per image would stack hooks on every call.
_grad_cams: weakref.WeakKeyDictionary[torch.nn.Module, GradCAM] = weakref.WeakKeyDictionary()


def prepare_image(model: LoadedModel, image: Image2D, default_size: Sequence[int]) -> torch.Tensor:
    """The network input (1, 1, H, W): resized to the bundle's size (area averaging), then its intensity transform."""
    size = [int(v) for v in model.setting("dicom_node#spatial_size", default_size)]
    tensor = torch.as_tensor(Resize(size, mode="area")(torch.from_numpy(image.array)[None]), dtype=torch.float32)
    transform = model.setting("dicom_node#intensity")
    if transform is not None:
        tensor = torch.as_tensor(transform(tensor), dtype=torch.float32)
    return tensor[None].contiguous()


def finding_probability(model: LoadedModel, tensor: torch.Tensor) -> tuple[float, int]:
    """P(finding) and the output channel holding it: 0 for one sigmoid logit, 1 for softmax outputs."""
    with torch.inference_mode(), autocast(model.device):
        logits = model.network(tensor.to(model.device)).float()
    return float(_activate(logits)[0]), 0 if logits.shape[1] == 1 else 1


def explanation_map(model: LoadedModel, tensor: torch.Tensor, channel: int, shape: tuple[int, int]) -> np.ndarray:
    """Where the model saw evidence for output ``channel``: float32 (rows, cols) in [0, 1] on the
    source grid, scaled so the strongest evidence is 1 (all 0 when there is none)."""
    x = tensor.to(model.device)
    layer = model.setting("dicom_node#heatmap#target_layers")
    if layer and not model.torchscript:
        cam = _grad_cams.get(model.network)
        if cam is None:
            cam = GradCAM(nn_module=model.network, target_layers=layer, postprocessing=lambda m: m)
            _grad_cams[model.network] = cam
        with torch.enable_grad():
            raw = cam(x, class_idx=channel).detach()
    else:
        raw = _occlusion(model, x, channel)
    raw = raw.float().reshape(1, 1, *raw.shape[-2:]).cpu()
    heat = F.interpolate(raw, size=shape, mode="bilinear", align_corners=False)[0, 0].clamp_min(0)
    peak = float(heat.max())
    return (heat / peak if peak > 0 else heat).numpy().astype(np.float32)


def _occlusion(model: LoadedModel, x: torch.Tensor, channel: int) -> torch.Tensor:
    """Drop in P(finding) when each region is hidden (positive = the region supported the finding)."""
    size = max(4, min(x.shape[-2:]) // 8)
    occlusion = OcclusionSensitivity(model.network, mask_size=size, n_batch=16, verbose=False,
                                     mode="mean_img", activate=_activate_all)
    with torch.inference_mode():
        occluded, _ = occlusion(x)
        full = float(_activate(model.network(x).float())[0])
    return (full - occluded[..., channel]).clamp_min(0)


def _activate(logits: torch.Tensor) -> torch.Tensor:
    """P(finding) per batch item."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)[:, 1]


def _activate_all(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)
