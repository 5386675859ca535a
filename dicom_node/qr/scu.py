"""Q/R SCU: C-FIND, C-MOVE and C-GET against a PACS (PS3.4 C.4.1-C.4.3, SCU behaviour).

Raises ``DestinationError`` (transient) when the peer cannot be reached or aborts, and
``QueryRefused`` (permanent) when it answers a failure status for our identifier.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.presentation import build_context, build_role

from dicom_node.config import DicomDestination, Settings
from dicom_node.errors import ConfigError, DestinationError, PermanentError
from dicom_node.qr.model import MODELS, InformationModel, Level
from dicom_node.net import NO_DELAY_HANDLER
from dicom_node.receive.contexts import STORAGE_SOP_CLASSES, TRANSFER_SYNTAXES

__all__ = [
    "QueryRefused",
    "RetrieveProgress",
    "RetrieveResult",
    "StoreCallback",
    "resolve_destination",
    "build_identifier",
    "query",
    "retrieve",
]

log = logging.getLogger(__name__)

StoreCallback = Callable[[Any], int]  # EVT_C_STORE handler: pynetdicom Event → status
_ADDRESS = re.compile(r"^(?P<ae>[^@]{1,16})@(?P<host>[^:]+):(?P<port>\d{1,5})$")


class QueryRefused(PermanentError):
    """The peer answered our C-FIND/C-MOVE/C-GET with a failure status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetrieveProgress:
    """Sub-operation counts from a pending C-MOVE/C-GET response."""

    remaining: int
    completed: int
    failed: int
    warning: int


@dataclass
class RetrieveResult:
    """The final response of a retrieve: status, counts, Failed SOP Instance UID List."""

    status: int
    completed: int = 0
    failed: int = 0
    warning: int = 0
    failed_uids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == 0x0000


def resolve_destination(settings: Settings, name: str) -> DicomDestination:
    """A DICOM destination by its name in ``settings.destinations``, or written as ``AET@host:port``."""
    dest = settings.destinations.get(name)
    if isinstance(dest, DicomDestination):
        return dest
    if dest is not None:
        raise ConfigError(f"destination {name!r} is not a DICOM (DIMSE) destination")
    match = _ADDRESS.match(name)
    if match is None:
        raise ConfigError(f"unknown destination {name!r}: not in settings.destinations and not AET@host:port")
    return DicomDestination(ae_title=match["ae"], host=match["host"], port=int(match["port"]))


def build_identifier(level: str, keys: Mapping[str, str]) -> Dataset:
    """An identifier from ``{keyword or "gggg,eeee": value}``; an empty value asks for a return key."""
    ds = Dataset()
    ds.QueryRetrieveLevel = Level(level.upper()).value
    for name, value in keys.items():
        tag = tag_for_keyword(name)
        if tag is None:
            try:
                tag = Tag(*(int(part, 16) for part in name.split(",")))
            except (ValueError, TypeError):
                raise ValueError(f"{name!r} is neither a DICOM keyword nor gggg,eeee") from None
            if not keyword_for_tag(tag):
                raise ValueError(f"{name} is not a standard attribute")
        vr = dictionary_VR(tag)
        ds.add_new(tag, vr, value.split("\\") if "\\" in value and vr != "SQ" else value)
    return ds


def _model(name: str) -> InformationModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"model must be one of {', '.join(MODELS)}") from None


def _associate(ae: AE, dest: DicomDestination, **kwargs: Any) -> Association:
    kwargs["evt_handlers"] = [NO_DELAY_HANDLER, *kwargs.get("evt_handlers", [])]
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title, **kwargs)
    if not assoc.is_established:
        raise DestinationError(f"association with {dest.ae_title}@{dest.host}:{dest.port} failed")
    return assoc


def _ae(calling_ae: str, timeout_s: float) -> AE:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.maximum_pdu_size = 0
    return ae


def _responses(responses: Iterator[tuple[Dataset, Dataset | None]]) -> Iterator[tuple[Dataset, Dataset | None]]:
    """pynetdicom's responses; an empty status means the peer aborted or timed out."""
    for status, identifier in responses:
        if "Status" not in status:
            raise DestinationError("the peer aborted or did not answer in time")
        yield status, identifier


def _refused(what: str, status: Dataset) -> QueryRefused:
    comment = f" ({status.ErrorComment})" if "ErrorComment" in status else ""
    return QueryRefused(f"{what} answered 0x{int(status.Status):04X}{comment}", int(status.Status))


def query(
    destination: DicomDestination,
    level: str,
    keys: Mapping[str, str],
    model: str = "study",
    *,
    calling_ae: str = "DICOM_NODE",
    timeout_s: float = 30.0,
) -> list[Dataset]:
    """C-FIND ``keys`` at ``level`` and return every match's identifier."""
    info = _model(model)
    identifier = build_identifier(level, keys)
    ae = _ae(calling_ae, timeout_s)
    assoc = _associate(ae, destination, contexts=[build_context(info.find)])
    matches: list[Dataset] = []
    try:
        for status, found in _responses(assoc.send_c_find(identifier, info.find)):
            if status.Status in (0xFF00, 0xFF01):
                if found is not None:
                    matches.append(found)
            elif status.Status == 0x0000:
                break
            else:
                raise _refused("C-FIND", status)
    finally:
        assoc.release()
    log.info("C-FIND %s level at %s: %d matches", level, destination.ae_title, len(matches))
    return matches


def _get_contexts(info: InformationModel) -> tuple[list[Any], list[Any]]:
    """A C-GET association: the Get SOP class plus every storage class we keep, with us in the
    SCP role for the C-STORE sub-operations (PS3.4 C.4.3.3, PS3.7 D.3.3.4). Each class gets
    an uncompressed context and a compressed one, so the peer can send either as it holds it
    (one context carries one negotiated syntax)."""
    uncompressed = [ts for ts in TRANSFER_SYNTAXES if ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)]
    compressed = [ts for ts in TRANSFER_SYNTAXES if UID(ts).is_compressed]
    contexts = [build_context(info.get)]
    roles = []
    for uid in STORAGE_SOP_CLASSES.values():
        contexts += [build_context(uid, uncompressed), build_context(uid, compressed)]
        roles.append(build_role(uid, scp_role=True))
    return contexts, roles


def retrieve(
    destination: DicomDestination,
    study_uid: str,
    method: Literal["move", "get"] = "move",
    store_into: StoreCallback | None = None,
    *,
    calling_ae: str = "DICOM_NODE",
    move_destination: str | None = None,
    series_uid: str | None = None,
    model: str = "study",
    progress: Callable[[RetrieveProgress], None] | None = None,
    timeout_s: float = 60.0,
) -> RetrieveResult:
    """Retrieve a study (or one series) from ``destination``.

    ``move``: the peer sends to ``move_destination`` (default: ``calling_ae``), which it must
    know; the node's own SCP receives and indexes. ``get``: the instances come back on this
    association into ``store_into`` (an EVT_C_STORE handler, e.g. ``IndexSink``).
    """
    info = _model(model)
    if method == "get" and store_into is None:
        raise ValueError("a C-GET needs store_into to keep what it receives")
    keys = {"StudyInstanceUID": study_uid}
    if series_uid:
        keys["SeriesInstanceUID"] = series_uid
    identifier = build_identifier("SERIES" if series_uid else "STUDY", keys)
    ae = _ae(calling_ae, timeout_s)
    if method == "move":
        assoc = _associate(ae, destination, contexts=[build_context(info.move)])
        responses = assoc.send_c_move(identifier, move_destination or calling_ae, info.move)
    elif method == "get":
        contexts, roles = _get_contexts(info)
        assoc = _associate(
            ae, destination, contexts=contexts, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, store_into)]
        )
        responses = assoc.send_c_get(identifier, info.get)
    else:
        raise ValueError("method must be 'move' or 'get'")
    try:
        result = _final(responses, progress)
    finally:
        assoc.release()
    log.info(
        "C-%s of a %s from %s: status 0x%04X, %d completed, %d failed, %d warning",
        method.upper(), "series" if series_uid else "study", destination.ae_title, result.status,
        result.completed, result.failed, result.warning,
    )  # fmt: skip
    return result


def _count(ds: Dataset, name: str) -> int:
    value = ds.get(name)
    return int(value) if value is not None else 0


def _final(
    responses: Iterator[tuple[Dataset, Dataset | None]],
    progress: Callable[[RetrieveProgress], None] | None,
) -> RetrieveResult:
    """The final response's result; ``progress`` hears every pending response's counts, and the
    final response's last: a peer need not send a pending response after the last
    sub-operation (pending responses are optional, PS3.4 C.4.2.1.4; the node's own SCP sends
    at most one every 0.25 s, qr.rawsend.PENDING_INTERVAL_S), so without it progress stopped
    short (1 of 2)."""
    for status, identifier in _responses(responses):
        code = int(status.Status)
        if code in (0xFF00, 0xFF01):
            if progress is not None:
                progress(
                    RetrieveProgress(
                        remaining=_count(status, "NumberOfRemainingSuboperations"),
                        completed=_count(status, "NumberOfCompletedSuboperations"),
                        failed=_count(status, "NumberOfFailedSuboperations"),
                        warning=_count(status, "NumberOfWarningSuboperations"),
                    )
                )
            continue
        failed = identifier.get("FailedSOPInstanceUIDList", "") if identifier is not None else ""
        failed_uids = ([failed] if failed else []) if isinstance(failed, str) else [str(v) for v in failed if v]
        result = RetrieveResult(
            status=code,
            completed=_count(status, "NumberOfCompletedSuboperations"),
            failed=_count(status, "NumberOfFailedSuboperations"),
            warning=_count(status, "NumberOfWarningSuboperations"),
            failed_uids=failed_uids,
        )
        if progress is not None:
            remaining = _count(status, "NumberOfRemainingSuboperations")  # a cancelled one's; else none
            progress(RetrieveProgress(remaining, result.completed, result.failed, result.warning))
        if code not in (0x0000, 0xB000, 0xFE00) and not result.completed:
            raise _refused("retrieve", status)
        return result
    raise DestinationError("retrieve ended without a final response")
