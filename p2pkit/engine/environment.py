"""What a bug report needs: versions, platform, devices and plugins (`p2pkit env`, env.json)."""

from __future__ import annotations

import platform
from typing import Any

import torch

from p2pkit.engine.device import SpeedSettings
from p2pkit.registry import KINDS, get_registry


def environment_info(speed: SpeedSettings | None = None) -> dict[str, Any]:
    """Versions, device and plugins: what a bug report needs (``p2pkit env``)."""
    from importlib import metadata

    versions: dict[str, str] = {"python": platform.python_version()}
    for dist in ("p2pkit", "torch", "kornia", "timm", "safetensors", "numpy", "pillow"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    info: dict[str, Any] = {
        "versions": versions,
        "platform": platform.platform(),
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu_threads": torch.get_num_threads(),
        "plugins": {
            kind: {
                i.name: f"{i.distribution} {i.version}".strip()
                for i in get_registry(kind).infos()
                if i.distribution != "p2pkit"
            }
            for kind in KINDS
        },
        "plugin_failures": [f.describe() for k in KINDS for f in get_registry(k).failures()],
    }
    if speed is not None:
        info["speed"] = speed.describe()
    return info


__all__ = ["environment_info"]
