"""The export catalog: one SQL file per export kind in sql/exports/, parameters declared inside.

A kind file starts with a TOML header in a block comment, then the query:

    /*---
    description = "Orders placed by the user"
    formats = ["csv", "csv.gz", "xlsx"]  # optional; default: every format (formats.py)

    [params.since]
    type = "date"                        # string | integer | number | boolean | date | datetime
    required = false                     # default false
    default = "2020-01-01"               # optional
    description = "Only orders placed on or after this day"
    ---*/
    SELECT ... FROM ... WHERE owner_id = %(owner_id)s AND placed_at >= %(since)s

Queries use psycopg placeholders only. `%(owner_id)s` is always bound from the job (never
from request params); every other placeholder must be a declared parameter and vice versa.
Output column names must be unique: they are the CSV header, the JSON keys, the Parquet
fields. Their types are learned from PostgreSQL (Catalog.describe), never declared.

A kind that exports a period declares `window = true` (and optionally
`window_default_days = 7`: a request without a window gets the last 7 days); its query
then uses `%(window_start)s` and `%(window_end)s`, bound from the job like the owner
(windows.py).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from app.exports.columns import Column, DescribeError, describe_query
from app.exports.formats import FORMATS
from app.exports.windows import WINDOW_PARAMS, Window

PARAM_TYPES = ("string", "integer", "number", "boolean", "date", "datetime")
OWNER_PARAM = "owner_id"

_KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_HEADER = re.compile(r"\A\s*/\*---\n(?P<header>.*?)\n---\*/\s*(?P<query>.*?)\s*;?\s*\Z", re.DOTALL)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
# Every % must start a placeholder or an escaped %%; anything else is a lone %.
_PERCENT_TOKENS = re.compile(r"%%|%\(\w+\)s|%")


class CatalogError(ValueError):
    """A kind file is malformed; raised at start-up so a broken catalog never runs."""


class ParamsInvalid(ValueError):
    """Request params do not fit the kind; `errors` maps a parameter name to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Param:
    """One declared parameter of an export kind."""

    name: str
    type: str
    required: bool = False
    default: Any = None
    description: str = ""

    def convert(self, value: Any) -> Any:
        """The JSON `value` as the Python value bound into the query; ValueError if it isn't one."""
        return _CONVERTERS[self.type](value)


@dataclass(frozen=True)
class ExportKind:
    """A named, parameterised query that produces one export file."""

    name: str
    description: str
    query: str
    params: tuple[Param, ...]
    formats: tuple[str, ...] = field(default=tuple(FORMATS))
    columns: tuple[Column, ...] = ()  # empty until Catalog.describe
    window: bool = False  # the query exports a period: %(window_start)s, %(window_end)s
    window_default: dt.timedelta | None = None  # a request without a window: the last ...

    def column_names(self) -> tuple[str, ...]:
        """The output columns' names, in the query's order."""
        return tuple(c.name for c in self.columns)

    def validate_params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Check request params; return them complete with defaults, still JSON-shaped."""
        errors: dict[str, str] = {}
        declared = {p.name: p for p in self.params}
        for name in given:
            if name not in declared:
                errors[name] = f"unknown parameter for kind {self.name!r}"
        complete: dict[str, Any] = {}
        for param in self.params:
            value = given.get(param.name)
            if value is None:  # absent and null both mean "not given"
                value = param.default
            if value is None:
                if param.required:
                    errors[param.name] = "is required"
                complete[param.name] = None
                continue
            try:
                param.convert(value)
            except (TypeError, ValueError) as exc:
                errors[param.name] = str(exc)
            complete[param.name] = value
        if errors:
            raise ParamsInvalid(errors)
        return complete

    def describe(self, conn: psycopg.Connection) -> tuple[Column, ...]:
        """The query's output columns as the database sees them now; DescribeError if not."""
        # No owner either: a query then reads nothing, whatever it does with its owner.
        return describe_query(conn, self.query, {**self.bind("", {}, Window()), OWNER_PARAM: None})

    def bind(
        self, owner_id: str, params: Mapping[str, Any], window: Window | None = None
    ) -> dict[str, Any]:
        """Query parameters: stored job params converted, and the owner (and the window, for
        a windowed kind) from the job itself."""
        bound = {
            p.name: None if params.get(p.name) is None else p.convert(params[p.name])
            for p in self.params
        }
        bound[OWNER_PARAM] = owner_id
        if self.window:
            bound.update((window or Window()).bound())
        return bound


@dataclass(frozen=True, eq=False)  # one catalog is one object: HTTP caches per catalog
class Catalog:
    """Every export kind, by name."""

    kinds: Mapping[str, ExportKind]

    def get(self, name: str) -> ExportKind | None:
        """The kind called `name`, or None."""
        return self.kinds.get(name)

    def __iter__(self) -> Iterator[ExportKind]:
        return iter(sorted(self.kinds.values(), key=lambda k: k.name))

    def describe(self, conn: psycopg.Connection) -> tuple[Catalog, dict[str, str]]:
        """This catalog with every kind's output columns, learned from a zero-row execution
        of its query (params NULL); and {kind: why it cannot be described}."""
        kinds = dict(self.kinds)
        problems: dict[str, str] = {}
        for kind in self:
            try:
                kinds[kind.name] = replace(kind, columns=kind.describe(conn))
            except DescribeError as exc:
                problems[kind.name] = str(exc)
        return Catalog(kinds), problems


def load_catalog(folder: Path) -> Catalog:
    """Parse and check every kind file in `folder`; raise CatalogError listing all problems."""
    if not folder.is_dir():
        raise CatalogError(f"export catalog folder {folder} does not exist")
    kinds: dict[str, ExportKind] = {}
    problems: list[str] = []
    for path in sorted(folder.glob("*.sql")):
        try:
            kinds[path.stem] = parse_kind(path.stem, path.read_text())
        except CatalogError as exc:
            problems.append(f"{path.name}: {exc}")
    if problems:
        raise CatalogError("invalid export catalog:\n  " + "\n  ".join(problems))
    if not kinds:
        raise CatalogError(f"export catalog folder {folder} holds no *.sql kind")
    return Catalog(kinds)


def parse_kind(name: str, text: str) -> ExportKind:
    """One kind from its file's text; CatalogError when anything is off."""
    if not _KIND_NAME.match(name):
        raise CatalogError("file name must be lower_snake_case (it is the kind's name)")
    match = _HEADER.match(text.replace("\r\n", "\n"))
    if match is None:
        raise CatalogError("must start with a /*--- TOML header ---*/ comment")
    try:
        header = tomllib.loads(match["header"])
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"header is not valid TOML: {exc}") from exc
    query = match["query"]
    if not query:
        raise CatalogError("has no query after the header")
    if "%" in (t.group() for t in _PERCENT_TOKENS.finditer(query)):
        raise CatalogError("a literal % in the query must be written %%")
    declared_params = header.get("params", {})
    if not isinstance(declared_params, dict):
        raise CatalogError("params must be a table of [params.<name>] tables")
    params = tuple(_parse_param(n, spec) for n, spec in declared_params.items())
    used = set(_PLACEHOLDER.findall(query))
    if OWNER_PARAM not in used:
        raise CatalogError(f"query must filter on %({OWNER_PARAM})s")
    declared = {p.name for p in params}
    if OWNER_PARAM in declared:
        raise CatalogError(f"{OWNER_PARAM} is bound from the job and cannot be a parameter")
    if reserved := declared & set(WINDOW_PARAMS):
        raise CatalogError(f"{sorted(reserved)} are bound from the job and cannot be params")
    window = header.get("window", False)
    if not isinstance(window, bool):
        raise CatalogError("window must be true or false")
    window_used = used & set(WINDOW_PARAMS)
    if window and window_used != set(WINDOW_PARAMS):
        raise CatalogError("a windowed kind's query must use %(window_start)s and %(window_end)s")
    if not window and window_used:
        raise CatalogError("the query uses %(window_start)s/%(window_end)s: declare window = true")
    window_default = _window_default(header, window)
    if undeclared := used - declared - {OWNER_PARAM, *WINDOW_PARAMS}:
        raise CatalogError(f"placeholders not declared as params: {sorted(undeclared)}")
    if unused := declared - used:
        raise CatalogError(f"params not used by the query: {sorted(unused)}")
    formats = tuple(header.get("formats", FORMATS))
    if not formats:
        raise CatalogError("formats must name at least one format")
    if unknown := set(formats) - set(FORMATS):
        raise CatalogError(f"unknown formats {sorted(unknown)}; known: {list(FORMATS)}")
    if len(set(formats)) != len(formats):
        raise CatalogError("formats lists a format twice")
    return ExportKind(
        name=name,
        description=str(header.get("description", "")),
        query=query,
        params=params,
        formats=formats,
        window=window,
        window_default=window_default,
    )


def _window_default(header: Mapping[str, Any], window: bool) -> dt.timedelta | None:
    days = header.get("window_default_days")
    if days is None:
        return None
    if not window:
        raise CatalogError("window_default_days needs window = true")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3660:
        raise CatalogError("window_default_days must be a whole number of days, 1 to 3660")
    return dt.timedelta(days=days)


def _parse_param(name: str, spec: Any) -> Param:
    if not isinstance(spec, dict):
        raise CatalogError(f"param {name!r} must be a table")
    if spec.get("type") not in PARAM_TYPES:
        raise CatalogError(f"param {name!r} needs a type, one of {list(PARAM_TYPES)}")
    if unknown := set(spec) - {"type", "required", "default", "description"}:
        raise CatalogError(f"param {name!r} has unknown keys {sorted(unknown)}")
    if not isinstance(spec.get("required", False), bool):
        raise CatalogError(f"param {name!r}: required must be true or false")
    param = Param(
        name=name,
        type=spec["type"],
        required=spec.get("required", False),
        default=spec.get("default"),
        description=str(spec.get("description", "")),
    )
    if param.default is not None:
        if isinstance(param.default, dt.date | dt.datetime):  # TOML has native dates
            raise CatalogError(f"param {name!r}: write the default as a quoted ISO string")
        try:
            param.convert(param.default)
        except (TypeError, ValueError) as exc:
            raise CatalogError(f"param {name!r} default: {exc}") from exc
    return param


def _to_string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("must be a string")
    if len(value) > 1000:
        raise ValueError("must be at most 1000 characters")
    if "\x00" in value:  # PostgreSQL text and jsonb cannot hold NUL
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it contains an unpaired surrogate)") from None
    return value


def _to_integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("must be an integer")
    if not -(2**63) <= value < 2**63:
        raise ValueError("is out of range")
    return value


def _to_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("must be a number")
    try:
        number = float(value)
    except OverflowError:  # an integer too big for a double
        raise ValueError("is out of range") from None
    if not math.isfinite(number):
        raise ValueError("must be finite")
    return number


def _to_boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("must be true or false")
    return value


def _to_date(value: Any) -> dt.date:
    if not isinstance(value, str):
        raise TypeError("must be a date string like 2024-01-31")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date like 2024-01-31") from None


def _to_datetime(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise TypeError("must be a timestamp string like 2024-01-31T12:00:00Z")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 timestamp like 2024-01-31T12:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError("must include a time zone (Z or +hh:mm)")
    return parsed


_CONVERTERS = {
    "string": _to_string,
    "integer": _to_integer,
    "number": _to_number,
    "boolean": _to_boolean,
    "date": _to_date,
    "datetime": _to_datetime,
}
