"""Chaos: 3 real pollers, the real API, PostgreSQL and S3/SES behind a faulty proxy, while
pollers are SIGKILLed and SIGTERMed every few seconds and PostgreSQL restarts once.

At the end every job is terminal, every result object complete and as recorded, no export
ran to completion twice and no email went out twice (except where a kill landed in the
documented window, counted), and nothing is left half-uploaded. A summary table is printed.

    make chaos                                   # the full run: 300 jobs, ~2 min of chaos
    CHAOS_JOBS=500 CHAOS_SECONDS=180 make chaos  # bigger; see ChaosConfig.from_env
    .venv/bin/pytest tests/chaos -k short        # the short form `make test` runs

Logs, the proxy's request log, the job and outbox rows and summary.txt of each run go to
pytest's tmp_path, or under $CHAOS_ARTIFACTS when set (pytest prunes old tmp_paths).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from tests.chaos.checks import verify
from tests.chaos.harness import ChaosConfig, ChaosRun
from tests.chaos.report import summary
from tests.chaos.servers import PostgresCluster

# The form CI runs: same code, smaller numbers (under ~90 s of wall time).
SHORT = ChaosConfig(jobs=60, seconds=35.0, big_jobs=1, settle_timeout=40.0)


def artefacts_dir(tmp_path: Path, name: str) -> Path:
    """$CHAOS_ARTIFACTS/<name>-<time> if set (kept), else pytest's tmp_path."""
    root = os.environ.get("CHAOS_ARTIFACTS")
    if not root:
        return tmp_path
    folder = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True)
    return folder


def run_chaos(
    config: ChaosConfig,
    cluster: PostgresCluster,
    workdir: Path,
    capsys: pytest.CaptureFixture[str],
    title: str,
) -> None:
    """Run, verify, print the summary, and fail on any problem."""
    with ChaosRun(config, cluster, workdir).running() as evidence:
        began = time.monotonic()
        findings = verify(evidence)
        evidence.timings["verify"] = time.monotonic() - began
    text = summary(evidence, findings, title=title)
    (workdir / "summary.txt").write_text(text + "\n")
    with capsys.disabled():
        print("\n" + text)
    assert not findings.problems, (
        f"{len(findings.problems)} problems (see the summary above or {workdir}/summary.txt); "
        f"first: {findings.problems[0]}"
    )


@pytest.mark.chaos
def test_chaos_full(
    pg_cluster: PostgresCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ChaosConfig.from_env()
    workdir = artefacts_dir(tmp_path, "full")
    run_chaos(config, pg_cluster, workdir, capsys, f"chaos: {config.jobs} jobs")


def test_chaos_short(
    pg_cluster: PostgresCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Fixed sizes; only the seed may be given (CHAOS_SEED), to repeat a run's choices.
    config = dataclasses.replace(SHORT, seed=ChaosConfig.from_env(SHORT).seed)
    workdir = artefacts_dir(tmp_path, "short")
    run_chaos(config, pg_cluster, workdir, capsys, f"chaos (short): {config.jobs} jobs")
