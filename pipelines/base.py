"""The contract between the node and its pipelines.

An imaging pipeline turns one series (pydicom datasets, pixel data included) into an
:class:`ImagingResult` — pre-process → predict → post-process, as MONAI Deploy structures it —
and knows nothing of networking, queues or DICOM encoding. The encoders
(``dicom_node.encoders``) turn that result into SEG/SR. A sidecar pipeline turns an input file
into a :class:`SidecarResult` (JSON data, report items for a DICOM SR, FHIR resources).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydicom.dataset import Dataset

__all__ = [
    "Code",
    "SegmentLabel",
    "SegmentationOutput",
    "ClassificationOutput",
    "ImagingResult",
    "ImagingPipeline",
    "ReportItem",
    "SidecarResult",
    "SidecarPipeline",
    "PipelineError",
]


class PipelineError(Exception):
    """A study or input the pipeline cannot process; the message is shown on the job.

    Permanent: retrying the same input gives the same error.
    """


@dataclass(frozen=True)
class Code:
    """A coded concept (value, scheme designator, meaning), e.g. Code("52988006", "SCT", "Lesion")."""

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class SegmentLabel:
    """What one label value of a mask means (CID 7150 category, CID 7151 type)."""

    label: str
    category: Code
    type: Code
    anatomic_region: Code | None = None


@dataclass
class SegmentationOutput:
    """A label mask aligned voxel-for-voxel with ``ImagingResult.source`` (frames, rows, cols).

    Frame ``i`` of ``mask`` belongs to ``source[i]`` (single-frame series); 0 is background,
    other values are keys of ``labels``.
    """

    mask: np.ndarray
    labels: dict[int, SegmentLabel]


@dataclass
class ClassificationOutput:
    """A finding's probability, the threshold used and an explanation map in [0, 1] (rows, cols)."""

    finding: Code
    probability: float
    threshold: float
    heatmap: np.ndarray

    @property
    def positive(self) -> bool:
        return self.probability >= self.threshold


@dataclass
class ImagingResult:
    """What an imaging pipeline made of one series, ready for the encoders."""

    pipeline: str
    version: str
    model_name: str
    model_checksum: str
    source: list[Dataset]
    segmentation: SegmentationOutput | None = None
    classification: ClassificationOutput | None = None
    timings: dict[str, float] = field(default_factory=dict)


class ImagingPipeline(abc.ABC):
    """Base class of imaging pipelines: pre_process → predict → post_process.

    Subclasses set the class attributes and may take a ``bundle_dir`` to load a different
    MONAI bundle than their shipped demo one.
    """

    kind: ClassVar[Literal["imaging"]] = "imaging"
    queue: ClassVar[str] = "gpu"
    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""
    modalities: ClassVar[tuple[str, ...]] = ()
    demo_bundle: ClassVar[Path]  # the shipped MONAI bundle, used unless a bundle is configured

    def __init__(self, bundle_dir: Path | None = None, device: str | None = None) -> None:
        self.bundle_dir = bundle_dir
        self.device = device

    @abc.abstractmethod
    def pre_process(self, datasets: list[Dataset]) -> Any: ...

    @abc.abstractmethod
    def predict(self, inputs: Any) -> Any: ...

    @abc.abstractmethod
    def post_process(self, outputs: Any, inputs: Any) -> ImagingResult: ...

    def run(self, datasets: list[Dataset]) -> ImagingResult:
        inputs = self.pre_process(datasets)
        return self.post_process(self.predict(inputs), inputs)


@dataclass(frozen=True)
class ReportItem:
    """One line of a sidecar's DICOM SR: a concept name and a text or numeric value."""

    name: Code
    text: str | None = None
    value: float | None = None
    unit: Code | None = None


@dataclass
class SidecarResult:
    """A sidecar job's result: JSON-able data, a one-line summary, SR items and FHIR resources."""

    pipeline: str
    version: str
    summary: str
    data: dict[str, Any]
    report_title: Code
    report_items: list[ReportItem] = field(default_factory=list)
    fhir: list[dict[str, Any]] = field(default_factory=list)


class SidecarPipeline(abc.ABC):
    """Base class of non-imaging pipelines run on the ``cpu`` queue."""

    kind: ClassVar[Literal["sidecar"]] = "sidecar"
    queue: ClassVar[str] = "cpu"
    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""
    default_model: ClassVar[Path | None] = None  # None: no learned model (rules and tables)

    @abc.abstractmethod
    def run(self, input_path: Path, patient_id: str | None = None, **params: Any) -> SidecarResult: ...
