"""The dashboard in a real browser (headless Chromium): log in with a token, see a study appear
after a C-STORE, click Retry on a dead letter; and its pages without a browser: login, roles,
the timeline page, the plots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By

from dicom_node.node import Node
from dicom_node.queue.outbox import NewJob, add_jobs
from dicom_node.store.models import Job, JobEvent
from dicom_node.synthetic import StudySpec, ct_series, write_series
from dicom_node.web.auth import COOKIE, create_token
from tests.conftest import dcmtk
from tests.tools import wait_for
from tests.web.browser import chromium, log_in
from tests.web.conftest import start_web_node


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, dict[str, str]]]:
    node = start_web_node(tmp_path_factory.mktemp("dashboard"), completion={"quiet_period_s": 0.5, "poll_interval_s": 0.2})
    try:
        yield node, {role: create_token(node.index, f"dash-{role}", role) for role in ("viewer", "operator")}
    finally:
        node.stop()


def _url(node: Node) -> str:
    assert node.web is not None
    return f"http://127.0.0.1:{node.web.port}"


def _dead_job(node: Node, study_uid: str | None = None) -> int:
    with node.index.sessions.begin() as session:
        (job,) = add_jobs(session, [NewJob("pipeline", "gpu", study_uid, pipeline="ct_seg")], 3)
        session.flush()
        job.state, job.error, job.attempts = "dead", "permanent failure: the model could not be loaded", 3
        return job.id


def test_pages_need_a_login_and_a_bad_token_is_refused(node: tuple[Node, dict[str, str]]) -> None:
    n, _ = node
    page = requests.get(_url(n) + "/", headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/"
    assert requests.get(_url(n) + "/dashboard/live", timeout=10).status_code == 401  # not a page load: no redirect
    refused = requests.post(_url(n) + "/login", data={"token": "guess", "next": "/"}, allow_redirects=False, timeout=10)
    assert refused.status_code == 401 and "Unknown or revoked token" in refused.text
    away = requests.post(_url(n) + "/login", data={"token": node[1]["viewer"], "next": "//evil.example/"}, allow_redirects=False, timeout=10)
    assert away.headers["location"] == "/"  # no open redirect
    cookie = away.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_a_viewer_sees_but_cannot_retry(node: tuple[Node, dict[str, str]]) -> None:
    n, tokens = node
    job_id = _dead_job(n)
    cookies = {COOKIE: tokens["viewer"]}
    page = requests.get(_url(n) + "/", cookies=cookies, timeout=10)
    assert page.status_code == 200 and f'id="retry-{job_id}"' in page.text and "<svg" in page.text
    assert requests.post(f"{_url(n)}/dashboard/jobs/{job_id}/retry", cookies=cookies, allow_redirects=False, timeout=10).status_code == 403
    with n.index.sessions() as session:
        assert session.get(Job, job_id).state == "dead"  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_browser_sees_a_stored_study_and_retries_a_dead_letter(node: tuple[Node, dict[str, str]], tmp_path: Path) -> None:
    n, tokens = node
    with chromium() as driver:
        log_in(driver, _url(n), tokens["operator"])
        wait_for(lambda: driver.find_elements(By.ID, "studies"), "the dashboard did not open after logging in", timeout=20)

        study = StudySpec(study_date="20261204", description="DASHBOARD CT")
        files = write_series(ct_series(study, shape=(8, 32, 32), lesion_radius=None), tmp_path / "ct")
        sent = dcmtk("storescu", "-aec", n.settings.ae_title, "127.0.0.1", str(n.settings.port), *map(str, files))
        assert sent.returncode == 0, sent.stderr
        row = f'tr.study[data-uid="{study.study_uid}"]'
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, row), "the stored study did not appear on the dashboard", timeout=30)
        timeline = driver.find_element(By.CSS_SELECTOR, f"{row} a").get_attribute("href")

        job_id = _dead_job(n, study.study_uid)
        button = wait_for(lambda: driver.find_elements(By.ID, f"retry-{job_id}"), "the dead letter's Retry button did not appear", timeout=30)
        button[0].click()
        wait_for(lambda: f"job {job_id} queued again" in driver.page_source, "no confirmation after Retry", timeout=20)
        driver.save_screenshot(str(tmp_path / "dashboard.png"))

        assert timeline is not None
        driver.get(timeline)
        events = driver.find_element(By.ID, "timeline").text
    with n.index.sessions() as session:
        assert session.get(Job, job_id).state != "dead"  # type: ignore[union-attr]
        retried = session.query(JobEvent).filter_by(job_id=job_id, event="retried").one()
    assert retried.detail == "by hand" and "retried" in events
