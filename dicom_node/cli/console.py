"""The CLI's output: results on stdout, problems on stderr, tables that fit a terminal
without hiding anything from a pipe."""

from __future__ import annotations

import datetime as dt
from typing import NoReturn

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

__all__ = ["console", "fail", "notes", "progress_bar", "short", "show", "table", "timestamp"]

# Lines are not wrapped by rich: a terminal wraps them itself, a pipe gets them whole.
console = Console(soft_wrap=True)  # results
notes = Console(stderr=True, soft_wrap=True)  # what is not the result: problems, where the settings came from


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` (as it is: no markup) on stderr and end the command with ``code``."""
    notes.print(Text(message, style="red"))
    raise typer.Exit(code)


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console)


def short(wide: bool) -> bool:
    """Whether columns are shortened: only on a terminal, and not with --wide. Piped output
    keeps every character (a UID cut short is no UID)."""
    return console.is_terminal and not wide


def table(*headers: str, title: str | None = None) -> Table:
    """A table in the CLI's style: a rule under the header and no vertical lines, which leaves
    more of 80 columns to the values."""
    return Table(*headers, title=title, box=box.SIMPLE_HEAD)


def show(table: Table) -> None:
    """Print ``table``: on a terminal, fitted to its width; elsewhere, as wide as its content
    (rich would fit it to 80 columns)."""
    if console.is_terminal:
        console.print(table)
        return
    natural = console.measure(table, options=console.options.update_width(1_000_000)).maximum
    Console(width=natural).print(table)


def timestamp(at: dt.datetime | None, cut: bool = False) -> str:
    """A UTC time from the index in local time (as the log lines are), to the second; without
    the year when ``cut``."""
    if at is None:
        return ""
    return at.replace(tzinfo=dt.UTC).astimezone().strftime("%m-%d %H:%M:%S" if cut else "%Y-%m-%d %H:%M:%S")
