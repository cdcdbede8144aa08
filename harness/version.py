"""The harness version: the installed ``relubench`` distribution's, from its metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _distribution_version() -> str:
    try:
        return version("relubench")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        return "0+unknown"


__version__ = _distribution_version()
