"""The one place a device name becomes a ``torch.device``.

Training, captioning and the model-based extractors (CLIP, ASR) all take ``auto``,
``cpu``, ``cuda`` or ``cuda:N``; asking for CUDA on a machine without it is one error
naming the option, not a traceback from inside torch.
"""

from __future__ import annotations

import torch

from densevid.errors import DensevidError


def resolve_device(
    device: str | torch.device | None, what: str | None = None
) -> torch.device:
    """``auto`` (or None) -> CUDA when a GPU is visible, else the CPU; anything
    else as given, checked.

    Args:
        device: auto, cpu, cuda or cuda:N.
        what: what the error names as asking for the device (``"train config"``).
    """
    prefix = f"{what}: " if what else ""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise DensevidError(
            f"{prefix}unknown device {str(device)!r} (use auto, cpu, cuda or cuda:N)"
        ) from e
    if dev.type not in ("cpu", "cuda"):
        raise DensevidError(f"{prefix}device must be auto, cpu or cuda: {device}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DensevidError(f"{prefix}device={device} but no CUDA GPU is visible")
    return dev
