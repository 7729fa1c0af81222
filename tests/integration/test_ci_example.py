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


def test_with_an_experiment_id_the_script_compares_with_its_previous_sweep(live_server, user, mock_latency, tmp_path):
    import json

    from sweeps.services.experiments import experiment_create
    from tests.conftest import spec

    rows = [{"ticket": f"billing issue number {i}", "expected": "billing"} for i in range(12)]

    def suite(prompt: str) -> str:
        path = tmp_path / "suite.json"  # JSON is YAML
        path.write_text(json.dumps(spec(pipeline=[{"name": "label", "prompt": prompt, "model": "mock/echo"}],
                                        dataset=rows, sweep=None)))  # fmt: skip
        return str(path)

    experiment = experiment_create(owner=user, data=spec(dataset=rows))
    env = {
        **os.environ,
        "PROMPTLOOPER_URL": live_server.url,
        "POLL_SECONDS": "0.2",
        "PROMPTLOOPER_TOKEN": token_create(user=user, name="ci")[1],
        "PROMPTLOOPER_EXPERIMENT": str(experiment.pk),
    }

    def run(prompt: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(ROOT / "examples/ci.sh"), suite(prompt)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    first = run("Label: {{ ticket }}")  # no sweep before: nothing to compare
    assert first.returncode == 0 and "against sweep" not in first.stdout, first.stdout + first.stderr
    same = run("Label this: {{ ticket }}")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "0 configurations got significantly worse, 0 better, 1 unchanged" in same.stdout
    worse = run("Label: nothing")
    assert worse.returncode == 1 and "1 configuration got significantly worse" in worse.stdout
    assert experiment.sweeps.count() == 3
