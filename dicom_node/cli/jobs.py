"""``dicom-node jobs …`` and ``pipelines``: the job timeline, dead letters, sidecar jobs, and
what can run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

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
from dicom_node.service import ServiceError
from dicom_node.service.catalog import pipelines as pipeline_infos
from dicom_node.service.jobs import FAILED, STATES, cancel, get_job, job_dict, list_jobs, retry
from dicom_node.service.studies import event_dict, timeline

__all__ = ["app"]

app = typer.Typer()
jobs_app = typer.Typer(help="Jobs: list, show, retry, cancel, submit.", invoke_without_command=True)
app.add_typer(jobs_app, name="jobs")

@jobs_app.callback()
def jobs_list(
    ctx: typer.Context,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    study: Annotated[str | None, typer.Option(help="only this study, with its timeline")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="only dead letters and retries")] = False,
    state: Annotated[list[str] | None, typer.Option("--state", help=f"only these states ({', '.join(STATES)})")] = None,
    queue: Annotated[str | None, typer.Option(help="only this queue (gpu, cpu, send)")] = None,
    pipeline: Annotated[str | None, typer.Option(help="only this pipeline's jobs")] = None,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """List jobs (newest first); with --study, the study's whole timeline."""
    given(ctx, config, data_dir)  # for the sub-command, if one follows
    if ctx.invoked_subcommand is not None:
        return
    index = open_index(settings_for(ctx))
    states = [*(state or []), *(FAILED if failed else ())]
    jobs = list_jobs(index, states=states, queue=queue, pipeline=pipeline, study_uid=study)
    events = timeline(index, study) if study else []
    if as_json:
        out: dict[str, Any] = {"jobs": [job_dict(j) for j in jobs]}
        if study:
            out["timeline"] = [event_dict(e) for e in events]
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
    try:
        retry(open_index(settings_for(ctx, config, data_dir)), job_id)
    except ServiceError as exc:
        fail(str(exc))
    console.print(f"job {job_id} queued again", highlight=False)


@jobs_app.command("cancel")
def jobs_cancel(ctx: typer.Context, job_id: int, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Cancel a job no worker has started yet."""
    try:
        cancel(open_index(settings_for(ctx, config, data_dir)), job_id)
    except ServiceError as exc:
        fail(str(exc))
    console.print(f"job {job_id} cancelled", highlight=False)


@jobs_app.command("show")
def jobs_show(ctx: typer.Context, job_id: int, config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """One job with its result."""
    try:
        data = job_dict(get_job(open_index(settings_for(ctx, config, data_dir)), job_id))
    except ServiceError as exc:
        fail(str(exc))
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
def pipelines_cmd(
    ctx: typer.Context, config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False, wide: WideOpt = False
) -> None:
    """List the registered pipelines and the models they would run."""
    listed = pipelines(settings_for(ctx, config, data_dir))
    if as_json:
        print(json.dumps([{k: v for k, v in p.items() if k != "model_brief"} for p in listed], indent=2))
        return
    show(pipelines_table(listed, short(wide)))


def pipelines(settings: Settings) -> list[dict[str, str]]:
    """Each registered pipeline: name, kind, queue, version, the model it would run (whole and
    brief), description."""
    rows = []
    for p in pipeline_infos(settings):
        if p.model is None:
            model, brief = "rule tables", "rule tables"
        elif p.model.demo and p.kind == "imaging":
            model, brief = f"{p.model.path} (demo)", "demo bundle"
        else:
            model, brief = p.model.path, Path(p.model.path).name
        rows.append({"name": p.name, "kind": p.kind, "queue": p.queue, "version": p.version, "model": model, "model_brief": brief, "description": p.description})
    return rows


def pipelines_table(listed: list[dict[str, str]], cut: bool) -> Table:
    """One row per pipeline. Shortened (``cut``, a terminal): name over version, kind with
    queue, the model's file name, so that the description keeps half of 80 columns; else
    every field in a column of its own, the model's whole path."""
    if not cut:
        full = table("Name", "Kind", "Queue", "Version", "Model", "Description")
        for p in listed:
            full.add_row(p["name"], p["kind"], p["queue"], p["version"], p["model"], p["description"])
        return full
    fitted = table("Pipeline", "Kind, queue", "Model", "Description")
    fitted.leading = 1
    for column in fitted.columns[:3]:
        column.no_wrap = True
    for p in listed:
        fitted.add_row(f"{p['name']}\n[dim]{p['version']}[/dim]", f"{p['kind']}, {p['queue']}", p["model_brief"], p["description"])
    return fitted
