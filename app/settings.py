"""Configuration: environment variables read once into a validated, immutable object."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/exports"


# Which environment variable sets which setting (from_env reads them, to_env writes them).
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "database_url": "DATABASE_URL",
    "source_database_url": "EXPORTS_SOURCE_DATABASE_URL",
    "storage_url": "EXPORTS_STORAGE_URL",
    "mail_url": "EXPORTS_MAIL_URL",
    "mail_from": "EXPORTS_MAIL_FROM",
    "public_url": "EXPORTS_PUBLIC_URL",
    "secret_key": "EXPORTS_SECRET_KEY",
    "aws_region": "AWS_REGION",
    "aws_endpoint_url": "AWS_ENDPOINT_URL",
    "ses_configuration_set": "EXPORTS_SES_CONFIGURATION_SET",
    "sentry_dsn": "SENTRY_DSN",
    "env": "EXPORTS_ENV",
    "catalog_dir": "EXPORTS_CATALOG_DIR",
    "poller_threads": "EXPORTS_POLLER_THREADS",
    "poller_batch": "EXPORTS_POLLER_BATCH",
    "lease_seconds": "EXPORTS_LEASE_SECONDS",
    "poll_interval": "EXPORTS_POLL_INTERVAL",
    "max_attempts": "EXPORTS_MAX_ATTEMPTS",
    "retry_base_seconds": "EXPORTS_RETRY_BASE_SECONDS",
    "retry_cap_seconds": "EXPORTS_RETRY_CAP_SECONDS",
    "retention_seconds": "EXPORTS_RETENTION_SECONDS",
    "presign_seconds": "EXPORTS_PRESIGN_SECONDS",
    "max_body_bytes": "EXPORTS_MAX_BODY_BYTES",
    "api_db_wait_seconds": "EXPORTS_API_DB_WAIT_SECONDS",
    "log_level": "EXPORTS_LOG_LEVEL",
    "metrics_port": "EXPORTS_METRICS_PORT",
}


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything the API and the poller read from the environment."""

    database_url: str = DEFAULT_DATABASE_URL
    source_database_url: str | None = None
    storage_url: str = f"file://{PROJECT_ROOT / 'var' / 'storage'}"
    mail_url: str = f"file://{PROJECT_ROOT / 'var' / 'mail'}"
    mail_from: str = "exports@localhost"
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = None
    ses_configuration_set: str | None = None
    sentry_dsn: str | None = None
    env: str = "development"
    catalog_dir: Path = PROJECT_ROOT / "sql" / "exports"
    # Poller tuning.
    poller_threads: int = 4
    poller_batch: int = 10
    lease_seconds: float = 30.0
    poll_interval: float = 1.0
    max_attempts: int = 5
    retry_base_seconds: float = 5.0
    retry_cap_seconds: float = 900.0
    # How long a finished export (and its emailed link) stays downloadable.
    retention_seconds: int = 7 * 24 * 3600
    # How long a presigned S3 URL handed out by GET /d/<token> lives.
    presign_seconds: int = 300
    max_body_bytes: int = 64 * 1024
    # How long an API request waits for a database connection before answering 503.
    api_db_wait_seconds: float = 5.0
    log_level: str = "INFO"
    # The poller serves /metrics here (0: not at all).
    metrics_port: int = 9108

    @property
    def is_production(self) -> bool:
        """True when missing secrets must be fatal rather than defaulted."""
        return self.env == "production"

    def to_env(self) -> dict[str, str]:
        """The environment variables that make from_env() give these settings back.

        For starting other processes (pollers, the API) configured like this one.
        """
        return {
            variable: str(value)
            for name, variable in ENVIRONMENT_VARIABLES.items()
            if (value := getattr(self, name)) is not None
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate settings; raise ConfigError naming every bad variable."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        deployment = reader.text("EXPORTS_ENV", cls.env)
        if deployment not in ("development", "production", "test"):
            reader.errors.append("EXPORTS_ENV must be development, production or test")
        secret = env.get("EXPORTS_SECRET_KEY") or None
        if secret is None and deployment == "production":
            reader.errors.append("EXPORTS_SECRET_KEY is required when EXPORTS_ENV=production")
        settings = cls(
            database_url=reader.text("DATABASE_URL", cls.database_url),
            source_database_url=reader.optional("EXPORTS_SOURCE_DATABASE_URL"),
            storage_url=reader.url("EXPORTS_STORAGE_URL", cls.storage_url, ("s3", "file")),
            mail_url=reader.url("EXPORTS_MAIL_URL", cls.mail_url, ("ses", "smtp", "file")),
            mail_from=reader.text("EXPORTS_MAIL_FROM", cls.mail_from),
            public_url=reader.url("EXPORTS_PUBLIC_URL", cls.public_url, ("http", "https")).rstrip(
                "/"
            ),
            secret_key=secret or secrets.token_urlsafe(32),
            aws_region=reader.text("AWS_REGION", env.get("AWS_DEFAULT_REGION") or cls.aws_region),
            aws_endpoint_url=reader.optional("AWS_ENDPOINT_URL"),
            ses_configuration_set=reader.optional("EXPORTS_SES_CONFIGURATION_SET"),
            sentry_dsn=reader.optional("SENTRY_DSN"),
            env=deployment,
            catalog_dir=Path(reader.text("EXPORTS_CATALOG_DIR", str(cls.catalog_dir))),
            poller_threads=reader.integer("EXPORTS_POLLER_THREADS", cls.poller_threads, 1, 256),
            poller_batch=reader.integer("EXPORTS_POLLER_BATCH", cls.poller_batch, 1, 1000),
            lease_seconds=reader.number("EXPORTS_LEASE_SECONDS", cls.lease_seconds, 1, 3600),
            poll_interval=reader.number("EXPORTS_POLL_INTERVAL", cls.poll_interval, 0.05, 300),
            max_attempts=reader.integer("EXPORTS_MAX_ATTEMPTS", cls.max_attempts, 1, 100),
            retry_base_seconds=reader.number(
                "EXPORTS_RETRY_BASE_SECONDS", cls.retry_base_seconds, 0.01, 3600
            ),
            retry_cap_seconds=reader.number(
                "EXPORTS_RETRY_CAP_SECONDS", cls.retry_cap_seconds, 0.01, 86400
            ),
            retention_seconds=reader.integer(
                "EXPORTS_RETENTION_SECONDS", cls.retention_seconds, 60, 366 * 24 * 3600
            ),
            presign_seconds=reader.integer(
                "EXPORTS_PRESIGN_SECONDS", cls.presign_seconds, 10, 3600
            ),
            max_body_bytes=reader.integer(
                "EXPORTS_MAX_BODY_BYTES", cls.max_body_bytes, 1024, 10**7
            ),
            api_db_wait_seconds=reader.number(
                "EXPORTS_API_DB_WAIT_SECONDS", cls.api_db_wait_seconds, 0.1, 60
            ),
            metrics_port=reader.integer("EXPORTS_METRICS_PORT", cls.metrics_port, 0, 65535),
            log_level=reader.text("EXPORTS_LOG_LEVEL", cls.log_level).upper(),
        )
        if settings.log_level not in _LOG_LEVELS:
            reader.errors.append(f"EXPORTS_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        if reader.errors:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(reader.errors))
        return settings


class _Reader:
    """Collects every configuration error instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.errors: list[str] = []

    def optional(self, name: str) -> str | None:
        return self.env.get(name) or None

    def text(self, name: str, default: str) -> str:
        return self.env.get(name) or default

    def url(self, name: str, default: str, schemes: tuple[str, ...]) -> str:
        value = self.text(name, default)
        scheme = value.split("://", 1)[0] if "://" in value else ""
        if scheme not in schemes:
            allowed = ", ".join(f"{s}://" for s in schemes)
            self.errors.append(f"{name}={value!r} must start with one of {allowed}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.env.get(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.errors.append(f"{name}={raw!r} is not a whole number")
            return default
        if not low <= value <= high:
            self.errors.append(f"{name}={value} must be between {low} and {high}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.env.get(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.errors.append(f"{name}={raw!r} is not a number")
            return default
        if not low <= value <= high:
            self.errors.append(f"{name}={value} must be between {low} and {high}")
        return value
