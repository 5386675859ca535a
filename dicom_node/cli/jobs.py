"""``dicom-node jobs …`` and ``pipelines``: the job timeline, dead letters, sidecar jobs, and
what can run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import select

from dicom_node.cli.console import console, fail, short, show, table, timestamp
from dicom_node.cli.options import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    WideOpt,
    given,
    open_index,
    settings_for,
)
from dicom_node.config import Settings
from dicom_node.errors import ConfigError
from dicom_node.store.models import Job, JobEvent

__all__ = ["app"]

app = typer.Typer()
jobs_app = typer.Typer(help="Jobs: list, show, retry, submit.", invoke_without_command=True)
app.add_typer(jobs_app, name="jobs")

def _job_dict(job: Job) -> dict[str, Any]:
    values = {c.name: getattr(job, c.name) for c in Job.__table__.columns}
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in values.items()}


@jobs_app.callback()
def jobs_list(
    ctx: typer.Context,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    study: Annotated[str | None, typer.Option(help="only this study, with its timeline")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="only dead letters and retries")] = False,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """List jobs (newest first); with --study, the study's whole timeline."""
    given(ctx, config, data_dir)  # for the sub-command, if one follows
    if ctx.invoked_subcommand is not None:
        return
    index = open_index(settings_for(ctx))
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
    show(jobs_table(jobs, short(wide)))
    if study:
        show(_timeline_table(events, short(wide)))


def jobs_table(jobs: Any, cut: bool) -> Table:
    """Jobs as rows. Shortened (``cut``: a terminal, no --wide): what each job does in one
    column, the start of its study's UID and of its error sharing what the other columns leave
    of the width, times without the year; else every column in full."""
    if not cut:
        rows = table("ID", "Kind", "What", "Study", "Series", "Rule", "Queue", "Prio", "State", "Tries", "Worker", "Created", "Started", "Finished", "Error")
        for j in jobs:
            rows.add_row(
                str(j.id), j.kind, j.pipeline or j.destination or "", j.study_uid or "", j.series_uid or "", j.rule or "",
                j.queue, str(j.priority), j.state, f"{j.attempts}/{j.max_attempts}", j.worker or "",
                timestamp(j.created_at), timestamp(j.started_at), timestamp(j.finished_at), j.error or "",
            )  # fmt: skip
        return rows
    rows = table("ID", "Job", "Study", "State", "Tries", "Created", "Error")
    rows.expand = True
    for column in rows.columns:
        column.no_wrap, column.overflow = True, "ellipsis"
    rows.columns[2].ratio, rows.columns[6].ratio = 3, 2  # the rest of the width: Study, Error
    for j in jobs:
        what = j.pipeline or f"{j.kind} {j.destination or ''}".strip()
        rows.add_row(str(j.id), what, j.study_uid or "", j.state, f"{j.attempts}/{j.max_attempts}", timestamp(j.created_at, cut), j.error or "")
    return rows


def _timeline_table(events: Any, cut: bool) -> Table:
    """A study's events; only the detail wraps."""
    rows = table("At", "Event", "Job", "Detail", "Worker", "Duration")
    for column in rows.columns:
        column.no_wrap = column.header != "Detail"
    for e in events:
        rows.add_row(timestamp(e.at, cut), e.event, str(e.job_id or ""), e.detail, e.worker or "", f"{e.duration_s:.2f}s" if e.duration_s else "")
    return rows


@jobs_app.command("retry")
def jobs_retry(ctx: typer.Context, job_id: int, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Start a dead (or waiting) job over with fresh attempts."""
    from dicom_node.queue.outbox import retry_by_hand

    if not retry_by_hand(open_index(settings_for(ctx, config, data_dir)), job_id):
        fail(f"job {job_id} is not dead, waiting or finished (or does not exist)")
    console.print(f"job {job_id} queued again", highlight=False)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: int, config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """One job with its result."""
    index = open_index(settings_for(ctx, config, data_dir))
    with index.sessions() as session:
        job = session.get(Job, job_id)
    if job is None:
        fail(f"no job {job_id}")
    data = _job_dict(job)
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    for key, value in data.items():
        if value not in (None, "", {}):
            console.print(f"[bold]{key}[/bold]: ", end="")
            console.print(json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value), markup=False, highlight=False)


@jobs_app.command("submit")
def jobs_submit(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="genomics | drug | prediction")],
    input_path: Annotated[Path, typer.Argument(exists=True, help="VCF/BCF, SMILES/SDF, FHIR bundle/CSV")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    patient_id: Annotated[str | None, typer.Option("--patient-id")] = None,
    study: Annotated[str | None, typer.Option("--study", help="attach the SR to this study")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="pipeline parameter NAME=VALUE")] = None,
    send_to: Annotated[list[str] | None, typer.Option("--send-to", help="destination for the patient's SR")] = None,
) -> None:
    """Queue a sidecar job on the cpu queue; serve (or a worker) runs it."""
    from dicom_node.jobs.submit import submit_sidecar

    settings = settings_for(ctx, config, data_dir)
    bad = [p for p in param or [] if "=" not in p]
    if bad:
        fail(f"--param {bad[0]!r}: expected NAME=VALUE", code=2)
    params = dict(p.split("=", 1) for p in param or [])
    try:
        job_id = submit_sidecar(settings, open_index(settings), kind, input_path, patient_id, study, params, send_to or [])
    except (ConfigError, KeyError) as exc:
        fail(str(exc), code=2)
    console.print(f"job {job_id} queued ({kind})", highlight=False)


@app.command("pipelines")
def pipelines_cmd(ctx: typer.Context, config: ConfigOpt = None, data_dir: DataDirOpt = None, wide: WideOpt = False) -> None:
    """List the registered pipelines and the models they would run."""
    show(pipelines_table(settings_for(ctx, config, data_dir), short(wide)))


def pipelines_table(settings: Settings, cut: bool) -> Table:
    """One row per pipeline. Shortened (``cut``, a terminal): name over version, kind with
    queue, the model's file name, so that the description keeps half of 80 columns; else
    every field in a column of its own, the model's whole path."""
    from pipelines.base import ImagingPipeline
    from pipelines.registry import all_pipelines

    rows = []
    for name, cls in all_pipelines().items():
        model: Path | None
        if issubclass(cls, ImagingPipeline):
            configured = settings.pipelines.get(name)
            model = configured.bundle if configured and configured.bundle else None
            shown = (str(model), model.name) if model else (f"{cls.demo_bundle} (demo)", "demo bundle")
        else:
            model = cls.default_model
            shown = (str(model), model.name) if model else ("rule tables", "rule tables")
        rows.append((name, cls, shown))
    if not cut:
        full = table("Name", "Kind", "Queue", "Version", "Model", "Description")
        for name, cls, (whole, _) in rows:
            full.add_row(name, cls.kind, cls.queue, cls.version, whole, cls.description)
        return full
    fitted = table("Pipeline", "Kind, queue", "Model", "Description")
    fitted.leading = 1
    for column in fitted.columns[:3]:
        column.no_wrap = True
    for name, cls, (_, brief) in rows:
        fitted.add_row(f"{name}\n[dim]{cls.version}[/dim]", f"{cls.kind}, {cls.queue}", brief, cls.description)
    return fitted
