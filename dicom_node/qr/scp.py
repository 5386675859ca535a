"""Q/R SCP event handlers (PS3.4 Annex C): C-FIND, C-MOVE and C-GET over the index, for the
Patient Root, Study Root and Patient/Study Only models. The receive SCP binds them.

Handlers never raise to the peer: a refused identifier becomes 0xA900/0xC000 with an Error
Comment, an unknown move destination 0xA801, an unreachable index 0xA700. C-CANCEL is
checked before every pending response and every sub-operation. A C-MOVE/C-GET refused before
any sub-operation reports none (:class:`_RefusedUpFront`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_GET, C_MOVE
from pynetdicom.events import Event, InterventionEvent, NotificationEvent
from sqlalchemy.exc import SQLAlchemyError

from dicom_node.config import DicomDestination, Settings
from dicom_node.qr.model import MODELS, QRError, QRStatus, model_for
from dicom_node.net import NO_DELAY_HANDLER, let_peer_in, printable
from dicom_node.qr.rawsend import PendingThrottle
from dicom_node.qr.query import RetrievePlan, plan_find, plan_retrieve
from dicom_node.qr.subops import PeerContexts, prepare, proposed_contexts
from dicom_node.store.index import Index

__all__ = ["qr_contexts", "qr_handlers", "QRHandlers"]

log = logging.getLogger(__name__)


def qr_contexts() -> list[str]:
    """The FIND/MOVE/GET SOP classes of every model we serve."""
    return [uid for m in MODELS.values() for uid in (m.find, m.move, m.get)]


def qr_handlers(
    settings: Settings, index: Index
) -> list[tuple[InterventionEvent | NotificationEvent, Callable[..., Any]]]:
    """The Q/R handlers (the SCP adds TCP_NODELAY for every connection, see ``dicom_node.net``)."""
    handlers = QRHandlers(settings, index)
    return [
        (evt.EVT_C_FIND, handlers.find),
        (evt.EVT_C_MOVE, handlers.move),
        (evt.EVT_C_GET, handlers.get),
    ]


def _status(status: int, comment: str = "", offending: list[int] | None = None) -> Dataset:
    ds = Dataset()
    ds.Status = int(status)
    if comment:
        ds.ErrorComment = comment[:64]
    if offending:
        ds.OffendingElement = offending
    return ds


def _refusal(exc: QRError) -> Dataset:
    return _status(exc.status, exc.comment, exc.offending)


def _index_down() -> Dataset:
    return _status(QRStatus.OUT_OF_RESOURCES, "index unavailable")


class _RefusedUpFront:
    """A C-MOVE/C-GET refused before any sub-operation. pynetdicom sends a failure only once the
    handler has announced its sub-operations, and then counts every announced one as failed
    (a refused identifier reported 1 failed sub-operation, none attempted; a C-MOVE even opened
    an association to the destination first). So the handler announces none, and this, installed
    as the association's ``dimse.send_msg`` for one request, turns pynetdicom's Success
    response to it into ``refusal`` (status, Error Comment, Offending Element), all counts 0."""

    def __init__(self, assoc: Association, message_id: int, refusal: Dataset) -> None:
        self.dimse: Any = assoc.dimse
        self.send_msg: Callable[[Any, int], None] = assoc.dimse.send_msg
        self.message_id = message_id
        self.refusal = refusal
        self.dimse.send_msg = self

    def __call__(self, primitive: Any, context_id: int) -> None:
        if isinstance(primitive, (C_MOVE, C_GET)) and primitive.MessageIDBeingRespondedTo == self.message_id:
            self.dimse.__dict__.pop("send_msg", None)  # this response only
            for keyword in ("Status", "ErrorComment", "OffendingElement"):
                if keyword in self.refusal:
                    setattr(primitive, keyword, self.refusal[keyword].value)
        self.send_msg(primitive, context_id)


class QRHandlers:
    """EVT_C_FIND / EVT_C_MOVE / EVT_C_GET generators (pynetdicom's handler protocol)."""

    def __init__(self, settings: Settings, index: Index, batch: int = 256) -> None:
        self.settings = settings
        self.index = index
        self.batch = batch
        self.dialect = index.engine.dialect.name

    # -- C-FIND ---------------------------------------------------------------------------------

    def find(self, event: Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        started, sent = time.monotonic(), 0
        try:
            plan = plan_find(model_for(event.request.AffectedSOPClassUID), self._identifier(event), self.dialect)
            for response in plan.responses(self.index, self.settings.ae_title, self.batch):
                if sent and not sent % self.batch:
                    let_peer_in(event.assoc)  # or a C-CANCEL waits until every match is sent
                if event.is_cancelled:
                    log.info("C-FIND cancelled after %d matches", sent)
                    yield QRStatus.CANCEL, None
                    return
                sent += 1
                yield QRStatus.PENDING, response
        except QRError as exc:
            log.warning("C-FIND refused (0x%04X): %s", exc.status, printable(exc.comment))
            yield _refusal(exc), None
            return
        except SQLAlchemyError:
            log.exception("C-FIND failed in the index")
            yield _index_down(), None
            return
        log.info(
            "C-FIND %s level: %d matches in %.1f ms", plan.level, sent, 1000 * (time.monotonic() - started)
        )  # fmt: skip
        yield QRStatus.SUCCESS, None

    # -- C-MOVE ---------------------------------------------------------------------------------

    def move(self, event: Event) -> Iterator[Any]:
        """Yields, per pynetdicom: destination (addr, port, kwargs), sub-operation count, then
        (status, dataset) per sub-operation."""
        destination = self._destination(str(event.move_destination).strip())
        if destination is None:
            log.warning("C-MOVE refused (0xA801): move destination '%s' not configured", printable(str(event.move_destination)))
            yield None, None
            return
        try:
            plan = plan_retrieve(model_for(event.request.AffectedSOPClassUID), self._identifier(event))
            count = plan.count(self.index)
            pairs = plan.stored_syntaxes(self.index) if count else []
        except (QRError, SQLAlchemyError) as exc:
            _RefusedUpFront(event.assoc, event.request.MessageID, self._failure("C-MOVE", exc))
            yield destination.host, destination.port  # not contacted: no sub-operation follows
            yield 0
            return
        peer = PeerContexts()
        contexts = proposed_contexts(pairs)
        yield destination.host, destination.port, {
            "contexts": contexts,
            "evt_handlers": [
                NO_DELAY_HANDLER,
                (evt.EVT_ESTABLISHED, peer.capture_move),
            ],
        }
        yield count
        yield from self._suboperations(event, plan, peer, "C-MOVE", count)

    # -- C-GET ----------------------------------------------------------------------------------

    def get(self, event: Event) -> Iterator[Any]:
        """Yields the sub-operation count, then (status, dataset) per sub-operation; the
        C-STOREs go back on the requestor's association (PS3.4 C.4.3.3)."""
        try:
            plan = plan_retrieve(model_for(event.request.AffectedSOPClassUID), self._identifier(event))
            count = plan.count(self.index)
        except (QRError, SQLAlchemyError) as exc:
            _RefusedUpFront(event.assoc, event.request.MessageID, self._failure("C-GET", exc))
            yield 0
            return
        peer = PeerContexts()
        if count:
            peer.capture(event)
        yield count
        yield from self._suboperations(event, plan, peer, "C-GET", count)

    # -- shared ---------------------------------------------------------------------------------

    def _suboperations(
        self, event: Event, plan: RetrievePlan, peer: PeerContexts, name: str, count: int
    ) -> Iterator[tuple[int, Dataset | None]]:
        started, done = time.monotonic(), 0
        throttle = PendingThrottle(event.assoc)
        try:
            for ref in plan.instances(self.index, self.batch):
                if event.is_cancelled:
                    log.info("%s cancelled after %d of %d sub-operations", name, done, count)
                    peer.release()  # pynetdicom answers and moves on without resuming us
                    yield QRStatus.CANCEL, None
                    return
                done += 1
                yield QRStatus.PENDING, prepare(ref, peer)
                if done == count:
                    break
        finally:
            throttle.remove()
            peer.release()
        elapsed = time.monotonic() - started
        log.info("%s %s level: %d sub-operations in %.2f s", name, plan.level, done, elapsed)

    def _failure(self, name: str, exc: Exception) -> Dataset:
        if isinstance(exc, QRError):
            log.warning("%s refused (0x%04X): %s", name, exc.status, printable(exc.comment))
            return _refusal(exc)
        log.error("%s failed in the index: %s", name, exc)
        return _index_down()

    @staticmethod
    def _identifier(event: Event) -> Dataset:
        """The request identifier with every element decoded now, not half-way through the
        answer; an element pydicom cannot decode is the Offending Element (PS3.7 C.4.1.1.4)."""
        try:
            identifier = event.identifier
        except Exception as exc:  # whatever pydicom raises on bytes it cannot parse
            raise QRError(QRStatus.UNABLE_TO_PROCESS, f"identifier cannot be parsed: {type(exc).__name__}") from exc
        for tag in list(identifier.keys()):
            try:
                identifier[tag]
            except Exception as exc:  # noqa: BLE001 - same: any decoding failure
                name = keyword_for_tag(tag) or str(tag)
                raise QRError(QRStatus.UNABLE_TO_PROCESS, f"{name} cannot be decoded", [int(tag)]) from exc
        return identifier

    def _destination(self, ae_title: str) -> DicomDestination | None:
        for dest in self.settings.destinations.values():
            if isinstance(dest, DicomDestination) and dest.ae_title == ae_title:
                return dest
        return None
