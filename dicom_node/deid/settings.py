"""A destination's ``deidentify:`` setting (PS3.15 Annex E), kept apart from ``dicom_node.config``
so the de-identification code needs no import of the whole settings module.

``deidentify: basic`` is the Basic Application Level Confidentiality Profile alone; the
mapping form adds options of Table E.1-1:

    deidentify:
      profile: basic
      options: [retain_longitudinal_full_dates, retain_patient_characteristics]
      allow_burned_in: false
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

__all__ = ["DeidOption", "DeidentifySettings"]

DeidOption = Literal[
    "retain_longitudinal_full_dates",
    "retain_patient_characteristics",
    "retain_device_identity",
]


class DeidentifySettings(BaseModel):
    """Basic profile plus ``options``; ``allow_burned_in`` lets instances marked
    BurnedInAnnotation YES go (refused by default: Annex E leaves pixel text to the sender)."""

    profile: Literal["basic"] = "basic"
    options: list[DeidOption] = Field(default_factory=list)
    allow_burned_in: bool = False

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"profile": value} if isinstance(value, str) else value
