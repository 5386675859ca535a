"""STOW-RS (PS3.18 10.5): a ``multipart/related; type="application/dicom"`` body, each part
a Part 10 file, stored exactly as a C-STORE is.

Each part streams from the request into a file of its own in the store's ``incoming`` folder
(python-multipart parses the body as it arrives; nothing is held whole in memory), and is then
handed to the C-STORE SCP's own :meth:`~dicom_node.receive.handlers.StoreHandler.store_file`:
the same validation, durable commit, index record and so routing. Its DIMSE status becomes the
part's outcome: 0x0000 a ReferencedSOPSequence item with its RetrieveURL, anything else a
FailedSOPSequence item whose FailureReason is that status (PS3.18 Table 10.5.3-1).

The response (PS3.18 10.5.3): 200 when every instance was stored, 202 when some failed, 409
when all did. Stored instances are in the index before the response leaves, so a WADO-RS
right after it finds them. They count as received from the calling AE ``STOW-RS``: an
``origins`` entry for that name sends their results somewhere.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from dicom_node.receive.handlers import Status, StoreHandler
from dicom_node.web.dicomweb.errors import (
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)

__all__ = ["STOW_CALLING_AE", "Part", "read_parts", "store_parts"]

log = logging.getLogger(__name__)

STOW_CALLING_AE = "STOW-RS"


@dataclass
class Part:
    """One body part, spooled to ``path``."""

    number: int
    path: Path
    content_type: str = ""
    size: int = 0
    complete: bool = False


@dataclass
class _Spool:
    """python-multipart callbacks writing each part to a temp file in ``incoming``."""

    incoming: Path
    parts: list[Part] = field(default_factory=list)
    ended: bool = False
    _fd: int = -1  # of the part being written
    _header: bytes = b""
    _value: bytes = b""

    def begin(self) -> None:
        fd, name = tempfile.mkstemp(dir=self.incoming, prefix="stow-", suffix=".dcm")
        self._fd = fd
        self.parts.append(Part(len(self.parts) + 1, Path(name)))

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def header_end(self) -> None:
        if self._header.strip().lower() == b"content-type":
            self.parts[-1].content_type = self._value.decode("latin-1").strip()
        self._header = self._value = b""

    def data(self, data: bytes, start: int, end: int) -> None:
        os.write(self._fd, data[start:end])
        self.parts[-1].size += end - start

    def end_part(self) -> None:
        self.close()
        self.parts[-1].complete = True

    def end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        self.close()
        for part in self.parts:
            part.path.unlink(missing_ok=True)

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.begin, "on_header_field": self.header_field, "on_header_value": self.header_value,
            "on_header_end": self.header_end, "on_part_data": self.data, "on_part_end": self.end_part, "on_end": self.end,
        }  # fmt: skip


def _boundary(content_type: str | None) -> bytes:
    media, params = parse_options_header(content_type or "")
    if media.lower() != b"multipart/related":
        raise UnsupportedMediaType(f'STOW-RS takes multipart/related; type="application/dicom", not {media.decode("latin-1") or "no Content-Type"}')
    kind = params.get(b"type", b"application/dicom").lower()
    if kind != b"application/dicom":
        raise UnsupportedMediaType(f"STOW-RS here takes application/dicom parts, not {kind.decode('latin-1')}")
    mark = params.get(b"boundary")
    if not mark:
        raise BadRequest("multipart/related without a boundary")
    return mark


async def read_parts(content_type: str | None, body: AsyncIterator[bytes], incoming: Path, limit: int) -> list[Part]:
    """Spool the parts of a STOW-RS body to files in ``incoming``: BadRequest naming the part
    where the body is malformed, PayloadTooLarge past ``limit`` bytes; on any refusal nothing
    is left behind."""
    spool = _Spool(incoming)
    parser = MultipartParser(_boundary(content_type), spool.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge(f"the body exceeds the {limit // (1 << 20)} MB upload limit")
            parser.write(chunk)
        parser.finalize()
        if not spool.parts:
            raise BadRequest("the body holds no parts")
        if not spool.ended or not spool.parts[-1].complete:
            raise BadRequest(f"part {len(spool.parts)} is not terminated by the closing boundary")
    except MultipartParseError as exc:
        spool.discard()
        where = f"part {len(spool.parts)}" if spool.parts else "the preamble (before the first part)"
        raise BadRequest(f"malformed multipart body in {where}: {exc}") from None
    except BaseException:
        spool.discard()
        raise
    spool.close()
    return spool.parts


def _identify(path: Path) -> tuple[str, str, str, str]:
    """SOP Class, SOP Instance, Study and Series Instance UID of a Part 10 file (ValueError
    if it is none)."""
    try:
        ds = dcmread(path, specific_tags=["StudyInstanceUID", "SeriesInstanceUID"])
    except (InvalidDicomError, OSError, EOFError) as exc:
        raise ValueError(f"not a DICOM Part 10 file: {exc}") from None
    meta = ds.file_meta
    sop_class, sop_instance = meta.get("MediaStorageSOPClassUID"), meta.get("MediaStorageSOPInstanceUID")
    if not sop_class or not sop_instance:
        raise ValueError("no Media Storage SOP Class/Instance UID in its file meta information")
    return str(sop_class), str(sop_instance), str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", ""))


def store_parts(handler: StoreHandler, parts: list[Part], study: str | None, base_url: str) -> tuple[int, Dataset]:
    """Store every part as a C-STORE would; the HTTP status and the PS3.18 10.5.3 response."""
    response = Dataset()
    if study is not None:
        response.RetrieveURL = f"{base_url}/studies/{study}"
    stored: list[Dataset] = []
    failed: list[Dataset] = []
    for part in parts:
        sop_class = sop_instance = part_study = part_series = ""
        status: int
        try:
            media = part.content_type.split(";")[0].strip().lower()
            if media not in ("", "application/dicom"):
                raise ValueError(f"media type {media}, not application/dicom")
            sop_class, sop_instance, part_study, part_series = _identify(part.path)
            if study is not None and part_study != study:
                status = Status.DATASET_DOES_NOT_MATCH_SOP_CLASS
                log.warning("STOW-RS part %d refused (0xA900): not of study %s", part.number, study)
            else:
                status = handler.store_file(part.path, sop_class, sop_instance, STOW_CALLING_AE)
        except ValueError as exc:
            log.warning("STOW-RS part %d refused (0xC000): %s", part.number, exc)
            status = Status.CANNOT_UNDERSTAND
        finally:
            part.path.unlink(missing_ok=True)  # stored ones were renamed away already
        item = Dataset()
        item.ReferencedSOPClassUID = sop_class
        item.ReferencedSOPInstanceUID = sop_instance
        if status == Status.SUCCESS:
            item.RetrieveURL = f"{base_url}/studies/{part_study}/series/{part_series}/instances/{sop_instance}"
            stored.append(item)
        else:
            item.FailureReason = int(status)
            failed.append(item)
    handler.writer.flush()  # read-your-writes: WADO-RS right after this finds them
    if stored:
        response.ReferencedSOPSequence = stored
    if failed:
        response.FailedSOPSequence = failed
    code = 200 if not failed else 202 if stored else 409
    log.info("STOW-RS: %d stored, %d failed", len(stored), len(failed))
    return code, response

