"""deploy/: the files ops copy parse, and agree with the code they deploy."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from app.http import observability
from app.platform import metrics
from app.platform.settings import PROJECT_ROOT
from poller import metrics as poller_metrics
from poller.core.dispatch import HAND_BACK_SECONDS

DEPLOY = PROJECT_ROOT / "deploy"
# After the hand-back: deregistering the poller and closing pools, ~1 s each (poller/main.py).
CLOSING_SECONDS = 2.0
# gunicorn's graceful_timeout (app/http/server.py): in-flight requests may finish in it.
GUNICORN_GRACE_SECONDS = 20


def load(name: str) -> Any:
    """A deploy/ JSON file, parsed."""
    return json.loads((DEPLOY / name).read_text())


def container(task: str) -> dict[str, Any]:
    """The one container of a task definition."""
    (only,) = load(f"ecs-task-{task}.json")["containerDefinitions"]
    return only


def env(definition: dict[str, Any]) -> dict[str, str]:
    """A container's plain environment variables."""
    return {e["name"]: e["value"] for e in definition.get("environment", [])}


@pytest.mark.parametrize("path", sorted(DEPLOY.glob("*.json")), ids=lambda p: p.name)
def test_every_json_file_parses(path: Path) -> None:
    assert json.loads(path.read_text())


@pytest.mark.parametrize("task", ["api", "poller", "migrate"])
def test_tasks_run_as_non_root_with_an_init_and_blocking_logs(task: str) -> None:
    c = container(task)
    assert c["user"].split(":")[0] not in ("0", "root")
    assert c["linuxParameters"]["initProcessEnabled"] is True
    log = c["logConfiguration"]
    assert log["logDriver"] == "awslogs"
    assert log["options"]["mode"] == "blocking"  # never drop log lines
    assert env(c).get("EXPORTS_LOG_FORMAT", "json") == "json"


@pytest.mark.parametrize("task", ["api", "poller", "migrate"])
def test_secrets_come_from_ssm_or_secrets_manager_never_plain_env(task: str) -> None:
    c = container(task)
    secret_names = {"DATABASE_URL", "EXPORTS_SECRET_KEY", "SENTRY_DSN"}
    assert not secret_names & set(env(c))
    for secret in c["secrets"]:
        assert secret["valueFrom"].startswith(("arn:aws:ssm:", "arn:aws:secretsmanager:"))
    assert "DATABASE_URL" in {s["name"] for s in c["secrets"]}


def test_api_and_poller_share_the_link_signing_key() -> None:
    def key(task: str) -> str:
        return next(s for s in container(task)["secrets"] if s["name"] == "EXPORTS_SECRET_KEY")[
            "valueFrom"
        ]

    assert key("api") == key("poller")


def test_poller_stop_timeout_covers_grace_hand_back_and_closing() -> None:
    c = container("poller")
    grace = float(env(c)["EXPORTS_SHUTDOWN_GRACE"])
    assert c["stopTimeout"] >= 30
    assert c["stopTimeout"] >= grace + HAND_BACK_SECONDS + CLOSING_SECONDS


def test_api_stop_timeout_covers_gunicorns_graceful_timeout() -> None:
    assert container("api")["stopTimeout"] >= max(30, GUNICORN_GRACE_SECONDS)


def test_health_checks() -> None:
    api = container("api")["healthCheck"]["command"]
    assert api[:3] == ["CMD", "python", "-c"] and "/healthz" in api[3]  # no curl in the image
    assert "127.0.0.1:8000" in api[3]
    assert container("poller")["healthCheck"]["command"] == ["CMD", "exports-poller", "--check"]
    assert env(container("poller"))["EXPORTS_METRICS_PORT"] != "0"  # --check asks this port


def test_poller_policy_is_limited_to_the_prefix_and_one_sender() -> None:
    statements = load("iam-policy-poller.json")["Statement"]
    prefix = "arn:aws:s3:::example-exports-bucket/exports/*"
    for s in statements:
        assert s["Effect"] == "Allow"
        actions = [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
        assert all(":*" not in a for a in actions)
        resources = [s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]
        assert "*" not in resources
        if any(a.startswith("ses:") for a in actions):
            assert set(actions) == {"ses:SendEmail", "ses:SendRawEmail"}
            assert s["Condition"]["StringEquals"]["ses:FromAddress"]
        elif "s3:ListBucket" in actions:
            assert s["Condition"]["StringLike"]["s3:prefix"] == ["exports/*"]
        elif any(a in actions for a in ("s3:PutObject", "s3:DeleteObject")):
            assert resources == [prefix]
    (api,) = load("iam-policy-api.json")["Statement"]
    assert (api["Action"], api["Resource"]) == ("s3:GetObject", prefix)


def test_lifecycle_aborts_uploads_and_expires_after_the_retention() -> None:
    rules = load("s3-lifecycle.json")["Rules"]
    assert all(r["Filter"]["Prefix"] == "exports/" and r["Status"] == "Enabled" for r in rules)
    abort = [r for r in rules if "AbortIncompleteMultipartUpload" in r]
    assert abort and abort[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] >= 1
    (expire,) = [r for r in rules if "Expiration" in r]
    retention = int(env(container("poller"))["EXPORTS_RETENTION_SECONDS"])
    assert expire["Expiration"]["Days"] * 86400 > retention  # links outlive no file


def registered_metric_names() -> set[str]:
    """Every sample name the API and the poller can expose (counters' _total, histograms'
    _bucket...): their own series and the queue gauges both serve."""
    names: set[str] = set()
    for obj in [*vars(poller_metrics).values(), *vars(observability).values()]:
        if isinstance(obj, MetricWrapperBase):
            for family in obj.describe():
                base = family.name
                names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"}
    for family in metrics.QueueCollector(pool=None).describe():  # type: ignore[arg-type]
        names.add(family.name)
    return names


def test_every_metric_on_the_dashboard_exists() -> None:
    dashboard = load("grafana-dashboard.json")
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in re.findall(r"\bexports_[a-z_]+\b", expr)}
    assert used, "the dashboard queries no metric"
    assert used <= registered_metric_names(), used - registered_metric_names()


def test_dashboard_covers_what_ops_watch() -> None:
    exprs = " ".join(
        t["expr"] for p in load("grafana-dashboard.json")["panels"] for t in p["targets"]
    )
    for needed in (
        "exports_http_requests_total",
        "exports_http_request_duration_seconds_bucket",
        "exports_outbox_messages",
        "exports_outbox_oldest_ready_seconds",
        "exports_messages_total",
        "exports_message_duration_seconds_bucket",
        "exports_leases_lost_total",
        "exports_poller_in_flight",
        "exports_exported_rows_total",
        "exports_exported_bytes_total",
    ):
        assert needed in exprs


def metric_names_in(expression: str) -> set[str]:
    """Every metric an expression selects, found by parsing it (promql-parser)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)
            return
        for child in ("lhs", "rhs", "expr", "vector_selector", "param"):
            if (value := getattr(node, child, None)) is not None:
                walk(value)
        for arg in getattr(node, "args", None) or ():
            walk(arg)

    walk(promql_parser.parse(expression))
    return names


def test_every_alert_parses_and_names_only_our_metrics() -> None:
    # Issue 13: the README's alert table had a markdown escape (retry\\|dead) that broke
    # when copied; the rules are a file now, checked here.
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 9 and all(rule["alert"] and rule["expr"] for rule in alerts)

    for rule in alerts:
        used = metric_names_in(rule["expr"])
        assert used, rule["alert"]
        assert used <= registered_metric_names() | {"up"}, (rule["alert"], used)


def test_the_readme_links_the_rules_instead_of_copying_them() -> None:
    readme = (DEPLOY.parent / "README.md").read_text()
    assert "deploy/prometheus-rules.yml" in readme
    assert "\\|" not in readme  # no PromQL with markdown escapes to copy
