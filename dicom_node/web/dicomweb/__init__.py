"""DICOMweb (PS3.18) under ``/dicom-web``: one module per service, the routes in :mod:`.routes`."""
