"""MR brain extraction with HD-BET's published weights (extra ``dicom-node[models]``)."""
