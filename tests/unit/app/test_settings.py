"""Reading configuration from environment variables; no database, no network."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from app.exports import priorities
from app.platform.settings import PROJECT_ROOT, ConfigError, Settings

FERNET_KEY = "jdTo7UmWLz9AuJSG9OzwGlRq4C6dwC0zRfGUrKU9Ff8="


def test_empty_environment_gives_working_development_defaults() -> None:
    settings = Settings.from_env({})

    assert settings.env == "development"
    assert not settings.is_production
    assert settings.database_url.startswith("postgresql://")
    assert settings.storage_url.startswith("file://")
    assert settings.mail_url.startswith("file://")
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.catalog_dir == PROJECT_ROOT / "sql" / "exports"
    assert settings.catalog_dir.is_dir()
    assert settings.source_database_url is None
    assert settings.aws_endpoint_url is None
    assert settings.sentry_dsn is None
    assert settings.poller_threads == 4
    assert settings.lease_seconds == 30.0
    assert settings.log_level == "INFO"


# (variable, value, Settings attribute, expected attribute value)
EVERY_VARIABLE: list[tuple[str, str, str, Any]] = [
    (
        "DATABASE_URL",
        "postgresql://app@db:5432/app",
        "database_url",
        "postgresql://app@db:5432/app",
    ),
    (
        "EXPORTS_SOURCE_DATABASE_URL",
        "postgresql://ro@replica/app",
        "source_database_url",
        "postgresql://ro@replica/app",
    ),
    ("EXPORTS_STORAGE_URL", "s3://bucket/exports", "storage_url", "s3://bucket/exports"),
    ("EXPORTS_MAIL_URL", "smtp://mail:2525", "mail_url", "smtp://mail:2525"),
    ("EXPORTS_MAIL_FROM", "noreply@example.com", "mail_from", "noreply@example.com"),
    (
        "EXPORTS_PUBLIC_URL",
        "https://exports.example.com",
        "public_url",
        "https://exports.example.com",
    ),
    ("EXPORTS_SECRET_KEY", "s3cr3t", "secret_key", "s3cr3t"),
    ("AWS_REGION", "eu-west-1", "aws_region", "eu-west-1"),
    ("AWS_ENDPOINT_URL", "http://localhost:4566", "aws_endpoint_url", "http://localhost:4566"),
    ("EXPORTS_SES_CONFIGURATION_SET", "exports", "ses_configuration_set", "exports"),
    (
        "SENTRY_DSN",
        "https://key@sentry.example.com/1",
        "sentry_dsn",
        "https://key@sentry.example.com/1",
    ),
    ("EXPORTS_ENV", "test", "env", "test"),
    ("EXPORTS_CATALOG_DIR", "/srv/catalog", "catalog_dir", Path("/srv/catalog")),
    ("EXPORTS_POLLER_THREADS", "8", "poller_threads", 8),
    ("EXPORTS_POLLER_BATCH", "50", "poller_batch", 50),
    ("EXPORTS_LEASE_SECONDS", "12.5", "lease_seconds", 12.5),
    ("EXPORTS_POLL_INTERVAL", "0.25", "poll_interval", 0.25),
    ("EXPORTS_MAX_ATTEMPTS", "3", "max_attempts", 3),
    ("EXPORTS_RETRY_BASE_SECONDS", "0.5", "retry_base_seconds", 0.5),
    ("EXPORTS_RETRY_CAP_SECONDS", "60", "retry_cap_seconds", 60.0),
    ("EXPORTS_RETENTION_SECONDS", "3600", "retention_seconds", 3600),
    ("EXPORTS_PRESIGN_SECONDS", "120", "presign_seconds", 120),
    ("EXPORTS_MAX_BODY_BYTES", "2048", "max_body_bytes", 2048),
    ("EXPORTS_API_DB_WAIT_SECONDS", "1.5", "api_db_wait_seconds", 1.5),
    ("EXPORTS_API_KEY_CACHE_SECONDS", "0", "api_key_cache_seconds", 0.0),
    ("EXPORTS_METRICS_PORT", "9200", "metrics_port", 9200),
    ("EXPORTS_METRICS_BIND", "127.0.0.1", "metrics_bind", "127.0.0.1"),
    (
        "EXPORTS_ENCRYPTION_KEYS",
        "jdTo7UmWLz9AuJSG9OzwGlRq4C6dwC0zRfGUrKU9Ff8=",
        "encryption_keys",
        ("jdTo7UmWLz9AuJSG9OzwGlRq4C6dwC0zRfGUrKU9Ff8=",),
    ),
    (
        "EXPORTS_WEBHOOK_ALLOW_NETWORKS",
        "10.0.0.0/8, fd00::/8",
        "webhook_allow_networks",
        ("10.0.0.0/8", "fd00::/8"),
    ),
    ("EXPORTS_MAX_ACTIVE_PER_OWNER", "0", "max_active_per_owner", 0),
    ("EXPORTS_MAX_SCHEDULES_PER_OWNER", "3", "max_schedules_per_owner", 3),
    ("EXPORTS_DEDUPE_SECONDS", "2.5", "dedupe_seconds", 2.5),
    ("EXPORTS_GZIP_LEVEL", "5", "gzip_level", 5),
    ("EXPORTS_CLAIM_ORDER", "FIFO", "claim_order", "fifo"),
    ("EXPORTS_MAX_RUNNING_PER_TENANT", "3", "max_running_per_tenant", 3),
    ("EXPORTS_PRIORITY_MAX_WAIT", "60", "priority_max_wait", 60),
    ("EXPORTS_METRICS_TOP_TENANTS", "0", "metrics_top_tenants", 0),
    ("EXPORTS_POLLER_STALL_SECONDS", "90", "stall_seconds", 90.0),
    ("EXPORTS_MAINTENANCE_INTERVAL", "300", "maintenance_interval", 300.0),
    ("EXPORTS_OUTBOX_RETENTION_SECONDS", "86400", "outbox_retention_seconds", 86400),
    ("EXPORTS_LOG_LEVEL", "debug", "log_level", "DEBUG"),
    ("EXPORTS_LOG_FORMAT", "TEXT", "log_format", "text"),
    ("SENTRY_RELEASE", "exports@abc123", "sentry_release", "exports@abc123"),
    ("SENTRY_ENVIRONMENT", "staging", "sentry_environment", "staging"),
    (
        "EXPORTS_SNS_TOPIC_ARNS",
        "arn:aws:sns:us-east-1:123456789012:a, arn:aws:sns:eu-west-1:123456789012:b",
        "sns_topic_arns",
        ("arn:aws:sns:us-east-1:123456789012:a", "arn:aws:sns:eu-west-1:123456789012:b"),
    ),
    ("EXPORTS_SNS_MAX_AGE_SECONDS", "600", "sns_max_age_seconds", 600),
    ("EXPORTS_SNS_CERT_HOST_PATTERN", r"^sns\.test$", "sns_cert_host_pattern", r"^sns\.test$"),
    ("EXPORTS_SNS_CA_BUNDLE", __file__, "sns_ca_bundle", __file__),
    ("EXPORTS_S3_SSE", "AES256", "s3_sse", "AES256"),
]


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    EVERY_VARIABLE,
    ids=[r[0] for r in EVERY_VARIABLE],
)
def test_each_variable_sets_its_setting(
    variable: str, value: str, attribute: str, expected: Any
) -> None:
    default = getattr(Settings.from_env({}), attribute)
    assert default != expected, "pick a test value that differs from the default"

    # Outside development a secret key is required, so every case brings one along.
    settings = Settings.from_env(
        {"EXPORTS_SECRET_KEY": "k" * 40, "EXPORTS_ENCRYPTION_KEYS": FERNET_KEY, variable: value}
    )

    assert getattr(settings, attribute) == expected


def test_every_setting_is_covered_by_the_variable_table() -> None:
    covered = {attribute for _, _, attribute, _ in EVERY_VARIABLE}
    # Valid only together with EXPORTS_S3_SSE: test_kms_key_with_aws_kms_encryption_is_accepted.
    covered.add("s3_kms_key_id")

    assert {f.name for f in dataclasses.fields(Settings)} == covered


def test_aws_default_region_is_the_fallback_for_aws_region() -> None:
    assert Settings.from_env({"AWS_DEFAULT_REGION": "ap-south-1"}).aws_region == "ap-south-1"
    both = {"AWS_DEFAULT_REGION": "ap-south-1", "AWS_REGION": "eu-central-1"}
    assert Settings.from_env(both).aws_region == "eu-central-1"


def test_empty_variables_count_as_unset() -> None:
    settings = Settings.from_env(
        {"EXPORTS_POLLER_THREADS": "", "EXPORTS_STORAGE_URL": "", "SENTRY_DSN": ""}
    )

    assert settings.poller_threads == Settings.poller_threads
    assert settings.storage_url == Settings.storage_url
    assert settings.sentry_dsn is None


def test_all_bad_variables_are_reported_in_one_error() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {
                "EXPORTS_POLLER_THREADS": "four",
                "EXPORTS_LEASE_SECONDS": "0.5",
                "EXPORTS_STORAGE_URL": "gs://bucket/exports",
                "EXPORTS_ENV": "staging",
            }
        )

    message = str(caught.value)
    for variable in (
        "EXPORTS_POLLER_THREADS",
        "EXPORTS_LEASE_SECONDS",
        "EXPORTS_STORAGE_URL",
        "EXPORTS_ENV",
    ):
        assert variable in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EXPORTS_POLLER_THREADS", "0"),
        ("EXPORTS_POLLER_THREADS", "257"),
        ("EXPORTS_POLLER_THREADS", "2.5"),
        ("EXPORTS_POLLER_BATCH", "1001"),
        ("EXPORTS_LEASE_SECONDS", "3601"),
        ("EXPORTS_LEASE_SECONDS", "soon"),
        ("EXPORTS_LEASE_SECONDS", "nan"),
        ("EXPORTS_POLL_INTERVAL", "0"),
        ("EXPORTS_MAX_ATTEMPTS", "0"),
        ("EXPORTS_RETRY_BASE_SECONDS", "-1"),
        ("EXPORTS_RETRY_CAP_SECONDS", "inf"),
        ("EXPORTS_RETENTION_SECONDS", "59"),
        ("EXPORTS_PRESIGN_SECONDS", "301"),  # presigned URLs live at most 5 minutes
        ("EXPORTS_SNS_TOPIC_ARNS", "arn:aws:sqs:us-east-1:123456789012:queue"),
        ("EXPORTS_SNS_TOPIC_ARNS", "my-topic"),
        ("EXPORTS_SNS_MAX_AGE_SECONDS", "59"),
        ("EXPORTS_SNS_CERT_HOST_PATTERN", "(unclosed"),
        ("EXPORTS_SNS_CA_BUNDLE", "/no/such/ca.pem"),
        ("EXPORTS_S3_SSE", "aws:kms:dsse"),
        ("EXPORTS_S3_KMS_KEY_ID", "alias/exports"),  # without EXPORTS_S3_SSE=aws:kms
        ("EXPORTS_MAX_BODY_BYTES", "1k"),
        ("EXPORTS_STORAGE_URL", "/var/exports"),
        ("EXPORTS_MAIL_URL", "http://mail.example.com"),
        ("EXPORTS_PUBLIC_URL", "exports.example.com"),
        ("EXPORTS_PUBLIC_URL", "ftp://exports.example.com"),
        ("EXPORTS_ENV", "prod"),
        ("EXPORTS_LOG_LEVEL", "verbose"),
        ("EXPORTS_LOG_FORMAT", "xml"),
        ("EXPORTS_MAX_ACTIVE_PER_OWNER", "-1"),
        ("EXPORTS_METRICS_BIND", "everywhere"),
        ("EXPORTS_WEBHOOK_ALLOW_NETWORKS", "10.0.0.0/33"),
        ("EXPORTS_ENCRYPTION_KEYS", "not-a-fernet-key"),
        ("EXPORTS_DEDUPE_SECONDS", "3601"),
        ("EXPORTS_GZIP_LEVEL", "0"),
        ("EXPORTS_CLAIM_ORDER", "random"),
        ("EXPORTS_MAX_RUNNING_PER_TENANT", "-1"),
        ("EXPORTS_PRIORITY_MAX_WAIT", "1.5"),
        ("EXPORTS_METRICS_TOP_TENANTS", "101"),
        ("EXPORTS_POLLER_STALL_SECONDS", "0"),
        ("EXPORTS_POLLER_STALL_SECONDS", "2"),  # under 3 x the 1 s default poll interval
        ("EXPORTS_MAINTENANCE_INTERVAL", "0.5"),
        ("EXPORTS_OUTBOX_RETENTION_SECONDS", "59"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_production_without_a_secret_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="EXPORTS_SECRET_KEY"):
        Settings.from_env({"EXPORTS_ENV": "production"})


@pytest.mark.parametrize("deployment", ["production", "test"])
def test_only_development_generates_a_secret_key(deployment: str) -> None:
    with pytest.raises(ConfigError, match="EXPORTS_SECRET_KEY is required"):
        Settings.from_env({"EXPORTS_ENV": deployment, "EXPORTS_SECRET_KEY": ""})


def test_production_refuses_a_short_secret_key() -> None:
    with pytest.raises(ConfigError, match="at least 32 characters"):
        Settings.from_env(
            {
                "EXPORTS_ENV": "production",
                "EXPORTS_SECRET_KEY": "secret",
                "EXPORTS_ENCRYPTION_KEYS": FERNET_KEY,
            }
        )


def test_production_with_a_secret_key_is_accepted() -> None:
    settings = Settings.from_env(
        {
            "EXPORTS_ENV": "production",
            "EXPORTS_SECRET_KEY": "k" * 40,
            "EXPORTS_ENCRYPTION_KEYS": FERNET_KEY,
        }
    )

    assert settings.is_production
    assert settings.secret_key == "k" * 40


def test_development_generates_a_secret_key() -> None:
    first = Settings.from_env({}).secret_key
    second = Settings.from_env({"EXPORTS_SECRET_KEY": ""}).secret_key

    assert len(first) >= 32
    assert len(second) >= 32
    assert first != second  # random, not a well-known constant


def test_secret_key_is_not_shown_in_repr() -> None:
    settings = Settings.from_env({"EXPORTS_SECRET_KEY": "do-not-log-me"})

    assert "do-not-log-me" not in repr(settings)


@pytest.mark.parametrize("value", ["https://exports.example.com/", "https://exports.example.com//"])
def test_public_url_trailing_slash_is_dropped(value: str) -> None:
    settings = Settings.from_env({"EXPORTS_PUBLIC_URL": value})

    assert settings.public_url == "https://exports.example.com"


def test_to_env_round_trips_every_setting(tmp_path: Path) -> None:
    # A value for every field that differs from its default, so nothing passes by accident.
    changed = Settings(
        database_url="postgresql://u@db:5433/x",
        source_database_url="postgresql://u@replica:5433/x",
        storage_url="s3://bucket/prefix",
        mail_url="smtp://relay:2525",
        mail_from="a@example.com",
        public_url="https://exports.example.com",
        secret_key="k" * 40,
        aws_region="eu-west-1",
        aws_endpoint_url="http://127.0.0.1:9000",
        ses_configuration_set="tracking",
        sentry_dsn="https://key@sentry.example.com/1",
        env="production",
        catalog_dir=tmp_path,
        poller_threads=7,
        poller_batch=3,
        gzip_level=5,
        lease_seconds=12.5,
        poll_interval=0.5,
        max_attempts=9,
        retry_base_seconds=2.0,
        retry_cap_seconds=60.0,
        retention_seconds=3600,
        presign_seconds=120,
        max_body_bytes=4096,
        api_db_wait_seconds=1.5,
        api_key_cache_seconds=0.0,
        log_level="DEBUG",
        log_format="text",
        sentry_release="exports@abc123",
        sentry_environment="staging",
        metrics_port=9200,
        metrics_bind="::1",
        webhook_allow_networks=("192.168.0.0/16",),
        encryption_keys=(FERNET_KEY, "Agtc5iCMKo3FyoqE-LxNz3m-m8dnfxucEFiolWQyqyA="),
        max_active_per_owner=2,
        max_schedules_per_owner=7,
        dedupe_seconds=0.0,
        claim_order="fifo",
        max_running_per_tenant=4,
        priority_max_wait=120,
        metrics_top_tenants=3,
        stall_seconds=20.0,
        maintenance_interval=30.0,
        outbox_retention_seconds=3600,
        sns_topic_arns=(
            "arn:aws:sns:us-east-1:123456789012:a",
            "arn:aws:sns:us-east-1:123456789012:b",
        ),
        sns_max_age_seconds=600,
        sns_cert_host_pattern=r"^localhost:\d+$",
        sns_ca_bundle=__file__,
        s3_sse="aws:kms",
        s3_kms_key_id="alias/exports",
    )
    defaults = Settings(secret_key=changed.secret_key)
    unchanged = [
        f.name
        for f in dataclasses.fields(Settings)
        if getattr(changed, f.name) == getattr(defaults, f.name) and f.name != "secret_key"
    ]
    assert unchanged == []

    assert Settings.from_env(changed.to_env()) == changed


def test_kms_key_with_aws_kms_encryption_is_accepted() -> None:
    settings = Settings.from_env({"EXPORTS_S3_SSE": "aws:kms", "EXPORTS_S3_KMS_KEY_ID": "k-1"})

    assert (settings.s3_sse, settings.s3_kms_key_id) == ("aws:kms", "k-1")


def test_presigned_urls_live_at_most_five_minutes() -> None:
    assert Settings.from_env({"EXPORTS_PRESIGN_SECONDS": "300"}).presign_seconds == 300
    with pytest.raises(ConfigError, match="EXPORTS_PRESIGN_SECONDS=301 must be between 10 and 300"):
        Settings.from_env({"EXPORTS_PRESIGN_SECONDS": "301"})


def test_webhooks_may_reach_loopback_outside_production_only() -> None:
    development = Settings.from_env({})
    production = Settings.from_env(
        {
            "EXPORTS_ENV": "production",
            "EXPORTS_SECRET_KEY": "k" * 40,
            "EXPORTS_ENCRYPTION_KEYS": FERNET_KEY,
        }
    )

    assert [str(n) for n in development.allowed_webhook_networks] == ["127.0.0.0/8", "::1/128"]
    assert production.allowed_webhook_networks == ()


def test_encryption_keys_are_required_outside_development_and_hidden() -> None:
    with pytest.raises(ConfigError, match="EXPORTS_ENCRYPTION_KEYS is required"):
        Settings.from_env({"EXPORTS_ENV": "test"})
    settings = Settings.from_env(
        {"EXPORTS_ENV": "test", "EXPORTS_SECRET_KEY": "s", "EXPORTS_ENCRYPTION_KEYS": FERNET_KEY}
    )
    assert settings.encryption_keys == (FERNET_KEY,)
    assert FERNET_KEY not in repr(settings)


def test_the_priority_wait_default_is_the_domains() -> None:
    assert Settings().priority_max_wait == priorities.DEFAULT_MAX_WAIT
