"""Bearer tokens and roles, /healthz and /metrics against a running node; the token commands."""

from __future__ import annotations

import logging
import re

import pytest
import requests

from dicom_node.web.auth import TokenError, create_token, list_tokens, revoke_token
from tests.web.conftest import WebNode


def test_every_dicomweb_path_needs_a_token(web_node: WebNode, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        absent = requests.get(f"{web_node.url}/dicom-web/studies", timeout=10)
        wrong = requests.get(f"{web_node.url}/dicom-web/studies", headers={"Authorization": "Bearer nope"}, timeout=10)
        basic = requests.get(f"{web_node.url}/dicom-web/studies", headers={"Authorization": "Basic dXNlcjpwYXNz"}, timeout=10)
    assert absent.status_code == wrong.status_code == basic.status_code == 401
    assert absent.headers["WWW-Authenticate"] == "Bearer"
    assert "401 GET /dicom-web/studies from 127.0.0.1:" in caplog.text
    assert "nope" not in caplog.text


def test_a_viewer_reads_but_does_not_store(web_node: WebNode, caplog: pytest.LogCaptureFixture) -> None:
    assert requests.get(f"{web_node.url}/dicom-web/studies", headers=web_node.auth("viewer"), timeout=10).status_code == 200
    with caplog.at_level(logging.WARNING):
        response = requests.post(
            f"{web_node.url}/dicom-web/studies", data=b"", timeout=10,
            headers={**web_node.auth("viewer"), "Content-Type": 'multipart/related; type="application/dicom"; boundary=x'},
        )  # fmt: skip
    assert response.status_code == 403
    assert "token 'test-viewer' has role viewer, operator needed" in caplog.text
    assert web_node.tokens["viewer"] not in caplog.text


def test_a_revoked_token_is_refused(web_node: WebNode) -> None:
    token = create_token(web_node.node.index, "short-lived", "viewer")
    url = f"{web_node.url}/dicom-web/studies"
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
    revoke_token(web_node.node.index, "short-lived")
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 401
    with pytest.raises(TokenError, match="was revoked"):
        revoke_token(web_node.node.index, "short-lived")


def test_tokens_are_kept_hashed(web_node: WebNode) -> None:
    rows = {row.name: row for row in list_tokens(web_node.node.index)}
    assert rows["test-admin"].role == "admin"
    assert all(token not in (row.sha256 for row in rows.values()) for token in web_node.tokens.values())
    with pytest.raises(TokenError, match="exists already"):
        create_token(web_node.node.index, "test-admin", "viewer")
    with pytest.raises(TokenError, match="unknown role"):
        create_token(web_node.node.index, "someone", "superuser")


def test_healthz_is_public_and_names_its_components(web_node: WebNode) -> None:
    response = requests.get(f"{web_node.url}/healthz", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {"index", "store", "workers"} <= set(body["components"])


def test_metrics_are_public_and_count_the_index(web_node: WebNode) -> None:
    requests.get(f"{web_node.url}/dicom-web/studies", headers=web_node.auth(), timeout=10)
    text = requests.get(f"{web_node.url}/metrics", timeout=10).text
    stored = re.search(r'^dicom_node_instances\{origin="received"\} (\S+)$', text, re.MULTILINE)
    assert stored is not None and float(stored.group(1)) >= sum(len(v) for v in web_node.catalogue.instances.values())
    assert re.search(r'^dicom_node_http_requests_total\{method="GET",route="/dicom-web/studies",status="200"\} [1-9]', text, re.MULTILINE)
    assert "dicom_node_job_duration_seconds" in text and "dicom_node_index_up 1.0" in text


def test_an_unknown_path_is_404_and_a_wrong_method_405(web_node: WebNode) -> None:
    assert requests.get(f"{web_node.url}/nowhere", headers=web_node.auth(), timeout=10).status_code == 404
    assert requests.delete(f"{web_node.url}/dicom-web/studies", headers=web_node.auth("admin"), timeout=10).status_code == 405
