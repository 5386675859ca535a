"""DICOMweb benchmark: QIDO-RS study search latency over 100,000 indexed instances, and WADO-RS
throughput of a 300-image 512×512 CT study, beside Orthanc's DICOMweb plug-in serving the same
study in the same run.

    .venv/bin/python -m bench.dicomweb [--instances 100000] [--queries 200] [--images 300]

Index rows are synthetic and inserted in bulk (as bench/qr.py does: QIDO reads only the index);
the retrieved study is real files (Explicit VR Little Endian). Both servers are asked for the
study as stored (``transfer-syntax=*``) over one keep-alive HTTP connection each, the body read
to its end; retrievals are interleaved, node then Orthanc, and timed whole.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import requests

from bench.qr import LAST, bulk_index, pct
from dicom_node.config import load_settings
from dicom_node.receive.scp import NodeServer
from dicom_node.store.header import read_header
from dicom_node.synthetic import StudySpec, ct_series
from dicom_node.web.app import create_app
from dicom_node.web.auth import create_token
from dicom_node.web.server import WebServer
from tests.orthanc import Orthanc

ACCEPT_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def qido_params(rng: random.Random) -> dict[str, str]:
    year = rng.randint(2015, 2024)
    return {"PatientName": rng.choice(LAST)[:3] + "*", "StudyDate": f"{year}0101-{year}1231", "includefield": "StudyDescription"}


def bench_qido(session: requests.Session, url: str, n_queries: int, rng: random.Random) -> tuple[list[float], list[int]]:
    latencies, counts = [], []
    for _ in range(n_queries):
        t0 = time.perf_counter()
        response = session.get(f"{url}/studies", params=qido_params(rng), timeout=60)
        latencies.append(time.perf_counter() - t0)
        response.raise_for_status()
        counts.append(len(response.json()))
    return latencies, counts


def timed_retrieve(session: requests.Session, url: str) -> tuple[float, int]:
    """Seconds to read the whole multipart body, and its size."""
    t0 = time.perf_counter()
    with session.get(url, headers={"Accept": ACCEPT_AS_STORED}, stream=True, timeout=600) as response:
        response.raise_for_status()
        size = sum(len(chunk) for chunk in response.iter_content(1 << 20))
    return time.perf_counter() - t0, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--retrievals", type=int, default=5, help="WADO-RS repetitions per server, interleaved")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-dicomweb-") as tmp_s:
        tmp = Path(tmp_s)
        settings = load_settings(data_dir=tmp / "node", port=0, host="127.0.0.1", ae_title="BENCHNODE", min_free_disk_mb=0)
        node = NodeServer(settings)
        node.start()
        web = WebServer(create_app(settings, node.index), "127.0.0.1", 0)
        web.start()
        orthanc = None
        try:
            t0 = time.perf_counter()
            n = bulk_index(node.index, args.instances, rng)
            spec = StudySpec("WADO1", "WADO^BENCH")
            records = []
            for ds in ct_series(spec, shape=(args.images, 512, 512), lesion_radius=None):
                path = node.store.path_for(spec.study_uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
                path.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(path, enforce_file_format=True)
                records.append(read_header(path))
            node.index.add_instances(records)
            n += len(records)
            mb = sum(r.size for r in records) / 1e6
            print(f"set-up: {n:,} instances indexed, {args.images}-image study of {mb:.0f} MB, {time.perf_counter() - t0:.1f} s")

            ours = requests.Session()
            ours.headers["Authorization"] = f"Bearer {create_token(node.index, 'bench', 'viewer')}"
            base = f"http://127.0.0.1:{web.port}/dicom-web"
            latencies, counts = bench_qido(ours, base, args.queries, rng)
            print(
                f"QIDO-RS /studies, PatientName wildcard + StudyDate range, {args.queries} queries: "
                f"p50 {pct(latencies, 50) * 1000:.1f} ms, p95 {pct(latencies, 95) * 1000:.1f} ms, "
                f"{statistics.mean(counts):.0f} matches on average"
            )

            orthanc = Orthanc(tmp / "orthanc", {}, dicomweb=True)
            t1 = time.perf_counter()
            orthanc.upload(Path(r.path) for r in records)
            print(f"Orthanc loaded the same study in {time.perf_counter() - t1:.1f} s")
            theirs = requests.Session()
            urls = {"node": (ours, f"{base}/studies/{spec.study_uid}"), "orthanc": (theirs, f"{orthanc.dicomweb_url}/studies/{spec.study_uid}")}
            times: dict[str, list[float]] = {"node": [], "orthanc": []}
            sizes: dict[str, int] = {}
            for _ in range(args.retrievals):
                for name, (session, url) in urls.items():
                    seconds, sizes[name] = timed_retrieve(session, url)
                    times[name].append(seconds)
            for name, label in (("node", "node"), ("orthanc", "Orthanc DICOMweb plug-in")):
                best, median = min(times[name]), statistics.median(times[name])
                size = sizes[name] / 1e6
                print(f"WADO-RS study, {label}: {size:.0f} MB body, best {best:.3f} s ({size / best:.0f} MB/s), "
                      f"median {median:.3f} s ({size / median:.0f} MB/s)")  # fmt: skip
            ratio = statistics.median(times["orthanc"]) / statistics.median(times["node"])
            print(f"throughput ratio node/Orthanc (medians): {ratio:.2f}")
        finally:
            if orthanc is not None:
                orthanc.stop()
            web.stop()
            node.stop()


if __name__ == "__main__":
    main()
