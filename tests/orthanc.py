"""A throwaway Orthanc (the Debian package) on free loopback ports, for tests and the bench."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from dicom_node.config import DicomDestination
from tests.tools import DCMTK_ENV, MISSING_HINT, free_port, wait_for

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"  # Debian package orthanc-dicomweb


class Orthanc:
    """Orthanc with its storage in ``folder`` and ``modalities`` ({name: (aet, port)}) known.

    ``lua`` is a Lua script Orthanc runs (its ``LuaScripts``), e.g. an ``OnStableStudy`` hook
    that auto-routes each study; ``stable_age_s`` is how long a study must stay unchanged
    before Orthanc calls it stable (Orthanc's default is 60 s).
    """

    def __init__(
        self, folder: Path, modalities: dict[str, tuple[str, int]], ae_title: str = "ORTHANC", dicomweb: bool = False,
        lua: str | None = None, stable_age_s: int | None = None,
    ) -> None:
        for path in (ORTHANC, DICOMWEB_PLUGIN):
            if not Path(path).exists():
                pytest.fail(f"{path} is missing: {MISSING_HINT}", pytrace=False)
        self.ae_title, self.dicom_port, self.http_port = ae_title, free_port(), free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "dicom-node-test",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "DicomAet": ae_title,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomModalities": {name: [aet, "127.0.0.1", port] for name, (aet, port) in modalities.items()},
            "DicomCheckCalledAet": False,
            "Plugins": [DICOMWEB_PLUGIN] if dicomweb else [],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "StorageCompression": False,
            "SaveJobs": False,
            "DicomScuTimeout": 30,
            "HttpServerEnabled": True,
            "ConcurrentJobs": 2,
        }
        if lua is not None:
            script = folder / "script.lua"
            script.write_text(lua)
            config["LuaScripts"] = [str(script)]
        if stable_age_s is not None:
            config["StableAge"] = stable_age_s
        path = folder / "orthanc.json"
        path.write_text(json.dumps(config))
        self.log = (folder / "orthanc.log").open("w")
        # Orthanc's DICOM layer is DCMTK's, which disables Nagle only when told (as our peers do).
        self.proc = subprocess.Popen([ORTHANC, str(path)], stdout=self.log, stderr=subprocess.STDOUT, env=DCMTK_ENV)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=60)
        try:
            wait_for(self._up, "Orthanc answering HTTP", timeout=30)
        except AssertionError:
            self.stop()
            raise

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {self.proc.returncode}; see {self.log.name}")
        try:
            return self.http.get("/system").status_code == 200
        except httpx.TransportError:
            return False

    @property
    def dicomweb_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    @property
    def destination(self) -> DicomDestination:
        return DicomDestination(ae_title=self.ae_title, host="127.0.0.1", port=self.dicom_port)

    def upload(self, files: Iterable[Path]) -> None:
        for path in files:
            self.http.post("/instances", content=path.read_bytes()).raise_for_status()

    def post(self, url: str, body: Any) -> Any:
        response = self.http.post(url, json=body)
        response.raise_for_status()
        return response.json()

    def study_instances(self, study_uid: str) -> int:
        found = self.post("/tools/find", {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}})
        return len(found)

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
