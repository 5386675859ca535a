"""One validated settings object, loaded once (YAML file + ``DICOM_NODE_*`` environment) and
passed to every component, so nothing reads global configuration behind the caller's back.

Environment variables override the file: ``DICOM_NODE_PORT=11113``,
``DICOM_NODE_DATABASE_URL=postgresql+psycopg2://…``; nested fields use ``__``
(``DICOM_NODE_COMPLETION__QUIET_PERIOD_S=2``).

``serve`` records the settings it runs with (file, environment and flags merged) in its data
folder (:func:`record_settings`); its receiver and worker processes, and later commands run
against that folder, load exactly those (:func:`recorded_settings`), so no override is lost on
the way to another process.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from dicom_node.audit.settings import AuditSettings
from dicom_node.deid.settings import DeidentifySettings
from dicom_node.errors import ConfigError
from dicom_node.tls import PeerTlsSettings, ScpTlsSettings
from dicom_node.routing.rules import Rule

__all__ = [
    "Peer",
    "Permission",
    "DicomDestination",
    "DicomWebDestination",
    "Hl7Destination",
    "FhirDestination",
    "WebhookDestination",
    "NOTIFY_KINDS",
    "CompletionSettings",
    "QueueSettings",
    "OrderSettings",
    "PipelineSettings",
    "HttpSettings",
    "Settings",
    "load_settings",
    "record_settings",
    "recorded_settings",
    "RECORD_NAME",
]

RECORD_NAME = "node-settings.json"  # in data_dir: the settings the node's serve runs with

_AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE VR: no backslash, no control chars


def _check_ae(value: str) -> str:
    if not _AE_TITLE.match(value) or not value.strip():
        raise ValueError(f"{value!r} is not a valid AE title (1-16 printable characters, no backslash)")
    return value.strip()


Permission = Literal["store", "find", "move", "get", "echo"]


class Peer(BaseModel):
    """A calling AE allowed to associate; ``host`` optionally pins it to an address.

    ``permissions``: the DIMSE services it may use, store and echo unless listed. Upgrading: a
    peer that queried or retrieved before needs ``find``/``move``/``get`` added (its refusals say
    so). ``move_destinations``: the AE titles its C-MOVEs may send to (None: any destination).
    """

    ae_title: str
    host: str | None = None
    permissions: list[Permission] = Field(default_factory=lambda: ["store", "echo"])
    move_destinations: list[str] | None = None

    _ae = field_validator("ae_title")(_check_ae)


class DicomDestination(BaseModel):
    """A DIMSE peer we send to (C-STORE SCU) or that may be a C-MOVE destination."""

    kind: Literal["dicom"] = "dicom"
    ae_title: str
    host: str
    port: int = Field(ge=1, le=65535)
    deidentify: DeidentifySettings | None = Field(
        default=None, description="PS3.15 Annex E on the way out ('basic' or a mapping); results coming back are re-identified"
    )
    tls: PeerTlsSettings | None = Field(default=None, description="reach it over DICOM TLS (PS3.15 B.1)")

    _ae = field_validator("ae_title")(_check_ae)


class DicomWebDestination(BaseModel):
    """A DICOMweb server we STOW-RS to."""

    kind: Literal["dicomweb"] = "dicomweb"
    url: str
    deidentify: DeidentifySettings | None = Field(default=None, description="PS3.15 Annex E on the way out")


class Hl7Destination(BaseModel):
    """A RIS/worklist taking HL7 v2.5.1 ORU^R01 results over MLLP (``dicom_node.notify.hl7``)."""

    kind: Literal["hl7"]
    host: str
    port: int = Field(ge=1, le=65535)
    sending_application: str = "DICOM_NODE"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    version: Literal["2.5.1"] = "2.5.1"
    connect_timeout_s: float = Field(5.0, gt=0)
    ack_timeout_s: float = Field(10.0, gt=0, description="no ACK within this is a failed attempt (retried)")
    send_failures: bool = Field(False, description="a failed pipeline sends an ORU with OBR-25 X and the reason")


class FhirDestination(BaseModel):
    """A FHIR R4 server taking a transaction Bundle per result (``dicom_node.notify.fhir``)."""

    kind: Literal["fhir"]
    base_url: str
    auth_token: str | None = Field(None, description="sent as 'Authorization: Bearer …'")
    fhir_version: Literal["R4"] = "R4"
    timeout_s: float = Field(30.0, gt=0)


class WebhookDestination(BaseModel):
    """An HTTP endpoint (chat, dashboard) POSTed a rendered body per result.

    ``template`` is a Jinja template of the body (JSON of the summary when unset); it sees the
    patient's name and ID only with ``phi: true`` (``dicom_node.notify.webhook``).
    """

    kind: Literal["webhook"]
    url: str
    template: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    phi: bool = False
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _check_template(self) -> WebhookDestination:
        from dicom_node.notify.webhook import check_template

        if self.template is not None:
            check_template(self.template, self.phi)
        return self


NOTIFY_KINDS = ("hl7", "fhir", "webhook")  # destinations a result is announced to, not sent images

Destination = DicomDestination | DicomWebDestination | Hl7Destination | FhirDestination | WebhookDestination


class CompletionSettings(BaseModel):
    """When a series/study counts as complete: ``quiet_period_s`` without new instances."""

    quiet_period_s: float = Field(10.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)


class QueueSettings(BaseModel):
    """Celery broker and the outbox's retry policy.

    ``broker_url`` None runs the embedded broker (kombu's filesystem transport under
    ``data_dir/broker``): no server to install. Production: ``redis://host:6379/0``.
    """

    broker_url: str | None = None
    max_attempts: int = Field(5, ge=1)
    retry_base_s: float = Field(5.0, gt=0, description="back-off: base * 2**(attempt-1), capped")
    retry_max_s: float = Field(600.0, gt=0)
    lease_s: float = Field(900.0, gt=0, description="a running job silent this long is re-dispatched")
    requeue_after_s: float = Field(300.0, gt=0, description="a queued job not started this long is re-sent")
    relay_interval_s: float = Field(0.2, gt=0)
    embedded_workers: dict[str, int] = Field(default_factory=lambda: {"gpu": 1, "cpu": 1, "send": 2})


class OrderSettings(BaseModel):
    """The MLLP listener for the RIS's orders (ORM^O01 / OMI^O23, ``dicom_node.orders``)."""

    host: str = "0.0.0.0"
    port: int | None = Field(None, ge=0, le=65535, description="None: no order listener")


class PipelineSettings(BaseModel):
    """Per-pipeline overrides: a MONAI bundle to use instead of the demo one, urgency threshold."""

    bundle: Path | None = None
    urgent_threshold: float = Field(0.9, ge=0, le=1, description="classification probability flagged urgent")
    urgent_volume_ml: float | None = Field(None, gt=0, description="segmented volume flagged urgent; None = never")
    device: str | None = None
    notify: list[str] = Field(default_factory=list, description="hl7/fhir/webhook destinations told of each result")


class HttpSettings(BaseModel):
    """The web face (:mod:`dicom_node.web`): DICOMweb, health and metrics over HTTP.

    Off unless enabled (or ``serve --http-port``); loopback by default, since anything else
    exposes the store to whoever holds a token. Every path but ``public_paths`` needs a bearer token.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_paths: list[str] = Field(default_factory=lambda: ["/healthz", "/metrics"])
    max_upload_mb: int = Field(2048, ge=1, description="a STOW-RS body larger than this gets 413")


class Settings(BaseSettings):
    """Every setting of the node; defaults run it embedded (SQLite, no Redis) in ``./var``."""

    model_config = SettingsConfigDict(env_prefix="DICOM_NODE_", env_nested_delimiter="__", extra="forbid")

    ae_title: str = "DICOM_NODE"
    host: str = "0.0.0.0"
    port: int = Field(11112, ge=0, le=65535)
    data_dir: Path = Path("var")
    database_url: str | None = None
    takeover_s: float = Field(
        30.0, gt=0,
        description="PostgreSQL: a replica that died holding index rows (lost host, frozen process) loses them to the others after this",
    )  # fmt: skip
    max_pdu: int = Field(0, ge=0, description="largest PDU we accept; 0 = unlimited (fewest fragments)")
    receivers: int = Field(
        default_factory=lambda: max(1, min(4, os.cpu_count() or 1)), ge=1,
        description="SCP processes; with more than one, serve accepts and hands each association to the one "
        "serving fewest. Parallel associations of small images need them (2 cores, 1000 × 64² over four "
        "associations, bench/ingest.py medians: 1.55 s with one, 1.10 s with two); an idle receiver takes no "
        "CPU from the workers. Default: one per core, at most 4",
    )
    network_timeout_s: float = 60.0
    association_timeout_s: float = Field(
        10.0, gt=0,
        description="a connection must have sent its whole A-ASSOCIATE-RQ within this, however slowly its bytes "
        "come (a sender needs milliseconds); distinct from network_timeout_s, the idle time of an association",
    )  # fmt: skip
    max_associations_per_peer: int = Field(
        16, ge=1,
        description="connections one peer address may hold at once; more are rejected (A-ASSOCIATE-RJ, local "
        "limit exceeded), so one peer cannot take every association the node serves",
    )  # fmt: skip
    allowed_peers: list[Peer] = Field(default_factory=list, description="empty: any calling AE is accepted")
    duplicate_policy: Literal["replace", "keep"] = "replace"
    min_free_disk_mb: int = Field(500, ge=0, description="refuse C-STORE with 0xA700 below this")
    completion: CompletionSettings = Field(default_factory=CompletionSettings)
    destinations: dict[str, Destination] = Field(default_factory=dict)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    orders: OrderSettings = Field(default_factory=OrderSettings)
    rules: list[Rule] = Field(default_factory=list)
    pipelines: dict[str, PipelineSettings] = Field(default_factory=dict)
    http: HttpSettings = Field(default_factory=HttpSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    tls: ScpTlsSettings | None = Field(None, description="DICOM TLS for the SCP (PS3.15 B.1/B.9)")
    return_results_to_origin: bool = Field(True, description="send results to the calling AE's destination")
    origins: dict[str, str] = Field(
        default_factory=dict, description="calling AE title → destination name, where they differ"
    )
    log_level: str = "INFO"
    log_phi: bool = False

    _ae = field_validator("ae_title")(_check_ae)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'index.sqlite'}"
        return self

    @model_validator(mode="after")
    def _check_tls(self) -> Settings:
        if self.tls is not None and self.tls.only and self.receivers > 1:
            raise ValueError("tls.only needs receivers: 1 (the dispatcher hands plain TCP connections only)")
        return self

    @model_validator(mode="after")
    def _check_references(self) -> Settings:
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate rule names: {dupes}")
        for rule in self.rules:
            for dest in rule.forward:
                self._check_kind(dest, f"rule {rule.name!r} field 'forward'", notify=False)
            if rule.fetch_priors:
                self._check_kind(rule.fetch_priors.source, f"rule {rule.name!r} field 'fetch_priors.source'", notify=False)
            for dest in rule.notify or []:
                self._check_kind(dest, f"rule {rule.name!r} field 'notify'", notify=True)
        for ae, dest in self.origins.items():
            self._check_kind(dest, f"origins[{ae!r}]", notify=False)
        for name, pipeline in self.pipelines.items():
            for dest in pipeline.notify:
                self._check_kind(dest, f"pipelines[{name!r}] field 'notify'", notify=True)
        return self

    def _check_kind(self, dest: str, where: str, notify: bool) -> None:
        """DICOM objects go to DICOM/DICOMweb destinations, notifications to hl7/fhir/webhook ones."""
        if dest not in self.destinations:
            raise ValueError(f"{where}: unknown destination {dest!r}")
        if (self.destinations[dest].kind in NOTIFY_KINDS) != notify:
            wanted = "an hl7, fhir or webhook" if notify else "a dicom or dicomweb"
            raise ValueError(f"{where}: destination {dest!r} is {self.destinations[dest].kind}; {wanted} one is needed")

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "store"

    def origin_destination(self, calling_ae: str) -> str | None:
        """The destination results go back to for a study sent by ``calling_ae``."""
        if calling_ae in self.origins:
            return self.origins[calling_ae]
        for name, dest in self.destinations.items():
            if isinstance(dest, DicomDestination) and dest.ae_title == calling_ae:
                return name
        return None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: CLI flags (init) > environment > YAML file, so a deployment can override
        # one value without rewriting the file, and a flag typed by hand always wins.
        file_source = _FileSource(settings_cls, _file_data.get("data", {}))
        return init_settings, env_settings, file_source


class _FileSource(PydanticBaseSettingsSource):
    """The YAML file's values, lowest precedence."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


_file_data: dict[str, dict[str, Any]] = {}


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load settings: ``overrides`` (CLI flags) over ``DICOM_NODE_*`` environment over the YAML file.

    Raises ConfigError naming the field when anything is invalid.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must be a mapping at the top level")
    return _validated(data, overrides)


def record_settings(settings: Settings, config_file: Path | None = None) -> Path:
    """Write ``settings`` to ``data_dir/node-settings.json`` and return its path.

    Written to a temporary file and renamed, so a process starting meanwhile reads the old
    record or the new one, never half of one; readable by the owner only, because database
    and broker URLs are kept exactly as given (a child process needs their passwords).
    ``config_file`` is kept beside them to say where the settings came from.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "config_file": str(config_file.resolve()) if config_file is not None else None,
        "settings": settings.model_dump(mode="json", by_alias=True),
    }
    target = settings.data_dir / RECORD_NAME
    fd, temporary = tempfile.mkstemp(dir=settings.data_dir, prefix=f".{RECORD_NAME}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def recorded_settings(data_dir: Path, **overrides: Any) -> Settings | None:
    """The settings a node recorded in ``data_dir``, with ``overrides`` (flags) on top; None
    when no node recorded any there. Raises ConfigError when the record cannot be read."""
    path = data_dir.expanduser() / RECORD_NAME
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read recorded settings {path}: {exc}") from exc
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise ConfigError(f"recorded settings {path} hold no 'settings' mapping")
    # The record is the outcome of file, environment and flags: it is loaded as given, not
    # under this shell's environment again.
    return _validated({}, {**record["settings"], **overrides})


def _validated(file_data: dict[str, Any], overrides: dict[str, Any]) -> Settings:
    """Settings from ``overrides`` over the environment over ``file_data``; ConfigError naming
    each invalid field."""
    _file_data["data"] = file_data
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
