"""What each kind of job does once a worker has claimed it.

Every executor takes the settings, the index and the claimed job row and returns a
:class:`Outcome`; it raises TransientError for what may pass (a destination down) and
PermanentError for what will not. Executors are idempotent: result UIDs are deterministic and
re-sending an instance replaces it at the destination.
"""

from __future__ import annotations

from collections.abc import Callable

from dicom_node.config import Settings
from dicom_node.errors import PermanentError
from dicom_node.jobs import forward, imaging, notify, priors, sidecar
from dicom_node.jobs.outcome import Outcome
from dicom_node.store.index import Index
from dicom_node.store.models import Job

__all__ = ["Outcome", "execute"]

Executor = Callable[[Settings, Index, Job], Outcome]

# Imported when the worker starts (before it forks its pool), so the first job pays no import
# cost; torch and the models load only when an imaging or sidecar pipeline first runs.
EXECUTORS: dict[str, Executor] = {
    "forward": forward.run_forward,
    "send": forward.run_send,
    "pipeline": imaging.run_pipeline_job,
    "sidecar": sidecar.run_sidecar_job,
    "fetch_priors": priors.run_fetch_priors,
    "notify": notify.run_notify,
}


def execute(settings: Settings, index: Index, job: Job) -> Outcome:
    executor = EXECUTORS.get(job.kind)
    if executor is None:
        raise PermanentError(f"unknown job kind {job.kind!r}")
    return executor(settings, index, job)
