"""The OHIF viewer (v3, npm ``@ohif/app``, MIT) under ``/viewer``, reading the node's own
DICOMweb (``/dicom-web``) with the browser's login cookie.

``make viewer`` unpacks the published build's ``dist/`` into ``.viewer/dist`` (ignored by
git); the node never edits it. What the node changes, it changes as it serves:

* ``app-config.js`` is the node's own, written (in memory) when the app is made and served
  instead of the package's: one DICOMweb data source at this origin's ``/dicom-web``,
  ``routerBasename`` ``/viewer``;
* the build is made for the site root (``window.PUBLIC_URL="/"`` in ``index.html``, absolute
  ``/…`` asset links, webpack's public path ``"/"`` in the bundles that load chunks, ``url(/…)``
  in CSS); those few files are served rebased onto ``/viewer/`` (read once, kept in memory);
* any path that is not a file of the build is OHIF's own route and gets ``index.html``.

Without the build the node runs as before and ``/viewer`` says how to add it. Every path
goes through the app's token check like any other (a browser's cookie suffices).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

__all__ = ["DEFAULT_DIST", "PREFIX", "Viewer"]

log = logging.getLogger(__name__)

PREFIX = "/viewer"
DEFAULT_DIST = Path(__file__).resolve().parents[2] / ".viewer" / "dist"

# What the root-built dist says, and what it says under PREFIX.
_REBASE: dict[str, list[tuple[bytes, bytes]]] = {
    ".html": [
        (b'window.PUBLIC_URL="/"', b'window.PUBLIC_URL="/viewer/"'),
        # the manifest is fetched without cookies unless asked: it would be a 401
        (b'<link rel="manifest" href="/', b'<link rel="manifest" crossorigin="use-credentials" href="/viewer/'),
        (b'href="/', b'href="/viewer/'),
        (b'src="/', b'src="/viewer/'),
    ],
    ".js": [(b'__webpack_require__.p = "/";', b'__webpack_require__.p = "/viewer/";')],
    ".css": [(b"url(/", b"url(/viewer/")],
}

_MISSING = """<!doctype html><title>Viewer not installed</title>
<h1>The OHIF viewer is not installed</h1>
<p>This node serves the OHIF viewer from <code>{dist}</code>, which is missing.
Run <code>make viewer</code> in the source folder (it fetches the pinned <code>@ohif/app</code>
build with npm and unpacks its <code>dist/</code> there), then restart the node.
Everything else — DICOMweb, the dashboard, the API — works without it.</p>"""


def app_config() -> str:
    """OHIF's ``window.config``: this node's DICOMweb as the only data source."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "dicomweb",
        "configuration": {
            "friendlyName": "dicom-node",
            "name": "dicom-node",
            "qidoSupportsIncludeField": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "staticWado": False,
            "singlepart": "",
            "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
            "omitQuotationForMultipartRequest": True,
        },
    }
    config = {
        "routerBasename": PREFIX,
        "showStudyList": True,
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "defaultDataSourceName": "dicomweb",
        "dataSources": [source],
    }
    roots = ", ".join(f"{key}: dicomWeb" for key in ("qidoRoot", "wadoRoot", "wadoUriRoot"))
    return (
        "// Written by dicom-node at start (dicom_node/web/viewer.py); edits are overwritten.\n"
        f"const dicomWeb = window.location.origin + '/dicom-web';\n"
        f"window.config = {json.dumps(config, indent=2)};\n"
        f"Object.assign(window.config.dataSources[0].configuration, {{ {roots} }});\n"
    )


class Viewer:
    """The viewer's files: the build in ``dist`` (None or missing: not installed) and the
    node's ``app-config.js``."""

    def __init__(self, dist: Path | None) -> None:
        self.dist = dist.resolve() if dist is not None and (dist / "index.html").is_file() else None
        self._rebased: dict[Path, bytes | None] = {}
        self._lock = threading.Lock()
        self.config = app_config()
        if self.dist is None:
            log.info("OHIF viewer not installed (%s missing): /viewer says how to add it", dist or DEFAULT_DIST)
        else:
            log.info("OHIF viewer from %s at %s/", self.dist, PREFIX)

    @property
    def available(self) -> bool:
        return self.dist is not None

    def router(self) -> APIRouter:
        router = APIRouter(include_in_schema=False)
        router.add_api_route(PREFIX, lambda: RedirectResponse(f"{PREFIX}/", status_code=307), methods=["GET"])
        router.add_api_route(PREFIX + "/{path:path}", self.serve, methods=["GET"])
        return router

    def serve(self, request: Request, path: str) -> Response:
        if self.dist is None:
            return HTMLResponse(_MISSING.format(dist=DEFAULT_DIST), status_code=404)
        if path == "app-config.js":
            return Response(self.config, media_type="text/javascript")
        target = (self.dist / path).resolve()
        if not target.is_relative_to(self.dist) or not target.is_file():
            target = self.dist / "index.html"  # one of OHIF's routes (/viewer/viewer?StudyInstanceUIDs=…)
        body = self._rebased_body(target)
        if body is None:
            return FileResponse(target)
        media = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}[target.suffix]
        return Response(body, media_type=media)

    def _rebased_body(self, target: Path) -> bytes | None:
        """The file rebased onto PREFIX, or None when it needs no change (served from disk)."""
        rules = _REBASE.get(target.suffix)
        if rules is None:
            return None
        with self._lock:
            if target not in self._rebased:
                body = target.read_bytes()
                changed = body
                for old, new in rules:
                    changed = changed.replace(old, new)
                self._rebased[target] = changed if changed != body else None
            return self._rebased[target]
