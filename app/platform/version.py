"""The one version of this service: the installed package's (setup.cfg), shown by the
OpenAPI document, the pollers' registry rows, Sentry's release and the webhook User-Agent."""

from __future__ import annotations

from functools import cache
from importlib import metadata


@cache
def package_version() -> str:
    """The installed exports package's version ("unknown" when run from a bare tree)."""
    try:
        return metadata.version("exports")
    except metadata.PackageNotFoundError:
        return "unknown"
