"""The Celery app: three queues (``gpu`` imaging inference, ``cpu`` sidecar jobs, ``send``
forwarding and results), Redis in production or kombu's filesystem transport embedded.

Celery carries only job ids; the job itself lives in the index (the outbox), so the broker may
lose messages (Redis without persistence, a restart) without losing work: the relay re-sends.
"""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from dicom_node.config import Settings

__all__ = ["QUEUES", "make_celery", "broker_url"]

QUEUES = ("gpu", "cpu", "send")


def broker_url(settings: Settings) -> str:
    return settings.queue.broker_url or "filesystem://"


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
