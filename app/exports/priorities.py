"""Priorities: the order of a tenant's exports within its share of the pollers.

interactive (an API request, the default) goes before scheduled (fired by a schedule) goes
before bulk (asked for by the request, for backfills). Aging keeps it from starving: a
message's turn is visible_at plus its priority's wait (exports.outbox.turn_at), so a bulk
export waits behind newer interactive ones for at most EXPORTS_PRIORITY_MAX_WAIT, and a
scheduled one for half of it. Fairness between tenants comes first (the claim's
round-robin); priorities order the work inside each tenant's turn.
"""

from __future__ import annotations

INTERACTIVE = "interactive"
SCHEDULED = "scheduled"
BULK = "bulk"
PRIORITIES = (INTERACTIVE, SCHEDULED, BULK)
# What a request may ask for; "scheduled" is the service's to give.
REQUESTABLE = (INTERACTIVE, BULK)
# EXPORTS_PRIORITY_MAX_WAIT's default: seconds a bulk export waits behind newer interactive ones.
DEFAULT_MAX_WAIT = 600


def wait_seconds(priority: str, max_wait: int) -> int:
    """How far behind interactive work `priority` puts an export.run message."""
    if priority == BULK:
        return max_wait
    if priority == SCHEDULED:
        return max_wait // 2
    return 0
