"""Sidecar (non-imaging) jobs: genomics, drug screening, clinical prediction.

The result is kept three ways: JSON on the job row (``dicom-node jobs show``), a FHIR Bundle
file beside it, and — when a PatientID is given — a DICOM SR stored in the node (so Q/R and
the PACS show it beside the patient's images) and sent to ``send_to`` destinations.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import select

from dicom_node.config import Settings
from dicom_node.encoders import encode_sidecar_report
from dicom_node.errors import PermanentError, StudyError
from dicom_node.jobs.outcome import Outcome
from dicom_node.queue.outbox import NewJob, add_jobs
from dicom_node.store.filestore import FileStore
from dicom_node.store.index import Index
from dicom_node.store.local import store_dataset
from dicom_node.store.models import Job, Patient
from pipelines.base import PipelineError, SidecarPipeline, SidecarResult

__all__ = ["run_sidecar_job", "fhir_bundle", "results_dir"]

log = logging.getLogger(__name__)


def results_dir(settings: Settings, job_id: int) -> Path:
    return settings.data_dir / "results" / f"job-{job_id}"


def fhir_bundle(result: SidecarResult) -> dict[str, Any]:
    """The result's FHIR resources as one validated collection Bundle."""
    from fhir.resources.bundle import Bundle

    bundle = Bundle.model_validate(
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in result.fhir]}
    )
    return json.loads(bundle.model_dump_json(exclude_none=True))


def _patient(index: Index, patient_id: str) -> dict[str, str]:
    with index.sessions() as session:
        row = session.scalar(select(Patient).where(Patient.patient_id == patient_id))
    if row is None:
        return {"PatientID": patient_id}
    return {"PatientID": row.patient_id, "PatientName": row.patient_name, "PatientBirthDate": row.birth_date, "PatientSex": row.sex}


def run_sidecar_job(settings: Settings, index: Index, job: Job) -> Outcome:
    from pipelines.registry import get

    assert job.pipeline
    cls = get(job.pipeline)
    if not issubclass(cls, SidecarPipeline):
        raise PermanentError(f"pipeline {job.pipeline!r} is not a sidecar pipeline")
    input_path = Path(job.params["input"])
    if not input_path.exists():
        raise PermanentError(f"input {input_path} no longer exists")
    patient_id = job.params.get("patient_id")
    try:
        result = cls().run(input_path, patient_id=patient_id, **job.params.get("params", {}))
    except PipelineError as exc:
        raise StudyError(str(exc)) from exc
    except TypeError as exc:  # an unknown --param for this pipeline
        raise PermanentError(f"{job.pipeline}: {exc}") from exc
    folder = results_dir(settings, job.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(result.data, indent=2, default=str))
    fhir_path = folder / "fhir-bundle.json"
    fhir_path.write_text(json.dumps(fhir_bundle(result), indent=2))
    data: dict[str, Any] = {"data": result.data, "fhir": str(fhir_path), "result_json": str(folder / "result.json")}
    if patient_id:
        sr = encode_sidecar_report(result, _patient(index, patient_id), job.study_uid, job_key=str(job.id))
        record = store_dataset(FileStore(settings.store_dir), index, sr)
        data["sr"] = {"sop_instance_uid": record.sop_instance_uid, "study_uid": record.study_uid, "path": record.path}
        send_to = list(job.params.get("send_to", []))
        if send_to:
            with index.sessions.begin() as session:
                add_jobs(
                    session,
                    [NewJob(kind="send", queue="send", study_uid=record.study_uid, destination=d, params={"paths": [record.path]}) for d in send_to],
                    settings.queue.max_attempts,
                )
    log.info("sidecar %s job %d: %s", job.pipeline, job.id, result.summary)
    return Outcome(summary=result.summary, data=data)
