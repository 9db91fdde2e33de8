"""The plugin API version, and how a plugin requires one.

The names listed on the documentation's *Public API* page are p2pkit's plugin API. Its
version, [`PLUGIN_API_VERSION`][p2pkit.api_version.PLUGIN_API_VERSION], is ``MAJOR.MINOR``: a
minor release of the API only adds (names, options, keyword arguments with defaults), while
a new major version may remove or change what the page lists, after a deprecation period.

A plugin states the version it was written for at the top of the module its entry points
name, before it uses anything else of p2pkit:

```python
import p2pkit

p2pkit.require_api("1")
```

On a p2pkit whose API does not satisfy it, the import fails with
[`PluginAPIError`][p2pkit.errors.PluginAPIError], which p2pkit reports like any broken plugin:
one line in ``p2pkit plugins list`` and ``p2pkit plugins check``, and the error when one of
the plugin's names is used, while every other component keeps working.

This module imports neither torch nor any plugin.
"""

from __future__ import annotations

import re
import sys

from p2pkit.errors import PluginAPIError

__all__ = ["PLUGIN_API_VERSION", "require_api"]

#: The plugin API this p2pkit provides, ``MAJOR.MINOR``.
PLUGIN_API_VERSION = "1.0"

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?")


def _parse(version: str, what: str) -> tuple[int, int]:
    match = _VERSION.fullmatch(str(version).strip())
    if match is None:
        raise PluginAPIError(
            f"{what}: {version!r} is not a plugin API version; write MAJOR or MAJOR.MINOR, "
            f'e.g. require_api("1")'
        )
    return int(match.group(1)), int(match.group(2) or 0)


def require_api(version: str) -> None:
    """Fail unless this p2pkit provides plugin API ``version`` (``"1"`` or ``"1.0"``).

    The requirement ``MAJOR.MINOR`` is met by the same major version with the same or a
    later minor one; ``"1"`` means ``"1.0"``. Call it at the top of a plugin's module, so
    that an unsuitable p2pkit makes the plugin a cleanly reported broken plugin instead of
    failing later in an obscure way.

    Args:
        version: the plugin API version the plugin was written for.

    Raises:
        PluginAPIError: the version is not provided; one line naming the calling module,
            the version it needs and the one available.
    """
    caller = sys._getframe(1).f_globals.get("__name__", "the caller")
    wanted = _parse(version, caller)
    have = _parse(PLUGIN_API_VERSION, "p2pkit")
    if wanted[0] == have[0] and wanted[1] <= have[1]:
        return
    from p2pkit import __version__

    newer = "a newer p2pkit" if wanted > have else f"a release of {caller} made for API {have[0]}"
    raise PluginAPIError(
        f"{caller} needs p2pkit plugin API {version}, but p2pkit {__version__} provides "
        f"{PLUGIN_API_VERSION}; install {newer}"
    )
