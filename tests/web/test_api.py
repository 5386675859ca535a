"""The REST API under /api against a running node: studies with their series and jobs, a
study's timeline, jobs filtered and retried/cancelled by role, dead letters, rules dry-run,
pipelines with their models, destinations with a real C-ECHO check; and no 500 for any
request generated from the OpenAPI schema."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner

from dicom_node.cli import app as cli
from dicom_node.config import (
    DicomDestination,
    DicomWebDestination,
    Settings,
    WebhookDestination,
)
from dicom_node.queue.outbox import NewJob, add_jobs
from dicom_node.service import catalog, stats
from dicom_node.store.index import Index
from dicom_node.store.models import Base, Job
from dicom_node.web.app import create_app
from tests.web.conftest import WebNode


def _jobs(web_node: WebNode, *states: str, pipeline: str = "ct_seg", queue: str = "gpu") -> list[int]:
    """Jobs on study s1 in the given states, as the outbox would hold them."""
    index = web_node.node.index
    with index.sessions.begin() as session:
        rows = add_jobs(session, [NewJob("pipeline", queue, web_node.catalogue.studies["s1"], pipeline=pipeline) for _ in states], 3)
        session.flush()
        for row, state in zip(rows, states, strict=True):
            row.state = state
            row.error = "model exploded" if state == "dead" else None
        return [row.id for row in rows]


def _get(web_node: WebNode, path: str, role: str = "viewer", **params: object) -> requests.Response:
    return requests.get(f"{web_node.url}/api{path}", params=params, headers=web_node.auth(role), timeout=30)  # type: ignore[arg-type]


def _post(web_node: WebNode, path: str, role: str) -> requests.Response:
    return requests.post(f"{web_node.url}/api{path}", headers=web_node.auth(role), timeout=30)


def test_studies_list_their_series_and_jobs(web_node: WebNode) -> None:
    job_id = _jobs(web_node, "succeeded")[0]
    listed = {s["study_uid"]: s for s in _get(web_node, "/studies").json()}
    s1 = listed[web_node.catalogue.studies["s1"]]
    assert [s["series_uid"] for s in s1["series"]] == web_node.catalogue.series["s1"]
    assert sum(s["instances"] for s in s1["series"]) == s1["instances"] == len(web_node.catalogue.instances["s1"])
    assert job_id in [j["id"] for j in s1["jobs"]] and s1["results"] == []  # nothing made by the node yet
    one = _get(web_node, f"/studies/{web_node.catalogue.studies['s2']}").json()
    assert one["modalities"] and len(one["series"]) == len(web_node.catalogue.series["s2"])


def test_unknown_or_malformed_study_is_404_or_400(web_node: WebNode) -> None:
    assert _get(web_node, "/studies/1.2.3.999").status_code == 404
    assert _get(web_node, "/studies/1.2.3.999/timeline").status_code == 404
    assert _get(web_node, "/studies/not-a-uid").status_code == 400


def test_timeline_lists_the_events_of_the_study(web_node: WebNode) -> None:
    dead = _jobs(web_node, "dead")[0]
    assert _post(web_node, f"/jobs/{dead}/retry", "operator").status_code == 200
    events = _get(web_node, f"/studies/{web_node.catalogue.studies['s1']}/timeline").json()
    assert {"event": "retried", "job_id": dead, "detail": "by hand"}.items() <= events[-1].items()


def test_jobs_filter_by_state_queue_and_pipeline(web_node: WebNode) -> None:
    dead, running = _jobs(web_node, "dead", "running", pipeline="mr_seg", queue="cpu")
    ids = lambda **f: {j["id"] for j in _get(web_node, "/jobs", **f).json()}
    assert dead in ids(state="dead") and running not in ids(state="dead")
    assert {dead, running} <= ids(state=["dead", "running"], queue="cpu", pipeline="mr_seg")
    assert not {dead, running} & ids(queue="gpu")
    assert dead in {j["id"] for j in _get(web_node, "/dead-letters").json()}
    assert _get(web_node, "/jobs", state="exploded").status_code == 400


def test_the_cli_and_the_api_share_one_service(web_node: WebNode) -> None:
    """A job cancelled with ``dicom-node jobs cancel`` is cancelled for the API too, and the
    CLI's state filter lists what the API's does."""
    waiting, running = _jobs(web_node, "pending", "running", pipeline="xray_cls")
    runner, home = CliRunner(), ["--data-dir", str(web_node.settings.data_dir)]
    assert runner.invoke(cli, ["jobs", "cancel", str(waiting), *home]).exit_code == 0
    refused = runner.invoke(cli, ["jobs", "cancel", str(running), *home])
    assert refused.exit_code == 1 and f"job {running} is running" in refused.output
    assert _get(web_node, f"/jobs/{waiting}").json()["state"] == "cancelled"
    listed = json.loads(runner.invoke(cli, ["jobs", "--state", "cancelled", "--pipeline", "xray_cls", "--json", *home]).output)["jobs"]
    assert [j["id"] for j in listed] == [j["id"] for j in _get(web_node, "/jobs", state="cancelled", pipeline="xray_cls").json()]


def test_retry_needs_an_operator_and_a_dead_job(web_node: WebNode) -> None:
    dead, running = _jobs(web_node, "dead", "running")
    assert _post(web_node, f"/jobs/{dead}/retry", "viewer").status_code == 403
    retried = _post(web_node, f"/jobs/{dead}/retry", "operator")
    assert retried.status_code == 200 and retried.json()["state"] in ("pending", "queued") and retried.json()["attempts"] == 0
    refused = _post(web_node, f"/jobs/{running}/retry", "operator")
    assert refused.status_code == 409 and "running" in refused.json()["detail"]
    assert _post(web_node, "/jobs/999999/retry", "operator").status_code == 404


def test_cancel_takes_only_unclaimed_jobs(web_node: WebNode) -> None:
    waiting, running = _jobs(web_node, "retry", "running")
    cancelled = _post(web_node, f"/jobs/{waiting}/cancel", "operator")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    assert _post(web_node, f"/jobs/{running}/cancel", "operator").status_code == 409
    with web_node.node.index.sessions() as session:
        assert session.get(Job, running).state == "running"  # type: ignore[union-attr]


def test_rules_dry_run_plans_a_stored_study_and_queues_nothing(web_node: WebNode) -> None:
    before = len(_get(web_node, "/jobs").json())
    plan = _get(web_node, f"/rules/dry-run/{web_node.catalogue.studies['s2']}").json()
    assert {s["series_uid"] for s in plan["series"]} == set(web_node.catalogue.series["s2"])
    assert all(s["rules"] == [] for s in plan["series"]) and plan["jobs"] == []  # this node has no rules
    assert len(_get(web_node, "/jobs").json()) == before
    assert _get(web_node, "/rules").json() == []
    assert _get(web_node, "/rules/dry-run/1.2.3.999").status_code == 404


def test_pipelines_name_their_model_with_checksum_and_card(web_node: WebNode) -> None:
    listed = {p["name"]: p for p in _get(web_node, "/pipelines").json()}
    model = listed["ct_seg"]["model"]
    weights = Path(model["path"]) / "models" / "model.pt"
    assert model["checksum"] == "sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()
    assert model["version"] and "model card" in model["card"] and model["demo"] is True
    assert listed["genomics"]["model"] is None  # rule tables, no learned model


def test_destination_check_echoes_a_peer_and_reports_one_down(fake_pacs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from dicom_node.web.auth import create_token

    dests = {
        "pacs": DicomDestination(ae_title=fake_pacs.ae_title, host="127.0.0.1", port=fake_pacs.port),
        "gone": DicomDestination(ae_title="NOBODY", host="127.0.0.1", port=1),
    }
    index = Index(f"sqlite:///{tmp_path / 'index.db'}")
    Base.metadata.create_all(index.engine)
    client = TestClient(create_app(Settings(data_dir=tmp_path, destinations=dests), index, viewer_dist=None))
    auth = {"Authorization": f"Bearer {create_token(index, 'op', 'operator')}"}
    assert client.get("/api/destinations", headers=auth).json() == [
        {"name": "pacs", "kind": "dicom", "address": f"{fake_pacs.ae_title}@127.0.0.1:{fake_pacs.port}"},
        {"name": "gone", "kind": "dicom", "address": "NOBODY@127.0.0.1:1"},
    ]
    up = client.post("/api/destinations/pacs/check", headers=auth).json()
    assert up == {"name": "pacs", "kind": "dicom", "ok": True, "detail": "C-ECHO status 0x0000"}
    down = client.post("/api/destinations/gone/check", headers=auth).json()
    assert down["ok"] is False and "refused or unreachable" in down["detail"]
    assert client.post("/api/destinations/nowhere/check", headers=auth).status_code == 404
    assert catalog.check_destination(Settings(data_dir=tmp_path, destinations=dests), "pacs").ok  # what the CLI calls


class _Qido(BaseHTTPRequestHandler):
    """A DICOMweb server's answer to QIDO: 200 on /dicomweb/studies, 404 elsewhere."""

    def do_GET(self) -> None:
        found = self.path.startswith("/dicomweb/studies?limit=1")
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/dicom+json")
        self.end_headers()
        self.wfile.write(b"[]" if found else b"")
        self.requests.append(self.path)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_http_destinations_are_checked_without_being_sent_anything(tmp_path: Path) -> None:
    _Qido.requests = []  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Qido)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        dests = {
            "archive": DicomWebDestination(url=f"{base}/dicomweb"),
            "wrong": DicomWebDestination(url=f"{base}/elsewhere"),
            "chat": WebhookDestination(kind="webhook", url=f"{base}/hook"),
        }
        settings = Settings(data_dir=tmp_path, destinations=dests)
        assert catalog.check_destination(settings, "archive") == catalog.CheckResult("archive", "dicomweb", True, "HTTP 200 from GET /dicomweb/studies")
        assert not catalog.check_destination(settings, "wrong").ok
        hook = catalog.check_destination(settings, "chat")
        assert hook.ok and hook.detail == f"TCP connection to 127.0.0.1:{server.server_port} accepted"
        assert not any("hook" in path for path in _Qido.requests)  # type: ignore[attr-defined]  # a webhook is never called to check it
    finally:
        server.shutdown()
        server.server_close()


def test_history_buckets_results_and_time_to_result(tmp_path: Path) -> None:
    index = Index(f"sqlite:///{tmp_path / 'index.db'}")
    Base.metadata.create_all(index.engine)
    now = dt.datetime(2026, 12, 4, 12, 0)
    finished = [("succeeded", 50, 30), ("succeeded", 40, 90), ("dead", 40, 5), ("succeeded", 10, 12), ("succeeded", 90, 1)]
    with index.sessions.begin() as session:
        for state, minutes_ago, took_s in finished:
            end = now - dt.timedelta(minutes=minutes_ago)
            session.add(Job(kind="pipeline", queue="gpu", state=state, created_at=end - dt.timedelta(seconds=took_s), finished_at=end))
    buckets = stats.history(index, hours=1, bucket_minutes=15, now=now)
    assert [b.start for b in buckets] == [now - dt.timedelta(minutes=m) for m in (60, 45, 30, 15)]
    assert [(b.succeeded, b.dead) for b in buckets] == [(1, 0), (1, 1), (0, 0), (1, 0)]  # 90 min ago: outside
    assert [b.median_s for b in buckets] == [30.0, 90.0, None, 12.0]


def test_openapi_schema_is_served_to_token_holders(web_node: WebNode) -> None:
    assert requests.get(f"{web_node.url}/openapi.json", timeout=10).status_code == 401
    paths = requests.get(f"{web_node.url}/openapi.json", headers=web_node.auth(), timeout=10).json()["paths"]
    assert {"/api/studies", "/api/jobs/{job_id}/retry", "/api/rules/dry-run/{study_uid}", "/api/destinations/{name}/check"} <= set(paths)


def _api_schema() -> schemathesis.BaseSchema:
    app = create_app(Settings(data_dir=Path("unused")), Index("sqlite://"), viewer_dist=None)
    return schemathesis.openapi.from_dict(app.openapi()).include(path_regex="^/api/")


api_schema = _api_schema()


@api_schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@pytest.mark.timeout(30)
def test_no_api_request_answers_500(case: schemathesis.Case, web_node: WebNode) -> None:
    response = case.call(base_url=web_node.url, headers=web_node.auth("admin"), timeout=10)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
