"""Sidecar jobs through real workers on the cpu queue, on the embedded broker and on Redis:
results stored on the job, the patient's SR held by the node (dciodvfy-clean) and sent to the
PACS, and a FHIR Bundle that validates with fhir.resources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fhir.resources.bundle import Bundle
from pydicom import dcmread
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.config import load_settings
from dicom_node.node import Node
from dicom_node.store.models import Job
from tests.conftest import FakePacs, PrivateRedis, free_port, wait_for

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(params=["embedded", "redis"])
def node(request, tmp_path, fake_pacs):
    redis = None
    if request.param == "redis":
        redis = PrivateRedis()
        redis.start()
    config = {
        "data_dir": str(tmp_path / "node"), "host": "127.0.0.1", "port": free_port(),
        "destinations": {"pacs": {"kind": "dicom", **fake_pacs.destination()}},
        "queue": {"broker_url": redis.url if redis else None, "relay_interval_s": 0.1,
                  "embedded_workers": {"cpu": 1, "send": 1}},
    }  # fmt: skip
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    node = Node(load_settings(path), config_path=path, workers=True)
    node.start()
    yield node, path, fake_pacs
    node.stop()
    if redis:
        redis.stop()


def _finished(node: Node, job_id: int) -> Job | None:
    with node.index.sessions() as session:
        job = session.get(Job, job_id)
        return job if job is not None and job.state in ("succeeded", "dead") else None


def check_delivery(node: Node, pacs: FakePacs, job: Job, patient_id: str, dciodvfy, dsrdump) -> None:
    assert job.state == "succeeded", job.error
    Bundle.model_validate(json.loads(Path(job.result["fhir"]).read_text()))
    sr_path = Path(job.result["sr"]["path"])
    dciodvfy(sr_path)
    dsrdump(sr_path)
    assert str(dcmread(sr_path).PatientID) == patient_id
    wait_for(lambda: len(pacs.files()) == 1, "SR delivered to the PACS", timeout=60)


def _genomics_args() -> list[str]:
    vcf = DATA / "genomics" / "pgx_fixture.vcf"
    sample = next(line for line in vcf.read_text().splitlines() if line.startswith("#CHROM")).split("\t")[9]
    return [str(vcf), "-p", f"sample={sample}"]


@pytest.mark.parametrize(
    "kind, args, patient_id",
    [
        ("genomics", _genomics_args(), "PGX-1"),
        ("drug", [str(DATA / "drug" / "library.csv"), "-p", "top=5"], "TRIAL-7"),
        ("prediction", [str(DATA / "prediction" / "patient_bundle.json")], "synthetic-ckd-1"),  # the bundle's subject
    ],
)
def test_sidecar_job_via_cli_submit(node, kind, args, patient_id, dciodvfy, dsrdump):
    node_, config, pacs = node
    result = CliRunner().invoke(
        app, ["jobs", "submit", kind, *args, "--config", str(config), "--patient-id", patient_id, "--send-to", "pacs"]
    )
    assert result.exit_code == 0, result.output
    job_id = int(result.output.split()[1])
    job = wait_for(lambda: _finished(node_, job_id), f"{kind} job finished", timeout=120)
    assert job.queue == "cpu"
    check_delivery(node_, pacs, job, patient_id, dciodvfy, dsrdump)
    shown = CliRunner().invoke(app, ["jobs", "show", str(job_id), "--json", "--config", str(config)])
    assert json.loads(shown.output)["result"]["data"], "the result is readable from the job"
