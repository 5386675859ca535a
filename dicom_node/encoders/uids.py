"""Deterministic UIDs for results, so a re-run replaces its earlier output instead of adding to it.

A PACS keys instances by SOP Instance UID (PS3.4 C.4.2.1.4 / B.4.1): storing an object again
under the same UID overwrites it. Deriving result UIDs from what was analysed (source series),
what analysed it (pipeline name and version) and what the object is (a role such as ``"seg"``)
makes re-runs idempotent.

``pydicom.uid.generate_uid`` hashes its entropy sources (SHA-512) after a fixed *prefix*; with
``prefix=None`` it ignores them and returns a random ``2.25.`` UID, so a fixed prefix is needed.
Without an organisation root of our own we use pydicom's documented root; a site with its own
root can set :data:`UID_PREFIX`. The parts are joined with a separator that cannot occur in a
UID or a pipeline name, so ``("ab", "c")`` and ``("a", "bc")`` do not collide.
"""

from __future__ import annotations

from pydicom.uid import PYDICOM_ROOT_UID, UID, generate_uid

__all__ = ["UID_PREFIX", "derive_uid", "result_uid", "device_uid"]

#: Root under which every derived UID is made (at most 54 characters, ending in ".").
UID_PREFIX: str = PYDICOM_ROOT_UID

_SEPARATOR = "\x1f"  # ASCII unit separator


def derive_uid(*parts: str) -> UID:
    """A UID that depends only on ``parts`` (and :data:`UID_PREFIX`)."""
    if not parts:
        raise ValueError("At least one part is needed to derive a UID.")
    return generate_uid(prefix=UID_PREFIX, entropy_srcs=[_SEPARATOR.join(("dicom-node", *parts))])


def result_uid(source_series_uid: str, pipeline: str, version: str, role: str) -> UID:
    """The UID of one result object (or item) made by ``pipeline``/``version`` from a series.

    ``role`` says which: ``"seg"``, ``"seg-series"``, ``"heatmap"``, ``"tracking/1"``…
    """
    return derive_uid("result", source_series_uid, pipeline, version, role)


def device_uid(name: str, version: str, model_checksum: str) -> UID:
    """The Device UID of an algorithm; it changes when the model weights change (IHE AIR)."""
    return derive_uid("device", name, version, model_checksum)
