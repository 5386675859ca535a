"""deploy/ validates offline: the compose file with ``docker-compose config -q`` and the
Kubernetes manifests with kubernetes-validate (strict) against a current Kubernetes release,
so a typo in a manifest fails ``make test`` rather than a rollout (issue 18 item 3)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = "1.35.0"  # a current release (Dec 2026); kubernetes-validate ships its schemas, nothing is fetched


def test_compose_file_is_valid():
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail("docker-compose is missing: the Debian package docker-compose (deploy/system-packages.sh)")
    result = subprocess.run(
        [compose, "-f", str(DEPLOY / "docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_kubernetes_manifests_are_valid():
    manifests = sorted(str(p) for p in (DEPLOY / "k8s").glob("*.yaml"))
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--quiet", "-k", KUBERNETES, *manifests],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_node_runs_as_several_replicas_with_probes_budget_and_gpu_workers_scaled_on_queue_depth():
    docs = [d for p in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    node = by_name["Deployment", "dicom-node"]
    assert node["spec"]["replicas"] >= 2
    container = node["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert by_name["PodDisruptionBudget", "dicom-node"]["spec"]["selector"] == node["spec"]["selector"]
    gpu = by_name["Deployment", "dicom-node-worker-gpu"]["spec"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["requests"]["nvidia.com/gpu"] == 1
    metric = by_name["HorizontalPodAutoscaler", "dicom-node-worker-gpu"]["spec"]["metrics"][0]["external"]["metric"]
    assert metric == {"name": "dicom_node_queue_depth", "selector": {"matchLabels": {"queue": "gpu"}}}
