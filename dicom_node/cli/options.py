"""What every command shares: the options that say which node, and how a command finds the
node's settings from them.

``--config`` and ``--data-dir`` mean the same before or after a sub-command
(``dicom-node --config n.yaml jobs retry 1`` = ``dicom-node jobs retry 1 --config n.yaml``); a
value given at two places must agree. Settings come from, first found:

1. ``--config``: the file, under ``DICOM_NODE_*`` environment and the command's flags;
2. the settings ``serve`` recorded in the data folder — ``--data-dir``, else
   ``DICOM_NODE_DATA_DIR``, else ``./var`` (where ``make run`` keeps it) — with the flags on top;
3. the defaults (and environment).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.engine import make_url

from dicom_node.cli.console import fail
from dicom_node.config import RECORD_NAME, Settings, load_settings, recorded_settings
from dicom_node.errors import ConfigError
from dicom_node.logs import setup_logging
from dicom_node.store.index import Index

__all__ = ["ConfigOpt", "DataDirOpt", "JsonOpt", "WideOpt", "given", "node_settings", "open_index", "settings_for"]

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", exists=True, dir_okay=False, show_default=False,
        help="YAML config file (default: the settings serve recorded in the data folder)",
    ),
]  # fmt: skip
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", file_okay=False, show_default=False,
        help="the node's data folder: store, index, broker, recorded settings (default: ./var)",
    ),
]  # fmt: skip
JsonOpt = Annotated[bool, typer.Option("--json", help="everything, as JSON")]
WideOpt = Annotated[bool, typer.Option("--wide", "-w", help="every column, nothing shortened")]


@dataclass
class NodeRef:
    """Where the node's settings are, as given on the command line so far (root, group, command)."""

    config: Path | None = None
    data_dir: Path | None = None
    source: str = ""  # where the settings came from, once loaded


def given(ctx: typer.Context, config: Path | None, data_dir: Path | None) -> NodeRef:
    """Add the options given at this level to those given before the sub-command; a value
    given twice must be the same."""
    ref = ctx.ensure_object(NodeRef)
    for option, name, value in (("--config", "config", config), ("--data-dir", "data_dir", data_dir)):
        held = getattr(ref, name)
        if value is None or held == value:
            continue
        if held is not None:
            raise typer.BadParameter(f"given twice, as {held} and {value}", param_hint=option)
        setattr(ref, name, value)
    return ref


def node_settings(
    config: Path | None, data_dir: Path | None, recorded_only: bool = False, **flags: Any
) -> tuple[Settings, str]:
    """The settings a command runs with, found as the module docstring says, and where they
    came from. ``recorded_only``: the node's own processes, which run with what serve recorded
    or not at all.

    Raises ConfigError.
    """
    if config is not None:
        return load_settings(config, data_dir=data_dir, **flags), f"config {config}"
    home = load_settings(None, data_dir=data_dir).data_dir
    recorded = recorded_settings(home, **flags)
    if recorded is not None:
        return recorded, f"recorded by serve in {home / RECORD_NAME}"
    if recorded_only:
        raise ConfigError(f"no settings recorded in {home}: serve records them there before it starts its processes")
    return load_settings(None, data_dir=data_dir, **flags), f"defaults: no --config, and no settings recorded in {home}"


def settings_for(
    ctx: typer.Context,
    config: Path | None = None,
    data_dir: Path | None = None,
    *,
    process: str = "dicom-node",
    recorded_only: bool = False,
    **flags: Any,
) -> Settings:
    """Settings for the command of ``ctx`` (its options and those given before it), with
    logging set up for ``process``; a configuration error ends the command with status 2."""
    ref = given(ctx, config, data_dir)
    try:
        settings, ref.source = node_settings(ref.config, ref.data_dir, recorded_only, **flags)
    except ConfigError as exc:
        fail(f"configuration error: {exc}", code=2)
    setup_logging(settings.log_level, process)
    return settings


def open_index(settings: Settings, create: bool = False) -> Index:
    """The node's index. Unless ``create``, a SQLite index must exist already: a command that
    only reads says that no node is here instead of leaving an empty index behind."""
    url = settings.database_url or ""
    parsed = make_url(url)
    sqlite_file = Path(parsed.database) if parsed.get_backend_name() == "sqlite" and parsed.database else None
    if not create and sqlite_file is not None and not sqlite_file.exists():
        fail(
            f"no node here: {sqlite_file} does not exist. Run the command in the folder serve was "
            "started in, or give --data-dir or --config",
        )  # fmt: skip
    return Index(url)
