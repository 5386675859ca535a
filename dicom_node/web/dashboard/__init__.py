"""The dashboard at ``/``: live studies and jobs, the failure list with Retry, queue depths,
per-study timelines and plots of the last hours, rendered on the server (Jinja2) from the same
service layer as the REST API; a few lines of plain JavaScript refresh the live part.

A browser presents its token in an HttpOnly cookie set by the login form (``/login``), which
the app's token check accepts like an Authorization header (:mod:`dicom_node.web.auth`). The
cookie is ``SameSite=Strict``, so another site cannot make the browser send it with a forged
POST (the Retry button is a POST and needs an ``operator`` token).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from dicom_node.service import ServiceError, jobs, stats, studies
from dicom_node.store.index import Index
from dicom_node.web.auth import COOKIE, LOGIN_PATH, Role, authenticate, check
from dicom_node.web.dashboard.plots import throughput_svg, time_to_result_svg

__all__ = ["router", "static_files"]

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
static_files = StaticFiles(directory=HERE / "static")  # mounted at /dashboard/static: CSS and JS, no data

HOURS, BUCKET_MINUTES, REFRESH_MS, ROWS = 6, 15, 3000, 50


def _index(request: Request) -> Index:
    return request.app.state.index  # type: ignore[no-any-return]


def _context(request: Request, **extra: Any) -> dict[str, Any]:
    return {"caller": check(request, Role.VIEWER), "viewer_available": request.app.state.viewer_available, **extra}


def _live(request: Request) -> dict[str, Any]:
    index = _index(request)
    return {
        "queues": stats.queue_depths(index),
        "failures": jobs.list_jobs(index, states=jobs.FAILED, limit=ROWS),
        "studies": studies.studies(index, limit=ROWS),
        "jobs": [jobs.job_dict(j) for j in jobs.list_jobs(index, limit=ROWS)],
    }


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, retried: int | None = None, error: str | None = None) -> Response:
    buckets = stats.history(_index(request), HOURS, BUCKET_MINUTES)
    flash = f"job {retried} queued again" if retried else (error or "")
    context = _context(
        request, **_live(request), hours=HOURS, bucket_minutes=BUCKET_MINUTES, refresh_ms=REFRESH_MS,
        throughput=throughput_svg(buckets), time_to_result=time_to_result_svg(buckets), flash=flash, flash_error=bool(error),
    )  # fmt: skip
    return templates.TemplateResponse(request, "dashboard.html", context)


@router.get("/dashboard/live", response_class=HTMLResponse)
def live(request: Request) -> Response:
    return templates.TemplateResponse(request, "live.html", _context(request, **_live(request)))


@router.get("/dashboard/studies/{study_uid}", response_class=HTMLResponse)
def study_page(request: Request, study_uid: Annotated[str, PathParam(pattern=r"^[0-9.]{1,64}$")]) -> Response:
    try:
        view = studies.study(_index(request), study_uid)
    except ServiceError as exc:
        raise HTTPException(404, str(exc)) from None
    events = studies.timeline(_index(request), study_uid)
    return templates.TemplateResponse(request, "study.html", _context(request, study=view, events=events))


@router.post("/dashboard/jobs/{job_id}/retry")
def retry(request: Request, job_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)]) -> Response:
    """The Retry button: back to the dashboard, saying what happened."""
    try:
        jobs.retry(_index(request), job_id)
    except ServiceError as exc:
        log.warning("dashboard retry of job %d refused: %s", job_id, exc)
        return RedirectResponse(f"/?error={quote(str(exc))}", status_code=303)
    return RedirectResponse(f"/?retried={job_id}", status_code=303)


@router.get(LOGIN_PATH, response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return templates.TemplateResponse(request, "login.html", {"next": _local(next), "error": "", "caller": None})


@router.post(LOGIN_PATH)
def login(request: Request, token: Annotated[str, Form(max_length=200)], next: Annotated[str, Form(max_length=2000)] = "/") -> Response:
    caller = authenticate(_index(request), token.strip())
    if caller is None:
        log.warning("dashboard login refused from %s: unknown or revoked token", request.client.host if request.client else "unknown peer")
        context = {"next": _local(next), "error": "Unknown or revoked token.", "caller": None}
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    log.info("dashboard login as token %r", caller.name)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _local(target: str) -> str:
    """Only a path on this node is a place to go after logging in (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"
