"""The device a job computes on: CUDA when a GPU is visible (the paper scale's jobs ask SLURM for
one), else the CPU; the environment variable ``REPRO_DEVICE`` (e.g. ``cpu``, ``cuda:1``) overrides."""

from __future__ import annotations

import os


def default_device():
    import torch  # noqa: PLC0415

    return torch.device(os.environ.get("REPRO_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))
