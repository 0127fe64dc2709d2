"""Packaging: the metadata is in setup.cfg; this adds what the code reads at run time.

sql/ (queries, export kinds, views, demo data), migrations/ and alembic.ini are installed
as data files under <prefix>/share/exports, keeping their layout, so that a wheel install
(the image) finds them where app.settings.PROJECT_ROOT looks. Every file under sql/ and
migrations/ is included, so a new query, view or migration needs no change here.
"""

from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
DATA_TREES = ("sql", "migrations")
DATA_FILES = ("alembic.ini",)


def data_files() -> list[tuple[str, list[str]]]:
    """(target folder, [source files]) for every runtime data file, relative to ROOT."""
    folders: dict[str, list[str]] = {"share/exports": list(DATA_FILES)}
    for tree in DATA_TREES:
        for path in sorted((ROOT / tree).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                relative = path.relative_to(ROOT)
                target = (Path("share/exports") / relative.parent).as_posix()
                folders.setdefault(target, []).append(relative.as_posix())
    return sorted(folders.items())


setup(data_files=data_files())
