"""Results into the radiology worklist: HL7 v2 ORU^R01 over MLLP, FHIR R4 DiagnosticReport,
webhooks. One module per format or transport; :mod:`dicom_node.jobs.notify` runs them as
outbox jobs.

    report   what a notification says, read from the stored SR (or the index, for a failure)
    hl7      ORU^R01 builder (hl7apy)
    mllp     MLLP client and ACK verdict (python-hl7's framing)
    fhir     transaction Bundle builder, validation (fhir.resources) and POST
    webhook  Jinja-rendered POST, patient data only with ``phi: true``
"""
