"""The summary table printed at the end of a chaos run (also saved as summary.txt)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tests.chaos.checks import Findings
from tests.chaos.harness import Evidence


def summary(evidence: Evidence, findings: Findings, *, title: str) -> str:
    """A two-column table of what happened, then the notes and problems."""
    config = evidence.config
    stats = findings.stats
    events = stats.get("events", {})
    api = evidence.api
    exits = stats.get("sigterm_exits", [])
    exit_codes = Counter(str(code) for code, _ in exits)
    exit_times = [s for _, s in exits if s is not None]
    labels = Counter(s.spec.label for s in evidence.submissions)
    downtime = sum(back - stopped for stopped, back in evidence.pg_restarts)
    timings = evidence.timings
    rows: list[tuple[str, Any]] = [
        ("seed", config.seed),
        ("jobs submitted", f"{len(evidence.submissions)} ({_pairs(labels)})"),
        ("jobs by state", _pairs(stats.get("states", {}))),
        ("unexpected failures", stats.get("unexpected_failures", 0)),
        (
            "attempts",
            f"max {stats.get('attempts_max')}, mean {stats.get('attempts_mean', 0):.2f}, "
            f"{stats.get('jobs_retried')} jobs needed more than one",
        ),
        ("results verified (bytes, sha256, rows, content)", stats.get("results_verified")),
        (
            "webhooks (events, POSTs, 500s answered, delivered twice)",
            _pairs(stats.get("webhooks", {})),
        ),
        ("outbox error history, by cause", _pairs(stats.get("history", {})) or "-"),
        ("pollers started", stats.get("pollers_started")),
        ("SIGKILLs", events.get("sigkill", 0)),
        (
            "SIGTERMs",
            f"{events.get('sigterm', 0)}: exit codes {_pairs(exit_codes)}; seconds to exit "
            + (
                f"max {max(exit_times):.1f}, mean {sum(exit_times) / len(exit_times):.1f}"
                if exit_times
                else "-"
            ),
        ),
        ("pollers that died by themselves", events.get("poller_crashed", 0)),
        (
            "PostgreSQL restarts",
            f"{len(evidence.pg_restarts)} ({config.pg_stop_mode}, down {downtime:.1f}s)",
        ),
        (
            "API",
            f"{api.posts} POSTs: {api.created} created, {api.replayed} replayed, "
            f"{api.unavailable} x 503, {len(api.other_errors)} other errors, "
            f"{api.connection_errors} connection errors",
        ),
        ("cancels", _pairs(api.cancels) or "-"),
        ("requests through the proxy", stats.get("proxied_requests")),
        ("injected faults", _pairs(stats.get("faults", {})) or "-"),
        (
            "completed uploads",
            f"{stats.get('completed_uploads')} ({stats.get('completed_multipart')} multipart; "
            f"{stats.get('repeated_completion_requests')} completions repeated by botocore)",
        ),
        ("upload accepted -> committed", stats.get("window_export")),
        ("duplicate export runs", _pairs(stats.get("duplicate_exports", {})) or "0"),
        ("orphan objects", stats.get("orphan_objects")),
        ("unfinished multipart uploads", stats.get("unfinished_uploads")),
        ("emails accepted by SES", f"{stats.get('emails_sent')} (moto: {evidence.moto_emails})"),
        ("email accepted -> committed", stats.get("window_email")),
        ("duplicate emails", _pairs(stats.get("duplicate_emails", {})) or "0"),
        ("missing emails", stats.get("emails_missing")),
        ("poller log lines", _pairs(stats.get("log_levels", {}))),
        (
            "seconds",
            f"setup {timings.get('setup', 0):.0f}, chaos {timings.get('chaos', 0):.0f}, "
            f"settle {timings.get('settle', 0):.0f}, verify {timings.get('verify', 0):.0f}, "
            f"total {sum(timings.values()):.0f}",
        ),
        ("artefacts", evidence.workdir),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"== {title} ==", *(f"{name:<{width}}  {value}" for name, value in rows)]
    messages = stats.get("log_messages", [])
    if messages:
        lines.append("poller warnings/errors by message:")
        lines += [f"  {count:5d}  {level:<8} {text}" for (level, text), count in messages]
    if findings.notes:
        lines.append(f"allowed (explained repeats, documented leftovers): {len(findings.notes)}")
        lines += [f"  {note}" for note in findings.notes[:40]]
    lines.append(f"PROBLEMS ({len(findings.problems)}):" if findings.problems else "no problems")
    lines += [f"  - {problem}" for problem in findings.problems]
    return "\n".join(lines)


def _pairs(counts: Any) -> str:
    return ", ".join(f"{key}: {value}" for key, value in dict(counts).items())
