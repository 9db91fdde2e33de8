"""Errors that p2pkit reports to users.

Every [`P2PKitError`][p2pkit.errors.P2PKitError] carries one plain line that names the file, key or
component at fault and says what to do. The command line prints that line and
exits non-zero; tracebacks appear only with ``--debug``.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "OptionValueError",
    "P2PKitError",
    "PluginAPIError",
    "PluginLoadError",
    "RegistryError",
    "TrainingDiverged",
]


class P2PKitError(Exception):
    """A user-facing error whose message is one plain, actionable line."""


class ConfigError(P2PKitError):
    """A recipe, TOML file or ``--set`` override is wrong."""


class RegistryError(P2PKitError):
    """A component name is unknown, ambiguous, or its options do not fit."""


class OptionValueError(RegistryError, ValueError):
    """A component rejected the value of one of its options.

    Also a `ValueError`, so code that catches the factory's own ``ValueError``
    keeps working.
    """


class PluginLoadError(RegistryError):
    """A plugin's entry point failed to import (raised in strict mode or on use)."""


class PluginAPIError(P2PKitError):
    """A plugin needs a plugin API version this p2pkit does not provide (see
    [`require_api`][p2pkit.api_version.require_api])."""


class DataError(P2PKitError):
    """A dataset file or folder cannot be used as it is."""


class CheckpointError(P2PKitError):
    """A checkpoint is missing, corrupt, or does not fit the network it is loaded into."""


class TrainingDiverged(P2PKitError):
    """A loss or a weight became NaN or infinite; the run stops before saving it."""
