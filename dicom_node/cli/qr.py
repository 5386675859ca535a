"""``dicom-node query`` and ``dicom-node retrieve``: the Q/R SCU from the command line."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import typer
from pydicom.multival import MultiValue
from rich.table import Table

from dicom_node.cli.console import console, fail, progress_bar, show
from dicom_node.cli.options import ConfigOpt, DataDirOpt, open_index, settings_for
from dicom_node.errors import NodeError

__all__ = ["app"]

app = typer.Typer()

# What a query shows when -k does not name the keys (each also matches universally).
DEFAULT_KEYS: dict[str, list[str]] = {
    "PATIENT": ["PatientID", "PatientName", "PatientBirthDate", "NumberOfPatientRelatedStudies"],
    "STUDY": [
        "PatientID", "PatientName", "StudyDate", "StudyDescription", "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances", "StudyInstanceUID",
    ],
    "SERIES": ["SeriesNumber", "Modality", "SeriesDescription", "NumberOfSeriesRelatedInstances", "SeriesInstanceUID"],
    "IMAGE": ["InstanceNumber", "SOPClassUID", "SOPInstanceUID"],
}  # fmt: skip


def _parse_keys(pairs: list[str]) -> dict[str, str]:
    keys = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not name.strip():
            raise typer.BadParameter(f"-k {pair!r}: expected Tag=value or Tag")
        keys[name.strip()] = value if sep else ""
    return keys


@app.command("query")
def query_command(
    ctx: typer.Context,
    destination: Annotated[str, typer.Argument(help="destination name from the config, or AET@host:port")],
    level: Annotated[str, typer.Option("--level", "-l", help="PATIENT, STUDY, SERIES or IMAGE")] = "STUDY",
    key: Annotated[list[str] | None, typer.Option("--key", "-k", help="Tag=value to match, Tag to return")] = None,
    model: Annotated[str, typer.Option(help="study, patient or patient_study_only root")] = "study",
    as_json: Annotated[bool, typer.Option("--json", help="DICOM JSON model output")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """C-FIND a PACS (or another node) and list the matches."""
    from dicom_node.qr.scu import query, resolve_destination

    settings = settings_for(ctx, config, data_dir)
    level = level.upper()
    if level not in DEFAULT_KEYS:
        raise typer.BadParameter(f"--level must be one of {', '.join(DEFAULT_KEYS)}")
    keys = {k: "" for k in DEFAULT_KEYS[level]} | _parse_keys(key or [])
    try:
        dest = resolve_destination(settings, destination)
        matches = query(dest, level, keys, model, calling_ae=settings.ae_title)
    except (NodeError, ValueError) as exc:
        fail(f"query failed: {exc}")
    if as_json:
        typer.echo(json.dumps([ds.to_json_dict() for ds in matches], indent=1))
        return
    table = Table(title=f"{len(matches)} {level.lower()} matches at {dest.ae_title}")
    for name in keys:
        table.add_column(name)
    for ds in matches:
        table.add_row(*(cell_text(ds.get(name, "")) for name in keys))
    show(table)


def cell_text(value: object) -> str:
    """A value as DICOM writes it: values of a multi-valued element joined by a backslash; any
    other value (a person name too: ``DOE^JOHN``) as its own string."""
    if isinstance(value, MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


@app.command("retrieve")
def retrieve_command(
    ctx: typer.Context,
    destination: Annotated[str, typer.Argument(help="destination name from the config, or AET@host:port")],
    study: Annotated[str, typer.Option("--study", help="Study Instance UID")],
    series: Annotated[str | None, typer.Option("--series", help="only this Series Instance UID")] = None,
    move: Annotated[bool, typer.Option("--move/--get", help="C-MOVE to our AE title (default) or C-GET")] = True,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Retrieve a study into the node, by C-MOVE or C-GET.

    C-MOVE: the node must be serving, and known to the PACS under our AE title. C-GET: this
    command stores and indexes what comes back."""
    from dicom_node.qr.scu import RetrieveProgress, resolve_destination, retrieve
    from dicom_node.qr.sink import IndexSink
    from dicom_node.store.filestore import FileStore

    settings = settings_for(ctx, config, data_dir)
    # C-GET stores what comes back in this node's store and index (created if need be).
    sink = IndexSink(FileStore(settings.store_dir), open_index(settings, create=True)) if not move else None
    method: Literal["move", "get"] = "move" if move else "get"
    with progress_bar() as bar:
        task = bar.add_task(f"C-{method.upper()} from {destination}", total=None)

        def on_progress(p: RetrieveProgress) -> None:
            done = p.completed + p.failed + p.warning
            bar.update(task, completed=done, total=done + p.remaining)

        try:
            dest = resolve_destination(settings, destination)
            result = retrieve(
                dest, study, method, sink, calling_ae=settings.ae_title, series_uid=series, progress=on_progress
            )
        except (NodeError, ValueError) as exc:
            fail(f"retrieve failed: {exc}")
    console.print(
        f"status 0x{result.status:04X}: {result.completed} completed, {result.failed} failed, {result.warning} warning",
        highlight=False,
    )
    for uid in result.failed_uids[:20]:
        console.print(f"  [red]failed[/red] {uid}")
    raise typer.Exit(0 if result.ok else 1)
