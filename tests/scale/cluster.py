"""Several node replicas and workers as separate processes on one machine, each with a working
folder of its own, sharing one PostgreSQL index and one Redis broker — what several hosts
would run (issue 18 item 4). Used by tests/scale/test_multi_host.py and bench/scale.py.

The store is not shared: each replica stores under its own folder, and workers read a series
by the absolute path the index gives, which on one machine every process can open (on several
hosts that path is a shared mount; see README "Several replicas")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.tools import DCMTK_ENV, free_port, tool, wait_for

__all__ = ["Cluster", "Process"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Process:
    """One ``dicom-node`` process (serve or worker) in a folder of its own."""

    name: str
    folder: Path
    args: list[str]
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.folder / f"{self.name}.log", "ab")  # noqa: SIM115 - the child writes it as long as it runs
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dicom_node", *self.args], cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
        )  # fmt: skip
        log.close()
        if self.port is not None:
            wait_for(self.answers_echo, f"{self.name} answers C-ECHO", timeout=120, interval=0.2)

    def answers_echo(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
        run = subprocess.run(
            [tool("echoscu"), "-to", "5", "-aec", "DICOM_NODE", "127.0.0.1", str(self.port)],
            env=DCMTK_ENV, capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        return run.returncode == 0

    def kill(self) -> None:
        """SIGKILL to its process group: serve and whatever it started die at once, as on a lost host."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        path = self.folder / f"{self.name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@dataclass
class Cluster:
    """R replicas and W workers over one index and one broker, with a common configuration."""

    root: Path
    database_url: str
    broker_url: str
    settings: dict[str, Any] = field(default_factory=dict)
    replicas: list[Process] = field(default_factory=list)
    workers: list[Process] = field(default_factory=list)

    def _config(self, name: str, port: int | None) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "host": "127.0.0.1", "data_dir": str(folder / "data"), "database_url": self.database_url,
            "receivers": 1, "min_free_disk_mb": 0, "queue": {"broker_url": self.broker_url, "relay_interval_s": 0.2},
            **self.settings,
        }  # fmt: skip
        if port is not None:
            config["port"] = port
        path = folder / "node.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def add_replica(self) -> Process:
        name, port = f"replica-{len(self.replicas) + 1}", free_port()
        config = self._config(name, port)
        replica = Process(name, config.parent, ["serve", "--config", str(config), "--no-workers"], port=port)
        self.replicas.append(replica)
        return replica

    def add_worker(self, queues: str = "gpu,cpu,send", concurrency: int = 2) -> Process:
        name = f"worker-{len(self.workers) + 1}"
        config = self._config(name, None)
        worker = Process(name, config.parent, ["worker", "--config", str(config), "--queues", queues, "--concurrency", str(concurrency)])
        self.workers.append(worker)
        return worker

    def start(self) -> None:
        """Every replica and worker at once: they meet the empty index together."""
        for process in [*self.replicas, *self.workers]:
            port, process.port = process.port, None  # start all before waiting for any
            process.start()
            process.port = port
        for replica in self.replicas:
            wait_for(replica.answers_echo, f"{replica.name} answers C-ECHO", timeout=120, interval=0.2)

    def stop(self) -> None:
        for process in [*self.replicas, *self.workers]:
            process.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in [*self.replicas, *self.workers])
