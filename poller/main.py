"""exports-poller: build the poller from the environment and run it until SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from types import FrameType

import click
from prometheus_client import REGISTRY
from psycopg_pool import ConnectionPool

from app.platform.db import SESSION_OPTIONS, open_pool
from app.platform.logs import configure_logging
from app.platform.metrics import queue_collector
from app.platform.monitoring import init_sentry
from app.platform.services import Services
from app.platform.settings import ConfigError, Settings
from app.queue.outbox import ClaimPolicy
from poller.core.backoff import Backoff
from poller.core.dispatch import Poller
from poller.core.health import HealthServer, check
from poller.core.registry import WorkerRegistry
from poller.handlers import build_handlers
from poller.mail import mailer_from_url
from poller.periodic.maintenance import Maintenance
from poller.periodic.scheduler import Scheduler

log = logging.getLogger("poller")


@dataclass
class PollerProcess:
    """A poller and what it runs on, built by build_poller; close() after run() returned."""

    poller: Poller
    services: Services
    source_pool: ConnectionPool

    def close(self, timeout: float = 5.0) -> None:
        """Close the database pools, waiting at most `timeout` s for connections in use."""
        self.source_pool.close(timeout=timeout)
        self.services.close(timeout=timeout)


def build_poller(settings: Settings) -> PollerProcess:
    """A Poller wired to its handlers and its scheduler, and what to close when it is done."""
    services = Services.build(
        settings, name="exports-poller", pool_size=settings.poller_threads * 2 + 2
    )
    source_pool = open_pool(
        settings.source_database_url or settings.database_url,
        name="exports-poller-source",
        max_size=settings.poller_threads,
        options=SESSION_OPTIONS,  # the export queries: the server's JIT setting
    )
    mailer = mailer_from_url(
        settings.mail_url,
        region=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        configuration_set=settings.ses_configuration_set,
    )
    poller = Poller(
        services.pool,
        build_handlers(services, source_pool=source_pool, mailer=mailer),
        database_url=settings.database_url,
        threads=settings.poller_threads,
        batch=settings.poller_batch,
        lease_seconds=settings.lease_seconds,
        poll_interval=settings.poll_interval,
        backoff=Backoff(settings.retry_base_seconds, settings.retry_cap_seconds),
        claim_policy=ClaimPolicy(
            fifo=settings.claim_order == "fifo",
            max_running_per_tenant=settings.max_running_per_tenant,
        ),
    )
    # Fires due schedules (exports.schedules) on its own thread while the poller runs.
    poller.companions.append(
        Scheduler(
            services.pool,
            database_url=settings.database_url,
            max_attempts=settings.max_attempts,
            max_active=settings.max_active_per_owner,
            priority_max_wait=settings.priority_max_wait,
        )
    )
    return PollerProcess(poller, services, source_pool)


@click.command()
@click.option(
    "--grace",
    default=25.0,
    show_default=True,
    envvar="EXPORTS_SHUTDOWN_GRACE",
    help="Seconds in-flight work may take to finish after SIGTERM.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Do not run: exit 0 if the poller on this host answers /healthz with 200 within "
    "2 s (on EXPORTS_METRICS_PORT), else 1. For container health checks.",
)
def main(grace: float, check: bool) -> None:
    """Claim and run export work from the outbox until SIGTERM (twice: exit at once)."""
    if check:
        raise SystemExit(health_check())
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    init_sentry(settings, process="poller")
    stopping = threading.Event()
    running: list[Poller] = []  # empty until the poller exists

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            log.warning("second signal: exiting now")
            os._exit(1)
        stopping.set()
        log.info("signal %s: stopping", signal.Signals(signum).name)
        if not running:
            raise SystemExit(0)  # still starting: nothing claimed, nothing to hand back
        running[0].stop()

    # First thing, so a SIGTERM during start-up is a clean exit, not a default kill.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    built = build_poller(settings)
    poller = built.poller
    running.append(poller)
    # Queue depth and lag on the poller's /metrics too (one cached query per scrape).
    REGISTRY.register(queue_collector(poller.pool, settings.metrics_top_tenants))
    if settings.metrics_port:
        try:
            HealthServer(
                poller,
                port=settings.metrics_port,
                stall_seconds=settings.stall_seconds,
                host=settings.metrics_bind,
            ).start()
        except OSError as exc:  # metrics are worth a log line, not a poller that won't run
            log.error("metrics not served on port %s: %s", settings.metrics_port, exc)
    registry, maintenance = start_housekeeping(settings, built)
    poller.run(grace_seconds=grace)
    maintenance.stop()
    registry.stop()  # deregister: waits at most ~1 s
    built.close(timeout=0.5)
    logging.shutdown()
    # Work still running after the grace period was handed back, and its writes are
    # fenced; its threads may sit in a network call. Exit now instead of waiting for them:
    # grace (25 s) + hand-back (2 s) + deregistering (1 s) + closing (1 s) stays under
    # ECS's 30 s stopTimeout.
    os._exit(0)


def start_housekeeping(
    settings: Settings, built: PollerProcess
) -> tuple[WorkerRegistry, Maintenance]:
    """Register the poller in exports.workers (with heartbeats) and start maintenance."""
    poller = built.poller
    registry = WorkerRegistry(
        poller.pool,
        poller.name,
        in_flight=lambda: poller.in_flight,
        every=settings.lease_seconds / 3,  # the cadence of the lease heartbeat
    )
    registry.start()
    maintenance = Maintenance.from_settings(settings, poller.pool, built.services.storage)
    maintenance.start()
    return registry, maintenance


def health_check() -> int:
    """`exports-poller --check`: 0 when the local poller is healthy, else 1 (and why)."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        return 1
    if not settings.metrics_port:
        click.echo("EXPORTS_METRICS_PORT is 0: the poller serves no /healthz", err=True)
        return 1
    problem = check(settings.metrics_port, host=settings.metrics_bind)
    if problem:
        click.echo(problem, err=True)
        return 1
    return 0
