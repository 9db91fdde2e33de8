"""p2pkit-resnet: the ResNet generator of Johnson et al. (2016) and recipes that use it.

The network lives in `p2pkit_resnet.network`; this module imports it (and so torch) only
when one of its names is used, so that ``p2pkit recipes list``, which imports
``p2pkit_resnet.recipes``, stays as fast and torch-free as p2pkit's own listing. The data
source ``stripes`` (`p2pkit_resnet.sources`) needs no torch either.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import p2pkit

# Written for plugin API 1: on a p2pkit without it, this package is a reported broken plugin.
p2pkit.require_api("1")

__version__ = "0.1.0"

_NETWORK_NAMES = (
    "MIN_SIZE",
    "SIZE_MULTIPLE",
    "ResidualBlock",
    "ResnetGenerator",
    "resnet",
    "resnet_6blocks",
    "resnet_9blocks",
)


def __getattr__(name: str) -> Any:
    if name in _NETWORK_NAMES:
        return getattr(import_module("p2pkit_resnet.network"), name)
    raise AttributeError(f"module 'p2pkit_resnet' has no attribute {name!r}")


__all__ = ["__version__", *_NETWORK_NAMES]
