"""The DICOM SCP: association control, C-ECHO and C-STORE into the durable store."""
