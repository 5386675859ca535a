"""The coded concepts the encoders write, chosen once and documented here (PS3.16).

- Presence of a finding: CID 240 "Present-Absent" (SCT 52101004 Present / 272519000 Absent) as
  the value of a qualitative evaluation whose concept name is the finding itself.
- Urgent results: a qualitative evaluation (SCT 260870009 "Priority") whose value is
  RADLEX RID49480 "ACR Category 1 Actionable Finding" from CID 7035 "Actionable Finding
  Classification" (ACR: communicate within minutes). DICOM has no dedicated "AI triage
  priority" concept; this pair uses only codes the standard lists and reads plainly in a viewer.
  Non-urgent reports carry no priority item.
- Procedure reported: CID 100 "Quantitative Diagnostic Imaging Procedures", by modality.
- Probabilities: DCM 122157 "Probability" and DCM 122411 "Threshold Value" in UCUM ``{probability}``.
"""

from __future__ import annotations

from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes

from pipelines.base import Code

__all__ = [
    "coded",
    "PRESENT",
    "ABSENT",
    "PRIORITY",
    "URGENT",
    "PROBABILITY",
    "THRESHOLD",
    "PROBABILITY_UNIT",
    "NO_UNITS",
    "procedure_for_modality",
]

PRESENT = CodedConcept("52101004", "SCT", "Present")
ABSENT = CodedConcept("272519000", "SCT", "Absent")
PRIORITY = CodedConcept("260870009", "SCT", "Priority")
URGENT = CodedConcept("RID49480", "RADLEX", "ACR Category 1 Actionable Finding")
PROBABILITY = CodedConcept("122157", "DCM", "Probability")
THRESHOLD = CodedConcept("122411", "DCM", "Threshold Value")
PROBABILITY_UNIT = CodedConcept("{probability}", "UCUM", "probability")
NO_UNITS = CodedConcept("1", "UCUM", "no units")

_PROCEDURES = {
    "CT": codes.cid100.CTUnspecifiedBodyRegion,
    "MR": codes.cid100.MRIUnspecifiedBodyRegion,
    "DX": codes.cid100.XRUnspecifiedBodyRegion,
    "CR": codes.cid100.XRUnspecifiedBodyRegion,
    "PT": codes.cid100.PETUnspecifiedBodyRegion,
    "NM": codes.cid100.NMUnspecifiedBodyRegion,
}


def coded(code: Code) -> CodedConcept:
    """A pipeline :class:`~pipelines.base.Code` as a highdicom coded concept."""
    return CodedConcept(code.value, code.scheme, code.meaning)


def procedure_for_modality(modality: str) -> CodedConcept:
    """The imaging procedure an AI result reports on (TID 1500 "Procedure reported")."""
    code = _PROCEDURES.get(modality.upper(), codes.cid100.ImagingProcedure)
    return CodedConcept.from_code(code)
