"""Start-up reconciliation of the index with the file store.

The files are the truth: an acknowledged instance is always a file. After a crash the index
may lack rows for files written in the last batch window, and may hold rows whose file was
removed by hand; partial uploads may be left in ``incoming``. This brings the three in line,
for this store's files: an index shared by replicas also lists the other replicas' files.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

from dicom_node.store.filestore import FileStore
from dicom_node.store.header import HeaderError, read_header
from dicom_node.store.index import Index

__all__ = ["ReconcileReport", "reconcile"]

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    partial_removed: int = 0
    indexed: int = 0
    rows_removed: int = 0
    unreadable: list[str] = field(default_factory=list)


def reconcile(store: FileStore, index: Index, batch: int = 500) -> ReconcileReport:
    """Index unindexed files, drop rows without files, clear partial uploads."""
    report = ReconcileReport(partial_removed=store.clear_incoming())
    # only this store's rows: replicas sharing the index keep their files in stores of their
    # own, which this host may not see, and their rows are not this one's to drop
    known = {path: uid for path, uid in index.indexed_paths().items() if Path(path).is_relative_to(store.root)}
    pending = []
    for path in store.iter_files():
        if known.pop(str(path), None) is not None:
            continue
        try:
            record = read_header(path)
        except HeaderError as exc:  # never happens for files we validated; keep them, say so
            report.unreadable.append(str(path))
            log.error("stored file %s is unreadable (%s); left in place", path, exc.reason)
            continue
        record.received_at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None)
        pending.append(record)
        if len(pending) >= batch:
            index.add_instances(pending)
            report.indexed += len(pending)
            pending.clear()
    if pending:
        index.add_instances(pending)
        report.indexed += len(pending)
    if known:  # rows whose file is gone
        missing = [uid for p, uid in known.items() if not Path(p).exists()]
        report.rows_removed = index.remove_instances(missing)
        for uid in missing:
            log.warning("index row without file removed", extra={"sop_instance_uid": uid})
    if report.indexed or report.rows_removed or report.partial_removed:
        log.info(
            "reconciled: %d files indexed, %d rows without file removed, %d partial uploads cleared",
            report.indexed,
            report.rows_removed,
            report.partial_removed,
        )
    return report
