"""The outbox topics of an export's life, one per step (rows of exports.topics)."""

from __future__ import annotations

EXPORT_RUN = "export.run"  # run the kind's query into storage: poller/handlers/export_run.py
EXPORT_NOTIFY = "export.notify"  # email the owner: poller/handlers/export_notify.py
