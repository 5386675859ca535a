"""Query/Retrieve: the SCP over the index (C-FIND, C-MOVE, C-GET) and the SCU that queries a
PACS and fetches priors.

    model.py     information models, levels, statuses, QRError
    keys.py      the keys the index matches/returns, and the computed ones
    matching.py  PS3.4 C.2.2.2 matching → SQL conditions
    query.py     identifiers → checked plans → batched SQL reads
    subops.py    C-STORE sub-operations: contexts, files as stored or converted losslessly
    rawsend.py   sub-operations written straight to the socket; pending-response throttle
    rawrecv.py   C-MOVE sub-operation responses read on the sending thread
    net.py       TCP_NODELAY for pynetdicom's sockets
    scp.py       pynetdicom handlers bound by the receive SCP
    scu.py       query / retrieve against a peer
    sink.py      C-GET retrievals stored and indexed like received instances
    priors.py    the fetch_priors routing action
"""

from dicom_node.qr.priors import fetch_priors
from dicom_node.qr.scp import qr_contexts, qr_handlers
from dicom_node.qr.scu import QueryRefused, RetrieveProgress, RetrieveResult, query, resolve_destination, retrieve
from dicom_node.qr.sink import IndexSink

__all__ = [
    "qr_contexts",
    "qr_handlers",
    "query",
    "retrieve",
    "resolve_destination",
    "fetch_priors",
    "IndexSink",
    "QueryRefused",
    "RetrieveProgress",
    "RetrieveResult",
]
