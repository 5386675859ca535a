"""Reconciliation of one replica's store with an index that replicas share: the rows of files
another replica holds (in a store this host may not see) are left alone."""

from __future__ import annotations

from sqlalchemy import func, select

from dicom_node.store.filestore import FileStore
from dicom_node.store.index import Index
from dicom_node.store.local import store_dataset
from dicom_node.store.models import Instance
from dicom_node.store.reconcile import reconcile
from dicom_node.synthetic import StudySpec, ct_series


def test_reconcile_keeps_the_rows_of_another_replicas_store(tmp_path):
    index = Index(f"sqlite:///{tmp_path / 'shared.sqlite'}")
    try:
        here, elsewhere = FileStore(tmp_path / "a" / "store"), FileStore(tmp_path / "b" / "store")
        for ds in ct_series(StudySpec(), shape=(2, 8, 8), lesion_radius=None):
            store_dataset(here, index, ds, made_by_node=False)
        for ds in ct_series(StudySpec(), shape=(3, 8, 8), lesion_radius=None):
            store_dataset(elsewhere, index, ds, made_by_node=False)
        (tmp_path / "b").rename(tmp_path / "b-on-another-host")  # this host no longer sees them

        report = reconcile(here, index)

        assert report.rows_removed == 0
        with index.sessions() as session:
            assert session.scalar(select(func.count(Instance.id))) == 5
    finally:
        index.close()
