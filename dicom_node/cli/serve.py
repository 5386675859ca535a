"""``dicom-node serve`` and ``worker`` — and ``receive``, which serve starts, not a person."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from typing import Annotated

import typer

from dicom_node.cli.console import fail
from dicom_node.cli.options import ConfigOpt, DataDirOpt, given, settings_for
from dicom_node.config import load_settings
from dicom_node.errors import ConfigError, NodeError
from dicom_node.logs import setup_logging

__all__ = ["app"]

app = typer.Typer()
log = logging.getLogger(__name__)


@app.command()
def serve(
    ctx: typer.Context,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    port: Annotated[int | None, typer.Option(help="listening port (default: 11112)", show_default=False)] = None,
    ae_title: Annotated[str | None, typer.Option("--ae-title", help="our AE title (default: DICOM_NODE)", show_default=False)] = None,
    http_port: Annotated[
        int | None, typer.Option("--http-port", help="serve the web face (DICOMweb, /metrics) on this port", show_default=False)
    ] = None,
    workers: Annotated[
        bool | None,
        typer.Option("--workers/--no-workers", help="run workers too (default: on the embedded broker)", show_default=False),
    ] = None,
) -> None:
    """Run the node: SCP, completion detection, routing, outbox relay (and workers).

    Settings come from --config, the environment and these flags, never from an earlier
    record; serve records them in the data folder for its processes and later commands."""
    from dicom_node.node import Node
    from dicom_node.startup import check_references

    ref = given(ctx, config, data_dir)
    try:
        http = None if http_port is None else {"enabled": True, "port": http_port}
        settings = load_settings(ref.config, port=port, ae_title=ae_title, data_dir=ref.data_dir, http=http)
        check_references(settings)
    except ConfigError as exc:
        fail(f"configuration error: {exc}", code=2)
    setup_logging(settings.log_level, "serve")
    node = Node(settings, config_path=ref.config, workers=workers)
    try:
        node.start()
    except NodeError as exc:
        fail(f"could not start: {exc}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    workers_note = f", workers for {', '.join(settings.queue.embedded_workers)}" if node.run_workers else ""
    log.info("running: %d receiver(s)%s; data and settings in %s; Ctrl-C stops", settings.receivers, workers_note, settings.data_dir)
    stop.wait()
    log.info("stopping: running jobs finish first")
    node.stop()
    log.info("stopped")


@app.command(hidden=True)
def receive(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="the receiver's name in serve's log")],
    port: Annotated[int, typer.Option(help="the port serve accepts on")],
    lane_fd: Annotated[int, typer.Option("--lane-fd", help="descriptor of the lane serve hands connections over")],
    data_dir: DataDirOpt = None,
) -> None:
    """An extra SCP process serving the connections serve hands it (receivers > 1), on the
    settings serve recorded."""
    from dicom_node.receive.scp import NodeServer

    settings = settings_for(ctx, data_dir=data_dir, process=name, recorded_only=True, port=port)
    server = NodeServer(settings)
    server.start(reconcile_first=False, lane=socket.socket(fileno=lane_fd))
    stop = server.lane_closed  # serve stopped or is gone
    if stop is None:  # start() with a lane always serves one
        fail("receive: not serving a lane")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()


@app.command()
def worker(
    ctx: typer.Context,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    queues: Annotated[str, typer.Option(help="comma-separated: gpu,cpu,send")] = "gpu,cpu,send",
    concurrency: Annotated[int, typer.Option(help="worker processes")] = 1,
    from_serve: Annotated[bool, typer.Option("--from-serve", hidden=True, help="started by serve: its recorded settings, or none")] = False,
) -> None:
    """Run a Celery worker for the given queues (any number of hosts may run these)."""
    from dicom_node.queue.app import QUEUES, run_worker, warn_if_root

    wanted = queues.split(",")
    unknown = set(wanted) - set(QUEUES)
    if unknown:
        fail(f"unknown queue(s): {', '.join(sorted(unknown))}; known: {', '.join(QUEUES)}", code=2)
    settings = settings_for(ctx, config, data_dir, process=f"worker-{'+'.join(wanted)}", recorded_only=from_serve)
    if not from_serve:  # serve said it for its own workers
        warn_if_root()
    # Imported only now: the jobs and their libraries take seconds.
    from dicom_node.queue.tasks import preload

    preload(set(wanted))
    raise typer.Exit(run_worker(settings, wanted, concurrency))

