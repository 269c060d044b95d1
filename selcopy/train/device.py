"""Which device to train on: CUDA, then MPS, then CPU, unless the user says."""

from __future__ import annotations

import torch

from selcopy.errors import SelcopyError


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise SelcopyError(f"--device: unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from e
    if device.type not in ("cpu", "cuda", "mps"):
        raise SelcopyError(f"--device {name}: not a device selcopy trains on (use auto, cpu, cuda, cuda:N or mps)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SelcopyError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SelcopyError(f"--device {name}: MPS is not available on this machine")
    return device
