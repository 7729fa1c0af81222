"""Issue 12, item 16: `manage.py sweep FILE --wait` fails (exit 1) when more than --max-failed of
the finished samples failed (default 0, for CI), and says why they failed, each reason once with
its count. Through call_command, plus one real `manage.py` process for the exit status itself."""

from __future__ import annotations

import json
import re

import pytest

from sweeps.models import Experiment, RunSample, Sweep
from tests.conftest import spec
from tests.integration.test_cli import manage, sweep_cli

pytestmark = pytest.mark.django_db(transaction=True)

# Two ways to fail: mock/error refuses every call, and the third row has no `ticket` to render.
# mock/echo: 1 of 3 samples fails; mock/error: 3 of 3. 4 failed of 6.
MIXED = spec(
    pipeline=[{"name": "answer", "prompt": "{{ ticket.upper() }}", "model": "mock/echo"}],
    dataset=[*spec()["dataset"][:2], {"subject": "no ticket here", "expected": "shipping"}],
    sweep={"type": "grid", "params": {"model": ["mock/echo", "mock/error"]}},
)


@pytest.fixture(autouse=True)
def mock_provider(mock_latency):
    """The built-in mock provider row (with no latency), even after a transactional test flushed it."""


@pytest.fixture
def mixed(tmp_path):
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(MIXED))
    return str(path)


def reasons(out: str) -> dict[str, int]:
    """The "  N × reason" lines the CLI printed."""
    return {m.group(2): int(m.group(1)) for m in re.finditer(r"^  (\d+) × (.+)$", out, re.M)}


def expected_reasons(sweep: Sweep) -> dict[str, int]:
    errors = RunSample.objects.filter(sweep=sweep, status="failed").values_list("error", flat=True)
    counted: dict[str, int] = {}
    for error in errors:
        counted[error] = counted.get(error, 0) + 1
    return counted


def test_failed_samples_exit_1_by_default_and_each_reason_is_printed_once_with_its_count(user, mixed):
    code, out = sweep_cli(mixed, "--wait")

    sweep = Sweep.objects.get()
    assert sweep.status == "completed" and (sweep.completed, sweep.failed) == (2, 4)
    assert code == 1, out
    assert "66.7% of the finished samples failed, more than --max-failed 0" in out
    assert "Failures (4 samples):" in out
    printed = reasons(out)
    assert printed == expected_reasons(sweep) and len(printed) == 2  # the provider's refusal, the render error
    assert sorted(printed.values()) == [2, 2]
    assert "Leaderboard" in out  # still shows what it found


def test_a_share_of_failures_within_max_failed_exits_0_and_still_lists_them(user, mixed):
    code, out = sweep_cli(mixed, "--wait", "--max-failed", "0.7")
    assert code == 0, out
    assert sum(reasons(out).values()) == 4

    code, out = sweep_cli(mixed, "--wait", "--max-failed", "0.5")
    assert code == 1 and "more than --max-failed 0.5" in out


@pytest.mark.parametrize("value", ["1.5", "-0.1", "nan"])
def test_a_max_failed_outside_0_to_1_exits_2_naming_it_and_starts_nothing(user, mixed, value):
    code, out = sweep_cli(mixed, "--wait", "--max-failed", value)
    assert code == 2 and "--max-failed must be a share between 0 and 1" in out
    assert not Experiment.objects.exists()


def test_manage_py_exits_1_when_every_sample_failed(user, tmp_path):
    path = tmp_path / "all-fail.json"
    path.write_text(json.dumps(spec(sweep={"type": "grid", "params": {"model": ["mock/error"]}})))

    result = manage("sweep", str(path), "--wait")

    assert result.returncode == 1, result.stderr
    assert "100.0% of the finished samples failed" in result.stderr and "Traceback" not in result.stderr
    assert re.search(r"^  3 × .*mock/error always fails", result.stdout, re.M), result.stdout
