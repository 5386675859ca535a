"""A node holding a small catalogue chosen so each C.2.2.2 matching rule has matches and
near misses, served on a free loopback port; DCMTK storescp as a move destination."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association

from dicom_node.config import DicomDestination, Settings, load_settings
from dicom_node.receive.scp import NodeServer
from dicom_node.store.header import read_header
from dicom_node.synthetic import StudySpec, ct_series, mr_series, xray_instance
from tests.conftest import DCMTK_ENV, free_port, tool, wait_for

NODE_AE = "QRNODE"


@dataclass
class Catalogue:
    """UIDs of what the node holds, by short name."""

    studies: dict[str, str] = field(default_factory=dict)
    series: dict[str, list[str]] = field(default_factory=dict)  # study name → series UIDs
    instances: dict[str, list[str]] = field(default_factory=dict)  # study name → SOP UIDs
    files: dict[str, Path] = field(default_factory=dict)  # SOP UID → stored file


SPECS = {
    # name: (patient id, name, birth, sex, date, time, accession, description, series makers)
    "s1": ("PAT1", "DOE^JOHN", "19600101", "M", "20240115", "083000", "ACC100", "CT CHEST", ("ct3",)),
    "s2": ("PAT1", "DOE^JOHN", "19600101", "M", "20250301", "141500", "ACC200", "MR HEAD", ("mr2", "ct1")),
    "s3": ("PAT2", "Smith^Anna", "19751224", "F", "20250610", "235959.5", "ACC_300", "XR CHEST [PA]", ("dx",)),
    "s4": ("PAT3", "DOE^JANE", "19800202", "F", "", "120000", "ACC400", "NO DATE", ("ct1",)),
}
# Other Patient IDs Sequence items (ID, issuer, type) of a patient's instances.
OTHER_IDS = {"PAT2": (("MRN-77", "OTHER_HOSP", "TEXT"), ("NHS-123", "NHS", ""))}


def _other_ids(patient_id: str) -> list[Dataset]:
    items = []
    for other, issuer, kind in OTHER_IDS.get(patient_id, ()):
        item = Dataset()
        item.PatientID, item.IssuerOfPatientID = other, issuer
        if kind:
            item.TypeOfPatientID = kind
        items.append(item)
    return items


def _series(kind: str, spec: StudySpec, number: int) -> list[Dataset]:
    if kind == "dx":
        return [xray_instance(spec, size=16)]
    make = ct_series if kind.startswith("ct") else mr_series
    return make(spec, shape=(int(kind[2:]), 16, 16), lesion_radius=None, series_number=number)


def populate(node: NodeServer) -> Catalogue:
    """Write the catalogue into the node's store and index, as the receive path would."""
    cat = Catalogue()
    records = []
    for name, (pid, pname, birth, sex, date, time, acc, desc, kinds) in SPECS.items():
        spec = StudySpec(pid, pname, birth, sex, study_date=date, study_time=time, accession=acc, description=desc)
        cat.studies[name] = spec.study_uid
        for number, kind in enumerate(kinds, start=1):
            datasets = _series(kind, spec, number)
            cat.series.setdefault(name, []).append(str(datasets[0].SeriesInstanceUID))
            for ds in datasets:
                if pid in OTHER_IDS:
                    ds.OtherPatientIDsSequence = _other_ids(pid)
                path = node.store.path_for(spec.study_uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
                path.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(path, enforce_file_format=True)
                records.append(read_header(path))
                cat.instances.setdefault(name, []).append(str(ds.SOPInstanceUID))
                cat.files[str(ds.SOPInstanceUID)] = path
    node.index.add_instances(records)
    return cat


@dataclass
class Node:
    server: NodeServer
    settings: Settings
    catalogue: Catalogue

    @property
    def port(self) -> int:
        return self.server.port


def start_node(data_dir: Path, database_url: str | None = None, **destinations: DicomDestination) -> NodeServer:
    settings = load_settings(
        data_dir=data_dir, port=0, host="127.0.0.1", ae_title=NODE_AE, min_free_disk_mb=0, database_url=database_url
    )
    settings.destinations.update(destinations)
    server = NodeServer(settings)
    server.start()
    return server


class StoreSCP:
    """DCMTK storescp writing what it receives to ``folder``."""

    def __init__(self, folder: Path, ae_title: str = "STORESCP", *extra: str) -> None:
        self.folder, self.ae_title, self.port = folder, ae_title, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [tool("storescp"), "-aet", ae_title, "-od", str(folder), *extra, str(self.port)],
            env=DCMTK_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        wait_for(self._listening, "storescp listening", timeout=10)

    def _listening(self) -> bool:
        import socket

        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    @property
    def destination(self) -> DicomDestination:
        return DicomDestination(ae_title=self.ae_title, host="127.0.0.1", port=self.port)

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.is_file())

    def clear(self) -> None:
        for path in self.files():
            path.unlink()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@contextmanager
def serving_node(request: pytest.FixtureRequest, folder: Path, **destinations: DicomDestination) -> Iterator[Node]:
    """A populated node whose index is on the backend the fixture is parametrised with
    ("sqlite", the default, or "postgresql": a fresh database on the session's own server)."""
    with ExitStack() as stack:
        postgres = getattr(request, "param", "sqlite") == "postgresql"
        url = stack.enter_context(request.getfixturevalue("postgres_server").database()) if postgres else None
        server = start_node(folder, url, **destinations)
        stack.callback(server.index.close)
        stack.callback(server.stop)
        yield Node(server, server.settings, populate(server))


@pytest.fixture(scope="module")
def storescp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreSCP]:
    scp = StoreSCP(tmp_path_factory.mktemp("storescp"))
    yield scp
    scp.stop()


@pytest.fixture(scope="module")
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, storescp: StoreSCP) -> Iterator[Node]:
    with serving_node(request, tmp_path_factory.mktemp("node"), storescp=storescp.destination) as served:
        yield served


def associate(node: Node, *contexts: str, **kwargs: object) -> Association:
    """A pynetdicom SCU association with the node, proposing ``contexts``."""
    ae = AE(ae_title="PYSCU")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    for uid in contexts:
        ae.add_requested_context(uid)
    assoc = ae.associate("127.0.0.1", node.port, ae_title=NODE_AE, **kwargs)  # type: ignore[arg-type]
    assert assoc.is_established
    return assoc
