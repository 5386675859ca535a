"""The audit trail: RFC 5424 syslog over UDP/TCP/TLS with PS3.15 A.5 XML, and the JSON-lines file."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicom_node.audit import AuditSettings, AuditTrail, events
from dicom_node.audit.message import Outcome
from dicom_node.audit.settings import AuditFileSettings, SyslogSettings
from tests.security.certs import make_pki
from tests.security.syslog_collector import Collector
from tests.tools import wait_for

STUDY = "1.2.826.0.1.3680043.8.498.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


def _a5_check(root) -> None:  # type: ignore[no-untyped-def]
    """What A.5.1 requires of every message: one EventIdentification with EventID, ≥1
    ActiveParticipant with UserID/UserIsRequestor, one AuditSourceIdentification."""
    assert root.tag == "AuditMessage"
    event = root.find("EventIdentification")
    assert event is not None and event.get("EventActionCode") in "CRUDE"
    assert event.get("EventOutcomeIndicator") in {"0", "4", "8", "12"}
    assert event.get("EventDateTime")
    assert event.find("EventID").get("codeSystemName") == "DCM"
    for participant in root.findall("ActiveParticipant"):
        assert participant.get("UserID") and participant.get("UserIsRequestor") in {
            "true",
            "false",
        }
    assert root.find("AuditSourceIdentification").get("AuditSourceID") == "NODE"


@pytest.fixture(params=["udp", "tcp", "tls"])
def collector_and_trail(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Collector, AuditTrail]]:
    transport = request.param
    extra = {}
    context = None
    if transport == "tls":
        pki = make_pki(tmp_path / "pki")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server_cert, pki.server_key)
        extra = {"ca_certificates": pki.ca}
    collector = Collector(transport, context)
    trail = AuditTrail(
        AuditSettings(
            syslog=SyslogSettings(
                host="127.0.0.1", port=collector.port, transport=transport, **extra
            )
        ),
        "NODE",
    )
    yield collector, trail
    trail.close()
    collector.close()


def test_store_query_and_refusal_reach_the_collector_as_rfc5424_with_a5_xml(
    collector_and_trail,
) -> None:  # type: ignore[no-untyped-def]
    collector, trail = collector_and_trail
    peer = ("MODALITY", "127.0.0.1")
    trail.record(
        events.instances_transferred(
            "NODE", peer, True, {STUDY: {CT: 3}}, ok=True, patients=[("P1", None)]
        )
    )
    trail.record(
        events.query(
            "NODE", peer, "1.2.840.10008.5.1.4.1.2.2.1", b"\x08\x00\x52\x00", ok=True
        )
    )
    trail.record(
        events.association(
            "NODE",
            ("INTRUDER", "127.0.0.1"),
            accepted=False,
            reason="calling AE not allowed",
        )
    )
    wait_for(
        lambda: len(collector.messages) == 3, "three audit messages at the collector"
    )
    assert collector.errors == []
    store, find, refused = collector.messages
    for message in collector.messages:
        assert message.msgid == "DICOM+RFC3881" and message.pri // 8 == 10
        _a5_check(message.xml)
    assert store.xml.find("EventIdentification/EventID").get("csd-code") == "110104"
    assert store.xml.find("EventIdentification").get("EventActionCode") == "C"
    study = store.xml.find(
        f"ParticipantObjectIdentification[@ParticipantObjectID='{STUDY}']"
    )
    assert study.find("ParticipantObjectIDTypeCode").get("csd-code") == "110180"
    assert study.find("ParticipantObjectDescription/SOPClass").attrib == {
        "UID": CT,
        "NumberOfInstances": "3",
    }
    roles = {
        p.get("UserID"): p.find("RoleIDCode").get("csd-code")
        for p in store.xml.findall("ActiveParticipant")
    }
    assert roles == {"MODALITY": "110153", "NODE": "110152"}
    assert find.xml.find("EventIdentification/EventID").get("csd-code") == "110112"
    assert (
        find.xml.find("ParticipantObjectIdentification/ParticipantObjectQuery").text
        == "CABSAA=="
    )
    assert refused.xml.find("EventIdentification/EventID").get("csd-code") == "110114"
    assert (
        refused.xml.find("EventIdentification").get("EventOutcomeIndicator")
        == Outcome.MINOR_FAILURE.value
    )
    assert refused.pri % 8 == 4  # a failure is sent as a warning
    assert (
        refused.xml.find("EventIdentification/EventOutcomeDescription").text
        == "calling AE not allowed"
    )


def test_a_collector_that_is_down_is_logged_and_the_caller_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.tools import free_port

    trail = AuditTrail(
        AuditSettings(
            syslog=SyslogSettings(host="127.0.0.1", port=free_port(), transport="tcp")
        ),
        "NODE",
    )
    trail.record(events.application_activity("NODE", started=True))
    assert "audit message 110100 (outcome 0) not sent to syslog" in caplog.text


def test_json_lines_trail_appends_one_object_per_event_and_rotates(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    trail = AuditTrail(
        AuditSettings(file=AuditFileSettings(path=path, max_mb=0.004, backups=2)),
        "NODE",
    )
    for n in range(12):
        trail.record(
            events.export(
                "NODE",
                ("CLOUD", "10.0.0.9"),
                {f"{STUDY}.{n}": {CT: 1}},
                ok=True,
                deidentified=True,
            )
        )
    files = sorted(path.parent.glob("audit.jsonl*"))
    assert [f.name for f in files if not f.name.endswith(".lock")] == [
        "audit.jsonl",
        "audit.jsonl.1",
        "audit.jsonl.2",
    ]
    assert path.stat().st_mode & 0o777 == 0o600
    oldest_first = (
        path.with_name("audit.jsonl.2"),
        path.with_name("audit.jsonl.1"),
        path,
    )
    records = [
        json.loads(line) for f in oldest_first for line in f.read_text().splitlines()
    ]
    assert all(r["event_id"] == "110106" and r["source"] == "NODE" for r in records)
    assert all(r["xml"].startswith("<AuditMessage>") for r in records)
    assert len(records) < 12  # the oldest were rotated out past two backups
    kept = [int(r["objects"][0]["id"].rsplit(".", 1)[1]) for r in records]
    assert kept == list(
        range(12 - len(kept), 12)
    )  # in order, newest last, none lost in between
