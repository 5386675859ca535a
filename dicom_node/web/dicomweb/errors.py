"""The DICOMweb refusals (PS3.18 8.6): each an HTTP status and a reason the client is told and
the log records. The app turns them into responses at the boundary (:mod:`dicom_node.web.app`)."""

from __future__ import annotations

__all__ = ["BadRequest", "DicomWebError", "NotAcceptable", "NotFound", "PayloadTooLarge", "UnsupportedMediaType"]


class DicomWebError(Exception):
    """A request refused with ``status``; ``reason`` says why, without PHI."""

    status = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(DicomWebError):
    status = 400


class NotFound(DicomWebError):
    status = 404


class NotAcceptable(DicomWebError):
    status = 406


class PayloadTooLarge(DicomWebError):
    status = 413


class UnsupportedMediaType(DicomWebError):
    status = 415


class Undecodable(DicomWebError):
    """Stored pixel data that no installed decoder can read (a C-STORE does not decode pixels,
    so corrupt compressed data is only found when a frame or a rendering is asked for)."""

    status = 422
