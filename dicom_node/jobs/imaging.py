"""Imaging pipeline jobs: series → pipeline → SEG/SR → stored in the node → sent back.

The results are stored and indexed in the node first (so Q/R finds them and nothing is lost
if a destination is down), then one ``send`` job per return destination carries them out.
"""

from __future__ import annotations

import logging
import time
from functools import cache
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_node.config import PipelineSettings, Settings
from dicom_node.encoders import (
    AlgorithmInfo,
    encode_classification_report,
    encode_heatmap,
    encode_segmentation,
    encode_segmentation_report,
)
from dicom_node.encoders.measure import Geometry
from dicom_node.errors import StudyError
from dicom_node.inference.device import select_device
from dicom_node.jobs.notify import result_notices
from dicom_node.jobs.outcome import Outcome
from dicom_node.queue.outbox import NewJob, add_jobs
from dicom_node.store.filestore import FileStore
from dicom_node.store.index import Index
from dicom_node.store.local import store_dataset
from dicom_node.store.models import Job
from pipelines.base import ImagingPipeline, ImagingResult, PipelineError

__all__ = ["run_pipeline_job", "encode_result", "is_urgent"]

log = logging.getLogger(__name__)


@cache
def _pipeline(name: str, bundle: Path | None, device: str | None) -> ImagingPipeline:
    """One pipeline instance (and so one loaded model) per worker process."""
    from pipelines.registry import get

    cls = get(name)
    if not issubclass(cls, ImagingPipeline):
        raise StudyError(f"pipeline {name!r} is not an imaging pipeline")
    return cls(bundle_dir=bundle, device=device)


def is_urgent(result: ImagingResult, conf: PipelineSettings) -> bool:
    """Classification: probability ≥ urgent_threshold; segmentation: volume ≥ urgent_volume_ml."""
    if result.classification is not None:
        c = result.classification
        return c.positive and c.probability >= conf.urgent_threshold
    if result.segmentation is not None and conf.urgent_volume_ml is not None:
        voxel_mm3 = Geometry.of(result.source).voxel_volume
        if voxel_mm3 is None:
            return False
        return int((result.segmentation.mask > 0).sum()) * voxel_mm3 / 1000.0 >= conf.urgent_volume_ml
    return False


def encode_result(result: ImagingResult, urgent: bool) -> list[Dataset]:
    """The DICOM objects for ``result``: SEG + SR, or heatmap SEG + SR."""
    algorithm = AlgorithmInfo.from_result(result)
    if result.segmentation is not None:
        seg = encode_segmentation(result, algorithm)
        return [seg, encode_segmentation_report(result, seg, algorithm, urgent=urgent)]
    if result.classification is not None:
        heatmap = encode_heatmap(result, algorithm)
        return [heatmap, encode_classification_report(result, heatmap, algorithm, urgent=urgent)]
    raise StudyError(f"pipeline {result.pipeline} produced neither a segmentation nor a classification")


def _summary(result: ImagingResult) -> dict[str, object]:
    if result.classification is not None:
        c = result.classification
        return {"finding": c.finding.meaning, "probability": round(c.probability, 4), "threshold": c.threshold, "positive": c.positive}
    assert result.segmentation is not None
    voxels = int((result.segmentation.mask > 0).sum())
    return {"segmented_voxels": voxels, "finding": voxels > 0}


def run_pipeline_job(settings: Settings, index: Index, job: Job) -> Outcome:
    assert job.study_uid and job.series_uid and job.pipeline
    conf = settings.pipelines.get(job.pipeline, PipelineSettings())
    started = time.perf_counter()
    paths = index.instance_paths(job.study_uid, job.series_uid)
    if not paths:
        raise StudyError(f"series {job.series_uid} has no instances in the index")
    datasets = [dcmread(p) for p in paths]
    read_s = time.perf_counter() - started
    try:
        result = _pipeline(job.pipeline, conf.bundle, conf.device).run(datasets)
    except PipelineError as exc:
        raise StudyError(str(exc)) from exc
    urgent = is_urgent(result, conf)
    t0 = time.perf_counter()
    objects = encode_result(result, urgent)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    store = FileStore(settings.store_dir)
    records = [store_dataset(store, index, ds) for ds in objects]
    store_s = time.perf_counter() - t0
    destinations = list(job.params.get("return_to", []))
    result_paths = [r.path for r in records]
    stored = [{"sop_instance_uid": r.sop_instance_uid, "sop_class_uid": r.sop_class_uid, "path": r.path} for r in records]
    with index.sessions.begin() as session:
        add_jobs(
            session,
            [
                NewJob(kind="send", queue="send", study_uid=job.study_uid, series_uid=job.series_uid, rule=job.rule,
                       destination=dest, priority=0 if urgent else job.priority, params={"paths": result_paths})
                for dest in destinations
            ] + result_notices(job, stored, urgent),
            settings.queue.max_attempts,
        )  # fmt: skip
    timings = {"read": read_s, **result.timings, "encode": encode_s, "store": store_s}
    data = {
        **_summary(result),
        "urgent": urgent,
        "results": stored,
        "return_to": destinations,
        "timings": {k: round(v, 4) for k, v in timings.items()},
        "model": {"name": result.model_name, "checksum": result.model_checksum},
        "device": str(select_device(conf.device)),
    }
    what = "URGENT " if urgent else ""
    log.info("pipeline %s on series %s: %s%s", job.pipeline, job.series_uid, what, _summary(result))
    return Outcome(summary=f"{what}{job.pipeline}: {_summary(result)}", data=data, urgent=urgent)
