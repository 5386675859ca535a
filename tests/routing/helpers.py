"""What the router tests share: a node's settings, index and store without a server, studies
stored as if received, a router whose pipeline lookups need no registry, and a study's timeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import select

from dicom_node.config import Settings, load_settings
from dicom_node.routing.router import Router
from dicom_node.store.filestore import FileStore
from dicom_node.store.header import InstanceRecord
from dicom_node.store.index import Index
from dicom_node.store.local import store_dataset
from dicom_node.store.models import Job, JobEvent

__all__ = ["Routing", "routing"]

QUEUES = {"ct_seg": "gpu", "mr_seg": "gpu"}  # what the registry would say, without importing the pipelines


@dataclass
class Routing:
    settings: Settings
    index: Index
    store: FileStore
    version: str = "1.0.0"

    def keep(self, datasets: list[Dataset], made_by_node: bool = False) -> list[InstanceRecord]:
        """Store ``datasets`` as the receive side would (as received, unless ``made_by_node``)."""
        return [store_dataset(self.store, self.index, ds, made_by_node=made_by_node) for ds in datasets]

    def router(self) -> Router:
        return Router(self.settings, self.index, queue_of=QUEUES.__getitem__, version_of=lambda name: self.version)

    def route(self, *study_uids: str) -> int:
        """Complete ``study_uids`` now (``dicom-node complete``) and run one router round."""
        for uid in study_uids:
            assert self.index.force_complete(uid)
        return self.router().route_pending()

    def pipeline_jobs(self, study_uid: str) -> list[Job]:
        with self.index.sessions() as session:
            return list(session.scalars(select(Job).where(Job.study_uid == study_uid, Job.kind == "pipeline").order_by(Job.id)))

    def timeline(self, study_uid: str) -> list[tuple[str, str]]:
        with self.index.sessions() as session:
            rows = session.scalars(select(JobEvent).where(JobEvent.study_uid == study_uid).order_by(JobEvent.id))
            return [(e.event, e.detail) for e in rows]


def routing(tmp_path: Path, rules: list[dict[str, Any]], database_url: str | None = None) -> Routing:
    """A node's routing in ``tmp_path`` (its SQLite index unless ``database_url`` says otherwise)."""
    settings = load_settings(
        data_dir=tmp_path / "node", port=0, host="127.0.0.1", min_free_disk_mb=0, rules=rules, database_url=database_url
    )
    return Routing(settings, Index(settings.database_url or ""), FileStore(settings.store_dir))
