"""Page templates of the API: the OpenAPI docs page; the console's are in console/.

A package so that a wheel install carries the files (setup.cfg package_data).
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


def page_templates(folder: str = "templates") -> Environment:
    """The Jinja environment of one folder of pages under app/http/: HTML escaped, a
    missing variable an error rather than an empty string."""
    return Environment(
        loader=PackageLoader("app.http", folder),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
