"""``dicom-node config show`` and ``rules test``: what the node is configured to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dicom_node.cli.console import console, notes
from dicom_node.cli.options import (
    ConfigOpt,
    DataDirOpt,
    given,
    open_index,
    settings_for,
)

__all__ = ["app"]

app = typer.Typer()
config_app = typer.Typer(help="Inspect the configuration.")
rules_app = typer.Typer(help="Routing rules.")
app.add_typer(config_app, name="config")
app.add_typer(rules_app, name="rules")


@config_app.callback()
def config_group(ctx: typer.Context, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Inspect the configuration."""
    given(ctx, config, data_dir)


@rules_app.callback()
def rules_group(ctx: typer.Context, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Routing rules."""
    given(ctx, config, data_dir)


@config_app.command("show")
def config_show(ctx: typer.Context, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Print the effective settings: those serve recorded, or file + environment + defaults."""
    settings = settings_for(ctx, config, data_dir)
    print(json.dumps(settings.model_dump(mode="json", by_alias=True), indent=2))
    notes.print(f"settings: {given(ctx, None, None).source}", markup=False, highlight=False)


@rules_app.command("test")
def rules_test(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="a DICOM file/folder or a study UID in the index")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    calling_ae: Annotated[str, typer.Option(help="calling AE to assume for files")] = "",
) -> None:
    """Show which rules match each series and what would run — without running it."""
    from dicom_node.routing.dry_run import explain

    settings = settings_for(ctx, config, data_dir)
    if not Path(target).exists():
        open_index(settings)  # a study UID: the index must be there (explain would create one)
    if not settings.rules:
        notes.print(f"no rules in these settings ({given(ctx, None, None).source})", markup=False, highlight=False)
    for line in explain(settings, target, calling_ae):
        console.print(line, markup=False, highlight=False)
