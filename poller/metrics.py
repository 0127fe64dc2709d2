"""The poller's own Prometheus series: claims, outcomes, leases, exports, maintenance and
the scheduler. Only the poller process defines them (the API serves its own); the queue
gauges both serve are app/platform/metrics.py's."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_CLAIMED = Counter(
    "exports_messages_claimed", "Outbox messages a poller claimed (leased).", ["topic"]
)
MESSAGES = Counter(
    "exports_messages",
    "Outbox messages a poller finished handling, by outcome "
    "(poller.core.handler.Outcome: done, retry, dead, dropped: not ours any more).",
    ["topic", "outcome"],
)
MESSAGE_SECONDS = Histogram(
    "exports_message_duration_seconds",
    "Time a poller spent on one message.",
    ["topic"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800),
)
EXPORTED_ROWS = Counter("exports_exported_rows", "Rows written to finished export files.")
EXPORTED_BYTES = Counter("exports_exported_bytes", "Bytes stored for finished export files.")
IN_FLIGHT = Gauge(
    "exports_poller_in_flight", "Messages a poller is working on.", multiprocess_mode="livesum"
)
LEASES_LOST = Counter("exports_leases_lost", "Leases a poller found taken from it.")
HANDED_BACK = Counter("exports_handed_back", "Messages handed back at shutdown.")
MAINTENANCE_RUNS = Counter(
    "exports_maintenance_runs",
    "Poller maintenance runs, by outcome (done; skipped: another poller held the lock; failed).",
    ["outcome"],
)
OUTBOX_PRUNED = Counter("exports_outbox_pruned", "Finished outbox rows deleted by maintenance.")
JOBS_EXPIRED = Counter(
    "exports_jobs_expired", "Jobs expired by maintenance (file deleted, links answer 410)."
)
EXPIRY_FAILURES = Counter(
    "exports_expiry_failures", "Expired jobs whose file could not be deleted (retried next run)."
)
SCHEDULE_SLOTS_SKIPPED = Counter(
    "exports_schedule_slots_skipped",
    "Schedule slots that queued no job, by reason (owner_quota: the owner was at "
    "EXPORTS_MAX_ACTIVE_PER_OWNER).",
    ["reason"],
)
SCHEDULE_LATENESS = Histogram(
    "exports_schedule_lateness_seconds",
    "From a schedule's slot to the commit of the job it queued (a late slot is one a "
    "poller fired after its time: none was running, or all were busy).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)
STALE_WORKERS_REMOVED = Counter(
    "exports_stale_workers_removed", "exports.workers rows removed after their heartbeats stopped."
)
WEBHOOK_DELIVERIES = Counter(
    "exports_webhook_deliveries",
    "Webhook delivery attempts, by outcome (delivered: 2xx; retry: will try again; failed: "
    "gave up; gone: 410, endpoint disabled; not_sent: the address was refused).",
    ["outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "exports_webhook_delivery_duration_seconds",
    "Time one webhook POST took, from connecting to the answer read.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "exports_webhook_endpoints_disabled",
    "Webhook endpoints the service disabled, by reason (gone: 410; failing: 5 days).",
    ["reason"],
)
