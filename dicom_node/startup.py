"""Checks that need more than the settings file: every pipeline a rule names must exist."""

from __future__ import annotations

from dicom_node.config import Settings
from dicom_node.errors import ConfigError

__all__ = ["check_references"]


def check_references(settings: Settings) -> None:
    """Raise ConfigError naming the rule and field of the first unknown pipeline."""
    needed = {r.pipeline for r in settings.rules if r.pipeline} | set(settings.pipelines)
    if not needed:
        return
    from pipelines.registry import names

    known = set(names())
    for rule in settings.rules:
        if rule.pipeline and rule.pipeline not in known:
            raise ConfigError(f"rule {rule.name!r} field 'pipeline': unknown pipeline {rule.pipeline!r}; known: {', '.join(sorted(known))}")
    for name in settings.pipelines:
        if name not in known:
            raise ConfigError(f"pipelines.{name}: unknown pipeline; known: {', '.join(sorted(known))}")
