"""Where a C-GET retrieval lands: the node's own store and index, exactly as if the instances
had been received by the SCP, so priors are found, routed and retrieved like anything else."""

from __future__ import annotations

import logging
from pathlib import Path

from pynetdicom import _config
from pynetdicom.events import Event

from dicom_node.store.filestore import FileStore
from dicom_node.store.header import HeaderError
from dicom_node.store.index import Index
from dicom_node.store.local import store_bytes

__all__ = ["IndexSink"]

log = logging.getLogger(__name__)


class IndexSink:
    """EVT_C_STORE handler for our side of a C-GET: the bytes as sent (no re-encoding) go to
    ``incoming``, are checked like the receive path checks them, committed durably, indexed;
    only then is the sub-operation acknowledged."""

    def __init__(self, store: FileStore, index: Index) -> None:
        self.store = store
        self.index = index
        self.stored: list[str] = []

    def __call__(self, event: Event) -> int:
        calling = event.assoc.acceptor.ae_title.strip()
        try:
            record = store_bytes(self.store, self.index, self._bytes(event), calling_ae=calling)
        except HeaderError as exc:
            log.warning("retrieved instance refused (0x%04X): %s", exc.status, exc.reason)
            return exc.status
        except OSError as exc:
            log.error("retrieved instance not stored (0xA700): %s", exc)
            return 0xA700
        self.stored.append(record.sop_instance_uid)
        return 0x0000

    @staticmethod
    def _bytes(event: Event) -> bytes:
        if _config.STORE_RECV_CHUNKED_DATASET:  # set process-wide by the receive SCP
            return Path(event.dataset_path).read_bytes()
        return event.encoded_dataset(include_meta=True)
