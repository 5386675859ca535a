"""Complete study → rules → Celery → forward to a DCMTK storescp, on the embedded broker and on
real Redis, including the faults the outbox exists for."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from dicom_node.config import load_settings
from dicom_node.node import Node
from dicom_node.store.index import Index
from dicom_node.store.models import Job, JobEvent
from dicom_node.synthetic import ct_series, write_series
from tests.conftest import FakePacs, PrivateRedis, dcmtk, free_port, wait_for

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, pacs: FakePacs, broker_url: str | None, **queue: object) -> Path:
    config = {
        "data_dir": str(tmp_path / "node"),
        "host": "127.0.0.1",
        "port": free_port(),
        "min_free_disk_mb": 0,
        "completion": {"quiet_period_s": 0.5, "poll_interval_s": 0.1},
        "destinations": {"pacs": {"kind": "dicom", **pacs.destination()}},
        "rules": [{"name": "archive-ct", "match": {"Modality": "CT"}, "forward": ["pacs"]}],
        "queue": {
            "broker_url": broker_url, "retry_base_s": 0.5, "retry_max_s": 2, "lease_s": 3,
            "requeue_after_s": 4, "relay_interval_s": 0.1, "max_attempts": 20, "embedded_workers": {"send": 1}, **queue,
        },
    }  # fmt: skip
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(params=["embedded", "redis"])
def broker(request) -> Iterator[str | None]:
    if request.param == "embedded":
        yield None
        return
    redis = PrivateRedis()
    redis.start()
    yield redis.url
    redis.stop()


def start_node(config: Path) -> Node:
    node = Node(load_settings(config), config_path=config, workers=True)
    node.start()
    return node


def send_study(tmp_path: Path, port: int, slices: int = 12) -> list[Path]:
    files = write_series(ct_series(shape=(slices, 16, 16), lesion_radius=None), tmp_path / f"study-{port}-{slices}")
    result = dcmtk("storescu", "-aet", "CT1", "-aec", "DICOM_NODE", "127.0.0.1", str(port), *map(str, files))
    assert result.returncode == 0, result.stderr
    return files


def jobs(index: Index) -> list[Job]:
    with index.sessions() as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def events(index: Index, study_uid: str) -> list[str]:
    with index.sessions() as session:
        return list(session.scalars(select(JobEvent.event).where(JobEvent.study_uid == study_uid).order_by(JobEvent.id)))


def test_complete_study_is_forwarded_with_a_timeline(tmp_path, fake_pacs, broker):
    node = start_node(write_config(tmp_path, fake_pacs, broker))
    try:
        files = send_study(tmp_path, node.port)
        wait_for(lambda: len(fake_pacs.files()) == len(files), "study forwarded to the PACS", timeout=60)
        [job] = wait_for(lambda: [j for j in jobs(node.index) if j.state == "succeeded"], "job recorded as succeeded")
        assert job.kind == "forward" and job.attempts == 1 and job.result["sent"] == len(files)
        timeline = events(node.index, job.study_uid)
        assert timeline[:3] == ["received", "complete", "routed"]
        assert {"created", "queued", "started", "finished"} <= set(timeline)
    finally:
        node.stop()


def test_destination_down_is_retried_until_delivered(tmp_path, broker):
    pacs = FakePacs(tmp_path / "pacs")  # configured, but not started yet
    node = start_node(write_config(tmp_path, pacs, broker))
    try:
        files = send_study(tmp_path, node.port)
        wait_for(lambda: any(j.state == "retry" and j.attempts >= 2 for j in jobs(node.index)), "retries while the PACS is down", timeout=60)
        pacs.start()
        wait_for(lambda: len(pacs.files()) == len(files), "delivered once the PACS is up", timeout=60)
        wait_for(lambda: [j.state for j in jobs(node.index)] == ["succeeded"], "job succeeded")
    finally:
        node.stop()
        pacs.stop()


def test_redis_outage_while_studies_arrive_loses_nothing(tmp_path, fake_pacs, private_redis):
    node = start_node(write_config(tmp_path, fake_pacs, private_redis.url))
    try:
        wait_for(lambda: _worker_ready(node), "worker connected")
        private_redis.stop()
        first = send_study(tmp_path, node.port, slices=6)
        second = send_study(tmp_path, node.port, slices=7)
        wait_for(lambda: len(jobs(node.index)) == 2, "both studies routed into the outbox")
        assert not fake_pacs.files() and {j.state for j in jobs(node.index)} <= {"pending", "queued"}
        private_redis.start()  # same port: the relay and the worker reconnect
        wait_for(lambda: len(fake_pacs.files()) == len(first) + len(second), "both studies delivered after Redis is back", timeout=90)
    finally:
        node.stop()


def _worker_ready(node: Node) -> bool:
    return all(p.poll() is None for p, _ in node.children.values()) and node.relay.dispatch_due() == 0


class BlackHole:
    """Accepts TCP connections and never answers: a destination that hangs a sender."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() so the port is free
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)


def _pool_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def test_worker_killed_mid_task_is_redelivered_and_finishes_once(tmp_path, private_redis):
    pacs = FakePacs(tmp_path / "pacs")
    hole = BlackHole(pacs.port)
    node = start_node(write_config(tmp_path, pacs, private_redis.url))
    try:
        files = send_study(tmp_path, node.port)
        wait_for(lambda: any(j.state == "running" for j in jobs(node.index)), "forward running (hung on the destination)", timeout=60)
        worker, _ = node.children["worker-send"]
        children = wait_for(lambda: _pool_children(worker.pid), "pool process")
        for child in children:
            os.kill(child, signal.SIGKILL)  # the process running the task dies mid-task
        hole.close()
        pacs.start()
        wait_for(lambda: len(pacs.files()) == len(files), "delivered after redelivery", timeout=90)
        [job] = wait_for(lambda: [j for j in jobs(node.index) if j.state == "succeeded"], "job succeeded")
        assert job.attempts == 2
        assert events(node.index, job.study_uid).count("finished") == 1
    finally:
        node.stop()
        hole.close()
        pacs.stop()


def test_node_killed_with_pending_jobs_resumes_on_restart(tmp_path):
    pacs = FakePacs(tmp_path / "pacs")  # down: jobs stay unfinished
    config = write_config(tmp_path, pacs, None)
    port = yaml.safe_load(config.read_text())["port"]
    cmd = [sys.executable, "-m", "dicom_node", "serve", "--config", str(config)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index = Index(load_settings(config).database_url)
    try:
        wait_for(lambda: dcmtk("echoscu", "-aec", "DICOM_NODE", "127.0.0.1", str(port)).returncode == 0, "node up")
        files = send_study(tmp_path, port)
        wait_for(lambda: any(j.attempts >= 1 for j in jobs(index)), "forward attempted", timeout=60)
        os.killpg(proc.pid, signal.SIGKILL)  # node, relay and workers die at once
        proc.wait()
        pacs.start()
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: len(pacs.files()) == len(files), "delivered after the restart", timeout=90)
        wait_for(lambda: [j.state for j in jobs(index)] == ["succeeded"], "job succeeded once")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        pacs.stop()
