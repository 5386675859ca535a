"""``multipart/related`` (RFC 2387) as DICOMweb uses it: the media types an ``Accept`` header
allows (PS3.18 8.7), and a response body written part by part, so a study streams from the
store instead of being assembled in memory. Request bodies are parsed by python-multipart
(:mod:`dicom_node.web.dicomweb.stow`)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from python_multipart.multipart import parse_options_header

__all__ = ["MediaRange", "accepted", "boundary", "closing", "multipart", "part_header"]

_COMMA = re.compile(r',(?=(?:[^"]*"[^"]*")*[^"]*$)')  # commas outside quoted strings


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: ``multipart/related; type="application/dicom";
    transfer-syntax=…`` gives media ``multipart/related``, type and transfer syntax."""

    media: str
    type: str | None
    transfer_syntax: str | None

    def allows(self, media: str, part_type: str | None = None) -> bool:
        """Whether this range admits ``media`` (whose parts are ``part_type``)."""
        main = media.partition("/")[0]
        if self.media not in ("*/*", f"{main}/*", media):
            return False
        return part_type is None or self.type is None or self.type in ("*/*", part_type)


def accepted(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header, in the order given; ``*/*`` when there is none."""
    if not header or not header.strip():
        return [MediaRange("*/*", None, None)]
    ranges = []
    for entry in _COMMA.split(header):
        if not entry.strip():
            continue
        media, params = parse_options_header(entry.strip())
        kind = params.get(b"type")
        syntax = params.get(b"transfer-syntax")
        ranges.append(
            MediaRange(
                media.decode("latin-1").lower(),
                kind.decode("latin-1").lower() if kind else None,
                syntax.decode("latin-1") if syntax else None,
            )
        )
    return ranges


def boundary() -> str:
    return secrets.token_hex(16)


def part_header(mark: str, content_type: str, location: str | None = None) -> bytes:
    """The delimiter and headers that open one part."""
    head = f"\r\n--{mark}\r\nContent-Type: {content_type}\r\n"
    if location:
        head += f"Content-Location: {location}\r\n"
    return (head + "\r\n").encode("latin-1")


def closing(mark: str) -> bytes:
    return f"\r\n--{mark}--\r\n".encode("latin-1")


def multipart(mark: str, parts: Iterable[tuple[str, Iterable[bytes]]]) -> Iterator[bytes]:
    """The body of a multipart/related message of ``parts`` (content type, chunks)."""
    for content_type, chunks in parts:
        yield part_header(mark, content_type)
        yield from chunks
    yield closing(mark)
