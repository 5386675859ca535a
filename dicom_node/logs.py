"""Logging set-up for every process of the node: one format that names the process (``serve``,
``receiver-1``, ``worker-gpu``), and the libraries' routine chatter kept off the console."""

from __future__ import annotations

import logging

from pynetdicom import _config

__all__ = ["setup_logging"]

# Loggers held at WARNING, and why: each says at INFO what the node's own lines already say,
# or says it once per PDU, dataset or job.
_QUIET = (
    "pynetdicom",  # every PDU, and request identifiers (patient data) on C-FIND/MOVE/GET
    "highdicom",  # ~16 "copy attributes of module …" lines per SEG/SR written
    "celery.worker.strategy",  # "Task … received": the job's own line follows
    "celery.app.trace",  # "Task … succeeded": the job's own line says what it did (failures are errors)
    "celery.worker.consumer.connection",  # "Connected to …" once per worker: "ready" follows
)


def setup_logging(level: str = "INFO", process: str = "dicom-node") -> None:
    """Log to stderr at ``level``, each line naming ``process`` (as ``serve`` starts it: the
    lines of every process of one node share a console)."""
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)-7s {process.replace('%', '%%')} %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    # Don't even format pynetdicom's per-message summaries.
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
