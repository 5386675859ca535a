"""Clinical-prediction sidecar: 12-month risk of chronic-kidney-disease progression from a
patient's irregular, partly missing lab and blood-pressure series.

Flow: ``inputs`` (FHIR Bundle / CSV → observations, LOINC + units via ``codes``) →
``features`` (GRU-D tensors) → ``model`` (GRU-D, batched ``RiskModel.predict``) → ``pipeline``
(SidecarResult, FHIR RiskAssessment). ``cohort`` generates the synthetic training data;
``train``/``evaluate`` make and check the shipped weights. Research use only.
"""
