"""The node's web face: DICOMweb (QIDO-RS, WADO-RS, STOW-RS) over the store and index, bearer
tokens with roles, ``/healthz`` and Prometheus ``/metrics``; run in serve's process by
:class:`~dicom_node.web.server.WebServer`."""
