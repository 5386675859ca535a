"""The DICOMweb routes (PS3.18 10.4–10.6): thin handlers over :mod:`.qido`, :mod:`.wado` and
:mod:`.stow`. Database and file work runs in the thread pool (FastAPI does so for plain
``def`` handlers; streamed bodies are iterated there too), never on the event loop."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from dicom_node.qr.model import Level, QRError
from dicom_node.store.index import Index
from dicom_node.web.dicomweb import qido, stow, wado
from dicom_node.web.dicomweb.errors import (
    BadRequest,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
)
from dicom_node.web.dicomweb.multipart import accepted, boundary

__all__ = ["PREFIX", "router"]

log = logging.getLogger(__name__)

PREFIX = "/dicom-web"
DICOM_JSON = "application/dicom+json"

router = APIRouter(prefix=PREFIX, tags=["DICOMweb"])

AcceptHeader = Annotated[str | None, Header(alias="accept")]


def _index(request: Request) -> Index:
    return request.app.state.index  # type: ignore[no-any-return]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _json_accepted(accept: str | None) -> None:
    for r in accepted(accept):
        if r.allows(DICOM_JSON) or r.allows("application/json"):
            return
    raise NotAcceptable("this resource is application/dicom+json")


# -- QIDO-RS ------------------------------------------------------------------------------------


def _search(request: Request, level: Level, fixed: dict[str, str], relational: bool, accept: str | None) -> Response:
    _json_accepted(accept)
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    query = qido.parse_search(level, params, fixed, relational)
    try:
        matches, more = qido.search(_index(request), query, _base(request))
    except QRError as exc:
        raise BadRequest(exc.comment) from None
    warnings = []
    if query.fuzzy_ignored:
        warnings.append('299 dicom-node "fuzzymatching not supported; exact matching used"')
    if more:
        warnings.append(
            f'299 dicom-node "The number of results exceeded the maximum supported by the server ({qido.MAX_RESULTS}). '
            'Additional results can be requested."'
        )
    return JSONResponse(matches, media_type=DICOM_JSON, headers={"Warning": ", ".join(warnings)} if warnings else None)


_QUERY_DOC = "Query by attribute keyword or tag (PatientID=…, 00100020=…); includefield, limit, offset, fuzzymatching."


@router.get("/studies", summary="Search for studies", description=_QUERY_DOC)
def search_studies(request: Request, accept: AcceptHeader = None) -> Response:
    return _search(request, Level.STUDY, {}, False, accept)


@router.get("/series", summary="Search for series (all studies)", description=_QUERY_DOC)
def search_all_series(request: Request, accept: AcceptHeader = None) -> Response:
    return _search(request, Level.SERIES, {}, True, accept)


@router.get("/instances", summary="Search for instances (all studies)", description=_QUERY_DOC)
def search_all_instances(request: Request, accept: AcceptHeader = None) -> Response:
    return _search(request, Level.IMAGE, {}, True, accept)


@router.get("/studies/{study}/series", summary="Search for a study's series", description=_QUERY_DOC)
def search_series(request: Request, study: str, accept: AcceptHeader = None) -> Response:
    return _search(request, Level.SERIES, {"StudyInstanceUID": study}, False, accept)


@router.get("/studies/{study}/instances", summary="Search for a study's instances", description=_QUERY_DOC)
def search_study_instances(request: Request, study: str, accept: AcceptHeader = None) -> Response:
    return _search(request, Level.IMAGE, {"StudyInstanceUID": study}, True, accept)


@router.get("/studies/{study}/series/{series}/instances", summary="Search for a series' instances", description=_QUERY_DOC)
def search_instances(request: Request, study: str, series: str, accept: AcceptHeader = None) -> Response:
    return _search(request, Level.IMAGE, {"StudyInstanceUID": study, "SeriesInstanceUID": series}, False, accept)


# -- WADO-RS ------------------------------------------------------------------------------------


def _retrieve(request: Request, target: wado.Target, accept: str | None) -> Response:
    index = _index(request)
    plan = wado.find_instances(index, target)
    syntax = wado.dicom_syntax(accepted(accept), {ts for _, ts in plan.stored_syntaxes(index)})
    mark = boundary()
    return StreamingResponse(
        wado.stream_instances(index, plan, syntax, mark),
        media_type=f'multipart/related; type="application/dicom"; boundary={mark}',
    )


def _metadata(request: Request, target: wado.Target, accept: str | None) -> Response:
    _json_accepted(accept)
    index = _index(request)
    plan = wado.find_instances(index, target)
    return StreamingResponse(wado.metadata(index, plan, _base(request)), media_type=DICOM_JSON)


@router.get("/studies/{study}", summary="Retrieve a study")
def retrieve_study(request: Request, study: str, accept: AcceptHeader = None) -> Response:
    return _retrieve(request, wado.Target(study), accept)


@router.get("/studies/{study}/series/{series}", summary="Retrieve a series")
def retrieve_series(request: Request, study: str, series: str, accept: AcceptHeader = None) -> Response:
    return _retrieve(request, wado.Target(study, series), accept)


@router.get("/studies/{study}/series/{series}/instances/{instance}", summary="Retrieve an instance")
def retrieve_instance(request: Request, study: str, series: str, instance: str, accept: AcceptHeader = None) -> Response:
    return _retrieve(request, wado.Target(study, series, instance), accept)


@router.get("/studies/{study}/metadata", summary="Retrieve a study's metadata")
def study_metadata(request: Request, study: str, accept: AcceptHeader = None) -> Response:
    return _metadata(request, wado.Target(study), accept)


@router.get("/studies/{study}/series/{series}/metadata", summary="Retrieve a series' metadata")
def series_metadata(request: Request, study: str, series: str, accept: AcceptHeader = None) -> Response:
    return _metadata(request, wado.Target(study, series), accept)


@router.get("/studies/{study}/series/{series}/instances/{instance}/metadata", summary="Retrieve an instance's metadata")
def instance_metadata(request: Request, study: str, series: str, instance: str, accept: AcceptHeader = None) -> Response:
    return _metadata(request, wado.Target(study, series, instance), accept)


@router.get("/studies/{study}/series/{series}/instances/{instance}/frames/{frames}", summary="Retrieve frames")
def retrieve_frames(
    request: Request, study: str, series: str, instance: str, frames: str, accept: AcceptHeader = None
) -> Response:
    numbers = wado.parse_frames(frames)
    wado.frame_syntax(accepted(accept))
    mark = boundary()
    body = wado.frames(_index(request), wado.Target(study, series, instance), numbers, mark)
    return StreamingResponse(body, media_type=f'multipart/related; type="application/octet-stream"; boundary={mark}')


@router.get("/studies/{study}/series/{series}/instances/{instance}/bulk/{tag}", summary="Retrieve bulk data (Pixel Data)")
def retrieve_bulk(
    request: Request, study: str, series: str, instance: str, tag: str, accept: AcceptHeader = None
) -> Response:
    mark = boundary()
    body = wado.bulk(_index(request), wado.Target(study, series, instance), tag, accepted(accept), mark)
    return StreamingResponse(body, media_type=f'multipart/related; type="application/octet-stream"; boundary={mark}')


@router.get("/studies/{study}/series/{series}/instances/{instance}/rendered", summary="Retrieve a rendered instance")
def retrieve_rendered(
    request: Request,
    study: str,
    series: str,
    instance: str,
    accept: AcceptHeader = None,
    window: Annotated[str | None, Query(description="center,width,linear")] = None,
) -> Response:
    media = wado.rendered_media(accepted(accept))
    image = wado.rendered(_index(request), wado.Target(study, series, instance), media, wado.parse_window(window))
    return Response(image, media_type=media)


# -- STOW-RS ------------------------------------------------------------------------------------


async def _store(request: Request, study: str | None) -> Response:
    handler = request.app.state.store_handler
    if handler is None:
        raise NotFound("this server does not store (no storage handler)")
    limit = request.app.state.settings.http.max_upload_mb << 20
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"the body ({int(length) >> 20} MB) exceeds the {limit >> 20} MB upload limit")
    parts = await stow.read_parts(request.headers.get("content-type"), request.stream(), handler.store.incoming, limit)
    code, response = await run_in_threadpool(stow.store_parts, handler, parts, study, _base(request))
    return JSONResponse(response.to_json_dict(), status_code=code, media_type=DICOM_JSON)


@router.post("/studies", summary="Store instances (STOW-RS)")
async def store_instances(request: Request) -> Response:
    return await _store(request, None)


@router.post("/studies/{study}", summary="Store instances of one study (STOW-RS)")
async def store_study_instances(request: Request, study: str) -> Response:
    return await _store(request, study)
