"""WADO-RS (PS3.18 10.4): studies, series and instances as ``multipart/related;
type="application/dicom"``, their metadata as DICOM JSON, frames as pixel data, and a
single-frame image rendered to PNG or JPEG.

The instances to send are found by the C-MOVE/C-GET planner
(:func:`dicom_node.qr.query.plan_retrieve`), read in keyset batches: a study streams from its
files chunk by chunk and is never held in memory, nor is its instance list.

Transfer syntax (PS3.18 8.7.3.5): ``transfer-syntax=*`` sends each file as stored. Without the
parameter the standard's default for ``application/dicom``, Explicit VR Little Endian, applies:
an instance stored in another syntax is decoded by pydicom (its pixel data decompressed, its SOP
Instance UID kept) and sent in that one. Other syntaxes are sent only where every instance is
stored in them already; else 406.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicom_node.qr.model import MODELS, QRError
from dicom_node.qr.query import InstanceRef, RetrievePlan, plan_retrieve
from dicom_node.store.index import Index
from dicom_node.web.dicomweb.errors import (
    BadRequest,
    NotAcceptable,
    NotFound,
    Undecodable,
)
from dicom_node.web.dicomweb.multipart import MediaRange, closing, part_header

__all__ = [
    "PIXEL_DATA",
    "Target",
    "bulk",
    "dicom_syntax",
    "find_instances",
    "frame_syntax",
    "frames",
    "metadata",
    "parse_frames",
    "parse_window",
    "rendered",
    "rendered_media",
    "stream_instances",
]  # fmt: skip

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
PIXEL_DATA = "7FE00010"


@dataclass(frozen=True)
class Target:
    """What a WADO-RS path names: a study, one of its series, or one instance."""

    study: str
    series: str | None = None
    instance: str | None = None

    def plan(self) -> RetrievePlan:
        ds = Dataset()
        ds.StudyInstanceUID = self.study
        ds.QueryRetrieveLevel = "STUDY"
        if self.series is not None:
            ds.SeriesInstanceUID = self.series
            ds.QueryRetrieveLevel = "SERIES"
        if self.instance is not None:
            ds.SOPInstanceUID = self.instance
            ds.QueryRetrieveLevel = "IMAGE"
        try:
            return plan_retrieve(MODELS["study"], ds)
        except QRError as exc:
            raise BadRequest(exc.comment) from None

    def __str__(self) -> str:
        return "/".join(uid for uid in (self.study, self.series, self.instance) if uid)


def find_instances(index: Index, target: Target) -> RetrievePlan:
    """The retrieve plan of ``target``; NotFound when it names nothing we hold."""
    plan = target.plan()
    if plan.count(index) == 0:
        raise NotFound(f"no instances for {target}")
    return plan


def dicom_syntax(ranges: list[MediaRange], stored: set[str]) -> str:
    """The transfer syntax to send ``application/dicom`` parts in ("*": as stored), from the
    first acceptable media range; NotAcceptable when none is."""
    for r in ranges:
        if not r.allows("multipart/related", "application/dicom"):
            continue
        if r.transfer_syntax == "*" or (r.transfer_syntax is None and r.media == "*/*"):
            return "*"
        wanted = r.transfer_syntax or ExplicitVRLittleEndian
        if wanted == ExplicitVRLittleEndian or stored == {wanted}:
            return wanted
    raise NotAcceptable(
        'send Accept: multipart/related; type="application/dicom" with transfer-syntax=* (as stored) '
        f"or {ExplicitVRLittleEndian}; the instances are stored in {', '.join(sorted(stored))}"
    )


def _as_syntax(ref: InstanceRef, syntax: str) -> Iterator[bytes]:
    """The instance's bytes in ``syntax`` ("*": the file as it is, read in chunks)."""
    if syntax == "*" or ref.transfer_syntax == syntax:
        with open(ref.path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk
        return
    ds = dcmread(ref.path)
    if UID(ref.transfer_syntax).is_compressed:
        ds.decompress(generate_instance_uid=False)  # the same instance, decoded: its UID stays
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=False, little_endian=True)
    yield out.getvalue()


def stream_instances(index: Index, plan: RetrievePlan, syntax: str, mark: str) -> Iterator[bytes]:
    """The multipart body: one ``application/dicom`` part per instance."""
    for ref in plan.instances(index):
        sent = ref.transfer_syntax if syntax == "*" else syntax
        yield part_header(mark, f'application/dicom; transfer-syntax={sent}')
        try:
            yield from _as_syntax(ref, syntax)
        except (OSError, ValueError, RuntimeError, NotImplementedError) as exc:
            # Headers are gone already: cut the part short, so the client sees a broken body
            # instead of a wrong instance, and say why here.
            log.error("WADO-RS: instance %s cannot be sent in %s: %s", ref.sop_instance_uid, sent, exc)
            raise
    yield closing(mark)


def metadata(index: Index, plan: RetrievePlan, base_url: str) -> Iterator[bytes]:
    """A JSON array of every instance's DICOM JSON (PS3.18 F.2). Pixel data is not read: an
    image's (7FE0,0010) gets a BulkDataURI (:func:`bulk`), as Orthanc's plug-in gives, and its
    frames are served by ``/frames``; other binary values up to 1 MiB are inline (InlineBinary)."""
    yield b"["
    first = True
    for ref in plan.instances(index):
        ds = dcmread(ref.path, stop_before_pixels=True)
        item = ds.to_json_dict(bulk_data_threshold=_CHUNK, suppress_invalid_tags=True)
        if "Rows" in ds:  # the Image Pixel Module: Pixel Data follows (PS3.3 C.7.6.3)
            url = f"{base_url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ref.sop_instance_uid}"
            item[PIXEL_DATA] = {"vr": _pixel_vr(ds, ref.transfer_syntax), "BulkDataURI": f"{url}/bulk/{PIXEL_DATA}"}
        yield (b"" if first else b",") + json.dumps(item).encode()
        first = False
    yield b"]"


def _pixel_vr(ds: Dataset, transfer_syntax: str) -> str:
    """PS3.5 8.2: encapsulated or 8-bit Pixel Data is OB; other native Pixel Data is OW."""
    if UID(transfer_syntax).is_encapsulated or int(ds.get("BitsAllocated", 16)) <= 8:
        return "OB"
    return "OW"


def bulk(index: Index, target: Target, tag: str, ranges: list[MediaRange], mark: str) -> Iterator[bytes]:
    """The bulk data a metadata BulkDataURI names — Pixel Data, as stored — as one
    ``application/octet-stream`` part (PS3.18 10.4.1.1.5)."""
    if tag.upper() != PIXEL_DATA:
        raise NotFound(f"no bulk data at {tag}: only Pixel Data ({PIXEL_DATA}) is served")
    if not any(r.allows("multipart/related", "application/octet-stream") for r in ranges):
        raise NotAcceptable('bulk data is sent as multipart/related; type="application/octet-stream"')
    ref = _instance(index, target)
    ds = dcmread(ref.path, specific_tags=["PixelData"])
    if "PixelData" not in ds:
        raise NotFound(f"instance {target.instance} has no pixel data")
    return iter((part_header(mark, "application/octet-stream"), ds.PixelData, closing(mark)))


def _instance(index: Index, target: Target) -> InstanceRef:
    return next(iter(find_instances(index, target).instances(index)))


def frame_syntax(ranges: list[MediaRange]) -> None:
    """Frames are sent uncompressed (Explicit VR Little Endian byte order, PS3.18 8.7.3.3.2);
    NotAcceptable for an Accept header that allows nothing else."""
    for r in ranges:
        if r.allows("multipart/related", "application/octet-stream") and r.transfer_syntax in (
            None, "*", ExplicitVRLittleEndian,
        ):  # fmt: skip
            return
    raise NotAcceptable('frames are sent as multipart/related; type="application/octet-stream" (uncompressed)')


def parse_frames(text: str) -> list[int]:
    try:
        numbers = [int(n) for n in text.split(",")]
    except ValueError:
        raise BadRequest(f"frame list {text!r} is not comma-separated numbers") from None
    if not numbers or any(n < 1 for n in numbers):
        raise BadRequest(f"frame numbers start at 1: {text!r}")
    return numbers


def frames(index: Index, target: Target, numbers: list[int], mark: str) -> Iterator[bytes]:
    """The multipart body of the frames ``numbers`` (1-based) of one instance, decoded; the
    frame count is checked before anything is sent (NotFound for a frame it lacks)."""
    ref = _instance(index, target)
    ds = dcmread(ref.path, defer_size="64 KB")  # large values stay on disk until read
    if "PixelData" not in ds:
        raise NotFound(f"instance {target.instance} has no pixel data")
    count = int(ds.get("NumberOfFrames", 1) or 1)
    missing = [n for n in numbers if n > count]
    if missing:
        raise NotFound(f"instance {target.instance} has {count} frame(s); asked for {missing}")

    dtype = _frame_dtype(ds)

    def frame(n: int) -> bytes:
        pixels = _decoded(target, lambda: pixel_array(ref.path, index=n - 1, raw=True))
        return np.ascontiguousarray(pixels, dtype=dtype).tobytes()

    first = frame(numbers[0])  # before any byte is sent: corrupt pixel data is a 422, not a broken body

    def body() -> Iterator[bytes]:
        for i, n in enumerate(numbers):
            yield part_header(mark, f"application/octet-stream; transfer-syntax={ExplicitVRLittleEndian}")
            yield first if i == 0 else frame(n)
        yield closing(mark)

    return body()


def _decoded(target: Target, decode: Callable[[], np.ndarray]) -> np.ndarray:
    """``decode()``'s pixels; Undecodable when no installed decoder can read them."""
    try:
        return decode()
    except (RuntimeError, ValueError, NotImplementedError) as exc:
        log.error("pixel data of %s cannot be decoded: %s", target.instance, exc)
        raise Undecodable(f"the pixel data of instance {target.instance} cannot be decoded") from None


def _frame_dtype(ds: Dataset) -> str:
    """The little-endian element type frames are sent in: Bits Allocated wide (a byte at
    least), signed as Pixel Representation says, float for Float Pixel Data."""
    size = max(1, int(ds.get("BitsAllocated", 8)) // 8)
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        return f"<f{size}"
    return f"<{'i' if int(ds.get('PixelRepresentation', 0)) else 'u'}{size}"


def _first(value: object) -> float:
    return float(value[0] if isinstance(value, MultiValue) else value)  # type: ignore[arg-type,index]


def _window(ds: Dataset, pixels: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """8-bit grey levels: Rescale Slope/Intercept (PS3.3 C.11.1.1.2), then the linear window
    of PS3.3 C.11.2.1.2.1 — asked for, else the instance's first, else its value range."""
    values = pixels.astype(np.float64) * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
    if window is None and "WindowCenter" in ds and "WindowWidth" in ds:
        window = (_first(ds.WindowCenter), _first(ds.WindowWidth))
    if window is None:
        low, high = float(values.min()), float(values.max())
        center, width = (low + high + 1) / 2, max(high - low + 1, 1.0)
    else:
        center, width = window
        width = max(width, 1.0)
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    grey = np.clip(scaled, 0, 255).astype(np.uint8)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        grey = 255 - grey
    return grey


def parse_window(text: str | None) -> tuple[float, float] | None:
    """PS3.18 8.3.5.1.4: ``window=center,width,function`` (only the linear function)."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        center, width = float(parts[0]), float(parts[1])
    except (ValueError, IndexError):
        raise BadRequest(f"window must be center,width,function, not {text!r}") from None
    if len(parts) > 2 and parts[2].strip().lower() not in ("linear", ""):
        raise BadRequest(f"window function {parts[2]!r} is not supported (linear only)")
    if width < 1:
        raise BadRequest("window width must be at least 1")
    return center, width


def rendered_media(ranges: list[MediaRange]) -> str:
    for r in ranges:
        for media in ("image/png", "image/jpeg"):
            if r.allows(media):
                return media
    raise NotAcceptable("rendered images are image/png or image/jpeg")


def rendered(index: Index, target: Target, media: str, window: tuple[float, float] | None) -> bytes:
    """The instance's image as PNG/JPEG; multi-frame instances are refused (ask for their frames)."""
    ref = _instance(index, target)
    ds = dcmread(ref.path)
    if "PixelData" not in ds:
        raise NotFound(f"instance {target.instance} has no pixel data")
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        raise BadRequest(f"instance {target.instance} has several frames: only single-frame images are rendered")
    pixels = _decoded(target, lambda: ds.pixel_array)
    if int(ds.get("SamplesPerPixel", 1)) == 1:
        image = Image.fromarray(_window(ds, pixels, window), mode="L")
    else:
        image = Image.fromarray(pixels.astype(np.uint8) if pixels.dtype != np.uint8 else pixels)
    out = io.BytesIO()
    image.save(out, format="PNG" if media == "image/png" else "JPEG")
    return out.getvalue()

