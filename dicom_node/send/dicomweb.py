"""DICOMweb STOW-RS sender (dicomweb-client)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom import dcmread

from dicom_node.config import DicomWebDestination
from dicom_node.errors import DestinationError
from dicom_node.send.report import SendReport

__all__ = ["stow_files"]


def stow_files(
    dest: DicomWebDestination, paths: Sequence[Path], progress: Callable[[int], None] | None = None, batch: int = 50
) -> SendReport:
    """STOW-RS ``paths`` in batches; a batch the server refuses is reported per file."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=dest.url)
    # The send job retries with back-off (dicom_node.queue); the client's own five attempts
    # only held a send worker some 30 s per attempt on a destination that is down.
    client.set_http_retry_params(retry=False)
    report = SendReport()
    for start in range(0, len(paths), batch):
        chunk = list(paths[start : start + batch])
        try:
            response = client.store_instances([dcmread(p) for p in chunk])
        except requests.exceptions.ConnectionError as exc:
            raise DestinationError(f"{dest.url} unreachable: {exc}", [str(p) for p in paths[start:]]) from exc
        except requests.exceptions.HTTPError as exc:
            for p in chunk:
                report.failed[p] = f"HTTP {exc.response.status_code if exc.response is not None else '?'}"
            continue
        failed = {str(item.ReferencedSOPInstanceUID) for item in response.get("FailedSOPSequence", [])}
        for p in chunk:
            uid = str(dcmread(p, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
            if uid in failed:
                report.failed[p] = "refused by STOW-RS server"
            else:
                report.sent.append(p)
        if progress:
            progress(len(chunk))
    return report
