"""The node's DICOM server: one pynetdicom AE with storage (and Q/R) contexts, admission of
connections (:mod:`dicom_node.receive.admission`: a deadline for the association request, a
limit per peer), access control, the C-STORE fast path on established associations, the
durable store and the batched index writer, reconciled with each other on start. It listens
itself, or serves the connections a :class:`~dicom_node.receive.dispatch.Dispatcher` hands it
(one of several receivers)."""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from dicom_node.audit import AuditTrail
from dicom_node.config import Settings
from dicom_node.net import NO_DELAY_HANDLER
from dicom_node.receive.access import guard_handlers
from dicom_node.receive.admission import Admission, AdmittingServer
from dicom_node.receive.auditing import TransferAudit
from dicom_node.receive.contexts import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES
from dicom_node.receive.dispatch import READY, HandedServer
from dicom_node.receive.fastpath import FastPath
from dicom_node.receive.tlsserver import TlsAdmittingServer
from dicom_node.receive.handlers import AccessControl, StoreHandler, handle_echo
from dicom_node.store.filestore import FileStore
from dicom_node.store.index import Index
from dicom_node.store.reconcile import reconcile
from dicom_node.store.writer import IndexWriter

__all__ = ["NodeServer"]

log = logging.getLogger(__name__)

Handler = tuple[Any, Callable[..., Any]]


class NodeServer:
    """Receive (C-ECHO, C-STORE) and, with ``qr=True``, answer Q/R, until :meth:`stop`."""

    def __init__(self, settings: Settings, index: Index | None = None, qr: bool = True) -> None:
        self.settings = settings
        self.index = index or Index(settings.database_url or "")
        self.store = FileStore(settings.store_dir)
        self.writer = IndexWriter(self.index)
        self.qr = qr
        self._server: ThreadedAssociationServer | None = None
        self._tls_server: ThreadedAssociationServer | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with ``port: 0``)."""
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    def start(self, reconcile_first: bool = True, lane: socket.socket | None = None, port: int | None = None) -> None:
        """Listen, or with ``lane`` serve what a dispatcher on ``port`` hands over there;
        ``reconcile_first`` once per node (not in extra receiver processes)."""
        if reconcile_first:
            report = reconcile(self.store, self.index)
            if report.unreadable:
                log.error("%d stored files are unreadable; see above", len(report.unreadable))
        # Where the fast path does not serve (see dicom_node.receive.fastpath), pynetdicom
        # streams received datasets to NamedTemporaryFile in the default temp folder: point it
        # at our incoming folder (same filesystem as the store) so a received file is committed
        # by a rename, never copied.
        _config.STORE_RECV_CHUNKED_DATASET = True
        tempfile.tempdir = str(self.store.incoming)
        ae = self._build_ae()
        address = (self.settings.host, self.settings.port if port is None else port)
        handlers = list(self._handlers())
        admission = Admission(self.settings.association_timeout_s, self.settings.max_associations_per_peer)
        tls = self.settings.tls
        if lane is None and tls is not None and tls.only:
            server: dict[str, Any] = {"server_class": TlsAdmittingServer, "ssl_context": tls.context()}
        elif lane is None:
            server = {"server_class": AdmittingServer}
        else:
            server = {"server_class": HandedServer, "lane": lane}
        self._server = ae.make_server(address, evt_handlers=handlers, admission=admission, **server)
        ae._servers.append(self._server)  # as AE.start_server does; shutdown() expects it there
        if tls is not None and not tls.only and reconcile_first:  # one TLS listener per node
            tls_admission = Admission(self.settings.association_timeout_s, self.settings.max_associations_per_peer)
            self._tls_server = ae.make_server(
                (self.settings.host, tls.port), evt_handlers=handlers, admission=tls_admission,
                server_class=TlsAdmittingServer, ssl_context=tls.context(),
            )  # fmt: skip
            ae._servers.append(self._tls_server)
            threading.Thread(target=self._tls_server.serve_forever, name="scp-tls", daemon=True).start()
            log.info("%s DICOM TLS on %s:%d", self.settings.ae_title, self.settings.host, self.tls_port)
        self.writer.start()  # once bound: a port in use leaves nothing running
        threading.Thread(target=self._server.serve_forever, name="scp", daemon=True).start()
        if isinstance(self._server, HandedServer):
            self._server.report(READY)
        if lane is None:
            log.info(
                "%s listening on %s:%d, store %s",
                self.settings.ae_title, self.settings.host, self.port, self.store.root,
            )  # fmt: skip
        else:  # the dispatcher listens (and says so)
            log.info("%s serving connections handed over from port %d", self.settings.ae_title, self.port)

    @property
    def tls_port(self) -> int:
        """The TLS listener's bound port (``tls.port: 0`` in tests)."""
        if self._tls_server is None:
            raise RuntimeError("no TLS listener: settings have no tls section, or tls.only serves the main port")
        return int(self._tls_server.server_address[1])

    @property
    def lane_closed(self) -> threading.Event | None:
        """Set once the dispatcher no longer hands this server connections; None when it listens itself."""
        return self._server.lane_closed if isinstance(self._server, HandedServer) else None

    def stop(self) -> None:
        if self._tls_server is not None:
            self._tls_server.shutdown()
            self._tls_server = None
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self.writer.stop()

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.settings.ae_title)
        ae.maximum_pdu_size = self.settings.max_pdu
        ae.network_timeout = self.settings.network_timeout_s
        ae.acse_timeout = self.settings.association_timeout_s  # the request is read already (admission)
        ae.dimse_timeout = self.settings.network_timeout_s
        ae.maximum_associations = 64
        ae.add_supported_context(Verification)
        for uid in STORAGE_SOP_CLASSES.values():
            # Role selection lets a C-GET requestor act as storage SCP on our sub-operations.
            ae.add_supported_context(uid, TRANSFER_SYNTAXES, scu_role=True, scp_role=True)
        if self.qr:
            from dicom_node.qr.scp import qr_contexts

            for uid in qr_contexts():
                ae.add_supported_context(uid)
        return ae

    def _handlers(self) -> Sequence[Handler]:
        trail = AuditTrail.for_node(self.settings)
        audit = TransferAudit(self.settings.ae_title, trail) if trail.enabled else None
        store = StoreHandler(self.settings, self.store, self.writer, set(STORAGE_SOP_CLASSES.values()), audit)
        handlers: list[Handler] = [
            NO_DELAY_HANDLER,
            *(audit.handlers() if audit is not None else []),
            (evt.EVT_REQUESTED, AccessControl(self.settings, audit).on_requested),
            (evt.EVT_REQUESTED, FastPath(store)),
            (evt.EVT_C_ECHO, handle_echo),
            (evt.EVT_C_STORE, store),
        ]
        if self.qr:
            from dicom_node.qr.scp import qr_handlers

            handlers.extend(qr_handlers(self.settings, self.index))
        return guard_handlers(self.settings, trail, handlers)  # per-peer permissions (receive/access.py)
