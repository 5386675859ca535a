"""Logging set-up for every entry point: one format, pynetdicom's per-PDU chatter muted."""

from __future__ import annotations

import logging

from pynetdicom import _config

__all__ = ["setup_logging"]


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(processName)s %(name)s: %(message)s",
    )
    # pynetdicom logs every PDU at INFO and request identifiers (patient data) on C-FIND/MOVE/GET:
    # keep its warnings and errors only, and don't even format the per-message summaries.
    logging.getLogger("pynetdicom").setLevel(max(logging.WARNING, logging.getLogger().level))
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
