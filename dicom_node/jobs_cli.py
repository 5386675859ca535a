"""``dicom-node jobs …`` and ``dicom-node pipelines``: the job timeline and dead letters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table
from sqlalchemy import select

from dicom_node.errors import ConfigError
from dicom_node.store.models import Job, JobEvent

__all__ = ["register"]

jobs_app = typer.Typer(help="Jobs: list, show, retry, submit.", invoke_without_command=True)
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", exists=True)]


def _index(config: Path | None):  # type: ignore[no-untyped-def]
    from dicom_node.cli import settings_from
    from dicom_node.store.index import Index

    settings = settings_from(config)
    return settings, Index(settings.database_url or "")


def _job_dict(job: Job) -> dict[str, Any]:
    values = {c.name: getattr(job, c.name) for c in Job.__table__.columns}
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values.items()}


@jobs_app.callback()
def jobs_list(
    ctx: typer.Context,
    config: ConfigOpt = None,
    study: Annotated[Optional[str], typer.Option(help="only this study, with its timeline")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="only dead letters and retries")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List jobs (newest first); with --study, the study's whole timeline."""
    if ctx.invoked_subcommand is not None:
        return
    from dicom_node.cli import console

    _, index = _index(config)
    with index.sessions() as session:
        query = select(Job).order_by(Job.id.desc()).limit(500)
        if study:
            query = query.where(Job.study_uid == study)
        if failed:
            query = query.where(Job.state.in_(("dead", "retry")))
        jobs = session.scalars(query).all()
        events = session.scalars(select(JobEvent).where(JobEvent.study_uid == study).order_by(JobEvent.id)).all() if study else []
    if as_json:
        out: dict[str, Any] = {"jobs": [_job_dict(j) for j in jobs]}
        if study:
            out["timeline"] = [
                {"at": e.at.isoformat(), "event": e.event, "job_id": e.job_id, "detail": e.detail, "worker": e.worker, "duration_s": e.duration_s}
                for e in events
            ]
        print(json.dumps(out, indent=2))
        return
    table = Table("ID", "Kind", "What", "Study", "Prio", "State", "Tries", "Error")
    for j in jobs:
        table.add_row(str(j.id), j.kind, j.pipeline or j.destination or "", (j.study_uid or "")[-20:], str(j.priority), j.state, f"{j.attempts}/{j.max_attempts}", (j.error or "")[:60])
    console.print(table)
    if study:
        timeline = Table("At", "Event", "Job", "Detail", "Worker", "Duration")
        for e in events:
            timeline.add_row(e.at.isoformat(timespec="milliseconds"), e.event, str(e.job_id or ""), e.detail, e.worker or "", f"{e.duration_s:.2f}s" if e.duration_s else "")
        console.print(timeline)


@jobs_app.command("retry")
def jobs_retry(job_id: int, config: ConfigOpt = None) -> None:
    """Start a dead (or waiting) job over with fresh attempts."""
    from dicom_node.cli import console
    from dicom_node.queue.outbox import retry_by_hand

    _, index = _index(config)
    if not retry_by_hand(index, job_id):
        console.print(f"[red]job {job_id} is not dead, waiting or finished (or does not exist)[/red]")
        raise typer.Exit(1)
    console.print(f"job {job_id} queued again")


@jobs_app.command("show")
def jobs_show(job_id: int, config: ConfigOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One job with its result."""
    from dicom_node.cli import console

    _, index = _index(config)
    with index.sessions() as session:
        job = session.get(Job, job_id)
    if job is None:
        console.print(f"[red]no job {job_id}[/red]")
        raise typer.Exit(1)
    data = _job_dict(job)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    for key, value in data.items():
        if value not in (None, "", {}):
            console.print(f"[bold]{key}[/bold]: {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")


@jobs_app.command("submit")
def jobs_submit(
    kind: Annotated[str, typer.Argument(help="genomics | drug | prediction")],
    input_path: Annotated[Path, typer.Argument(exists=True, help="VCF/BCF, SMILES/SDF, FHIR bundle/CSV")],
    config: ConfigOpt = None,
    patient_id: Annotated[Optional[str], typer.Option("--patient-id")] = None,
    study: Annotated[Optional[str], typer.Option("--study", help="attach the SR to this study")] = None,
    param: Annotated[list[str], typer.Option("--param", "-p", help="pipeline parameter NAME=VALUE")] = [],  # noqa: B006
    send_to: Annotated[list[str], typer.Option("--send-to", help="destination for the patient's SR")] = [],  # noqa: B006
) -> None:
    """Queue a sidecar job on the cpu queue; `serve` (or a worker) runs it."""
    from dicom_node.cli import console
    from dicom_node.jobs.submit import submit_sidecar

    settings, index = _index(config)
    params = dict(p.split("=", 1) for p in param)
    try:
        job_id = submit_sidecar(settings, index, kind, input_path, patient_id, study, params, send_to)
    except (ConfigError, KeyError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"job {job_id} queued ({kind})")


def pipelines_cmd(config: ConfigOpt = None) -> None:
    """List the registered pipelines and the models they would run."""
    from dicom_node.cli import console, settings_from
    from pipelines.base import ImagingPipeline
    from pipelines.registry import all_pipelines

    settings = settings_from(config)
    table = Table("Name", "Kind", "Version", "Queue", "Model", "Description")
    for name, cls in all_pipelines().items():
        if issubclass(cls, ImagingPipeline):
            configured = settings.pipelines.get(name)
            model = str(configured.bundle) if configured and configured.bundle else f"{cls.demo_bundle} (demo)"
        else:
            model = str(cls.default_model) if cls.default_model else "rule tables, no learned model"
        table.add_row(name, cls.kind, cls.version, cls.queue, model, cls.description)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
    app.command("pipelines")(pipelines_cmd)
