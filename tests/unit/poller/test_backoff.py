"""Retry back-off: exponential, jittered within [nominal/2, nominal], capped."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from poller.core.backoff import Backoff

SAMPLES = 300


@pytest.fixture(autouse=True)
def seeded_random() -> Iterator[None]:
    """Deterministic jitter for these tests, without disturbing anyone else's random."""
    state = random.getstate()
    random.seed(20240131)
    yield
    random.setstate(state)


def delays(backoff: Backoff, attempt: int, **kwargs: float) -> list[float]:
    return [backoff.delay(attempt, **kwargs) for _ in range(SAMPLES)]


@pytest.mark.parametrize(
    ("attempt", "nominal"), [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0), (6, 160.0)]
)
def test_delay_stays_between_half_and_all_of_the_nominal_delay(
    attempt: int, nominal: float
) -> None:
    samples = delays(Backoff(base_seconds=5.0, cap_seconds=1000.0), attempt)

    assert all(nominal / 2 <= d <= nominal for d in samples)


def test_delay_is_jittered_across_the_whole_range() -> None:
    samples = delays(Backoff(base_seconds=10.0, cap_seconds=1000.0), 1)

    assert min(samples) < 6.0
    assert max(samples) > 9.0
    assert len(set(samples)) > SAMPLES // 2


def test_delays_grow_exponentially_with_the_attempt() -> None:
    backoff = Backoff(base_seconds=1.0, cap_seconds=10_000.0)

    for attempt in range(1, 12):
        shorter, longer = delays(backoff, attempt), delays(backoff, attempt + 1)
        # Nominal doubles, so every delay of the next attempt is at least this one's nominal.
        assert min(longer) >= max(shorter)
        assert min(longer) >= 2.0 ** (attempt - 1)


def test_delay_is_capped() -> None:
    backoff = Backoff(base_seconds=5.0, cap_seconds=60.0)

    for attempt in (5, 10, 50, 1000):
        samples = delays(backoff, attempt)
        assert all(30.0 <= d <= 60.0 for d in samples)


@pytest.mark.parametrize("attempt", [0, -3])
def test_attempts_below_one_wait_like_the_first(attempt: int) -> None:
    samples = delays(Backoff(base_seconds=4.0, cap_seconds=100.0), attempt)

    assert all(2.0 <= d <= 4.0 for d in samples)


def test_at_least_raises_a_short_delay() -> None:
    samples = delays(Backoff(base_seconds=1.0, cap_seconds=100.0), 1, at_least=30.0)

    assert all(d == 30.0 for d in samples)


def test_at_least_does_not_shorten_a_longer_delay() -> None:
    samples = delays(Backoff(base_seconds=10.0, cap_seconds=1000.0), 3, at_least=1.0)

    assert all(20.0 <= d <= 40.0 for d in samples)


def test_at_least_beats_the_cap() -> None:
    """A server asking us to wait longer (throttling) is obeyed even past the cap."""
    samples = delays(Backoff(base_seconds=5.0, cap_seconds=60.0), 20, at_least=120.0)

    assert all(d == 120.0 for d in samples)
