"""``dicom-node token create|list|revoke``: the bearer tokens of the web face
(:mod:`dicom_node.web.auth`). A token is printed once, when created; the index keeps its hash."""

from __future__ import annotations

from typing import Annotated

import typer

from dicom_node.cli.console import console, fail, notes, show, table, timestamp
from dicom_node.cli.options import ConfigOpt, DataDirOpt, open_index, settings_for
from dicom_node.web.auth import TokenError, create_token, list_tokens, revoke_token

__all__ = ["app"]

app = typer.Typer()
token_app = typer.Typer(help="Bearer tokens of the web face: create, list, revoke.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="who or what holds the token (shown in the audit log)")],
    role: Annotated[str, typer.Option(help="viewer (read), operator (+ store), admin (+ configure)")] = "viewer",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Create a token and print it; it is shown this once and cannot be read back."""
    index = open_index(settings_for(ctx, config, data_dir), create=True)
    try:
        token = create_token(index, name, role)
    except TokenError as exc:
        fail(str(exc), code=2)
    finally:
        index.close()
    notes.print(f"token {name!r} ({role}); store it now, it is not shown again:")
    console.print(token, markup=False, highlight=False)


@token_app.command("list")
def list_(ctx: typer.Context, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Tokens by name, with role, creation and revocation (never the token)."""
    index = open_index(settings_for(ctx, config, data_dir))
    rows = list_tokens(index)
    index.close()
    out = table("name", "role", "created", "revoked")
    for row in rows:
        out.add_row(row.name, row.role, timestamp(row.created_at), timestamp(row.revoked_at) if row.revoked_at else "")
    show(out)


@token_app.command("revoke")
def revoke(ctx: typer.Context, name: str, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    index = open_index(settings_for(ctx, config, data_dir))
    try:
        revoke_token(index, name)
    except TokenError as exc:
        fail(str(exc), code=2)
    finally:
        index.close()
    notes.print(f"token {name!r} revoked")
