"""``dicom-node serve``: the SCP, completion detector, router and outbox relay in one process,
plus — on the embedded broker, unless told otherwise — worker processes for every queue."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from dicom_node.config import Settings
from dicom_node.queue.app import make_celery
from dicom_node.queue.outbox import Relay
from dicom_node.receive.scp import NodeServer
from dicom_node.routing.completion import CompletionDetector
from dicom_node.routing.router import Router
from dicom_node.store.index import Index

__all__ = ["Node"]

log = logging.getLogger(__name__)


class Node:
    """Everything ``serve`` runs; :meth:`start` returns once it is listening."""

    def __init__(self, settings: Settings, config_path: Path | None = None, workers: bool | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        self.index = Index(settings.database_url or "")
        self.server = NodeServer(settings, self.index)
        self.completion = CompletionDetector(self.index, settings.completion)
        self.celery = make_celery(settings)
        self.relay = Relay(self.index, settings.queue, self._send)
        self.router = Router(settings, self.index, on_jobs=self.relay.wake)
        # Embedded broker: nothing else would run the workers. With Redis they usually run elsewhere.
        self.run_workers = settings.queue.broker_url is None if workers is None else workers
        self.worker_procs: list[subprocess.Popen[bytes]] = []

    def _send(self, job_id: int, queue: str, priority: int) -> None:
        self.celery.send_task("dicom_node.run_job", args=[job_id], queue=queue, priority=priority)

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> None:
        self.server.start()
        self.completion.start()
        self.router.start()
        self.relay.start()
        if self.run_workers:
            for queue, concurrency in self.settings.queue.embedded_workers.items():
                self.worker_procs.append(self._spawn_worker(queue, concurrency))

    def _spawn_worker(self, queue: str, concurrency: int) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "dicom_node", "worker", "--queues", queue, "--concurrency", str(concurrency)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        # Flags given to serve reach the workers through the environment they inherit.
        env = {
            "DICOM_NODE_DATA_DIR": str(self.settings.data_dir),
            "DICOM_NODE_DATABASE_URL": self.settings.database_url or "",
        }
        log.info("starting %s worker (concurrency %d)", queue, concurrency)
        return subprocess.Popen(cmd, env={**os.environ, **env})

    def stop(self) -> None:
        for proc in self.worker_procs:
            proc.terminate()
        for proc in self.worker_procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.relay.stop()
        self.router.stop()
        self.completion.stop()
        self.server.stop()
        self.index.close()
