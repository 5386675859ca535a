"""The servers the tests own start from nothing, on their own ports, and answer; and they keep
doing so where the machine's own services cannot be reached (a network namespace of its own)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
import redis

from tests.orthanc import Orthanc
from tests.services import PrivatePostgres, PrivateRedis

ROOT = Path(__file__).resolve().parents[1]


def test_private_redis_answers(private_redis: PrivateRedis) -> None:
    assert private_redis.port != 6379
    assert redis.Redis.from_url(private_redis.url).ping()


def test_private_postgres_gives_a_fresh_database(postgres_server: PrivatePostgres) -> None:
    assert postgres_server.port != 5432
    with postgres_server.database() as url:
        database = url.rsplit("/", 1)[1]
        with psycopg2.connect(f"dbname={database} user=postgres host=127.0.0.1 port={postgres_server.port}") as conn:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                assert cur.fetchone() == (0,)


def test_private_orthanc_answers(tmp_path: Path) -> None:
    orthanc = Orthanc(tmp_path / "orthanc", {}, dicomweb=True)
    try:
        assert orthanc.http.get("/system").json()["DicomAet"] == "ORTHANC"
        assert orthanc.http.get("/dicom-web/studies").status_code == 200
    finally:
        orthanc.stop()


def _can_unshare() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="no network namespaces here (needs root or user namespaces): run `make check-fresh` where they exist")
@pytest.mark.skipif(os.environ.get("DICOM_NODE_IN_NETNS") == "1", reason="already inside the namespace")
def test_the_suites_servers_need_nothing_the_machine_runs() -> None:
    """Inside a network namespace with only loopback, 6379 and 5432 answer nothing, and the
    tests that use Redis, PostgreSQL and Orthanc still pass: they start every server they use."""
    probe = "import socket,sys; sys.exit(any(socket.socket().connect_ex(('127.0.0.1', p)) == 0 for p in (5432, 6379)))"
    tests = ["tests/test_services.py", "tests/store/test_index.py"]
    script = (
        f"ip link set lo up && {sys.executable} -c \"{probe}\" && "
        f"{sys.executable} -m pytest -q -p no:cacheprovider {' '.join(tests)}"
    )
    run = subprocess.run(
        ["unshare", "-n", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "DICOM_NODE_IN_NETNS": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
