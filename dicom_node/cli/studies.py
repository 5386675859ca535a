"""``dicom-node studies`` and ``complete``: the studies the node's index holds."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from dicom_node.cli.console import console, fail, short, show, table, timestamp
from dicom_node.cli.options import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    WideOpt,
    open_index,
    settings_for,
)
from dicom_node.service.studies import studies as list_studies

__all__ = ["app"]

app = typer.Typer()


@app.command()
def studies(
    ctx: typer.Context, config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False, wide: WideOpt = False
) -> None:
    """List the studies the index holds."""
    settings = settings_for(ctx, config, data_dir)
    rows = [view.summary for view in list_studies(open_index(settings), limit=1000, with_details=False)]
    if as_json:
        print(json.dumps([{**r.__dict__, "completed_at": r.completed_at.isoformat() if r.completed_at else None} for r in rows], indent=2))
        return
    cut = short(wide)
    listed = table("Study UID", "Patient", "Date", "Modalities", "Series", "Instances", "Complete")
    if cut:  # the start of a UID, in what the other columns leave of the width
        listed.expand = True
        for column in listed.columns:
            column.no_wrap, column.overflow = True, "ellipsis"
        listed.columns[0].ratio = 1
    for r in rows:
        patient = r.patient_name if settings.log_phi else (r.patient_id[:3] + "…" if r.patient_id else "")
        listed.add_row(r.study_uid, patient, r.study_date, r.modalities, str(r.series), str(r.instances), timestamp(r.completed_at, cut))
    show(listed)


@app.command()
def complete(
    ctx: typer.Context,
    study_uid: Annotated[str, typer.Argument(help="Study Instance UID")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Mark a study complete now (routing follows), whatever its quiet period."""
    settings = settings_for(ctx, config, data_dir)
    if not open_index(settings).force_complete(study_uid):
        fail(f"no study {study_uid} in the index")
    console.print(f"study {study_uid} marked complete", highlight=False)
