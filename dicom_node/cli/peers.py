"""``dicom-node echo`` and ``send``: talk to a DICOM peer as the node's AE title."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from dicom_node.cli.console import console, fail, progress_bar
from dicom_node.cli.options import ConfigOpt, DataDirOpt, settings_for
from dicom_node.config import DicomDestination, Settings
from dicom_node.errors import NodeError

__all__ = ["app"]

app = typer.Typer()


@app.command()
def echo(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="HOST, AE@HOST:PORT or a destination name")],
    port: Annotated[int | None, typer.Argument()] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    called_ae: Annotated[str, typer.Option("--aec", help="called AE title when given HOST PORT")] = "ANY-SCP",
) -> None:
    """C-ECHO a peer or a configured destination."""
    from dicom_node.send.dimse import echo as c_echo

    settings = settings_for(ctx, config, data_dir)
    dest = _destination(settings, target, port, called_ae)
    try:
        status = c_echo(settings.ae_title, dest)
    except NodeError as exc:
        fail(f"C-ECHO failed: {exc}")
    console.print(f"C-ECHO {dest.ae_title}@{dest.host}:{dest.port}: status 0x{status:04X}", highlight=False)
    raise typer.Exit(0 if status == 0 else 1)


@app.command()
def send(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="files or folders (searched recursively)", exists=True)],
    to: Annotated[str, typer.Option("--to", help="AE@HOST:PORT or a destination name")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """C-STORE files to a peer over one association, with a progress bar."""
    from dicom_node.send.dimse import store_files

    settings = settings_for(ctx, config, data_dir)
    dest = _destination(settings, to, None, "ANY-SCP")
    files = sorted({f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file() and _is_dicom(f)})
    if not files:
        fail("no DICOM files found")
    with progress_bar() as bar:
        task = bar.add_task(f"C-STORE → {dest.ae_title}", total=len(files))
        try:
            report = store_files(settings.ae_title, dest, files, lambda n: bar.advance(task, n))
        except NodeError as exc:
            fail(f"send failed: {exc}")
    console.print(f"sent {len(report.sent)}, failed {len(report.failed)}", highlight=False)
    for path, why in list(report.failed.items())[:20]:
        console.print(Text.assemble((f"  {path}", "red"), f": {why}"))
    raise typer.Exit(0 if report.ok else 1)


def _destination(settings: Settings, target: str, port: int | None, called_ae: str) -> DicomDestination:
    if target in settings.destinations:
        dest = settings.destinations[target]
        if not isinstance(dest, DicomDestination):
            fail(f"{target} is a DICOMweb destination; this needs a DICOM one", code=2)
        return dest
    if "@" in target:
        ae, _, hostport = target.partition("@")
        host, _, p = hostport.rpartition(":")
        if not p.isdigit():
            fail(f"{target!r}: expected AE@HOST:PORT", code=2)
        return DicomDestination(ae_title=ae, host=host, port=int(p))
    if port is None:
        fail(f"{target!r} is not a destination name; give HOST PORT or AE@HOST:PORT", code=2)
    return DicomDestination(ae_title=called_ae, host=target, port=port)


def _is_dicom(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(128)
        return fh.read(4) == b"DICM"
