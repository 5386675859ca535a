"""Ingest benchmark: the node (fsync + indexing on) against DCMTK storescp and Orthanc
(SyncStorageArea true), all receiving the same synthetic CT sets from DCMTK storescu in the
same run, one association and four in parallel; plus the node's peak RSS while receiving a
single 1 GB multi-frame object.

    make bench            # or: TCP_NODELAY=1 .venv/bin/python bench/ingest.py [--repeat 5]

Prints wall time (median of --repeat runs, the receivers taking turns, each run on a fresh
store after a sync), images/s, MB/s and the ratios node/storescp and node/Orthanc. A benchmark
measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import EnhancedCTImageStorage, ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.tools import DCMTK_ENV as ENV  # noqa: E402
from tests.tools import free_port  # noqa: E402
from dicom_node.synthetic import StudySpec, ct_series, write_series  # noqa: E402

def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["echoscu", "-aec", "ANY", "127.0.0.1", str(port)], env=ENV, capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered C-ECHO on port {port}")


class Receiver:
    name = ""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runs = 0
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def work(self) -> Path:
        """The current run's folder."""
        return self.root / f"run-{self.runs}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start on a fresh, empty folder of its own (``run-N``). Earlier runs' folders stay until
        the bench ends: deleting a store just before the next run slows file creation on ext4
        without a journal for a while, inside the next run's timing."""
        self.runs += 1
        self.work.mkdir(parents=True)
        with (self.work / "stdout.log").open("wb") as stdout:
            self.proc = subprocess.Popen(self.command(), env=ENV, stdout=stdout, stderr=subprocess.DEVNULL, cwd=self.work)
        self.wait_ready()

    def wait_ready(self) -> None:
        wait_port(self.port)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def peak_rss_mb(self) -> float:
        """The largest peak RSS of this receiver's processes (the node's receivers are children)."""
        assert self.proc is not None
        return max(_peak_rss_mb(pid) for pid in [self.proc.pid, *_children(self.proc.pid)])


def _children(pid: int) -> list[int]:
    """Child processes of ``pid``, whichever of its threads started them."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Node(Receiver):
    name = "dicom-node"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "dicom_node", "serve", "--data-dir", str(self.work / "data"),
                "--port", str(self.port), "--no-workers"]  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for serve's banner, printed once ``Node.start()`` returned, that is once every
        receiver process (``receivers``) listens: a C-ECHO is answered as soon as the first
        one listens, and the others' start-up would run inside the timing."""
        assert self.proc is not None
        banner, log = f"listening on port {self.port}".encode(), self.work / "stdout.log"
        deadline = time.monotonic() + timeout
        while banner not in log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start; see {log}")
            time.sleep(0.05)


class StoreScp(Receiver):
    name = "storescp"

    def command(self) -> list[str]:
        return ["storescp", "-od", str(self.work), "+xa", str(self.port)]


class Orthanc(Receiver):
    name = "orthanc"

    def command(self) -> list[str]:
        config = {
            "Name": "bench", "DicomAet": "ORTHANC", "DicomPort": self.port, "HttpPort": free_port(),
            "StorageDirectory": str(self.work / "storage"), "IndexDirectory": str(self.work / "index"),
            "SyncStorageArea": True, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False, "Plugins": [], "StorageCompression": False,
        }  # fmt: skip
        path = self.work / "orthanc.json"
        path.write_text(json.dumps(config))
        return ["Orthanc", str(path)]


def send(port: int, files: list[Path], associations: int) -> float:
    chunks = [files[i::associations] for i in range(associations)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(["storescu", "-aec", "ANY", "127.0.0.1", str(port), *map(str, chunk)], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        for chunk in chunks
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode()[-500:]}")
    return time.perf_counter() - start


def make_sets(folder: Path) -> dict[str, list[Path]]:
    study = StudySpec()
    big = ct_series(study, shape=(300, 512, 512), lesion_radius=None, series_number=1)
    small = [ds for k in range(10) for ds in ct_series(study, shape=(100, 64, 64), lesion_radius=None, seed=k, series_number=k + 2)]
    return {"300 x 512x512": write_series(big, folder / "big"), "1000 x 64x64": write_series(small, folder / "small")}


def make_gigabyte(folder: Path, frames: int = 2048) -> Path:
    """A 1 GiB Enhanced CT-like multi-frame file, written without holding it in memory."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = EnhancedCTImageStorage
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.Modality = "BENCH", "CT"
    ds.Rows = ds.Columns = 512
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = b""
    path = folder / "gigabyte.dcm"
    ds.save_as(path, enforce_file_format=True)
    frame = np.random.default_rng(0).integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
    data = path.read_bytes()
    assert data.endswith(b"\xe0\x7f\x10\x00OW\x00\x00\x00\x00\x00\x00")
    with path.open("wb") as fh:  # patch the empty PixelData's length, then stream the frames
        fh.write(data[:-4] + (len(frame) * frames).to_bytes(4, "little"))
        for _ in range(frames):
            fh.write(frame)
    return path


def timed_run(receiver: Receiver, files: list[Path], associations: int) -> float:
    """One send to ``receiver``, started on a fresh, empty store. Everything earlier runs left
    in the page cache is written out first: storescp does not sync, and its writeback would
    otherwise land inside the next receiver's fsyncs."""
    os.sync()
    receiver.start()
    try:
        return send(receiver.port, files, associations)
    finally:
        receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per receiver and set; single runs vary by ±20 %% here")
    parser.add_argument("--skip-gigabyte", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dicom-node-bench-"))
    try:
        sets = make_sets(tmp / "sets")
        receivers = [Node(tmp / "node"), StoreScp(tmp / "storescp"), Orthanc(tmp / "orthanc")]
        results: dict[tuple[str, str, int], float] = {}
        for label, files in sets.items():
            mb = sum(f.stat().st_size for f in files) / 1e6
            for associations in (1, 4):
                runs: dict[str, list[float]] = {receiver.name: [] for receiver in receivers}
                for _ in range(args.repeat):  # in turn, so that a drift of the machine meets each alike
                    for receiver in receivers:
                        runs[receiver.name].append(timed_run(receiver, files, associations))
                for receiver in receivers:
                    seconds = results[(label, receiver.name, associations)] = statistics.median(runs[receiver.name])
                    print(f"{label:14s} {associations} assoc  {receiver.name:10s} {seconds:7.2f} s  "
                          f"{len(files) / seconds:8.1f} img/s  {mb / seconds:7.1f} MB/s  "
                          f"(runs: {' '.join(f'{t:.2f}' for t in runs[receiver.name])})", flush=True)  # fmt: skip
        print("\nratios (lower is better for the node)")
        for label in sets:
            for associations in (1, 4):
                node = results[(label, "dicom-node", associations)]
                print(f"{label:14s} {associations} assoc  node/storescp {node / results[(label, 'storescp', associations)]:5.2f}"
                      f"  node/Orthanc {node / results[(label, 'orthanc', associations)]:5.2f}")  # fmt: skip
        if not args.skip_gigabyte:
            big = make_gigabyte(tmp / "sets")
            node = Node(tmp / "node-gb")
            node.start()
            try:
                seconds = send(node.port, [big], 1)
                rss = node.peak_rss_mb()
            finally:
                node.stop()
            print(f"\n1 GiB multi-frame object: {seconds:.1f} s, peak RSS of the node's largest process {rss:.0f} MB (target < 300 MB)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
