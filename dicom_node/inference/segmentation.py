"""3D segmentation of a CT/MR series with a MONAI model: the shared body of ``ct_seg``/``mr_seg``.

pre-process: DICOM → :class:`~dicom_node.inference.loading.Volume` → resampling to the
bundle's voxel spacing → the bundle's intensity transform. predict: sliding-window inference
(``monai.inferers.sliding_window_inference``), so a 512×512×300 CT runs in bounded memory.
post-process: foreground probability → back to the source grid → threshold → separate lesions
(:mod:`~dicom_node.inference.lesions`: components below a minimum volume dropped, the rest
labelled 1…n, largest first) → label mask in the source's frame order, ready for a SEG
(PS3.3 A.51, one segment per lesion) without any crop or resample left to undo.

A bundle tunes this through its ``configs/inference.json`` (MONAI ids; defaults in brackets):

* ``inferer#roi_size`` [class default], ``inferer#sw_batch_size`` [2], ``inferer#overlap`` [0.25],
  ``inferer#mode`` ["gaussian"] — the zoo's ``SlidingWindowInferer`` entry;
* ``dicom_node#intensity`` — a MONAI array transform (``_target_``) applied to the (1, z, y, x)
  image, e.g. ``ScaleIntensityRange`` [none: the model gets raw HU / MR values];
* ``dicom_node#spacing`` — (z, y, x) mm the model was trained at [null: native grid];
* ``dicom_node#threshold`` — on the foreground probability [0.5];
* ``dicom_node#min_lesion_volume_mm3`` — smaller components are dropped as noise [class default: 30,
  about a 4 mm sphere];
* ``dicom_node#max_lesions`` — more separate lesions than this fails the series [class default: 20].

The network sees arrays in DICOM acquisition order (z, y, x), not NIfTI RAS: a zoo model
trained on RAS volumes needs retraining or a TorchScript wrapper that transposes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from monai.utils import convert_to_tensor
from pydicom.dataset import Dataset

from dicom_node.inference.device import autocast
from dicom_node.inference.lesions import separate_lesions
from dicom_node.inference.loading import Volume, load_volume
from dicom_node.inference.models import LoadedModel, load_model
from pipelines.base import Code, ImagingPipeline, ImagingResult, PipelineError, SegmentationOutput, SegmentLabel

__all__ = ["LESION", "PreparedVolume", "VolumeSegmentationPipeline", "prepare_volume", "foreground_probability",
           "source_grid_mask"]

logger = logging.getLogger(__name__)

_SPACING_TOL = 0.01  # relative: closer than this to the model's spacing is not worth resampling

# CID 7150 Segmentation Property Category / CID 7151 Segmentation Property Type
LESION = SegmentLabel(
    label="Lesion",
    category=Code("49755003", "SCT", "Morphologically Abnormal Structure"),
    type=Code("52988006", "SCT", "Lesion"),
)


@dataclass
class PreparedVolume:
    """A loaded volume and the model's input made from it (on the CPU, model grid)."""

    volume: Volume
    image: torch.Tensor  # (1, 1, z, y, x) float32
    timings: dict[str, float] = field(default_factory=dict)


def prepare_volume(model: LoadedModel, volume: Volume) -> torch.Tensor:
    """The network input: resampling to the bundle's spacing, then the intensity transform.

    In this order, as the MONAI zoo's pre-processing runs (``Spacingd`` before
    ``ScaleIntensityRanged``); and a 0.7 mm CT resampled to 0.8 × 0.8 × 2.5 mm has a third of
    the voxels left for the transform to touch.
    """
    image = torch.from_numpy(volume.array)[None]
    shape = _model_shape(volume, model.setting("dicom_node#spacing"))
    if shape != tuple(volume.array.shape):
        image = F.interpolate(image[None], size=shape, mode="trilinear", align_corners=False)[0]
    transform = model.setting("dicom_node#intensity")
    if transform is not None:
        image = convert_to_tensor(transform(image), dtype=torch.float32, track_meta=False)
    return image[None].contiguous()


def foreground_probability(
    model: LoadedModel, image: torch.Tensor, default_roi: Sequence[int]
) -> torch.Tensor:
    """Sliding-window inference; returns P(foreground) as (z, y, x) float32 on the CPU.

    Windows run on the model's device under mixed precision there; the stitched output stays
    on the CPU so a large CT does not have to fit in GPU memory at once. One output channel is
    read as a sigmoid logit, several as softmax classes with channel 0 the background.
    """
    roi = [int(v) for v in model.setting("inferer#roi_size", default_roi)]

    def predictor(window: torch.Tensor) -> torch.Tensor:
        return model.network(window).float()  # stitch in float32 even when windows ran in float16

    with torch.inference_mode(), autocast(model.device):
        logits = sliding_window_inference(
            image,
            roi_size=roi,
            sw_batch_size=int(model.setting("inferer#sw_batch_size", 2)),
            predictor=predictor,
            overlap=float(model.setting("inferer#overlap", 0.25)),
            mode=str(model.setting("inferer#mode", "gaussian")),
            sw_device=model.device,
            device=torch.device("cpu"),
        )
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"{model.name}: expected one output tensor from the network, got {type(logits).__name__}")
    logits = logits[0]
    if logits.shape[0] == 1:
        return torch.sigmoid(logits[0])
    return 1.0 - torch.softmax(logits, dim=0)[0]


def source_grid_mask(probability: torch.Tensor, volume: Volume, threshold: float) -> np.ndarray:
    """Undo the resampling: ``probability ≥ threshold`` on the volume's own (z, y, x) grid, as
    trilinear interpolation (``F.interpolate``, ``align_corners=False``) then thresholding gives.

    Interpolated only inside the box around the voxels at or above the threshold: a trilinear
    value is a weighted mean of 8 neighbours, so it reaches the threshold only next to one that
    does. A 300-slice CT then never has its probability map in float at full size (300 MB).
    """
    shape = tuple(volume.array.shape)
    above = probability >= threshold
    if tuple(probability.shape) == shape:
        return above.numpy().astype(np.uint8)
    mask = np.zeros(shape, dtype=np.uint8)
    hits = torch.nonzero(above)
    if not len(hits):
        return mask
    low, high = hits.min(dim=0).values.tolist(), hits.max(dim=0).values.tolist()
    region, values = [], probability
    for axis, (n_in, n_out) in enumerate(zip(probability.shape, shape)):
        first, last, weights = _linear_weights(n_in, n_out, low[axis], high[axis])
        region.append(slice(first, last))
        values = _interpolate_axis(values, axis, *weights)
    mask[tuple(region)] = (values >= threshold).numpy()
    return mask


def _linear_weights(
    n_in: int, n_out: int, low: int, high: int
) -> tuple[int, int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Output indices [first, last) along one axis whose neighbours touch inputs low..high, and
    for each its two input indices and the right one's weight — PyTorch's linear
    ``align_corners=False`` rule: source = max((out + 0.5) · n_in / n_out − 0.5, 0)."""
    source = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    left = source.floor().long().clamp(max=n_in - 1)
    right = (left + 1).clamp(max=n_in - 1)
    touching = torch.nonzero((right >= low) & (left <= high)).flatten()
    first, last = int(touching[0]), int(touching[-1]) + 1
    weight = (source - left).clamp(0, 1)[first:last].float()
    return first, last, (left[first:last], right[first:last], weight)


def _interpolate_axis(
    values: torch.Tensor, axis: int, left: torch.Tensor, right: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    view = [1, 1, 1]
    view[axis] = -1
    weight = weight.view(view)
    return values.index_select(axis, left) * (1 - weight) + values.index_select(axis, right) * weight


class VolumeSegmentationPipeline(ImagingPipeline):
    """A one-label 3D lesion segmentation pipeline driven by a MONAI bundle.

    Subclasses set ``name``, ``version``, ``modalities`` and ``demo_bundle`` (the bundle
    shipped beside them); ``segment_label`` and ``default_roi`` as needed.
    """

    demo_bundle: ClassVar[Path]
    segment_label: ClassVar[SegmentLabel] = LESION
    default_roi: ClassVar[tuple[int, int, int]] = (32, 128, 128)
    min_lesion_volume_mm3: ClassVar[float] = 30.0
    max_lesions: ClassVar[int] = 20

    @property
    def model(self) -> LoadedModel:
        """The bundle's model, loaded on first use and cached per process."""
        return load_model(self.bundle_dir or self.demo_bundle, self.device)

    def pre_process(self, datasets: list[Dataset]) -> PreparedVolume:
        model = self.model
        start = time.perf_counter()
        _check_modality(datasets, self.modalities, self.name)
        volume = load_volume(datasets)
        loaded = time.perf_counter()
        image = prepare_volume(model, volume)
        timings = {"load": loaded - start, "pre": time.perf_counter() - loaded}
        logger.debug("%s: volume %s spacing %s → model input %s", self.name, volume.array.shape,
                     volume.spacing, tuple(image.shape[2:]))
        return PreparedVolume(volume, image, timings)

    def predict(self, inputs: PreparedVolume) -> torch.Tensor:
        start = time.perf_counter()
        probability = foreground_probability(self.model, inputs.image, self.default_roi)
        inputs.timings["inference"] = time.perf_counter() - start
        return probability

    def post_process(self, outputs: torch.Tensor, inputs: PreparedVolume) -> ImagingResult:
        start = time.perf_counter()
        model = self.model
        threshold = float(model.setting("dicom_node#threshold", 0.5))
        volume = inputs.volume
        lesions = separate_lesions(
            source_grid_mask(outputs, volume, threshold),
            voxel_mm3=float(np.prod(volume.spacing)),
            min_volume_mm3=float(model.setting("dicom_node#min_lesion_volume_mm3", self.min_lesion_volume_mm3)),
            max_lesions=int(model.setting("dicom_node#max_lesions", self.max_lesions)),
        )
        mask = volume.to_source_frames(lesions)
        count = int(mask.max())
        inputs.timings["post"] = time.perf_counter() - start
        logger.info("%s: %d lesion(s), %d voxels in %d frames", self.name, count, int((mask > 0).sum()), mask.shape[0])
        return ImagingResult(
            pipeline=self.name,
            version=self.version,
            model_name=f"{model.name} {model.version}".strip(),
            model_checksum=f"sha256:{model.checksum}",
            source=list(inputs.volume.datasets),
            # one label per lesion, so the SEG has a segment and the SR a measurement group for each;
            # with none, label 1 still names what was looked for (the "Absent" report)
            segmentation=SegmentationOutput(
                mask=mask, labels={number: self.segment_label for number in range(1, max(count, 1) + 1)}
            ),
            timings=dict(inputs.timings),
        )


def _check_modality(datasets: Sequence[Dataset], modalities: Sequence[str], pipeline: str) -> None:
    found = sorted({str(ds.get("Modality", "")) for ds in datasets})
    if not set(found) <= set(modalities):
        raise PipelineError(f"{pipeline} analyses {'/'.join(modalities)} images, got {'/'.join(found) or 'none'}")


def _model_shape(volume: Volume, spacing: Sequence[float] | None) -> tuple[int, ...]:
    """The volume's shape on the model's grid (same extent, the bundle's spacing)."""
    shape = tuple(volume.array.shape)
    if spacing is None:
        return shape
    target = [float(s) for s in spacing]
    if all(abs(have - want) <= _SPACING_TOL * want for have, want in zip(volume.spacing, target)):
        return shape
    return tuple(max(1, round(n * have / want)) for n, have, want in zip(shape, volume.spacing, target))
