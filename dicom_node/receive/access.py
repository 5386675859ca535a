"""Per-peer permissions (issue 17): which DIMSE services each ``allowed_peers`` entry may use,
and where its C-MOVEs may go. A refusal is a DIMSE status with an Error Comment saying what
to add to the settings, a WARNING line and a Security Alert audit message (PS3.15 A.5.3.11):

* C-ECHO, C-STORE: 0x0122 (SOP class not supported — for this peer);
* C-FIND, C-GET, C-MOVE: 0xC000 with the Error Comment;
* C-MOVE to a destination the peer may not use: 0xA801 (move destination unknown).

With ``allowed_peers`` empty every calling AE may do everything, as before. The handlers of
:mod:`dicom_node.qr.scp` are wrapped, not changed: the check runs before they do, and one
Query / Instances Transferred audit message follows each request they serve.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import Event

from dicom_node.audit import AuditTrail
from dicom_node.audit import events as audit
from dicom_node.config import Peer, Permission, Settings
from dicom_node.net import printable

__all__ = ["PeerPolicy", "guard_handlers", "refusal_comment"]

log = logging.getLogger(__name__)

Handler = tuple[Any, Callable[..., Any]]

_REFUSED_SOP_CLASS = 0x0122
_UNABLE_TO_PROCESS = 0xC000
_PENDING = (0xFF00, 0xFF01)


def refusal_comment(operation: Permission, calling: str) -> str:
    """The Error Comment of a refusal (PS3.7 C.4: 64 characters at most), naming the fix."""
    return (
        f"{operation} not permitted: add '{operation}' to {calling[:16]}'s permissions"[
            :64
        ]
    )


class PeerPolicy:
    """The ``allowed_peers`` entries, asked per request."""

    def __init__(self, settings: Settings) -> None:
        self.peers = settings.allowed_peers

    def _matching(self, calling: str, host: str | None) -> list[Peer]:
        return [
            p
            for p in self.peers
            if p.ae_title == calling
            and (host is None or p.host is None or p.host == host)
        ]

    def permits(self, calling: str, host: str | None, operation: Permission) -> bool:
        """``host`` None (the C-STORE fast path does not carry it; the association was pinned
        at request time): any entry of that AE title counts."""
        if not self.peers:
            return True
        return any(operation in p.permissions for p in self._matching(calling, host))

    def may_move_to(self, calling: str, host: str | None, destination_ae: str) -> bool:
        if not self.peers:
            return True
        return any(
            p.move_destinations is None or destination_ae in p.move_destinations
            for p in self._matching(calling, host)
        )


def _who(event: Event) -> tuple[str, str]:
    return event.assoc.requestor.ae_title.strip(), event.assoc.requestor.address


def _status(status: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment
    return ds


class _Guard:
    """Wraps one Q/R or echo handler with the permission check and its audit message."""

    def __init__(
        self, settings: Settings, policy: PeerPolicy, trail: AuditTrail
    ) -> None:
        self.node = settings.ae_title
        self.policy = policy
        self.trail = trail

    def _refuse(
        self, event: Event, operation: Permission, detail: str | None = None
    ) -> str:
        calling, host = _who(event)
        comment = detail or refusal_comment(operation, calling)
        log.warning(
            "%s from %s at %s refused: %s", operation, printable(calling), host, comment
        )
        if self.trail.enabled:
            self.trail.record(audit.security_alert(self.node, (calling, host), comment))
        return comment

    def echo(self, inner: Callable[[Event], Any]) -> Callable[[Event], Any]:
        def handler(event: Event) -> Any:
            if not self.policy.permits(*_who(event), "echo"):
                return _status(_REFUSED_SOP_CLASS, self._refuse(event, "echo"))
            return inner(event)

        return handler

    def find(
        self, inner: Callable[[Event], Iterator[Any]]
    ) -> Callable[[Event], Iterator[Any]]:
        def handler(event: Event) -> Iterator[Any]:
            calling, host = _who(event)
            if not self.policy.permits(calling, host, "find"):
                yield _status(_UNABLE_TO_PROCESS, self._refuse(event, "find")), None
                return
            for status, identifier in inner(event):
                code = int(status.Status if isinstance(status, Dataset) else status)
                if (
                    code not in _PENDING and self.trail.enabled
                ):  # pynetdicom asks no further after the final one
                    self.trail.record(
                        audit.query(self.node, (calling, host), str(event.request.AffectedSOPClassUID),
                                    _raw_identifier(event), ok=code == 0)
                    )  # fmt: skip
                yield status, identifier

        return handler

    def move(
        self, inner: Callable[[Event], Iterator[Any]]
    ) -> Callable[[Event], Iterator[Any]]:
        from dicom_node.qr.scp import _RefusedUpFront  # the Q/R SCP's up-front refusal

        def handler(event: Event) -> Iterator[Any]:
            calling, host = _who(event)
            target = str(event.move_destination).strip()
            if not self.policy.permits(calling, host, "move"):
                comment = self._refuse(event, "move")
                _RefusedUpFront(
                    event.assoc,
                    int(event.request.MessageID or 0),
                    _status(_UNABLE_TO_PROCESS, comment),
                )
                yield "127.0.0.1", 1  # never contacted: no sub-operation follows
                yield 0
                return
            if not self.policy.may_move_to(calling, host, target):
                self._refuse(
                    event,
                    "move",
                    f"C-MOVE destination {target[:16]} not permitted for {calling[:16]}",
                )
                yield None, None  # 0xA801
                return
            yield from self._transfer(event, inner, (target, None))

        return handler

    def get(
        self, inner: Callable[[Event], Iterator[Any]]
    ) -> Callable[[Event], Iterator[Any]]:
        from dicom_node.qr.scp import _RefusedUpFront

        def handler(event: Event) -> Iterator[Any]:
            calling, host = _who(event)
            if not self.policy.permits(calling, host, "get"):
                comment = self._refuse(event, "get")
                _RefusedUpFront(
                    event.assoc,
                    int(event.request.MessageID or 0),
                    _status(_UNABLE_TO_PROCESS, comment),
                )
                yield 0
                return
            yield from self._transfer(event, inner, (calling, host))

        return handler

    def _transfer(
        self,
        event: Event,
        inner: Callable[[Event], Iterator[Any]],
        to: tuple[str, str | None],
    ) -> Iterator[Any]:
        """The wrapped retrieve, then one Instances Transferred message (action Read: the node sends)."""
        failures = 0
        for item in inner(event):
            if (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], int)
                and item[0] not in (0, *_PENDING)
            ):
                failures += 1
            yield item
        if self.trail.enabled:
            uid = str(event.identifier.get("StudyInstanceUID", ""))
            studies: dict[str, dict[str, int]] = {uid: {}} if uid else {}
            self.trail.record(
                audit.instances_transferred(
                    self.node, to, False, studies, ok=failures == 0
                )
            )


def _raw_identifier(event: Event) -> bytes:
    """The C-FIND identifier's bytes as received (A.5.3.10 ParticipantObjectQuery)."""
    raw = getattr(event.request, "Identifier", None)  # a C-FIND-RQ: always there
    return raw.getvalue() if raw is not None else b""


def guard_handlers(
    settings: Settings, trail: AuditTrail, handlers: list[Handler]
) -> list[Handler]:
    """``handlers`` with C-ECHO/C-FIND/C-MOVE/C-GET wrapped by the permission check."""
    guard = _Guard(settings, PeerPolicy(settings), trail)
    wrap = {
        evt.EVT_C_ECHO: guard.echo,
        evt.EVT_C_FIND: guard.find,
        evt.EVT_C_MOVE: guard.move,
        evt.EVT_C_GET: guard.get,
    }
    return [
        (event, wrap[event](fn)) if event in wrap else (event, fn)
        for event, fn in handlers
    ]
