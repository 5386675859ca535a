"""``fetch_priors`` jobs: pull the patient's earlier studies from a PACS into the node."""

from __future__ import annotations

from dicom_node.config import Settings
from dicom_node.jobs.outcome import Outcome
from dicom_node.store.index import Index
from dicom_node.store.models import Job

__all__ = ["run_fetch_priors"]


def run_fetch_priors(settings: Settings, index: Index, job: Job) -> Outcome:
    from dicom_node.qr.priors import fetch_priors

    assert job.study_uid and job.destination
    fetched = fetch_priors(
        settings, index, job.study_uid, source=job.destination, modality=job.params.get("modality"),
        lookback_days=int(job.params.get("lookback_days", 365 * 3)), max_count=int(job.params.get("max_count", 3)),
        method=job.params.get("method", "move"),
    )  # fmt: skip
    return Outcome(summary=f"{len(fetched)} prior stud{'y' if len(fetched) == 1 else 'ies'} fetched from {job.destination}", data={"priors": fetched})
