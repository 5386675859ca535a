"""Q/R benchmark: study-level C-FIND latency over 100,000 indexed instances, and C-MOVE
throughput of a 300-image CT study to a DCMTK storescp, beside Orthanc moving the same study
to the same storescp in the same run.

    .venv/bin/python -m bench.qr [--instances 100000] [--queries 200] [--images 300]

Index rows are synthetic and inserted in bulk with SQL (C-FIND reads only the index); the
moved study is real files (512×512 CT, Explicit VR Little Endian). C-FIND latency is measured
end to end by a pynetdicom SCU on one association; each C-MOVE is timed as a whole DCMTK
movescu run (another process, start-up included), node and Orthanc interleaved. storescp
runs with --ignore so both senders face the same sink; every DCMTK process, Orthanc included,
runs with TCP_NODELAY=1 (the node sets it on its own sockets).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND
from sqlalchemy import insert

from dicom_node.config import DicomDestination, load_settings
from dicom_node.qr.model import MODELS
from dicom_node.net import NO_DELAY_HANDLER
from dicom_node.qr.query import plan_find
from dicom_node.receive.scp import NodeServer
from dicom_node.store.header import read_header
from dicom_node.store.index import Index
from dicom_node.store.models import Instance, Patient, Series, Study
from dicom_node.synthetic import StudySpec, ct_series
from tests.tools import DCMTK_ENV, free_port
from tests.orthanc import Orthanc

LAST = ["SMITH", "JONES", "MULLER", "GARCIA", "ROSSI", "DUBOIS", "NOVAK", "KIM", "SATO", "SILVA", "COHEN", "OKAFOR"]
FIRST = ["ANNA", "JOHN", "MARIA", "LI", "OMAR", "EVA", "PAUL", "SARA", "IVAN", "LENA"]
BENCH_AE = "BENCHSCU"


def bulk_index(index: Index, n_instances: int, rng: random.Random) -> int:
    """Patients → studies (2 each) → series (2 each) → instances, by executemany inserts."""
    per_series = 12
    n_series = n_instances // per_series
    n_studies = (n_series + 1) // 2
    n_patients = (n_studies + 1) // 2
    start = dt.date(2015, 1, 1)
    with index.engine.begin() as conn:
        conn.execute(insert(Patient), [
            {"id": p + 1, "patient_id": f"BP{p:06d}", "patient_name": f"{rng.choice(LAST)}^{rng.choice(FIRST)}",
             "birth_date": f"{rng.randint(1930, 2010)}0101", "sex": rng.choice("MF")}
            for p in range(n_patients)
        ])  # fmt: skip
        conn.execute(insert(Study), [
            {"id": s + 1, "study_uid": generate_uid(), "patient_pk": s // 2 + 1,
             "study_date": (start + dt.timedelta(days=rng.randrange(3650))).strftime("%Y%m%d"),
             "study_time": f"{rng.randrange(24):02d}{rng.randrange(60):02d}00", "accession_number": f"B{s:07d}",
             "description": "BENCH", "modalities": "CT"}
            for s in range(n_studies)
        ])  # fmt: skip
        conn.execute(insert(Series), [
            {"id": e + 1, "series_uid": generate_uid(), "study_pk": e // 2 + 1, "modality": rng.choice(["CT", "MR"]),
             "series_number": e % 2 + 1}
            for e in range(n_series)
        ])  # fmt: skip
        rows = [
            {"sop_instance_uid": generate_uid(), "series_pk": i // per_series + 1, "sop_class_uid": CTImageStorage,
             "instance_number": i % per_series + 1, "transfer_syntax": ExplicitVRLittleEndian, "path": f"/bench/{i}"}
            for i in range(n_series * per_series)
        ]  # fmt: skip
        for chunk in range(0, len(rows), 20000):
            conn.execute(insert(Instance), rows[chunk : chunk + 20000])
    return n_series * per_series


def study_query(rng: random.Random) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = rng.choice(LAST)[:3] + "*"
    year = rng.randint(2015, 2024)
    ds.StudyDate = f"{year}0101-{year}1231"
    for keyword in ("PatientID", "StudyInstanceUID", "StudyTime", "AccessionNumber", "StudyDescription"):
        setattr(ds, keyword, "")
    ds.ModalitiesInStudy = ""
    ds.NumberOfStudyRelatedSeries = None
    ds.NumberOfStudyRelatedInstances = None
    return ds


def bench_find(port: int, n_queries: int, rng: random.Random) -> tuple[list[float], list[int]]:
    ae = AE(ae_title=BENCH_AE)
    ae.add_requested_context(FIND)
    assoc = ae.associate("127.0.0.1", port, ae_title="BENCHNODE", evt_handlers=[NO_DELAY_HANDLER])
    latencies, counts = [], []
    try:
        for _ in range(n_queries):
            query = study_query(rng)
            t0 = time.perf_counter()
            statuses = [s.Status for s, _ in assoc.send_c_find(query, FIND)]
            latencies.append(time.perf_counter() - t0)
            assert statuses[-1] == 0x0000, f"C-FIND ended 0x{statuses[-1]:04X}"
            counts.append(len(statuses) - 1)
    finally:
        assoc.release()
    return latencies, counts


def bench_find_in_index(index: Index, n_queries: int, rng: random.Random) -> list[float]:
    """The same kind of query without the network: plan, SQL and response datasets only."""
    latencies = []
    for _ in range(n_queries):
        query = study_query(rng)
        t0 = time.perf_counter()
        list(plan_find(MODELS["study"], query, index.engine.dialect.name).responses(index, "BENCHNODE"))
        latencies.append(time.perf_counter() - t0)
    return latencies


def timed_move(ae_title: str, port: int, study_uid: str, destination: str) -> float:
    """Wall time of a DCMTK movescu (another process, so the node's interpreter serves alone)."""
    t0 = time.perf_counter()
    result = subprocess.run(
        ["movescu", "-S", "-aet", BENCH_AE, "-aec", ae_title, "-aem", destination, "127.0.0.1", str(port),
         "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}"],
        env=DCMTK_ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    elapsed = time.perf_counter() - t0
    if result.returncode != 0 or "Warning" in result.stderr or "Failed" in result.stderr:
        raise RuntimeError(f"C-MOVE from {ae_title} failed: {result.stderr[-500:]}")
    return elapsed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--moves", type=int, default=5, help="C-MOVE repetitions per sender, interleaved")
    args = parser.parse_args()
    rng = random.Random(5)
    with tempfile.TemporaryDirectory(prefix="bench-qr-") as tmp_s:
        tmp = Path(tmp_s)
        sink_port = free_port()
        sink = subprocess.Popen(
            ["storescp", "--ignore", "-aet", "SINK", str(sink_port)], env=DCMTK_ENV,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        settings = load_settings(data_dir=tmp / "node", port=0, host="127.0.0.1", ae_title="BENCHNODE", min_free_disk_mb=0)
        settings.destinations["sink"] = DicomDestination(ae_title="SINK", host="127.0.0.1", port=sink_port)
        node = NodeServer(settings)
        node.start()
        orthanc = None
        try:
            t0 = time.perf_counter()
            n = bulk_index(node.index, args.instances, rng)  # first: it chooses its own primary keys
            spec = StudySpec("MOVE1", "MOVE^BENCH")
            datasets = ct_series(spec, shape=(args.images, 512, 512), lesion_radius=None)
            records = []
            for ds in datasets:
                path = node.store.path_for(spec.study_uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
                path.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(path, enforce_file_format=True)
                records.append(read_header(path))
            node.index.add_instances(records)
            del datasets
            n += len(records)
            mb = sum(r.size for r in records) / 1e6
            print(f"set-up: {n:,} instances indexed, {args.images}-image study of {mb:.0f} MB, "
                  f"{time.perf_counter() - t0:.1f} s")  # fmt: skip

            latencies, counts = bench_find(node.port, args.queries, rng)
            p50, p95 = pct(latencies, 50) * 1000, pct(latencies, 95) * 1000
            print(f"C-FIND study level, PatientName wildcard + StudyDate range, {args.queries} queries: "
                  f"p50 {p50:.1f} ms, p95 {p95:.1f} ms (target p95 < 200 ms), "
                  f"{statistics.mean(counts):.0f} matches on average")  # fmt: skip
            inside = bench_find_in_index(node.index, args.queries, rng)
            print(f"  of which in the index (plan + SQL + response datasets): p50 {pct(inside, 50) * 1000:.1f} ms, "
                  f"p95 {pct(inside, 95) * 1000:.1f} ms")  # fmt: skip

            orthanc = Orthanc(tmp / "orthanc", {"sink": ("SINK", sink_port), "bench": (BENCH_AE, free_port())})
            t1 = time.perf_counter()
            orthanc.upload(Path(r.path) for r in records)
            print(f"Orthanc loaded the same study in {time.perf_counter() - t1:.1f} s")

            results: dict[str, list[float]] = {"node": [], "orthanc": []}
            for _ in range(args.moves):
                for name, (aet, port) in {"node": ("BENCHNODE", node.port), "orthanc": (orthanc.ae_title, orthanc.dicom_port)}.items():
                    results[name].append(timed_move(aet, port, spec.study_uid, "SINK"))
            for name, label in (("node", "node"), ("orthanc", "Orthanc 1.10")):
                times = results[name]
                best, median = min(times), statistics.median(times)
                print(f"C-MOVE {args.images} images → storescp, {label}: best {best:.3f} s ({args.images / best:.0f} "
                      f"images/s, {mb / best:.0f} MB/s), median {median:.3f} s ({args.images / median:.0f} images/s)")  # fmt: skip
            best_ratio = min(results["orthanc"]) / min(results["node"])
            median_ratio = statistics.median(results["orthanc"]) / statistics.median(results["node"])
            print(f"throughput ratio node/Orthanc: best {best_ratio:.2f}, median {median_ratio:.2f} (target ≥ 1.00)")
        finally:
            if orthanc is not None:
                orthanc.stop()
            node.stop()
            sink.terminate()
            sink.wait()


if __name__ == "__main__":
    main()
