"""Forwarding with a destination that refuses some instances: the job retries only those."""

from __future__ import annotations

from pathlib import Path

from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage
from sqlalchemy import select

from dicom_node.config import load_settings
from dicom_node.queue.outbox import NewJob, add_jobs
from dicom_node.queue.tasks import execute_job
from dicom_node.store.filestore import FileStore
from dicom_node.store.index import Index
from dicom_node.store.local import store_dataset
from dicom_node.store.models import Job
from dicom_node.synthetic import ct_series


class PickyPacs:
    """A pynetdicom storage SCP that answers 0xA700 for odd instance numbers while ``picky``."""

    def __init__(self) -> None:
        self.picky = True
        self.accepted: list[int] = []
        ae = AE(ae_title="PICKY")
        ae.add_supported_context(CTImageStorage)
        self.server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self.on_store)])
        self.port = self.server.server_address[1]

    def on_store(self, event) -> int:
        number = int(event.dataset.InstanceNumber)
        if self.picky and number % 2:
            return 0xA700
        self.accepted.append(number)
        return 0x0000


def test_partial_failure_retries_only_the_refused_instances(tmp_path: Path):
    pacs = PickyPacs()
    try:
        settings = load_settings(
            data_dir=tmp_path / "node", destinations={"picky": {"ae_title": "PICKY", "host": "127.0.0.1", "port": pacs.port}}
        )
        index = Index(settings.database_url)
        store = FileStore(settings.store_dir)
        source = ct_series(shape=(6, 16, 16), lesion_radius=None)
        for ds in source:
            store_dataset(store, index, ds, made_by_node=False)
        with index.sessions.begin() as session:
            [job] = add_jobs(session, [NewJob(kind="forward", queue="send", study_uid=source[0].StudyInstanceUID, destination="picky")], 5)
            job_id = job.id

        assert execute_job(settings, index, job_id) == "retry"
        with index.sessions() as session:
            job = session.scalar(select(Job).where(Job.id == job_id))
        assert "3 of 6 instances refused by picky (status 0xA700)" in job.error
        assert len(job.params["remaining"]) == 3
        assert sorted(pacs.accepted) == [2, 4, 6]

        pacs.picky = False
        assert execute_job(settings, index, job_id) == "succeeded"
        assert sorted(pacs.accepted) == [1, 2, 3, 4, 5, 6], "the second attempt sent only the refused three"
    finally:
        pacs.server.shutdown()
