"""What the chaos test asks for: demo data with owners of very different sizes, and a mix of
export requests (small and medium demo_orders, slow ones, a few big multipart ones, a few
that fail by design, a few cancelled)."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import psycopg

from app.exports.demo import seed_demo_orders
from app.exports.formats import FORMATS

# seed_demo_orders spreads rows evenly over user-1 .. user-K, so seeding several times with
# a shrinking K makes low-numbered owners heavy and high-numbered ones light:
#   user-1: 40 + 200 + 4,000 + 20,000 = 24,240 rows (the big, multipart owner)
#   user-2 .. user-10: 4,240 rows; user-11 .. user-100: 240 rows; user-101 .. user-400: 40
SEEDING = ((16_000, 400), (20_000, 100), (40_000, 10), (20_000, 1))
BIG_OWNER = "user-1"
SLOW_OWNERS = range(301, 401)  # 40 rows each: a slow export takes 40 * pause seconds
STATUSES = ("placed", "shipped", "delivered", "refunded")

SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"


def seed_owners(conn: psycopg.Connection) -> None:
    """Fill exports_demo.orders as described by SEEDING."""
    for rows, owners in SEEDING:
        seed_demo_orders(conn, rows, owners=owners)


@dataclass(frozen=True)
class JobSpec:
    """One export request the test submits, and what it should end as."""

    index: int
    owner_id: str
    kind: str
    params: dict[str, Any]
    format: str
    email: str
    label: str  # small, medium, large, slow, big, broken
    expect: str = SUCCEEDED  # unless cancelled in time
    cancel_after: float | None = None  # seconds after submission
    idempotency_key: str = field(default="")

    def body(self) -> dict[str, Any]:
        """The POST /v1/exports body."""
        return {
            "owner_id": self.owner_id,
            "kind": self.kind,
            "params": self.params,
            "format": self.format,
            "notify": {"email": self.email},
        }


def make_specs(
    count: int,
    *,
    run_id: str,
    rng: random.Random,
    big: int,
    slow_share: float = 0.2,
    broken_share: float = 0.02,
    cancel_share: float = 0.03,
) -> list[JobSpec]:
    """`count` requests in a shuffled mix; `big` of them produce ~25 MB (multipart) files."""
    broken = max(1, round(count * broken_share))
    slow = round(count * slow_share)
    labels = ["big"] * big + ["broken"] * broken + ["slow"] * slow
    labels += ["plain"] * max(0, count - len(labels))
    labels = labels[:count]
    rng.shuffle(labels)
    specs = []
    for index, label in enumerate(labels):
        spec = _spec(index, label, rng)
        cancel_after = None
        if label != "broken" and rng.random() < cancel_share:
            # Slow jobs are cancelled while they run; others usually while still queued.
            cancel_after = rng.uniform(0.5, 2.5) if label == "slow" else rng.uniform(0.0, 1.0)
        key = f"chaos-{run_id}-{index}"
        specs.append(dataclasses.replace(spec, cancel_after=cancel_after, idempotency_key=key))
    return specs


def _spec(index: int, label: str, rng: random.Random) -> JobSpec:
    email = f"owner-{index}@example.org"
    if label == "big":
        # slow_orders pads every row to ~1 kB; without pauses user-1's 24,240 rows make a
        # ~25 MB CSV: two 16 MiB-part multipart upload.
        return JobSpec(index, BIG_OWNER, "slow_orders", {"pause": 0}, "csv", email, "big")
    if label == "broken":
        owner = f"user-{rng.randint(11, 400)}"
        return JobSpec(index, owner, "broken_orders", {}, "csv", email, "broken", FAILED)
    if label == "slow":
        owner = f"user-{rng.choice(SLOW_OWNERS)}"
        pause = rng.choice([0.03, 0.05, 0.08, 0.1, 0.12])  # 1.2 .. 4.8 s: longer than a lease
        fmt = rng.choice(["csv", "csv.gz", "jsonl.gz"])
        return JobSpec(index, owner, "slow_orders", {"pause": pause}, fmt, email, "slow")
    roll = rng.random()
    if roll < 0.7:
        owner, size = f"user-{rng.randint(11, 400)}", "small"
    elif roll < 0.92:
        owner, size = f"user-{rng.randint(2, 10)}", "medium"
    else:
        owner, size = BIG_OWNER, "large"
    params: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.2:
        params = {"status": rng.choice(STATUSES)}
    elif roll < 0.4:
        params = {"since": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"}
    fmt = rng.choice(list(FORMATS))  # every format: csv, csv.gz, jsonl(.gz), xlsx, parquet
    return JobSpec(index, owner, "demo_orders", params, fmt, email, size)
