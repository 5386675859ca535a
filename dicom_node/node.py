"""``dicom-node serve``: the SCP, completion detector, router and outbox relay in one process;
more receiver processes (``receivers``), to which this one hands the connections it accepts
(:mod:`dicom_node.receive.dispatch`); and — on the embedded broker, unless told otherwise —
worker processes for every queue. Children are restarted if they die.

Every child runs with exactly the settings serve runs with: serve records them in its data
folder (:func:`dicom_node.config.record_settings`) and each child loads that record, so a flag
given to serve (``--ae-title``, ``--port``…) holds in receivers and workers too."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from dicom_node.config import Settings, record_settings
from dicom_node.errors import NodeError
from dicom_node.queue.app import make_celery, warn_if_root
from dicom_node.queue.outbox import Relay
from dicom_node.receive.dispatch import Dispatcher
from dicom_node.receive.scp import NodeServer
from dicom_node.routing.completion import CompletionDetector
from dicom_node.orders.listener import OrderListener
from dicom_node.routing.router import Router
from dicom_node.store.index import Index
from dicom_node.store.single_replica import SingleReplicaLock

if TYPE_CHECKING:
    from dicom_node.web.server import WebServer

__all__ = ["Node"]

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the node dies, even by SIGKILL (Linux
    PR_SET_PDEATHSIG), so no orphaned receiver or worker goes on beside the next node."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class Node:
    """Everything ``serve`` runs; :meth:`start` returns once every receiver process is listening."""

    def __init__(self, settings: Settings, config_path: Path | None = None, workers: bool | None = None) -> None:
        self.settings = settings
        self.config_path = config_path  # recorded beside the settings: where they came from
        self.index = Index(settings.database_url or "", takeover_s=settings.takeover_s)
        self.single_replica = SingleReplicaLock(settings.database_url or "")
        self.server = NodeServer(settings, self.index)
        self.celery = make_celery(settings)
        self.relay = Relay(self.index, settings.queue, self._send)
        self.router = Router(settings, self.index, on_jobs=self.relay.wake)
        self.orders = OrderListener(self.index, settings.orders.host, settings.orders.port, settings.ae_title) if settings.orders.port is not None else None
        self.completion = CompletionDetector(self.index, settings.completion, on_complete=self.router.wake)
        self.dispatcher: Dispatcher | None = None  # with more than one receiver
        self.web = self._web() if settings.http.enabled else None
        # Embedded broker: nothing else would run the workers. With Redis they usually run elsewhere.
        self.run_workers = settings.queue.broker_url is None if workers is None else workers
        self.children: dict[str, tuple[subprocess.Popen[bytes], list[str]]] = {}  # name → (process, args)
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="worker-supervisor", daemon=True)

    def _web(self) -> WebServer:
        """The web face (:mod:`dicom_node.web`), storing STOW-RS uploads through this process's
        C-STORE handler: same checks, same store, same index writer."""
        from dicom_node.receive.contexts import STORAGE_SOP_CLASSES
        from dicom_node.receive.handlers import StoreHandler
        from dicom_node.web.app import create_app
        from dicom_node.web.server import WebServer

        handler = StoreHandler(self.settings, self.server.store, self.server.writer, set(STORAGE_SOP_CLASSES.values()))
        app = create_app(self.settings, self.index, handler, checks={"workers": self._workers_alive})
        return WebServer(app, self.settings.http.host, self.settings.http.port)

    def _workers_alive(self) -> tuple[bool, str]:
        dead = [name for name, (proc, _) in self.children.items() if proc.poll() is not None]
        return not dead, f"{len(self.children) - len(dead)} of {len(self.children)} child processes running"

    def _send(self, job_id: int, queue: str, priority: int) -> None:
        self.celery.send_task("dicom_node.run_job", args=[job_id], queue=queue, priority=priority)

    @property
    def port(self) -> int:
        return self.server.port

    def start(self, receiver_timeout_s: float = 60.0) -> None:
        """Start everything; return only once every receiver process serves, so that
        associations opened now (a benchmark's clock started now) meet every receiver, not one
        process that shares its cores with the others' start-up.

        Raises NodeError, with everything stopped again, when another serve runs on the same
        SQLite index, the port cannot be bound, or a receiver exits or is not serving within
        ``receiver_timeout_s``.
        """
        self.single_replica.acquire()
        try:
            self._start(receiver_timeout_s)
        except BaseException:
            self.single_replica.release()
            raise

    def _start(self, receiver_timeout_s: float) -> None:
        receivers = [f"receiver-{n}" for n in range(self.settings.receivers)]
        record_settings(self.settings, self.config_path)  # before any child starts: they load it
        try:
            if len(receivers) == 1:
                self.server.start()
            else:  # this process accepts, and serves as receiver-0 beside the others
                per_peer = self.settings.max_associations_per_peer
                self.dispatcher = Dispatcher(self.settings.host, self.settings.port, per_peer)
        except OSError as exc:  # the port is taken, or not ours to bind
            raise NodeError(f"cannot listen on {self.settings.host}:{self.settings.port}: {exc.strerror or exc}") from exc
        if self.dispatcher is not None:
            log.info(
                "%s listening on %s:%d, %d receivers", self.settings.ae_title, self.settings.host,
                self.dispatcher.port, len(receivers),
            )  # fmt: skip
            own_lane = self.dispatcher.add_lane(receivers[0])
            self.server.start(lane=own_lane, port=self.dispatcher.port)
            for name in receivers[1:]:
                self._spawn_receiver(name)
            self.dispatcher.start()
        self.completion.start()
        self.router.start()
        self.relay.start()
        if self.orders is not None:
            try:
                self.orders.start()
            except OSError as exc:
                self.stop()
                raise NodeError(f"cannot listen on {self.orders.host}:{self.orders.port} (HL7 orders): {exc.strerror or exc}") from exc
        if self.run_workers:
            warn_if_root()
            for queue, concurrency in self.settings.queue.embedded_workers.items():
                args = ["worker", "--queues", queue, "--concurrency", str(concurrency), "--from-serve"]
                self.children[f"worker-{queue}"] = (self._spawn(args), args)
        self._supervisor.start()
        if self.web is not None:  # last: on failure, stop() finds everything it stops started
            try:
                self.web.start()
            except OSError as exc:
                self.stop()
                http = self.settings.http
                raise NodeError(f"cannot listen on {http.host}:{http.port} (HTTP): {exc.strerror or exc}") from exc
            except NodeError:
                self.stop()
                raise
        if self.dispatcher is not None:
            try:
                self.dispatcher.wait_ready(receivers[1:], receiver_timeout_s)
            except NodeError:
                self.stop()
                raise

    def _spawn_receiver(self, name: str) -> None:
        """Start receiver ``name`` on a new lane of the dispatcher."""
        assert self.dispatcher is not None
        lane = self.dispatcher.add_lane(name)
        args = ["receive", "--name", name, "--port", str(self.port), "--lane-fd", str(lane.fileno())]
        try:
            self.children[name] = (self._spawn(args, pass_fd=lane.fileno()), args)
        finally:
            lane.close()  # the child holds its own copy: the lane closes when the child exits

    def _supervise(self) -> None:
        """Restart a child that died; a worker's unfinished job comes back through the outbox."""
        while not self._stopping.wait(1.0):
            for name, (proc, args) in list(self.children.items()):
                if proc.poll() is not None and not self._stopping.is_set():
                    log.error("%s exited with %s; restarting it", name, proc.returncode)
                    if name.startswith("receiver-"):
                        self._spawn_receiver(name)
                    else:
                        self.children[name] = (self._spawn(args), args)

    def _spawn(self, args: list[str], pass_fd: int | None = None) -> subprocess.Popen[bytes]:
        """Start ``dicom-node ARGS`` on the settings recorded in our data folder. In a session
        of its own: a Ctrl-C at the terminal reaches serve alone, which stops the children in
        order, and a child's pool processes can be killed with it as a group."""
        cmd = [sys.executable, "-m", "dicom_node", *args, "--data-dir", str(self.settings.data_dir)]
        log.debug("starting %s", " ".join(cmd))
        return subprocess.Popen(
            cmd, start_new_session=True, preexec_fn=_die_with_parent, pass_fds=() if pass_fd is None else (pass_fd,)
        )

    def stop(self) -> None:
        self._stopping.set()
        if self.web is not None:
            self.web.stop()
        if self.dispatcher is not None:  # no new associations; the receivers' lanes close
            self.dispatcher.stop()
        # SIGTERM to each child's main process only: a worker then stops its pool itself once
        # running jobs finish (its pool processes, signalled too, died mid-job and were
        # reported as errors). A child still there after the grace period is killed as a group.
        for proc, _ in self.children.values():
            proc.terminate()
        for proc, _ in self.children.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        if self.orders is not None:
            self.orders.stop()
        self.relay.stop()
        self.router.stop()
        self.completion.stop()
        self.server.stop()
        self.index.close()
        self.single_replica.release()
