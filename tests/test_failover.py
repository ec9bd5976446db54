"""SIGKILL the primary in a burst of mixed commands while gateways check tokens.

One run of ``bench.failover`` (``python -m bench.failover`` runs five, with the
findings of each): one primary, two replicas, three sentinels, the service as its own
process, four publishers and two gateways in this one.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.failover import run_once

pytestmark = [pytest.mark.ha, pytest.mark.slow]


def test_no_acknowledged_change_is_lost_when_the_primary_is_killed(tmp_path: Path) -> None:
    seed = random.randrange(100_000)
    print(f"seed {seed}")
    report = run_once(seed, tmp_path / "service.log")
    print(report)
    assert report["acknowledged"] == report["sent"], report
    assert report["lost"] == 0, report
    assert report["applied_twice"] == 0, report
    assert report["revoked_accepted"] == 0, report
    flow = report["flow_again_s"]
    assert isinstance(flow, float)
    assert flow < 10, report
    answered = report["answered_during_failover_pct"]
    assert isinstance(answered, dict)
    assert answered["replica"] >= 99, report
