"""The REST API under ``/api``: thin handlers over :mod:`dicom_node.service`, the layer the CLI
calls too. Reads need a ``viewer`` token, actions (retry, cancel, a destination check) an
``operator`` one — the app-wide :func:`dicom_node.web.auth.access` decides by method.

A :class:`~dicom_node.service.NotFound` is a 404 and a :class:`~dicom_node.service.Conflict`
a 409, each with a log line; handlers are plain ``def`` so FastAPI runs their database work in
its thread pool, off the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam

from dicom_node.config import Settings
from dicom_node.service import (
    Conflict,
    NotFound,
    ServiceError,
    catalog,
    jobs,
    stats,
    studies,
)
from dicom_node.store.index import Index

__all__ = ["PREFIX", "router", "schema_router"]

PREFIX = "/api"

router = APIRouter(prefix=PREFIX)

Limit = Annotated[int, Query(ge=1, le=1000)]
_UID = r"^[0-9.]{1,64}$"  # PS3.5 9.1: digits and dots, at most 64 characters


def _index(request: Request) -> Index:
    return request.app.state.index  # type: ignore[no-any-return]


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _http(exc: ServiceError) -> HTTPException:
    """The service's refusal as the HTTP status that says it (logged by the app's handler)."""
    return HTTPException(404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400, str(exc))


# -- studies -----------------------------------------------------------------------------------


@router.get("/studies", tags=["studies"], summary="Studies, newest first, with their series, results and jobs")
def list_studies(request: Request, limit: Limit = 100) -> list[dict[str, Any]]:
    return [v.as_dict() for v in studies.studies(_index(request), limit)]


StudyUID = Annotated[str, PathParam(pattern=_UID, description="Study Instance UID")]
JobID = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


@router.get("/studies/{study_uid}", tags=["studies"], summary="One study with its series, results and jobs")
def get_study(request: Request, study_uid: StudyUID) -> dict[str, Any]:
    try:
        return studies.study(_index(request), study_uid).as_dict()
    except ServiceError as exc:
        raise _http(exc) from None


@router.get("/studies/{study_uid}/timeline", tags=["studies"], summary="A study's events, oldest first")
def study_timeline(request: Request, study_uid: StudyUID) -> list[dict[str, Any]]:
    try:
        studies.study(_index(request), study_uid)  # 404 for a study the index lacks
    except ServiceError as exc:
        raise _http(exc) from None
    return [studies.event_dict(e) for e in studies.timeline(_index(request), study_uid)]


# -- jobs ----------------------------------------------------------------------------------------


@router.get("/jobs", tags=["jobs"], summary="Jobs, newest first, filtered by state, queue, pipeline, study")
def list_jobs(
    request: Request,
    state: Annotated[list[jobs.State] | None, Query(description="repeat for several")] = None,
    queue: Annotated[str | None, Query(max_length=16)] = None,
    pipeline: Annotated[str | None, Query(max_length=64)] = None,
    study_uid: Annotated[str | None, Query(pattern=_UID)] = None,
    limit: Limit = 500,
) -> list[dict[str, Any]]:
    found = jobs.list_jobs(_index(request), states=state or (), queue=queue, pipeline=pipeline, study_uid=study_uid, limit=limit)
    return [jobs.job_dict(j) for j in found]


@router.get("/jobs/{job_id}", tags=["jobs"], summary="One job with its result")
def get_job(request: Request, job_id: JobID) -> dict[str, Any]:
    try:
        return jobs.job_dict(jobs.get_job(_index(request), job_id))
    except ServiceError as exc:
        raise _http(exc) from None


@router.post("/jobs/{job_id}/retry", tags=["jobs"], summary="Start a dead, waiting or finished job over (operator)")
def retry_job(request: Request, job_id: JobID) -> dict[str, Any]:
    try:
        jobs.retry(_index(request), job_id)
        return jobs.job_dict(jobs.get_job(_index(request), job_id))
    except ServiceError as exc:
        raise _http(exc) from None


@router.post("/jobs/{job_id}/cancel", tags=["jobs"], summary="Cancel a job no worker has started (operator)")
def cancel_job(request: Request, job_id: JobID) -> dict[str, Any]:
    try:
        jobs.cancel(_index(request), job_id)
        return jobs.job_dict(jobs.get_job(_index(request), job_id))
    except ServiceError as exc:
        raise _http(exc) from None


@router.get("/dead-letters", tags=["jobs"], summary="Jobs that failed for good (retryable by hand)")
def dead_letters(request: Request, limit: Limit = 500) -> list[dict[str, Any]]:
    return [jobs.job_dict(j) for j in jobs.dead_letters(_index(request), limit)]


# -- configuration -------------------------------------------------------------------------------


@router.get("/rules", tags=["configuration"], summary="The routing rules, in order")
def list_rules(request: Request) -> list[dict[str, Any]]:
    return catalog.rules(_settings(request))


@router.get("/rules/dry-run/{study_uid}", tags=["configuration"], summary="What the rules would do with a stored study, queueing nothing")
def rules_dry_run(request: Request, study_uid: StudyUID) -> dict[str, Any]:
    try:
        return catalog.rule_dry_run(_settings(request), _index(request), study_uid)
    except ServiceError as exc:
        raise _http(exc) from None


@router.get("/pipelines", tags=["configuration"], summary="Pipelines and their models (name, version, checksum, model card)")
def list_pipelines(request: Request) -> list[dict[str, Any]]:
    return [p.as_dict() for p in catalog.pipelines(_settings(request))]


@router.get("/destinations", tags=["configuration"], summary="Destinations (no secrets)")
def list_destinations(request: Request) -> list[dict[str, str]]:
    return catalog.destinations(_settings(request))


@router.post("/destinations/{name}/check", tags=["configuration"], summary="C-ECHO / HTTP / TCP check of a destination (operator)")
def check_destination(request: Request, name: Annotated[str, PathParam(max_length=64)]) -> dict[str, Any]:
    try:
        result = catalog.check_destination(_settings(request), name)
    except ServiceError as exc:
        raise _http(exc) from None
    return {"name": result.name, "kind": result.kind, "ok": result.ok, "detail": result.detail}


# -- node ----------------------------------------------------------------------------------------


@router.get("/health", tags=["node"], summary="Job states, queue depths, dead letters, oldest waiting job")
def health(request: Request) -> dict[str, Any]:
    return stats.health(_index(request))


@router.get("/history", tags=["node"], summary="Throughput and time to result per time bucket")
def history(
    request: Request,
    hours: Annotated[int, Query(ge=1, le=168)] = 6,
    bucket_minutes: Annotated[int, Query(ge=1, le=1440)] = 15,
) -> list[dict[str, Any]]:
    return [
        {"start": b.start.isoformat(), "succeeded": b.succeeded, "dead": b.dead, "median_s": b.median_s, "max_s": b.max_s}
        for b in stats.history(_index(request), hours, bucket_minutes)
    ]


schema_router = APIRouter(include_in_schema=False)


@schema_router.get("/openapi.json")
def openapi(request: Request) -> dict[str, Any]:
    """The OpenAPI schema, behind the token check like every other path (FastAPI's own
    ``openapi_url`` would be served outside it)."""
    return request.app.openapi()  # type: ignore[no-any-return]
