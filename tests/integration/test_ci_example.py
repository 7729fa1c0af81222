"""README's CI example (examples/ci.sh): curl and a token against a real server."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from sweeps.services.tokens import token_create
from tests.servers import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def run_ci(live_server, token: str, min_score: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROMPTLOOPER_URL": live_server.url, "PROMPTLOOPER_TOKEN": token, "POLL_SECONDS": "0.2"}
    return subprocess.run(["bash", str(ROOT / "examples/ci.sh"), str(ROOT / "examples/ticket-triage.yaml"), min_score],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_ci_script_passes_on_a_good_score_and_downloads_the_csv(live_server, user, mock_latency, tmp_path):
    result = run_ci(live_server, token_create(user=user, name="ci")[1], "0.5", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    best = float(re.search(r"completed; best score ([0-9.]+)", result.stdout).group(1))
    assert best >= 0.5
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert lines[0].startswith("run_id") and len(lines) > 1


def test_the_ci_script_fails_the_build_on_a_low_score_or_a_bad_token(live_server, user, mock_latency, tmp_path):
    low = run_ci(live_server, token_create(user=user, name="ci")[1], "1.5", tmp_path)
    assert low.returncode == 1 and "below 1.5" in low.stdout
    bad = run_ci(live_server, "pl_wrong", "0", tmp_path)
    assert bad.returncode != 0 and "Authentication required" in bad.stdout + bad.stderr
