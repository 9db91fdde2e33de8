"""Datasets: layouts, decoding, augmentation, data sources and the tools that make datasets.

The package exports the names a plugin needs, imported on first use so that importing
``p2pkit.data`` (or ``p2pkit.data.download``) does not import torch:

* `ImageDataset`: what a dataset layout's factory returns
  ([`p2pkit.data.base.ImageDataset`][p2pkit.data.base.ImageDataset]);
* `DataSource`: what a data source's factory returns
  ([`p2pkit.data.sources.DataSource`][p2pkit.data.sources.DataSource]);
* `data_home`: the folder that holds one folder per dataset
  ([`p2pkit.data.download.data_home`][p2pkit.data.download.data_home]).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["DataSource", "ImageDataset", "data_home"]

_WHERE = {
    "DataSource": "p2pkit.data.sources",
    "ImageDataset": "p2pkit.data.base",
    "data_home": "p2pkit.data.download",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'p2pkit.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
