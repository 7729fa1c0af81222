"""`manage.py sweep` and `manage.py demo`, in-process through call_command (exit statuses are the
CommandError's returncode), plus a few real `manage.py` processes for the exit status itself."""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from sweeps.models import Experiment, Run, RunSample, Sweep
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import spec, wait_for, wait_for_sweep

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ticket-triage.yaml"

INVALID_SPEC = """\
name: ""
colour: blue
pipeline:
  - name: summarize
    model: nope/gpt
  - name: label
    prompt: "Label: {{ summarize }}"
dataset:
  - {ticket: "charged twice", expected: billing}
scorers:
  - {type: telepathy}
sweep:
  type: exhaustive
  params:
    params.temperature: [0.0, 1.0]
max_concurrency: 0
"""
# every problem above, by the field path the error must name
INVALID_PATHS = ["name", "colour", "pipeline[0].prompt", "pipeline[0].model", "scorers[0].type", "sweep.type",
                 "max_concurrency"]  # fmt: skip


@pytest.fixture(autouse=True)
def mock_provider(mock_latency):
    """The built-in mock provider row (with no latency), even after a transactional test flushed it."""


def sweep_cli(*args: str) -> tuple[int, str]:
    """Run `manage.py sweep ARGS` in-process: (exit status, stdout + the error message)."""
    out = io.StringIO()
    try:
        call_command("sweep", *args, stdout=out, stderr=out)
    except CommandError as e:
        return e.returncode, out.getvalue() + f"\nCommandError: {e}"
    return 0, out.getvalue()


def table_rows(output: str) -> list[list[str]]:
    """The body rows of the rich leaderboard table (cells between │), a folded cell's rest dropped."""
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if line.strip().startswith("│") and cells[0].isdigit():
            rows.append(cells)
    return rows


@pytest.fixture
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # the leaderboard is printed unfolded


# --- sweep FILE ---


@pytest.mark.django_db(transaction=True)
def test_sweep_file_wait_prints_the_leaderboard_and_exits_0(user, mock_latency, wide_terminal):
    code, out = sweep_cli(str(EXAMPLE), "--wait", "--user", "alice")

    assert code == 0, out
    experiment = Experiment.objects.get()
    assert experiment.name == "Ticket triage" and experiment.owner == user
    sweep = experiment.sweeps.get()
    assert sweep.status == "completed"
    assert (sweep.total, sweep.completed + sweep.failed) == (144, 144)  # 4 models x 3 temperatures x 2 prompts x 6 rows
    assert f"Experiment {experiment.pk} 'Ticket triage': sweep {sweep.pk} started." in out
    assert f"Leaderboard · sweep {sweep.pk} · completed" in out
    header = next(line for line in out.splitlines() if line.strip().startswith("┃"))
    assert [c.strip() for c in header.strip().strip("┃").split("┃")] == [
        "#", "score [95 %]", "icontains", "max_length", "similarity", "model", "params.temperature",
        "stages.label.prompt", "status", "tokens", "cost $"
    ]  # fmt: skip

    rows = table_rows(out)
    assert [r[0] for r in rows] == [str(i) for i in range(1, 11)]  # the top ten
    scores = [float(r[1].split()[0]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    best = Run.objects.filter(sweep=sweep).order_by("-score", "id").first()
    assert rows[0][1] == f"{sweep.best_score:.3f} [{best.score_ci_low:.2f}–{best.score_ci_high:.2f}]"
    assert rows[0][2:5] == [f"{m['mean']:.3f}" for m in best.scorer_means]  # each scorer's mean
    assert rows[0][5] == best.config["model"]
    assert f"{sweep.completed} completed, {sweep.failed} failed" in out
    assert "#1 and #2 (the top two): " in out and "Wilcoxon over 6 rows" in out  # ranks, as the table numbers them


@pytest.mark.django_db(transaction=True)
def test_min_score_above_the_best_exits_1_with_the_reason(user, mock_latency):
    code, out = sweep_cli(str(EXAMPLE), "--min-score", "0.99")

    sweep = Sweep.objects.get()
    assert sweep.status == "completed" and sweep.best_score < 0.99
    assert code == 1
    assert f"best score {sweep.best_score} is below --min-score 0.99" in out
    assert "Leaderboard" in out  # still shows what it found

    # a bar at the best score as the leaderboard shows it passes (the rerun is served from the cache)
    shown = math.floor(sweep.best_score * 1000) / 1000
    code, out = sweep_cli(str(EXAMPLE), "--min-score", f"{shown:.3f}")
    assert code == 0, out
    assert Sweep.objects.count() == 2 and Experiment.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_failing_model_still_completes_and_reports_its_failures(user, mock_latency, tmp_path, wide_terminal):
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(spec(sweep={"type": "grid", "params": {"model": ["mock/echo", "mock/error"]}})))

    code, out = sweep_cli(str(path), "--wait", "--max-failed", "0.5")

    assert code == 0, out
    sweep = Sweep.objects.get()
    assert (sweep.completed, sweep.failed) == (3, 3)
    assert "6 of 6 done: 3 completed, 3 failed" in out
    assert [r[-3] for r in table_rows(out)] == ["completed", "failed"]


@pytest.mark.django_db
def test_an_invalid_spec_exits_2_listing_every_error_and_saves_nothing(user, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(INVALID_SPEC)
    before = (Experiment.objects.count(), Sweep.objects.count())

    code, out = sweep_cli(str(path), "--wait")

    assert code == 2
    assert f"{path} is not a valid spec:" in out
    listed = [line.strip() for line in out.split("is not a valid spec:", 1)[1].splitlines() if line.strip()]
    for field in INVALID_PATHS:
        assert any(line.startswith(f"{field}:") for line in listed), f"{field} missing from {listed}"
    assert any("nope" in line for line in listed if line.startswith("pipeline[0].model:"))
    assert (Experiment.objects.count(), Sweep.objects.count()) == before


@pytest.mark.django_db
def test_a_spec_file_that_is_not_yaml_exits_2_naming_the_line(user, tmp_path):
    path = tmp_path / "garbled.yaml"
    path.write_text("name: x\npipeline: [unclosed\n  - a: b: c\n")

    code, out = sweep_cli(str(path))

    assert code == 2 and "invalid YAML at line" in out
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_a_spec_file_that_is_not_text_exits_2(user, tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"name: \xff\xfe\x00 broken\n")

    code, out = sweep_cli(str(path))

    assert code == 2 and str(path) in out
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_an_invalid_spec_saves_no_user_either(django_user_model, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(INVALID_SPEC)

    code, _ = sweep_cli(str(path))

    assert code == 2
    assert not django_user_model.objects.exists()


@pytest.mark.django_db
def test_a_missing_file_exits_2(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    code, out = sweep_cli(str(missing))
    assert code == 2
    assert f"cannot read {missing}: No such file or directory" in out
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_no_file_and_no_action_exits_2():
    code, out = sweep_cli()
    assert code == 2 and "give a spec file" in out


@pytest.mark.django_db
def test_an_unknown_user_exits_2(tmp_path):
    code, out = sweep_cli(str(EXAMPLE), "--user", "nobody")
    assert code == 2 and "no user named 'nobody'" in out
    assert not Experiment.objects.exists()


# --- --pause / --resume / --stop ---


def slow_sweep(user, mock_latency) -> Sweep:
    mock_latency(30)
    experiment = experiment_create(owner=user, data=spec(max_concurrency=1))
    sweep = sweep_start(experiment=experiment)
    wait_for(lambda: RunSample.objects.filter(sweep=sweep, status="completed").exists())
    return sweep


@pytest.mark.django_db(transaction=True)
def test_pause_then_resume_by_id_finishes_the_sweep(user, mock_latency, wide_terminal):
    sweep = slow_sweep(user, mock_latency)

    code, out = sweep_cli("--pause", str(sweep.pk))
    assert code == 0, out
    assert f"Sweep {sweep.pk}: paused." in out
    sweep.refresh_from_db()
    assert (sweep.status, sweep.stopped_reason) == ("paused", "paused")
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status="running").exists())
    assert RunSample.objects.filter(sweep=sweep, status="pending").exists()

    code, out = sweep_cli("--pause", str(sweep.pk))
    assert code == 1
    assert f"Cannot pause sweep {sweep.pk}: it is paused; it can be resumed or stopped." in out

    code, out = sweep_cli("--resume", str(sweep.pk))  # embedded: follows it to the end
    assert code == 0, out
    sweep.refresh_from_db()
    assert sweep.status == "completed" and sweep.completed == sweep.total == 12
    assert f"Leaderboard · sweep {sweep.pk} · completed" in out and len(table_rows(out)) == 4

    code, out = sweep_cli("--stop", str(sweep.pk))
    assert code == 1 and f"Cannot stop sweep {sweep.pk}: it is completed; it is finished." in out


@pytest.mark.django_db(transaction=True)
def test_stop_by_id_cancels_what_is_pending(user, mock_latency):
    sweep = slow_sweep(user, mock_latency)

    code, out = sweep_cli("--stop", str(sweep.pk))

    assert code == 0 and f"Sweep {sweep.pk}: stopped." in out
    sweep = wait_for_sweep(sweep)
    wait_for(lambda: not RunSample.objects.filter(sweep=sweep, status__in=("pending", "running")).exists())
    sweep.refresh_from_db()
    assert sweep.status == "stopped" and sweep.cancelled > 0

    code, out = sweep_cli("--resume", str(sweep.pk))
    assert code == 1 and "it is stopped; it is finished." in out


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["--pause", "--resume", "--stop"])
def test_controlling_a_sweep_that_does_not_exist_exits_2(action):
    code, out = sweep_cli(action, "999999")
    assert code == 2 and "no sweep 999999" in out


# --- the real process: exit statuses as a shell sees them ---


def manage(*args: str) -> subprocess.CompletedProcess:
    """`manage.py ARGS` against this test's database (committed data only: transactional tests)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "REDIS_URL")}
    env |= {"DATABASE_URL": url, "DEBUG": "True", "SECRET_KEY": "cli-test-key", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_manage_py_exit_statuses(user, mock_latency, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(INVALID_SPEC)

    invalid = manage("sweep", str(broken))
    assert invalid.returncode == 2, invalid.stderr
    assert all(f"{field}:" in invalid.stderr for field in INVALID_PATHS), invalid.stderr
    assert "Traceback" not in invalid.stderr
    assert not Experiment.objects.exists()

    assert manage("sweep", str(tmp_path / "missing.yaml")).returncode == 2

    below = manage("sweep", str(EXAMPLE), "--wait", "--min-score", "0.99")
    assert below.returncode == 1, below.stderr
    assert "is below --min-score 0.99" in below.stderr and "Leaderboard" in below.stdout

    ok = manage("sweep", str(EXAMPLE), "--wait")
    assert ok.returncode == 0, ok.stderr
    assert "Leaderboard" in ok.stdout
    assert list(Sweep.objects.values_list("status", flat=True)) == ["completed", "completed"]


# --- demo ---


@pytest.mark.django_db
def test_demo_creates_the_user_and_experiment_once_and_shows_the_password_once(django_user_model):
    first = io.StringIO()
    call_command("demo", stdout=first)

    match = re.search(r"Log in as demo / (\S+)", first.getvalue())
    assert match, first.getvalue()
    password = match.group(1)
    demo = django_user_model.objects.get(username="demo")
    assert demo.is_superuser and demo.check_password(password)
    assert len(password) >= 12
    [experiment] = Experiment.objects.filter(owner=demo)
    assert experiment.name == "Ticket triage" and experiment.status == "draft"
    assert "Demo experiment 'Ticket triage' is ready" in first.getvalue()

    second = io.StringIO()
    call_command("demo", stdout=second)

    assert password not in second.getvalue() and "demo / " not in second.getvalue()
    assert "Log in as demo" in second.getvalue()
    assert django_user_model.objects.filter(username="demo").count() == 1
    demo.refresh_from_db()
    assert demo.check_password(password)  # not reset
    assert Experiment.objects.filter(owner=demo).count() == 1
    assert "Demo experiment" not in second.getvalue()


@pytest.mark.django_db
def test_demo_passwords_are_random(django_user_model):
    passwords = []
    for _ in range(2):
        out = io.StringIO()
        call_command("demo", stdout=out)
        passwords.append(re.search(r"Log in as demo / (\S+)", out.getvalue()).group(1))
        django_user_model.objects.filter(username="demo").delete()
    assert passwords[0] != passwords[1]


@pytest.mark.django_db
def test_demo_pauses_sweeps_a_previous_process_left_running(user):
    experiment = experiment_create(owner=user, data=spec())
    orphan = Sweep.objects.create(experiment=experiment, spec=experiment.parsed_spec().to_dict(), status="running")
    out = io.StringIO()

    call_command("demo", stdout=out)

    orphan.refresh_from_db()
    assert (orphan.status, orphan.stopped_reason) == ("paused", "interrupted")
    assert f"Sweep {orphan.pk} was interrupted; it is paused and can be resumed." in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_demo_experiment_runs_from_the_cli(mock_latency, wide_terminal):
    call_command("demo", stdout=io.StringIO())
    experiment = Experiment.objects.get()

    code, out = sweep_cli(str(EXAMPLE), "--wait")  # no --user: the demo user owns it

    assert code == 0, out
    assert Experiment.objects.filter(owner=experiment.owner).count() == 2
