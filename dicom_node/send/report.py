"""The outcome of sending a set of files, per instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SendReport"]


@dataclass
class SendReport:
    sent: list[Path] = field(default_factory=list)
    warnings: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)  # path → why

    @property
    def ok(self) -> bool:
        return not self.failed
