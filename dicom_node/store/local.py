"""Storing instances that did not come through the SCP (pipeline results, C-GET retrievals)
exactly as received ones are stored: validated, durable, then indexed at once."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

from pydicom import dcmwrite
from pydicom.dataset import Dataset

from dicom_node.store.filestore import FileStore
from dicom_node.store.header import InstanceRecord, read_header
from dicom_node.store.index import Index

__all__ = ["store_bytes", "store_dataset"]


def store_bytes(store: FileStore, index: Index, data: bytes, calling_ae: str = "", made_by_node: bool = False) -> InstanceRecord:
    """Commit a Part 10 file's bytes to the store and index it; raises HeaderError if invalid."""
    fd, name = tempfile.mkstemp(suffix=".part", dir=store.incoming)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        record = read_header(temp)
        final = store.commit(temp, record.study_uid, record.series_uid, record.sop_instance_uid)
    finally:
        temp.unlink(missing_ok=True)
    record.path, record.calling_ae, record.made_by_node = str(final), calling_ae, made_by_node
    index.add_instances([record])
    return record


def store_dataset(store: FileStore, index: Index, ds: Dataset, made_by_node: bool = True) -> InstanceRecord:
    """Encode ``ds`` as a Part 10 file (its file meta completed if needed) and store it."""
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return store_bytes(store, index, buffer.getvalue(), made_by_node=made_by_node)
