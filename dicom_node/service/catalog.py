"""What the node is configured to do: its routing rules (and what they would make of a stored
study), its pipelines with the models they run, its destinations (and whether each answers).

A model is identified as the SEG/SR algorithm identification identifies it: name, version and
the SHA-256 of its weights file (:mod:`dicom_node.inference.models`); its model card is the
bundle's ``docs/README.md`` or a ``MODEL_CARD.md`` beside a bare model file. Destination
secrets (a FHIR server's token, webhook headers) are never listed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from dicom_node.config import (
    DicomDestination,
    DicomWebDestination,
    FhirDestination,
    Hl7Destination,
    Settings,
    WebhookDestination,
)
from dicom_node.errors import NodeError
from dicom_node.routing.dry_run import dry_run
from dicom_node.service import NotFound
from dicom_node.store.index import Index

__all__ = ["CheckResult", "ModelInfo", "PipelineInfo", "check_destination", "destinations", "pipelines", "rule_dry_run", "rules"]

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 5.0


def rules(settings: Settings) -> list[dict[str, Any]]:
    """The routing rules in order, as written in the configuration."""
    return [r.model_dump(mode="json", exclude_none=True) for r in settings.rules]


def rule_dry_run(settings: Settings, index: Index, study_uid: str) -> dict[str, Any]:
    """Which rules match each series of a stored study and which jobs would be queued, queueing
    nothing (:func:`dicom_node.routing.dry_run.dry_run`)."""
    run = dry_run(settings, study_uid, index=index) if not Path(study_uid).exists() else None
    if run is None:
        raise NotFound(f"no study {study_uid} in the index")
    plan = run.plan
    return {
        "study_uid": run.study_uid,
        "series": [
            {
                "series_uid": uid,
                "modality": attrs.get("Modality", ""),
                "description": attrs.get("SeriesDescription", ""),
                "rules": plan.matches.get(uid, []),
                "discarded": uid in plan.discarded,
            }
            for uid, attrs in run.series.items()
        ],
        "jobs": [
            {"kind": j.kind, "pipeline": j.pipeline, "destination": j.destination, "rule": j.rule, "priority": j.priority, "series_uid": j.series_uid}
            for j in plan.jobs
        ],
    }


@dataclass(frozen=True)
class ModelInfo:
    path: str
    name: str
    version: str
    checksum: str  # "sha256:<hex>" of the weights file, "" when there is none
    card: str  # the model card's text, "" when there is none
    demo: bool  # the pipeline's shipped demo model, not one configured


@dataclass(frozen=True)
class PipelineInfo:
    name: str
    kind: str
    queue: str
    version: str
    description: str
    model: ModelInfo | None  # None: rule tables, no learned model

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pipelines(settings: Settings) -> list[PipelineInfo]:
    """Every registered pipeline with the model it would run: a configured bundle, else the
    pipeline's demo bundle or default model file."""
    from pipelines.base import ImagingPipeline
    from pipelines.registry import all_pipelines

    out = []
    for name, cls in all_pipelines().items():
        model: ModelInfo | None
        if issubclass(cls, ImagingPipeline):
            configured = settings.pipelines.get(name)
            bundle = configured.bundle if configured and configured.bundle else None
            model = _model(bundle or cls.demo_bundle, demo=bundle is None)
        else:
            model = _model(cls.default_model, demo=True) if cls.default_model else None
        out.append(PipelineInfo(name, cls.kind, cls.queue, cls.version, cls.description, model))
    return out


def _model(path: Path, demo: bool) -> ModelInfo:
    if path.is_dir():
        weights = next((w for w in (path / "models" / "model.pt", path / "models" / "model.ts") if w.is_file()), None)
        meta_file = path / "configs" / "metadata.json"
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        card = path / "docs" / "README.md"
        name, version = str(meta.get("name", path.name)), str(meta.get("version", ""))
    else:
        weights, card, name, version = (path if path.is_file() else None), path.parent / "MODEL_CARD.md", path.stem, ""
    checksum = f"sha256:{_sha256(weights, weights.stat().st_mtime_ns)}" if weights else ""
    return ModelInfo(str(path), name, version, checksum, card.read_text() if card.is_file() else "", demo)


@lru_cache(maxsize=64)
def _sha256(path: Path, mtime_ns: int) -> str:
    """The file's SHA-256, cached per (path, modification time): a retrained model is re-read."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def destinations(settings: Settings) -> list[dict[str, str]]:
    """Each destination's name, kind and address — without tokens or headers."""
    return [{"name": name, "kind": dest.kind, "address": _address(dest)} for name, dest in settings.destinations.items()]


def _address(dest: object) -> str:
    if isinstance(dest, DicomDestination):
        return f"{dest.ae_title}@{dest.host}:{dest.port}"
    if isinstance(dest, Hl7Destination):
        return f"mllp://{dest.host}:{dest.port}"
    if isinstance(dest, FhirDestination):
        return dest.base_url
    if isinstance(dest, (DicomWebDestination, WebhookDestination)):
        return dest.url
    raise TypeError(f"unknown destination type {type(dest).__name__}")


@dataclass(frozen=True)
class CheckResult:
    name: str
    kind: str
    ok: bool
    detail: str


def check_destination(settings: Settings, name: str) -> CheckResult:
    """Ask a destination whether it answers, without sending it anything it would act on:
    C-ECHO a DICOM peer (PS3.7 9.1.5), QIDO ``/studies?limit=1`` a DICOMweb server, read a FHIR
    server's ``/metadata``; for HL7 (MLLP) and webhooks, whose every message is acted on, open
    a TCP connection only."""
    dest = settings.destinations.get(name)
    if dest is None:
        raise NotFound(f"no destination {name!r}; configured: {', '.join(settings.destinations) or 'none'}")
    try:
        ok, detail = _check(settings, dest)
    except (NodeError, OSError, httpx.HTTPError) as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    log.info("destination %s check: %s (%s)", name, "ok" if ok else "failed", detail)
    return CheckResult(name, dest.kind, ok, detail)


def _check(settings: Settings, dest: object) -> tuple[bool, str]:
    if isinstance(dest, DicomDestination):
        from dicom_node.send.dimse import echo

        status = echo(settings.ae_title, dest)
        return status == 0, f"C-ECHO status 0x{status:04X}"
    if isinstance(dest, DicomWebDestination):
        return _http_get(dest.url.rstrip("/") + "/studies", {"limit": "1"}, {"Accept": "application/dicom+json"})
    if isinstance(dest, FhirDestination):
        headers = {"Accept": "application/fhir+json"} | ({"Authorization": f"Bearer {dest.auth_token}"} if dest.auth_token else {})
        return _http_get(dest.base_url.rstrip("/") + "/metadata", {}, headers)
    if isinstance(dest, Hl7Destination):
        return _connect(dest.host, dest.port)
    if isinstance(dest, WebhookDestination):
        parts = urlsplit(dest.url)
        return _connect(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
    raise TypeError(f"unknown destination type {type(dest).__name__}")


def _http_get(url: str, params: dict[str, str], headers: dict[str, str]) -> tuple[bool, str]:
    response = httpx.get(url, params=params, headers=headers, timeout=CHECK_TIMEOUT_S)
    return response.is_success, f"HTTP {response.status_code} from GET {urlsplit(url).path or '/'}"


def _connect(host: str, port: int) -> tuple[bool, str]:
    with socket.create_connection((host, port), timeout=CHECK_TIMEOUT_S):
        return True, f"TCP connection to {host}:{port} accepted"
