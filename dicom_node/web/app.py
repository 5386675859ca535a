"""The FastAPI application of the web face: DICOMweb, ``/healthz``, ``/metrics``, with the
bearer-token check (:func:`dicom_node.web.auth.access`) on every route.

Errors are turned into responses here, at the boundary, each with a log line: a DICOMweb
refusal keeps its status (400, 404, 406, 413, 415), a request FastAPI cannot validate is a
400, and an unexpected exception is a 500 with its traceback logged (a bug, never bad input).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from dicom_node.config import Settings
from dicom_node.receive.handlers import StoreHandler
from dicom_node.store.index import Index
from dicom_node.web import dashboard
from dicom_node.web.api import router as api_router
from dicom_node.web.api import schema_router
from dicom_node.web.auth import LOGIN_PATH, access
from dicom_node.web.dicomweb.errors import DicomWebError
from dicom_node.web.dicomweb.routes import PREFIX
from dicom_node.web.dicomweb.routes import router as dicomweb_router
from dicom_node.web.metrics import Metrics
from dicom_node.web.viewer import DEFAULT_DIST, Viewer

__all__ = ["HealthCheck", "create_app"]

log = logging.getLogger(__name__)

HealthCheck = Callable[[], tuple[bool, str]]  # (healthy, what to say)


def _peer(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "unknown peer"


def create_app(
    settings: Settings,
    index: Index,
    store_handler: StoreHandler | None = None,
    checks: dict[str, HealthCheck] | None = None,
    viewer_dist: Path | None = DEFAULT_DIST,
) -> FastAPI:
    """The app over ``index``; ``store_handler`` (the C-STORE SCP's) takes STOW-RS uploads,
    ``checks`` name the node's components for ``/healthz`` besides the index and the store."""
    # No /docs or /openapi.json: Starlette serves them outside the token check; the schema is
    # app.openapi() for whoever runs the node.
    app = FastAPI(
        title="dicom-node", version="0.1.0", dependencies=[Depends(access)], openapi_url=None, docs_url=None, redoc_url=None
    )
    app.state.settings = settings
    app.state.index = index
    app.state.store_handler = store_handler
    metrics = Metrics(index)
    app.state.metrics = metrics
    app.include_router(dicomweb_router)
    app.include_router(api_router)
    app.include_router(schema_router)
    viewer = Viewer(viewer_dist)
    app.state.viewer_available = viewer.available
    app.include_router(viewer.router())
    app.include_router(dashboard.router)
    app.mount("/dashboard/static", dashboard.static_files, name="dashboard-static")  # CSS and JS only
    components: dict[str, HealthCheck] = {"index": lambda: _index_check(index)}
    if store_handler is not None:
        components["store"] = lambda: _store_check(store_handler)
    components.update(checks or {})

    @app.get("/healthz", tags=["node"], summary="Component states (503 when one is down)")
    def healthz() -> JSONResponse:
        states = {name: check() for name, check in components.items()}
        healthy = all(ok for ok, _ in states.values())
        body = {
            "status": "ok" if healthy else "degraded",
            "components": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in states.items()},
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/metrics", tags=["node"], summary="Prometheus metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, template, str(response.status_code)).inc()
        metrics.latency.labels(request.method, template).observe(time.perf_counter() - start)
        if request.method == "POST" and template.startswith(f"{PREFIX}/studies") and response.status_code < 500:
            metrics.stow.labels({200: "all stored", 202: "some failed", 409: "all failed"}.get(response.status_code, "refused")).inc()
        return response

    @app.exception_handler(DicomWebError)
    async def refused(request: Request, exc: DicomWebError) -> JSONResponse:
        log.warning("%d %s %s from %s: %s", exc.status, request.method, request.url.path, _peer(request), exc.reason)
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        log.warning("400 %s %s from %s: %s", request.method, request.url.path, _peer(request), reason)
        return JSONResponse({"detail": reason}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 401 and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{LOGIN_PATH}?next={quote(back)}", status_code=303)  # a browser: log in first
        if exc.status_code not in (401, 403):  # those are logged with the caller by the auth check
            log.warning("%d %s %s from %s: %s", exc.status_code, request.method, request.url.path, _peer(request), exc.detail)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(SQLAlchemyError)
    async def index_down(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.error("503 %s %s: index unavailable: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": "the index is unavailable; try again"}, status_code=503)

    return app


def _index_check(index: Index) -> tuple[bool, str]:
    try:
        with index.sessions() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return False, f"unreadable: {type(exc).__name__}"
    return True, index.engine.dialect.name


def _store_check(handler: StoreHandler) -> tuple[bool, str]:
    free = handler.store.free_bytes()
    detail = f"{free >> 20} MB free"
    if free < handler.min_free:
        return False, f"{detail}, under the {handler.settings.min_free_disk_mb} MB C-STORE needs"
    return True, detail
