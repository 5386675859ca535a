"""The OHIF viewer under /viewer: served from the build ``make viewer`` unpacks, rebased onto
/viewer, configured with the node's own DICOMweb; a page saying how to add it when absent;
and in a real browser (headless Chromium), a CT with a ct_seg result opens with its SEG as an
overlay whose segment OHIF's segmentation panel lists."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient
from pydicom import Dataset, dcmread
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from sqlalchemy import select

from dicom_node.config import Settings
from dicom_node.jobs.imaging import run_pipeline_job
from dicom_node.node import Node
from dicom_node.queue.outbox import NewJob, add_jobs
from dicom_node.store.filestore import FileStore
from dicom_node.store.index import Index
from dicom_node.store.local import store_dataset
from dicom_node.store.models import Base, Instance, Job, Series
from dicom_node.synthetic import StudySpec, ct_series
from dicom_node.web.app import create_app
from dicom_node.web.auth import COOKIE, create_token
from dicom_node.web.viewer import DEFAULT_DIST
from tests.tools import wait_for
from tests.web.browser import chromium, log_in
from tests.web.conftest import start_web_node

SCREENSHOT_COPY = Path("/tmp/ohif-screenshot.png")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, str]]:
    if not (DEFAULT_DIST / "index.html").is_file():
        pytest.fail(f"the OHIF viewer is not installed in {DEFAULT_DIST}: run make viewer", pytrace=False)
    node = start_web_node(tmp_path_factory.mktemp("viewer"))
    try:
        yield node, create_token(node.index, "viewer-test", "viewer")
    finally:
        node.stop()


def _get(node: Node, token: str, path: str) -> requests.Response:
    assert node.web is not None
    return requests.get(f"http://127.0.0.1:{node.web.port}{path}", cookies={COOKIE: token}, timeout=30)


def test_app_config_points_ohif_at_the_nodes_dicomweb(node: tuple[Node, str]) -> None:
    config = _get(*node, "/viewer/app-config.js")
    assert config.headers["content-type"].startswith("text/javascript")
    assert '"routerBasename": "/viewer"' in config.text and "window.location.origin + '/dicom-web'" in config.text
    assert "qidoRoot: dicomWeb, wadoRoot: dicomWeb" in config.text
    assert "cloudfront" not in config.text  # not the package's demo server
    assert (DEFAULT_DIST / "app-config.js").read_text() != config.text  # the package's file is left as it is


def test_the_root_built_viewer_is_served_under_viewer(node: tuple[Node, str]) -> None:
    index = _get(*node, "/viewer/")
    assert 'window.PUBLIC_URL="/viewer/"' in index.text and 'src="/viewer/app-config.js"' in index.text
    assert 'src="/app' not in index.text and 'href="/assets' not in index.text
    route = _get(*node, "/viewer/viewer?StudyInstanceUIDs=1.2.3")  # OHIF's route: its index.html
    assert route.status_code == 200 and route.text == index.text
    bundle = next(DEFAULT_DIST.glob("app.bundle.*.js"))
    served = _get(*node, f"/viewer/{bundle.name}")
    assert b'__webpack_require__.p = "/viewer/";' in served.content and b'__webpack_require__.p = "/";' not in served.content
    icon = next(DEFAULT_DIST.glob("assets/*.png"))
    assert _get(*node, f"/viewer/assets/{icon.name}").content == icon.read_bytes()  # the rest as it is


def test_the_viewer_needs_a_login(node: tuple[Node, str]) -> None:
    n, _ = node
    assert n.web is not None
    page = requests.get(f"http://127.0.0.1:{n.web.port}/viewer/viewer?StudyInstanceUIDs=1.2", headers={"Accept": "text/html"}, allow_redirects=False, timeout=10)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/viewer/viewer%3FStudyInstanceUIDs%3D1.2"


def test_without_the_package_viewer_says_how_to_add_it(tmp_path: Path) -> None:
    index = Index(f"sqlite:///{tmp_path / 'index.db'}")
    Base.metadata.create_all(index.engine)
    client = TestClient(create_app(Settings(data_dir=tmp_path), index, viewer_dist=tmp_path / "absent"))
    client.cookies.set(COOKIE, create_token(index, "v", "viewer"))
    page = client.get("/viewer/")
    assert page.status_code == 404 and "make viewer" in page.text
    assert client.get("/healthz").status_code == 200  # the node works without it


@pytest.fixture(scope="module")
def ct_seg_study(node: tuple[Node, str]) -> tuple[str, str, str]:
    """A synthetic CT with a lesion, run through the real ct_seg pipeline job (demo model),
    whose SEG and SR the node stores as its own: the study UID, the SEG's first segment label
    and the SR's first tracking identifier."""
    n = node[0]
    study = StudySpec(description="VIEWER CT")
    series = ct_series(study)
    store = FileStore(n.settings.store_dir)
    for ds in series:
        store_dataset(store, n.index, ds, made_by_node=False)
    with n.index.sessions.begin() as session:
        (job,) = add_jobs(session, [NewJob("pipeline", "gpu", study.study_uid, str(series[0].SeriesInstanceUID), pipeline="ct_seg")], 1)
        session.flush()
        job_id = job.id
    with n.index.sessions() as session:
        row = session.get(Job, job_id)
    assert row is not None
    run_pipeline_job(n.settings, n.index, row)
    with n.index.sessions() as session:
        made = dict(session.execute(select(Series.modality, Instance.path).join(Series).where(Instance.made_by_node)).tuples().all())
    assert {"SEG", "SR"} <= set(made), f"ct_seg stored {sorted(made)}"
    label = dcmread(made["SEG"], stop_before_pixels=True).SegmentSequence[0].SegmentLabel
    return study.study_uid, str(label), _tracking_identifier(dcmread(made["SR"]))


def _tracking_identifier(sr: Dataset) -> str:
    """The first Tracking Identifier (DCM 112039) of the SR's content tree."""
    pending = list(sr.ContentSequence)
    while pending:
        item = pending.pop(0)
        if item.ConceptNameCodeSequence[0].CodeValue == "112039":
            return str(item.TextValue)
        pending.extend(item.get("ContentSequence", []))
    raise AssertionError("the SR has no Tracking Identifier")


def _text(driver: WebDriver, text: str) -> list:  # type: ignore[type-arg]
    return driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{text}']")


def _click(driver: WebDriver, element: object, double: bool = False) -> None:
    chain = ActionChains(driver)
    (chain.double_click(element) if double else chain.click(element)).perform()  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.timeout(90)
def _open_study(driver: WebDriver, node: tuple[Node, str], study_uid: str, series: str) -> object:
    """Log in to OHIF on the study, put its notices away; the study browser's entry of ``series``."""
    n, token = node
    assert n.web is not None
    log_in(driver, f"http://127.0.0.1:{n.web.port}", token, f"/viewer/viewer?StudyInstanceUIDs={study_uid}")
    entry = wait_for(lambda: _text(driver, series), f"OHIF did not list the series {series!r} of the study", timeout=45)
    for notice in ("Skip all", "Confirm and hide"):  # a fresh browser's tour, then the investigational-use notice
        _click(driver, wait_for(lambda n=notice: _text(driver, n), f"OHIF did not show {notice!r}", timeout=20)[-1])
        wait_for(lambda n=notice: not _text(driver, n), f"OHIF kept {notice!r}", timeout=10)
    return entry[-1]


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_ohif_shows_the_ct_seg_segmentation(node: tuple[Node, str], ct_seg_study: tuple[str, str, str], tmp_path: Path) -> None:
    study_uid, label, _ = ct_seg_study
    with chromium() as driver:
        seg = _open_study(driver, node, study_uid, "AI segmentation ct_seg")
        _click(driver, seg, double=True)  # into the viewport, over its source CT
        shot = tmp_path / "ohif-ct-seg.png"
        try:
            answer = wait_for(lambda: _text(driver, "Yes"), "OHIF did not offer to open the SEG", timeout=40)
            _click(driver, answer[-1])  # "Do you want to open this Segmentation?"
            _click(driver, driver.find_element(By.XPATH, "//*[@data-cy='panelSegmentation-btn']"))
            wait_for(lambda: _text(driver, label), f"OHIF's segmentation panel does not list segment {label!r}", timeout=20)
        finally:
            driver.save_screenshot(str(shot))
        severe = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE" and "SEG" in e["message"]]
    shutil.copyfile(shot, SCREENSHOT_COPY)
    assert not severe, severe


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,  # OHIF lists no measurement; anything else is a broken test
    reason="encoders/sr.py: ct_seg's TID 1500 measurement groups (TID 1411, volumetric, referencing the SEG segment) "
    "carry no SCOORD/SCOORD3D; OHIF 3.13.2 (cornerstone-dicom-sr _checkIfCanAddMeasurementsToDisplaySet) reads "
    "measurement.coords[0].ReferencedSOPSequence and throws a TypeError, so the SR viewport shows 'Something went wrong'",
)
def test_ohif_shows_the_ct_seg_sr_measurements(node: tuple[Node, str], ct_seg_study: tuple[str, str, str], tmp_path: Path) -> None:
    study_uid, _, tracking = ct_seg_study
    with chromium() as driver:
        sr = _open_study(driver, node, study_uid, "AI report ct_seg")
        _click(driver, sr, double=True)
        try:
            _click(driver, wait_for(lambda: driver.find_elements(By.XPATH, "//*[@data-cy='trackedMeasurements-btn']"), "no measurements panel")[0])
            wait_for(lambda: driver.find_elements(By.XPATH, f"//*[contains(text(), '{tracking}')]"), f"OHIF lists no measurement {tracking!r}", timeout=30)
        finally:
            driver.save_screenshot(str(tmp_path / "ohif-ct-seg-sr.png"))
