"""QIDO-RS (PS3.18 10.6): a search's query parameters become a C-FIND identifier, which the
same planner as the C-FIND SCP (:func:`dicom_node.qr.query.plan_find`) checks and turns into
SQL, so a query matches over HTTP exactly what it matches over DIMSE.

* ``/studies``, ``/studies/{study}/series``, ``/studies/{study}/series/{series}/instances``
  are hierarchical queries in the Study Root model (PS3.4 C.6.2).
* ``/series``, ``/instances`` and ``/studies/{study}/instances`` are relational queries
  (PS3.4 C.4.1.2.2.2): the same level with no unique key required above it, planned with a
  one-level model of their own.

No match is ``200`` with ``[]``: PS3.18 8.3.4.4.1 says 204, but RFC 9110 gives a 204 no body
at all, DICOM CP-2473 changes it back to 200 for that reason, and Orthanc's DICOMweb plug-in
answers 200 ``[]`` (dicomweb-client reads either as no result).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from pydicom import config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from dicom_node.qr.keys import COMPUTED, KEYS
from dicom_node.qr.model import MODELS, UNIQUE_KEY, InformationModel, Level
from dicom_node.qr.query import plan_find
from dicom_node.store.index import Index
from dicom_node.web.dicomweb.errors import BadRequest

__all__ = ["MAX_RESULTS", "Search", "parse_search", "search"]

log = logging.getLogger(__name__)

_RELATIONAL = {
    level: InformationModel(
        f"relational-{level.value.lower()}", (level,), MODELS["study"].find, "", ""
    )
    for level in (Level.SERIES, Level.IMAGE)
}

# PS3.18 Tables 10.6.3-3/-4/-5: what each level returns when includefield does not say more.
_DEFAULT_FIELDS: dict[Level, tuple[str, ...]] = {
    Level.STUDY: (
        "StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy", "ReferringPhysicianName",
        "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyID",
        "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
    ),
    Level.SERIES: ("Modality", "SeriesDescription", "SeriesNumber", "SeriesInstanceUID", "NumberOfSeriesRelatedInstances"),
    Level.IMAGE: ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns", "BitsAllocated", "NumberOfFrames"),
}  # fmt: skip
_CONTROL = {"limit", "offset", "includefield", "fuzzymatching"}
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
MAX_RESULTS = 10000  # per response; a client pages on with offset


@dataclass
class Search:
    """A parsed QIDO-RS request: the identifier to plan, the model, and paging."""

    model: InformationModel
    identifier: Dataset
    limit: int
    offset: int
    fuzzy_ignored: bool
    capped: bool  # the limit is the server's, not the client's: say so when more match


def _tag(name: str) -> int:
    """An attribute of a query parameter, by keyword or 8-hex-digit tag (PS3.18 8.3.4.1)."""
    if _TAG.match(name):
        tag = int(name, 16)
        if keyword_for_tag(tag):
            return tag
    else:
        tag = tag_for_keyword(name)  # type: ignore[assignment]
        if tag is not None:
            return int(tag)
    raise BadRequest(f"query parameter {name!r} names no DICOM attribute")


def _count(params: dict[str, list[str]], name: str, default: int) -> int:
    values = params.get(name, [])
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise BadRequest(f"{name} must be a non-negative integer, not {values[-1]!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must be a non-negative integer, not {value}")
    return value


def _includes(level: Level, params: dict[str, list[str]]) -> set[str]:
    names = {n.strip() for v in params.get("includefield", []) for n in v.split(",") if n.strip()}
    if "all" in names:
        held = {k for k, key in KEYS.items() if key.level.depth <= level.depth}
        held |= {k for k, c in COMPUTED.items() if c.level.depth <= level.depth}
        return (names - {"all"}) | held | set(_DEFAULT_FIELDS[level])
    return names | set(_DEFAULT_FIELDS[level])


def parse_search(
    level: Level, params: dict[str, list[str]], fixed: dict[str, str], relational: bool, max_results: int = MAX_RESULTS
) -> Search:
    """The search for ``params`` (query parameters, each with its values) at ``level``;
    ``fixed`` are the UIDs the path names; at most ``max_results`` are returned, whatever
    ``limit`` asks. Raises BadRequest for what cannot be understood."""
    model = _RELATIONAL[level] if relational else MODELS["study"]
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level.value
    for name in _includes(level, params):
        tag = _tag(name)
        if dictionary_VR(tag) != "SQ":
            identifier.add_new(tag, dictionary_VR(tag), None)
    for name, values in params.items():
        if name in _CONTROL:
            continue
        tag = _tag(name)
        vr = dictionary_VR(tag)
        if vr == "SQ":
            raise BadRequest(f"matching on sequence attribute {name!r} is not supported")
        value = values[-1]
        if vr == "UI":  # PS3.18 8.3.4.1: a list of UIDs is comma- or backslash-separated
            value = value.replace(",", "\\")
        try:  # unvalidated here: the planner refuses what it cannot match, and pydicom's
            # warning would log the value, which may be a patient's name or birth date
            identifier.add(DataElement(tag, vr, value, validation_mode=config.IGNORE))
        except (ValueError, TypeError, OverflowError):  # the value is not echoed: it may be a name
            raise BadRequest(f"{name}: not a valid {vr} value") from None
    for keyword, uid in fixed.items():
        identifier.add_new(keyword, "UI", uid)
    # RetrieveURL needs the UIDs of the level and those above, whatever the model returns.
    for lv in (Level.STUDY, Level.SERIES, Level.IMAGE)[: level.depth]:
        keyword = UNIQUE_KEY[lv]
        if keyword not in identifier:
            identifier.add_new(keyword, "UI", None)
    fuzzy = [v.lower() for v in params.get("fuzzymatching", [])]
    if any(v not in ("true", "false") for v in fuzzy):
        raise BadRequest("fuzzymatching must be true or false")
    limit = _count(params, "limit", max_results + 1)
    capped = limit > max_results
    return Search(model, identifier, min(limit, max_results), _count(params, "offset", 0), "true" in fuzzy, capped)


def search(index: Index, query: Search, base_url: str) -> tuple[list[dict[str, object]], bool]:
    """The matches of ``query`` as DICOM JSON (PS3.18 F.2), each with its RetrieveURL, and
    whether the server's cap left more out (PS3.18 8.3.4.4.3: the response then says so).

    Raises QRError when the planner refuses the identifier, as it would a C-FIND's.
    """
    plan = plan_find(query.model, query.identifier, index.engine.dialect.name)
    matches: Iterator[Dataset] = plan.responses(index, retrieve_ae="")
    out = []
    for ds in islice(matches, query.offset, query.offset + query.limit):
        for keyword in ("QueryRetrieveLevel", "RetrieveAETitle"):
            if keyword in ds:
                delattr(ds, keyword)
        ds.RetrieveURL = _retrieve_url(base_url, ds, plan.level)
        out.append(ds.to_json_dict())
    more = query.capped and len(out) == query.limit and next(matches, None) is not None
    return out, more


def _retrieve_url(base_url: str, ds: Dataset, level: Level) -> str:
    url = f"{base_url}/studies/{ds.StudyInstanceUID}"
    if level.depth >= Level.SERIES.depth:
        url += f"/series/{ds.SeriesInstanceUID}"
    if level is Level.IMAGE:
        url += f"/instances/{ds.SOPInstanceUID}"
    return url
