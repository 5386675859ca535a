"""The Celery app: three queues (``gpu`` imaging inference, ``cpu`` sidecar jobs, ``send``
forwarding and results), Redis in production or kombu's filesystem transport embedded.

Celery carries only job ids; the job itself lives in the index (the outbox), so the broker may
lose messages (Redis without persistence, a restart) without losing work: the relay re-sends.

A worker runs as Celery's worker program without its console furniture (banner, privilege
warning, shutdown notices): the node's logging says what starts and stops, once.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from types import FrameType
from typing import Any

from celery import Celery, signals
from celery.apps.worker import Worker
from celery.exceptions import SecurityWarning
from celery.platforms import EX_OK
from celery.platforms import signals as celery_signals
from celery.worker import state
from kombu import Queue

from dicom_node.config import Settings

__all__ = ["QUEUES", "broker_url", "make_celery", "run_worker", "warn_if_root"]

QUEUES = ("gpu", "cpu", "send")

log = logging.getLogger(__name__)


def broker_url(settings: Settings) -> str:
    # The embedded transport ignores the host; naming one keeps kombu from warning "No
    # hostname was supplied" on every connection.
    return settings.queue.broker_url or "filesystem://localhost/"


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured from ``settings``; tasks are registered by dicom_node.queue.tasks."""
    app = Celery("dicom_node", broker=broker_url(settings), include=["dicom_node.queue.tasks"])
    if settings.queue.broker_url is None:
        app.conf.broker_transport = "dicom_node.queue.embedded:Transport"  # atomic message files
    conf: dict[str, object] = {
        "task_queues": [Queue(name, routing_key=name) for name in QUEUES],
        "task_default_queue": "send",
        "task_ignore_result": True,
        "task_acks_late": True,  # a task killed mid-way is redelivered …
        "task_reject_on_worker_lost": True,  # … also when its pool process dies
        "worker_prefetch_multiplier": 1,  # long GPU jobs: don't hoard messages
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        "task_publish_retry": False,  # the relay keeps undelivered jobs and retries itself
        "task_serializer": "json",
        "accept_content": ["json"],
    }
    if settings.queue.broker_url is None:
        folder = settings.data_dir / "broker"
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        conf["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": 0.05,
        }
    else:
        conf["broker_transport_options"] = {
            "priority_steps": list(range(10)),  # stat (0) before routine (5)
            "sep": ":",
            "queue_order_strategy": "priority",
            "visibility_timeout": settings.queue.lease_s,
        }
    app.conf.update(conf)
    app.conf.dicom_node_settings = settings
    return app


def warn_if_root() -> None:
    """Say once, for the workers of this node, what Celery would say in each: running as root."""
    if os.geteuid() == 0:
        log.warning("workers run as root: Celery advises an unprivileged user (it accepts JSON only here, never pickle)")


def run_worker(settings: Settings, queues: list[str], concurrency: int) -> int:
    """Run a worker for ``queues`` until SIGTERM (warm shutdown: running jobs finish); returns
    its exit code. The caller has set up logging (Celery leaves it alone) and said
    :func:`warn_if_root` where it applies."""
    signals.setup_logging.connect(_logging_is_ours, weak=False)
    warnings.filterwarnings("ignore", category=SecurityWarning)  # per worker; warn_if_root says it once
    worker = _QuietWorker(
        app=make_celery(settings), hostname=f"{'+'.join(queues)}@{socket.gethostname()}", queues=queues, concurrency=concurrency,
        loglevel=settings.log_level, quiet=True, without_gossip=True, without_mingle=True,
    )  # fmt: skip
    worker.start()
    return int(worker.exitcode or EX_OK)


def _logging_is_ours(**_: Any) -> None:
    """A receiver of Celery's ``setup_logging`` signal: with one, Celery configures no logging."""


class _QuietWorker(Worker):
    """Celery's worker program, whose SIGTERM handler stops it as Celery's does (warm: running
    jobs finish) without printing "worker: Warm shutdown (MainProcess)" on stdout."""

    def install_platform_tweaks(self, worker: Worker) -> None:
        super().install_platform_tweaks(worker)
        celery_signals["SIGTERM"] = _warm_shutdown


def _warm_shutdown(signum: int, frame: FrameType | None) -> None:
    state.should_stop = EX_OK  # what Celery's own handler sets; the consumer loop stops on it
