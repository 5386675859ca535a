"""``dicom-node``: one entry point, thin commands over the package's functions.

One module per group of commands — ``serve`` (serve, worker, and the hidden receive),
``peers`` (echo, send), ``studies`` (studies, complete), ``jobs`` (jobs…, pipelines),
``config`` (config show, rules test), ``qr`` (query, retrieve), ``tokens`` (token…) — over the shared options
(:mod:`.options`) and console (:mod:`.console`).
"""

from __future__ import annotations

import typer

from dicom_node.cli import config, jobs, peers, qr, serve, studies, tokens
from dicom_node.cli.options import ConfigOpt, DataDirOpt, given

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, rich_markup_mode="markdown")


@app.callback()
def main(ctx: typer.Context, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """DICOM/PACS-integrated AI imaging node.

    Commands run with the settings serve recorded in its data folder (./var, or --data-dir),
    unless --config names a file; either option may come before or after the command."""
    given(ctx, config, data_dir)


for commands in (serve.app, peers.app, studies.app, jobs.app, config.app, qr.app, tokens.app):
    app.add_typer(commands)
