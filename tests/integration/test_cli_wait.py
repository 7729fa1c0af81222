"""`manage.py sweep X --wait` executing a sweep in its own process (the embedded worker), paused
or stopped from a second CLI or by Ctrl-C (issue 12, item 14): real subprocesses, the real
database, the fake LLM server over HTTP."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import pytest
from django.core.management import call_command

from sweeps.models import Provider, Run, RunSample, Sweep
from tests.conftest import wait_for
from tests.fakes.llm_server import FakeLLMServer, Scripted
from tests.servers import ROOT, session_database_url

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-test-cli-wait"
ROWS, SLOW = 12, 6
FAST = {"Answer 0", "Answer 1", "Answer 2"}


def env() -> dict[str, str]:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "promptlooper.settings_test",
                   "DATABASE_URL": session_database_url(), "OPENAI_API_KEY": KEY}  # fmt: skip
    environment.pop("REDIS_URL", None)  # embedded: the CLI's own process executes the sweep
    return environment


def cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "manage.py", "sweep", *args], cwd=ROOT, env=env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)  # fmt: skip


@pytest.fixture
def waiting_cli(user, tmp_path):
    """The first terminal: `sweep spec.json --wait`, once it has calls in flight."""
    with FakeLLMServer() as server:
        # The first rows answer at once, the others take SLOW s: the second terminal has time to act.
        server.responder = lambda request: Scripted(
            delay=0 if request.json["messages"][-1]["content"] in FAST else SLOW
        )
        Provider.objects.update_or_create(
            name="openai", defaults={"kind": "openai", "base_url": server.url, "api_key_env": "OPENAI_API_KEY"}
        )
        spec = tmp_path / "spec.json"
        spec.write_text(json.dumps({
            "name": "cli wait", "pipeline": [{"name": "a", "prompt": "Answer {{ t }}", "model": "openai/gpt-4o-mini"}],
            "dataset": [{"t": str(i)} for i in range(ROWS)], "max_concurrency": 3,
        }))  # fmt: skip
        first = cli(str(spec), "--wait", "--user", user.username)
        try:
            sweep = wait_for(lambda: Sweep.objects.filter(experiment__name="cli wait").first(), timeout=60)
            wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").count() >= 3, timeout=60)
            yield first, sweep, server
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()


def assert_nothing_left_running(sweep: Sweep, server: FakeLLMServer) -> None:
    sweep.refresh_from_db()
    assert not RunSample.objects.filter(sweep=sweep, status="running").exists()
    if (
        sweep.status != "paused"
    ):  # a paused sweep's runs still have pending samples (what a run shows then is item 12's)
        assert not Run.objects.filter(sweep=sweep, status="running").exists()
    assert len(server.requests) == sweep.completed  # every call paid was recorded


def test_a_stop_from_a_second_cli_lets_the_waiting_cli_record_its_calls_in_flight(waiting_cli):
    first, sweep, server = waiting_cli
    call_command("sweep", "--stop", str(sweep.pk), stdout=io.StringIO())  # the second terminal, at once

    output, _ = first.communicate(timeout=60)
    assert "Traceback" not in output
    assert_nothing_left_running(sweep, server)
    assert sweep.status == "stopped" and sweep.completed + sweep.cancelled == sweep.total == ROWS
    assert not Run.objects.filter(sweep=sweep, status="pending").exists()


def test_ctrl_c_pauses_the_sweep_after_its_calls_in_flight_and_resume_pays_none_again(waiting_cli):
    first, sweep, server = waiting_cli
    first.send_signal(signal.SIGINT)
    output, _ = first.communicate(timeout=60)

    assert "Traceback" not in output and "Pausing sweep" in output
    assert_nothing_left_running(sweep, server)
    assert sweep.status == "paused" and sweep.completed < ROWS

    resumed = cli("--resume", str(sweep.pk))
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    sweep.refresh_from_db()
    assert sweep.status == "completed" and sweep.completed == ROWS
    assert set(Run.objects.filter(sweep=sweep).values_list("status", flat=True)) == {"completed"}
    prompts = [r.json["messages"][-1]["content"] for r in server.requests]
    assert sorted(prompts) == sorted(f"Answer {i}" for i in range(ROWS))  # each row called exactly once
