"""``dicom-node query`` and ``dicom-node retrieve``: the Q/R SCU from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

__all__ = ["register"]

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file", exists=True)]

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


def register(app: typer.Typer) -> None:
    """Add ``query`` and ``retrieve`` to the node's CLI."""
    app.command("query")(query_command)
    app.command("retrieve")(retrieve_command)


def query_command(
    destination: Annotated[str, typer.Argument(help="destination name from the config, or AET@host:port")],
    level: Annotated[str, typer.Option("--level", "-l", help="PATIENT, STUDY, SERIES or IMAGE")] = "STUDY",
    key: Annotated[Optional[list[str]], typer.Option("--key", "-k", help="Tag=value to match, Tag to return")] = None,
    model: Annotated[str, typer.Option(help="study, patient or patient_study_only root")] = "study",
    as_json: Annotated[bool, typer.Option("--json", help="DICOM JSON model output")] = False,
    config: ConfigOpt = None,
) -> None:
    """C-FIND a PACS (or another node) and list the matches."""
    from dicom_node.cli import console, settings_from
    from dicom_node.errors import NodeError
    from dicom_node.qr.scu import query, resolve_destination

    settings = settings_from(config)
    level = level.upper()
    if level not in DEFAULT_KEYS:
        raise typer.BadParameter(f"--level must be one of {', '.join(DEFAULT_KEYS)}")
    keys = {k: "" for k in DEFAULT_KEYS[level]} | _parse_keys(key or [])
    try:
        dest = resolve_destination(settings, destination)
        matches = query(dest, level, keys, model, calling_ae=settings.ae_title)
    except (NodeError, ValueError) as exc:
        console.print(f"[red]query failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps([ds.to_json_dict() for ds in matches], indent=1))
        return
    table = Table(title=f"{len(matches)} {level.lower()} matches at {dest.ae_title}")
    for name in keys:
        table.add_column(name)
    for ds in matches:
        table.add_row(*(_text(ds.get(name, "")) for name in keys))
    console.print(table)


def _text(value: object) -> str:
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and not isinstance(value, (str, bytes))):
        return "\\".join(str(v) for v in value)  # type: ignore[union-attr]
    return str(value)


def retrieve_command(
    destination: Annotated[str, typer.Argument(help="destination name from the config, or AET@host:port")],
    study: Annotated[str, typer.Option("--study", help="Study Instance UID")],
    series: Annotated[Optional[str], typer.Option("--series", help="only this Series Instance UID")] = None,
    move: Annotated[bool, typer.Option("--move/--get", help="C-MOVE to our AE title (default) or C-GET")] = True,
    config: ConfigOpt = None,
) -> None:
    """Retrieve a study into the node: by C-MOVE (the node must be serving and known to the
    PACS under our AE title) or by C-GET (stored and indexed by this command)."""
    from dicom_node.cli import console, progress_bar, settings_from
    from dicom_node.errors import NodeError
    from dicom_node.qr.scu import RetrieveProgress, resolve_destination, retrieve
    from dicom_node.qr.sink import IndexSink
    from dicom_node.store.filestore import FileStore
    from dicom_node.store.index import Index

    settings = settings_from(config)
    sink = IndexSink(FileStore(settings.store_dir), Index(settings.database_url or "")) if not move else None
    method = "move" if move else "get"
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
            console.print(f"[red]retrieve failed:[/red] {exc}")
            raise typer.Exit(1) from exc
    console.print(
        f"status 0x{result.status:04X}: {result.completed} completed, {result.failed} failed, {result.warning} warning"
    )
    for uid in result.failed_uids[:20]:
        console.print(f"  [red]failed[/red] {uid}")
    raise typer.Exit(0 if result.ok else 1)
