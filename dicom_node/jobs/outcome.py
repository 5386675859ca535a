"""The result of one job, as stored on its row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Outcome"]


@dataclass
class Outcome:
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    urgent: bool = False

    def as_result(self) -> dict[str, Any]:
        return {"summary": self.summary, **self.data}
