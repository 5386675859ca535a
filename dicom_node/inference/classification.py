"""2D classification of a radiograph with a MONAI model, and the map that explains it.

The probability of one finding comes from a single sigmoid logit, or from softmax over
several outputs with channel 1 the finding. The explanation map is Grad-CAM
(``monai.visualize.GradCAM``) on a layer the bundle names; a TorchScript model has no
module hooks, so it gets occlusion sensitivity (hiding squares, watching the logit)
instead. Either map is resampled to the source Rows × Columns, so an encoder can store it
pixel-aligned with the image (a Parametric Map or FRACTIONAL SEG, PS3.3 A.75 / A.51).

Bundle settings (``configs/inference.json``, MONAI ids; defaults in brackets):
``dicom_node#spatial_size`` [caller's default], ``dicom_node#intensity`` (a MONAI array
transform on the (1, H, W) image in [0, 1]) [none], ``dicom_node#threshold`` [0.5],
``dicom_node#heatmap#target_layers`` [none: occlusion], ``dicom_node#finding``
({value, scheme, meaning}) [caller's default].
"""

from __future__ import annotations

import copy
import logging
import weakref
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import Resize
from monai.utils import convert_to_tensor
from monai.visualize import GradCAM

from dicom_node.inference.device import autocast
from dicom_node.inference.loading import Image2D
from dicom_node.inference.models import LoadedModel

__all__ = ["prepare_image", "finding_probability", "explanation_map"]

logger = logging.getLogger(__name__)

# One Grad-CAM per network, on a private copy: MONAI's hooks stay registered on the module
# they wrap (and switch its in-place ReLUs off), so they must neither pile up per image nor
# alter the cached network other callers share (TorchScript export refuses hooked modules).
_OCCLUSION_BATCH = 32
_grad_cams: weakref.WeakKeyDictionary[torch.nn.Module, GradCAM] = weakref.WeakKeyDictionary()


def prepare_image(model: LoadedModel, image: Image2D, default_size: Sequence[int]) -> torch.Tensor:
    """The network input (1, 1, H, W): resized to the bundle's size (area averaging), then its intensity transform."""
    size = [int(v) for v in model.setting("dicom_node#spatial_size", default_size)]
    tensor = Resize(size, mode="area")(torch.from_numpy(image.array)[None])
    transform = model.setting("dicom_node#intensity")
    if transform is not None:
        tensor = transform(tensor)
    tensor = convert_to_tensor(tensor, dtype=torch.float32, track_meta=False)
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
            cam = GradCAM(nn_module=copy.deepcopy(model.network), target_layers=layer, postprocessing=lambda m: m)
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
    """Occlusion sensitivity: the drop in the finding's logit when a square is hidden, averaged
    over the squares covering each pixel (positive = the region supported the finding).

    Logits, not probabilities: a confident model's probability saturates and hides the drop.
    Squares are filled with a dark value (the 5th percentile): radiographic opacities are
    brighter than their surroundings, so a dark patch removes a finding, whereas a mean-grey
    fill (MONAI's ``OcclusionSensitivity`` default) paints a bright square into the lung that
    itself looks like one. Squares of 1/8 of the image at half-square steps keep it to a few
    hundred forward passes.
    """
    height, width = x.shape[-2:]
    size = max(4, min(height, width) // 8)
    step = max(1, size // 2)
    corners = [(r, c) for r in range(0, max(height - size, 0) + 1, step)
               for c in range(0, max(width - size, 0) + 1, step)]
    fill = float(x.quantile(0.05))
    total = torch.zeros(height, width)
    count = torch.zeros(height, width)
    with torch.inference_mode():
        full = model.network(x).float()[0, channel]
        for start in range(0, len(corners), _OCCLUSION_BATCH):
            chunk = corners[start:start + _OCCLUSION_BATCH]
            batch = x.repeat(len(chunk), 1, 1, 1)
            for i, (r, c) in enumerate(chunk):
                batch[i, :, r:r + size, c:c + size] = fill
            drops = (full - model.network(batch).float()[:, channel]).cpu()
            for (r, c), drop in zip(chunk, drops):
                total[r:r + size, c:c + size] += drop
                count[r:r + size, c:c + size] += 1
    return (total / count.clamp_min(1)).clamp_min(0)


def _activate(logits: torch.Tensor) -> torch.Tensor:
    """P(finding) per batch item."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)[:, 1]
