"""``dicom-node``: one entry point, thin commands over the package's functions."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dicom_node.config import DicomDestination, Settings, load_settings
from dicom_node.errors import ConfigError, NodeError
from dicom_node.logs import setup_logging

app = typer.Typer(help="DICOM/PACS-integrated AI imaging node.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the configuration.")
rules_app = typer.Typer(help="Routing rules.")
app.add_typer(config_app, name="config")
app.add_typer(rules_app, name="rules")
console = Console()

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file", exists=True)]
DataDirOpt = Annotated[Optional[Path], typer.Option("--data-dir", help="store, index and broker folder")]


def settings_from(config: Path | None, **overrides: object) -> Settings:
    try:
        settings = load_settings(config, **overrides)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
    setup_logging(settings.log_level)
    return settings


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console)


@app.command()
def serve(
    config: ConfigOpt = None,
    port: Annotated[Optional[int], typer.Option(help="listening port (default 11112)")] = None,
    ae_title: Annotated[Optional[str], typer.Option("--ae-title", help="our AE title (default DICOM_NODE)")] = None,
    data_dir: DataDirOpt = None,
    workers: Annotated[Optional[bool], typer.Option("--workers/--no-workers", help="run workers in-process group (default: on the embedded broker)")] = None,
) -> None:
    """Run the node: SCP, completion detection, routing, outbox relay (and embedded workers)."""
    from dicom_node.node import Node
    from dicom_node.startup import check_references

    settings = settings_from(config, port=port, ae_title=ae_title, data_dir=data_dir)
    try:
        check_references(settings)
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc
    node = Node(settings, config_path=config, workers=workers)
    try:
        node.start()
    except NodeError as exc:
        console.print(f"[red]could not start:[/red] {exc}")
        raise typer.Exit(1) from exc
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"[green]{settings.ae_title}[/green] listening on port {node.port}; data in {settings.data_dir}")
    stop.wait()
    console.print("stopping…")
    node.stop()


@app.command(hidden=True)
def receive(
    port: Annotated[int, typer.Option(help="the port the main serve process accepts on")],
    lane_fd: Annotated[int, typer.Option("--lane-fd", help="descriptor of the lane serve hands connections over")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """An extra SCP process serving the connections `serve` hands it; started when receivers > 1."""
    import socket

    from dicom_node.receive.scp import NodeServer

    settings = settings_from(config, data_dir=data_dir, port=port)
    server = NodeServer(settings)
    server.start(reconcile_first=False, lane=socket.socket(fileno=lane_fd))
    stop = server.lane_closed  # serve stopped or is gone
    assert stop is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()


@app.command()
def worker(
    config: ConfigOpt = None,
    queues: Annotated[str, typer.Option(help="comma-separated: gpu,cpu,send")] = "gpu,cpu,send",
    concurrency: Annotated[int, typer.Option(help="worker processes")] = 1,
    data_dir: DataDirOpt = None,
) -> None:
    """Run a Celery worker for the given queues (any number of hosts may run these)."""
    from dicom_node.queue.app import QUEUES, make_celery
    from dicom_node.queue.tasks import preload

    settings = settings_from(config, data_dir=data_dir)
    unknown = set(queues.split(",")) - set(QUEUES)
    if unknown:
        console.print(f"[red]unknown queue(s):[/red] {', '.join(sorted(unknown))}; known: {', '.join(QUEUES)}")
        raise typer.Exit(2)
    preload(set(queues.split(",")))
    celery = make_celery(settings)
    celery.worker_main(
        ["worker", "-Q", queues, "-c", str(concurrency), "-n", f"{queues.replace(',', '+')}@%h",
         "--loglevel", settings.log_level, "--without-gossip", "--without-mingle"]
    )  # fmt: skip


@app.command()
def echo(
    target: Annotated[str, typer.Argument(help="HOST, AE@HOST:PORT or a destination name")],
    port: Annotated[Optional[int], typer.Argument()] = None,
    config: ConfigOpt = None,
    called_ae: Annotated[str, typer.Option("--aec", help="called AE title when given HOST PORT")] = "ANY-SCP",
) -> None:
    """C-ECHO a peer or a configured destination."""
    from dicom_node.send.dimse import echo as c_echo

    settings = settings_from(config)
    dest = _destination(settings, target, port, called_ae)
    try:
        status = c_echo(settings.ae_title, dest)
    except NodeError as exc:
        console.print(f"[red]C-ECHO failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"C-ECHO {dest.ae_title}@{dest.host}:{dest.port}: status 0x{status:04X}")
    raise typer.Exit(0 if status == 0 else 1)


def _destination(settings: Settings, target: str, port: int | None, called_ae: str) -> DicomDestination:
    if target in settings.destinations:
        dest = settings.destinations[target]
        if not isinstance(dest, DicomDestination):
            console.print(f"[red]{target} is a DICOMweb destination; C-ECHO needs a DICOM one[/red]")
            raise typer.Exit(2)
        return dest
    if "@" in target:
        ae, _, hostport = target.partition("@")
        host, _, p = hostport.rpartition(":")
        return DicomDestination(ae_title=ae, host=host, port=int(p))
    if port is None:
        console.print(f"[red]{target!r} is not a destination name; give HOST PORT or AE@HOST:PORT[/red]")
        raise typer.Exit(2)
    return DicomDestination(ae_title=called_ae, host=target, port=port)


@app.command()
def send(
    paths: Annotated[list[Path], typer.Argument(help="files or folders (searched recursively)", exists=True)],
    to: Annotated[str, typer.Option("--to", help="AE@HOST:PORT or a destination name")],
    config: ConfigOpt = None,
) -> None:
    """C-STORE files to a peer over one association, with a progress bar."""
    from dicom_node.send.dimse import store_files

    settings = settings_from(config)
    dest = _destination(settings, to, None, "ANY-SCP")
    files = sorted({f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file() and _is_dicom(f)})
    if not files:
        console.print("[yellow]no DICOM files found[/yellow]")
        raise typer.Exit(1)
    with progress_bar() as bar:
        task = bar.add_task(f"C-STORE → {dest.ae_title}", total=len(files))
        try:
            report = store_files(settings.ae_title, dest, files, lambda n: bar.advance(task, n))
        except NodeError as exc:
            console.print(f"[red]send failed:[/red] {exc}")
            raise typer.Exit(1) from exc
    console.print(f"sent {len(report.sent)}, failed {len(report.failed)}")
    for path, why in list(report.failed.items())[:20]:
        console.print(f"  [red]{path}[/red]: {why}")
    raise typer.Exit(0 if report.ok else 1)


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(128)
        return fh.read(4) == b"DICM"


@app.command()
def studies(config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the studies the index holds."""
    from dicom_node.store.index import Index

    settings = settings_from(config, data_dir=data_dir)
    rows = Index(settings.database_url or "").studies()
    if as_json:
        print(json.dumps([{**r.__dict__, "completed_at": r.completed_at.isoformat() if r.completed_at else None} for r in rows], indent=2))
        return
    table = Table("Study UID", "Patient", "Date", "Modalities", "Series", "Instances", "Complete")
    for r in rows:
        patient = r.patient_name if settings.log_phi else (r.patient_id[:3] + "…" if r.patient_id else "")
        table.add_row(r.study_uid, patient, r.study_date, r.modalities, str(r.series), str(r.instances), "yes" if r.completed_at else "")
    console.print(table)


@app.command()
def complete(study_uid: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Mark a study complete now (routing follows), whatever its quiet period."""
    from dicom_node.store.index import Index

    settings = settings_from(config, data_dir=data_dir)
    if not Index(settings.database_url or "").force_complete(study_uid):
        console.print(f"[red]no study {study_uid} in the index[/red]")
        raise typer.Exit(1)
    console.print(f"study {study_uid} marked complete")


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective configuration (file + environment + defaults)."""
    settings = settings_from(config)
    print(json.dumps(settings.model_dump(mode="json", by_alias=True), indent=2))


@rules_app.command("test")
def rules_test(
    target: Annotated[str, typer.Argument(help="a DICOM file/folder or a study UID in the index")],
    config: ConfigOpt = None,
    calling_ae: Annotated[str, typer.Option(help="calling AE to assume for files")] = "",
) -> None:
    """Show which rules match each series and what would run — without running it."""
    from dicom_node.routing.dry_run import explain

    settings = settings_from(config)
    for line in explain(settings, target, calling_ae):
        console.print(line)


def _register_subcommands() -> None:
    from dicom_node.jobs_cli import register as register_jobs
    from dicom_node.qr.cli import register as register_qr

    register_jobs(app)
    register_qr(app)


_register_subcommands()
