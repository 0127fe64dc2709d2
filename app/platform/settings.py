"""Configuration: environment variables read once into a validated, immutable object."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

# Where sql/, migrations/ and alembic.ini are (and var/ for local files): next to app/ in a
# checkout or an editable install; under <prefix>/share/exports in a wheel install (the
# image), where setup.py puts them as data files.
_SOURCE_TREE = Path(__file__).resolve().parents[2]
PROJECT_ROOT = (
    _SOURCE_TREE
    if (_SOURCE_TREE / "alembic.ini").is_file()
    else Path(sysconfig.get_path("data")) / "share" / "exports"
)

_LOOPBACK = ("127.0.0.0/8", "::1/128")


def _new_fernet_key() -> str:
    """A random Fernet key (development only: data encrypted with it outlives no process)."""
    return Fernet.generate_key().decode()


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
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
    "api_key_cache_seconds": "EXPORTS_API_KEY_CACHE_SECONDS",
    "log_level": "EXPORTS_LOG_LEVEL",
    "log_format": "EXPORTS_LOG_FORMAT",
    "sentry_release": "SENTRY_RELEASE",
    "sentry_environment": "SENTRY_ENVIRONMENT",
    "metrics_port": "EXPORTS_METRICS_PORT",
    "metrics_bind": "EXPORTS_METRICS_BIND",
    "stall_seconds": "EXPORTS_POLLER_STALL_SECONDS",
    "maintenance_interval": "EXPORTS_MAINTENANCE_INTERVAL",
    "outbox_retention_seconds": "EXPORTS_OUTBOX_RETENTION_SECONDS",
    "max_active_per_owner": "EXPORTS_MAX_ACTIVE_PER_OWNER",
    "max_schedules_per_owner": "EXPORTS_MAX_SCHEDULES_PER_OWNER",
    "dedupe_seconds": "EXPORTS_DEDUPE_SECONDS",
    "sns_topic_arns": "EXPORTS_SNS_TOPIC_ARNS",
    "sns_max_age_seconds": "EXPORTS_SNS_MAX_AGE_SECONDS",
    "sns_cert_host_pattern": "EXPORTS_SNS_CERT_HOST_PATTERN",
    "sns_ca_bundle": "EXPORTS_SNS_CA_BUNDLE",
    "s3_sse": "EXPORTS_S3_SSE",
    "s3_kms_key_id": "EXPORTS_S3_KMS_KEY_ID",
    "webhook_allow_networks": "EXPORTS_WEBHOOK_ALLOW_NETWORKS",
    "encryption_keys": "EXPORTS_ENCRYPTION_KEYS",
    "claim_order": "EXPORTS_CLAIM_ORDER",
    "max_running_per_tenant": "EXPORTS_MAX_RUNNING_PER_TENANT",
    "priority_max_wait": "EXPORTS_PRIORITY_MAX_WAIT",
    "metrics_top_tenants": "EXPORTS_METRICS_TOP_TENANTS",
    "gzip_level": "EXPORTS_GZIP_LEVEL",
}
# Hosts SNS signs from and sends SubscribeURLs on (AWS's documented naming, incl. China).
DEFAULT_SNS_CERT_HOST_PATTERN = r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$"
_SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$")
_S3_SSE = ("", "AES256", "aws:kms")


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
    poller_batch: int = 100
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
    # An API worker trusts a key it verified for this long without asking the database again,
    # so a revoked key may still work for up to this long in a worker that saw it (0: off).
    api_key_cache_seconds: float = 5.0
    log_level: str = "INFO"
    # json, text, or auto (text when stdout is a terminal).
    log_format: str = "auto"
    # Sentry release and environment (default: the package version, EXPORTS_ENV).
    sentry_release: str | None = None
    sentry_environment: str | None = None
    # The poller serves /metrics and /healthz here (0: not at all), on this address (0.0.0.0:
    # every interface, for the container's health check and Prometheus; 127.0.0.1: local).
    metrics_port: int = 9108
    metrics_bind: str = "0.0.0.0"  # nosec B104  # scraped from outside the container
    # The poller's /healthz answers 503 once its claim loop has not come round for this long
    # (it comes round every poll interval, and at least every ~32 s while the database is away).
    stall_seconds: float = 60.0
    # How often each poller tries to run maintenance (one at a time fleet-wide).
    maintenance_interval: float = 60.0
    # Done and dead outbox rows are deleted this long after they ended.
    outbox_retention_seconds: int = 7 * 24 * 3600
    # Quota: queued + running exports one tenant may have per owner (0: no limit).
    max_active_per_owner: int = 5
    # Schedules one tenant may have per owner (0: no limit); a slot that finds the owner at
    # max_active_per_owner is skipped, so schedules cannot get round the quota either.
    max_schedules_per_owner: int = 20
    # An identical request (no Idempotency-Key) within this many seconds gets the job the
    # first one created (0: off).
    dedupe_seconds: float = 10.0
    # zlib level of .gz exports: 6 as gzip(1). 5 needs ~45 % less compression CPU (a csv.gz
    # export 20-25 % less time on 2 cores) for files ~1 % larger (bench/README.md).
    gzip_level: int = 6
    # POST /v1/ses-events accepts SNS messages from these topics only.
    sns_topic_arns: tuple[str, ...] = ()
    # Older SNS messages are refused (SNS retries a delivery for at most an hour).
    sns_max_age_seconds: int = 3600
    # SigningCertURL and SubscribeURL must be https on a host (and port) matching this.
    sns_cert_host_pattern: str = DEFAULT_SNS_CERT_HOST_PATTERN
    # CA file for fetching SNS certificates (None: the system's CAs).
    sns_ca_bundle: str | None = None
    # Server-side encryption of stored exports: '' (bucket default), AES256 or aws:kms.
    s3_sse: str = ""
    s3_kms_key_id: str | None = None
    # Webhooks may go to addresses in these networks even though they are not public (CIDRs).
    # None: the environment's default, loopback in development and test, nothing in
    # production (see allowed_webhook_networks).
    webhook_allow_networks: tuple[str, ...] | None = None
    # Fernet keys (comma-separated), the first encrypts: email addresses and webhook secrets
    # at rest (app/platform/crypto.py). Required outside development, where a random one is
    # made per process (so make run keeps one in var/encryption-key for all its processes).
    encryption_keys: tuple[str, ...] = field(
        default_factory=lambda: (_new_fernet_key(),), repr=False
    )
    # How claims share ready work: fair (round-robin across tenants, priorities, limits) or
    # fifo (oldest first across everyone: the reference the noisy-neighbour bench compares).
    claim_order: str = "fair"
    # Most export.run messages of one tenant leased at once, over every poller (0: no
    # limit); exports.tenant_limits overrides it per tenant.
    max_running_per_tenant: int = 0
    # Seconds a bulk export waits at most behind newer interactive ones (scheduled: half).
    priority_max_wait: int = 600  # priorities.DEFAULT_MAX_WAIT (platform imports no domain)
    # Per-tenant queue metrics name this many tenants (by backlog); the rest are "other".
    metrics_top_tenants: int = 10

    @property
    def allowed_webhook_networks(self) -> tuple[IPNetwork, ...]:
        """The networks webhooks may reach although not public (EXPORTS_WEBHOOK_ALLOW_NETWORKS)."""
        networks = self.webhook_allow_networks
        if networks is None:
            networks = () if self.is_production else _LOOPBACK
        return tuple(ipaddress.ip_network(n) for n in networks)

    @property
    def is_production(self) -> bool:
        """True when missing secrets must be fatal rather than defaulted."""
        return self.env == "production"

    def to_env(self) -> dict[str, str]:
        """The environment variables that make from_env() give these settings back.

        For starting other processes (pollers, the API) configured like this one.
        """
        return {
            variable: ",".join(value) if isinstance(value, tuple) else str(value)
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
        # Outside development a generated key would break links across restarts and
        # processes, and a guessable one would let anyone forge them: refuse to start.
        if secret is None and deployment != "development":
            reader.errors.append(
                f"EXPORTS_SECRET_KEY is required when EXPORTS_ENV={deployment} "
                "(only development generates one)"
            )
        elif secret is not None and deployment == "production" and len(secret) < 32:
            reader.errors.append(
                "EXPORTS_SECRET_KEY must be at least 32 characters in production "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
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
                # At most 5 minutes: a leaked presigned URL is a bearer credential.
                "EXPORTS_PRESIGN_SECONDS", cls.presign_seconds, 10, 300
            ),
            max_body_bytes=reader.integer(
                "EXPORTS_MAX_BODY_BYTES", cls.max_body_bytes, 1024, 10**7
            ),
            api_db_wait_seconds=reader.number(
                "EXPORTS_API_DB_WAIT_SECONDS", cls.api_db_wait_seconds, 0.1, 60
            ),
            api_key_cache_seconds=reader.number(
                "EXPORTS_API_KEY_CACHE_SECONDS", cls.api_key_cache_seconds, 0, 60
            ),
            metrics_port=reader.integer("EXPORTS_METRICS_PORT", cls.metrics_port, 0, 65535),
            metrics_bind=reader.ip_address("EXPORTS_METRICS_BIND", cls.metrics_bind),
            stall_seconds=reader.number(
                "EXPORTS_POLLER_STALL_SECONDS", cls.stall_seconds, 0.5, 3600
            ),
            maintenance_interval=reader.number(
                "EXPORTS_MAINTENANCE_INTERVAL", cls.maintenance_interval, 1, 86400
            ),
            outbox_retention_seconds=reader.integer(
                "EXPORTS_OUTBOX_RETENTION_SECONDS",
                cls.outbox_retention_seconds,
                60,
                10 * 366 * 24 * 3600,
            ),
            max_active_per_owner=reader.integer(
                "EXPORTS_MAX_ACTIVE_PER_OWNER", cls.max_active_per_owner, 0, 100_000
            ),
            max_schedules_per_owner=reader.integer(
                "EXPORTS_MAX_SCHEDULES_PER_OWNER", cls.max_schedules_per_owner, 0, 100_000
            ),
            dedupe_seconds=reader.number(
                "EXPORTS_DEDUPE_SECONDS", cls.dedupe_seconds, 0, 3600
            ),
            gzip_level=reader.integer("EXPORTS_GZIP_LEVEL", cls.gzip_level, 1, 9),
            log_level=reader.text("EXPORTS_LOG_LEVEL", cls.log_level).upper(),
            log_format=reader.text("EXPORTS_LOG_FORMAT", cls.log_format).lower(),
            sentry_release=reader.optional("SENTRY_RELEASE"),
            sentry_environment=reader.optional("SENTRY_ENVIRONMENT"),
            sns_topic_arns=reader.sns_topic_arns("EXPORTS_SNS_TOPIC_ARNS"),
            webhook_allow_networks=reader.networks("EXPORTS_WEBHOOK_ALLOW_NETWORKS"),
            encryption_keys=reader.fernet_keys(
                "EXPORTS_ENCRYPTION_KEYS", required=deployment != "development"
            ),
            sns_max_age_seconds=reader.integer(
                "EXPORTS_SNS_MAX_AGE_SECONDS", cls.sns_max_age_seconds, 60, 24 * 3600
            ),
            sns_cert_host_pattern=reader.pattern(
                "EXPORTS_SNS_CERT_HOST_PATTERN", cls.sns_cert_host_pattern
            ),
            sns_ca_bundle=reader.existing_file("EXPORTS_SNS_CA_BUNDLE"),
            s3_sse=env.get("EXPORTS_S3_SSE", ""),
            s3_kms_key_id=reader.optional("EXPORTS_S3_KMS_KEY_ID"),
            claim_order=reader.text("EXPORTS_CLAIM_ORDER", cls.claim_order).lower(),
            max_running_per_tenant=reader.integer(
                "EXPORTS_MAX_RUNNING_PER_TENANT", cls.max_running_per_tenant, 0, 100_000
            ),
            priority_max_wait=reader.integer(
                "EXPORTS_PRIORITY_MAX_WAIT", cls.priority_max_wait, 0, 7 * 24 * 3600
            ),
            metrics_top_tenants=reader.integer(
                "EXPORTS_METRICS_TOP_TENANTS", cls.metrics_top_tenants, 0, 100
            ),
        )
        if settings.s3_sse not in _S3_SSE:
            reader.errors.append("EXPORTS_S3_SSE must be empty, AES256 or aws:kms")
        if settings.s3_kms_key_id and settings.s3_sse != "aws:kms":
            reader.errors.append("EXPORTS_S3_KMS_KEY_ID needs EXPORTS_S3_SSE=aws:kms")
        if settings.log_level not in _LOG_LEVELS:
            reader.errors.append(f"EXPORTS_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}")
        if settings.stall_seconds < 3 * settings.poll_interval:
            reader.errors.append(
                "EXPORTS_POLLER_STALL_SECONDS must be at least 3 x EXPORTS_POLL_INTERVAL "
                "(a healthy claim loop comes round once per poll interval)"
            )
        if settings.claim_order not in ("fair", "fifo"):
            reader.errors.append("EXPORTS_CLAIM_ORDER must be fair or fifo")
        if settings.log_format not in ("auto", "json", "text"):
            reader.errors.append("EXPORTS_LOG_FORMAT must be auto, json or text")
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

    def sns_topic_arns(self, name: str) -> tuple[str, ...]:
        arns = tuple(a.strip() for a in (self.env.get(name) or "").split(",") if a.strip())
        for arn in arns:
            if not _SNS_TOPIC_ARN.match(arn):
                self.errors.append(f"{name}: {arn!r} is not an SNS topic ARN")
        return arns

    def fernet_keys(self, name: str, *, required: bool) -> tuple[str, ...]:
        keys = tuple(k.strip() for k in (self.env.get(name) or "").split(",") if k.strip())
        if not keys:
            if required:
                self.errors.append(
                    f"{name} is required outside development (Fernet keys, comma-separated: "
                    'python -c "from cryptography.fernet import Fernet; '
                    'print(Fernet.generate_key().decode())")'
                )
            return (_new_fernet_key(),)
        for position, key in enumerate(keys, 1):
            try:
                Fernet(key.encode())
            except ValueError:
                self.errors.append(f"{name}: key {position} is not a Fernet key")
        return keys

    def networks(self, name: str) -> tuple[str, ...] | None:
        raw = self.env.get(name)
        if raw is None:
            return None
        networks = tuple(n.strip() for n in raw.split(",") if n.strip())
        for network in networks:
            try:
                ipaddress.ip_network(network)
            except ValueError:
                self.errors.append(f"{name}: {network!r} is not a network like 10.0.0.0/8")
        return networks

    def pattern(self, name: str, default: str) -> str:
        value = self.text(name, default)
        try:
            re.compile(value)
        except re.error as exc:
            self.errors.append(f"{name}={value!r} is not a regular expression: {exc}")
        return value

    def ip_address(self, name: str, default: str) -> str:
        value = self.text(name, default)
        try:
            ipaddress.ip_address(value)
        except ValueError:
            self.errors.append(f"{name}={value!r} is not an IP address (like 0.0.0.0 or ::1)")
        return value

    def existing_file(self, name: str) -> str | None:
        value = self.optional(name)
        if value is not None and not Path(value).is_file():
            self.errors.append(f"{name}={value!r} is not a file")
        return value
