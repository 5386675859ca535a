"""Chest radiograph nodule classification from a 2D MONAI bundle (demo: small DenseNet on
synthetic CR/DX), with a Grad-CAM map of where the evidence lies."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from pydicom.dataset import Dataset

from dicom_node.inference.classification import explanation_map, finding_probability, prepare_image
from dicom_node.inference.loading import Image2D, load_xray
from dicom_node.inference.models import LoadedModel, load_model
from pipelines.base import ClassificationOutput, Code, ImagingPipeline, ImagingResult, PipelineError
from pipelines.registry import register

__all__ = ["XRayClassification", "NODULE", "PreparedImage"]

logger = logging.getLogger(__name__)

# SCT 27925004 "Nodule": DICOM CID 6104 (Abnormal Opacity Finding or Feature, the chest CAD
# findings of TID 4100's family) and CID 7151. A bundle may name another finding.
NODULE = Code("27925004", "SCT", "Nodule")


@dataclass
class PreparedImage:
    image: Image2D
    tensor: torch.Tensor  # (1, 1, H, W)
    timings: dict[str, float] = field(default_factory=dict)


@register
class XRayClassification(ImagingPipeline):
    name = "xray_cls"
    version = "1.0.0"
    description = "Chest X-ray nodule classification with Grad-CAM (2D MONAI DenseNet; demo model, not for clinical use)"
    modalities = ("CR", "DX")
    demo_bundle: ClassVar[Path] = Path(__file__).parent / "bundle"
    default_size: ClassVar[tuple[int, int]] = (128, 128)

    @property
    def model(self) -> LoadedModel:
        return load_model(self.bundle_dir or self.demo_bundle, self.device)

    def pre_process(self, datasets: list[Dataset]) -> PreparedImage:
        model = self.model
        start = time.perf_counter()
        if len(datasets) != 1:
            raise PipelineError(f"{self.name} classifies one radiograph per series, got {len(datasets)} images")
        modality = str(datasets[0].get("Modality", ""))
        if modality not in self.modalities:
            raise PipelineError(f"{self.name} analyses CR/DX images, got {modality or 'no modality'}")
        image = load_xray(datasets[0])
        loaded = time.perf_counter()
        tensor = prepare_image(model, image, self.default_size)
        return PreparedImage(image, tensor, {"load": loaded - start, "pre": time.perf_counter() - loaded})

    def predict(self, inputs: PreparedImage) -> tuple[float, int]:
        start = time.perf_counter()
        probability, channel = finding_probability(self.model, inputs.tensor)
        inputs.timings["inference"] = time.perf_counter() - start
        return probability, channel

    def post_process(self, outputs: tuple[float, int], inputs: PreparedImage) -> ImagingResult:
        start = time.perf_counter()
        model = self.model
        probability, channel = outputs
        heatmap = explanation_map(model, inputs.tensor, channel, inputs.image.array.shape)
        finding = model.setting("dicom_node#finding")
        code = Code(str(finding["value"]), str(finding["scheme"]), str(finding["meaning"])) if finding else NODULE
        inputs.timings["post"] = time.perf_counter() - start
        threshold = float(model.setting("dicom_node#threshold", 0.5))
        logger.info("%s: P(%s) = %.3f (threshold %.2f)", self.name, code.meaning, probability, threshold)
        return ImagingResult(
            pipeline=self.name,
            version=self.version,
            model_name=f"{model.name} {model.version}".strip(),
            model_checksum=f"sha256:{model.checksum}",
            source=[inputs.image.dataset],
            classification=ClassificationOutput(code, probability, threshold, heatmap),
            timings=dict(inputs.timings),
        )
