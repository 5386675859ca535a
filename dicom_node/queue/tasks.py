"""The one Celery task: run a job by id. Thin on purpose — claim, execute, record.

Celery's own retry is not used: a retry is a row in the outbox with a due time, so it survives
a worker or broker restart (Celery keeps ETA retries in worker memory).
"""

from __future__ import annotations

import logging
import threading
from functools import cache

from celery import shared_task

from dicom_node.config import Settings
from dicom_node.errors import PermanentError, TransientError
from dicom_node.jobs import execute
from dicom_node.jobs.notify import announce_failure
from dicom_node.queue import outbox
from dicom_node.store.index import Index
from dicom_node.store.models import Job

__all__ = ["run_job", "execute_job", "preload"]

log = logging.getLogger(__name__)


def preload(queues: set[str]) -> None:
    """Import the pipelines (torch, MONAI, RDKit…) before the worker forks its pool, so the
    first job doesn't pay seconds of imports. Models still load on first use: CUDA must not be
    initialised before a fork."""
    if queues & {"gpu", "cpu"}:
        from pipelines.registry import all_pipelines

        all_pipelines()


@cache
def _index(url: str) -> Index:
    return Index(url)


def execute_job(settings: Settings, index: Index, job_id: int) -> str:
    """Claim and run job ``job_id`` under a heart-beaten lease; returns its new state."""
    held = outbox.claim(index, job_id, settings.queue.lease_s)
    if held is None:
        log.info("job %d not claimable (done, dead or held elsewhere); skipped", job_id)
        return "skipped"
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(settings.queue.lease_s / 3):
            if not outbox.heartbeat(index, held, settings.queue.lease_s):
                return

    beater = threading.Thread(target=beat, name=f"lease-{job_id}", daemon=True)
    beater.start()
    try:
        with index.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
        outcome = execute(settings, index, job)
    except TransientError as exc:
        state = outbox.fail(index, held, str(exc), transient=True, settings=settings.queue)
    except PermanentError as exc:
        state = outbox.fail(index, held, str(exc), transient=False, settings=settings.queue)
    except Exception as exc:  # an unexpected bug: keep it visible as a dead letter, not a lost job
        log.exception("job %d crashed", job_id)
        state = outbox.fail(index, held, f"{type(exc).__name__}: {exc}", transient=False, settings=settings.queue)
    else:
        state = "succeeded" if outbox.finish(index, held, outcome.as_result(), outcome.urgent) else "lost"
    finally:
        stop.set()
    if state == "dead":
        announce_failure(settings, index, job_id)  # a dead pipeline job tells the RIS, when configured
    return state


@shared_task(name="dicom_node.run_job", bind=True, acks_late=True)
def run_job(self, job_id: int) -> str:  # type: ignore[no-untyped-def]
    settings: Settings = self.app.conf.dicom_node_settings
    return execute_job(settings, _index(settings.database_url or ""), job_id)
