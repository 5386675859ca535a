"""Device choice at run time: CUDA when present (with mixed precision), else CPU.

The same worker image runs on GPU and CPU hosts, so the device is decided when a model is
loaded, never at import or install time.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

__all__ = ["autocast", "select_device"]

logger = logging.getLogger(__name__)


def select_device(requested: str | None = None) -> torch.device:
    """The requested device (``"cpu"``, ``"cuda"``, ``"cuda:1"``), or for ``"auto"``/None CUDA
    if available, else CPU.

    A request for CUDA on a host without it, or for a GPU index the host does not have, is a
    configuration error, not a silent fallback: the operator asked for a GPU and should learn
    they did not get one.
    """
    if requested and requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError(f"device {requested!r} requested but CUDA is not available on this host")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise RuntimeError(
                    f"device {requested!r} requested but this host has {torch.cuda.device_count()} CUDA device(s)"
                )
        return device
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    logger.debug("selected device %s", device)
    return device


@contextlib.contextmanager
def autocast(device: torch.device) -> Iterator[None]:
    """Automatic mixed precision (float16) on CUDA; a no-op on CPU, where it brings no speed-up."""
    if device.type == "cuda":
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            yield
    else:
        yield
