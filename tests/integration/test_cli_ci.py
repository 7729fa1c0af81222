"""CI runs of one suite: `manage.py sweep FILE --experiment NAME` adds a sweep to the same
experiment instead of another copy of it, and `--junit PATH` writes a report that a JUnit XML
library (junitparser, as CI systems read them) parses: a suite per configuration, a case per row."""

from __future__ import annotations

import json

import pytest
from junitparser import Error, Failure, JUnitXml

from sweeps.models import Experiment, RunSample, Sweep
from sweeps.services.sweeps import sweep_pause
from tests.conftest import spec
from tests.integration.test_cli import sweep_cli

pytestmark = pytest.mark.django_db(transaction=True)

GRID = {"type": "grid", "params": {"model": ["mock/echo", "mock/error"]}}
SCORERS = [{"type": "icontains", "value": "{{ expected }}"}, {"type": "max_length", "value": 12, "name": "short"}]


@pytest.fixture(autouse=True)
def mock_provider(mock_latency):
    """The mock provider's row, even after a transactional test flushed it."""


def write(path, **overrides):
    path.write_text(json.dumps(spec(scorers=SCORERS, sweep=GRID, fail_fast=False, **overrides)))
    return str(path)


def test_runs_of_one_suite_add_sweeps_to_one_named_experiment(tmp_path, user):
    suite = write(tmp_path / "suite.json")
    assert sweep_cli(suite, "--experiment", "Nightly triage", "--max-failed", "1")[0] == 0
    write(tmp_path / "suite.json", repeats=2)  # the suite changed between two CI runs
    status, out = sweep_cli(suite, "--experiment", "Nightly triage", "--max-failed", "1")

    assert status == 0, out
    experiment = Experiment.objects.get()
    assert experiment.name == "Nightly triage" and experiment.spec["repeats"] == 2
    assert [s.total for s in experiment.sweeps.order_by("pk")] == [6, 12]  # the second ran the new spec


def test_a_named_experiment_with_a_sweep_in_progress_is_refused(tmp_path, user):
    suite = write(tmp_path / "suite.json")
    sweep_cli(suite, "--experiment", "Nightly", "--max-failed", "1")
    sweep = Sweep.objects.get()
    Sweep.objects.filter(pk=sweep.pk).update(status="running")
    sweep_pause(sweep=sweep)

    status, out = sweep_cli(suite, "--experiment", "Nightly")
    assert status == 1 and f"already has a paused sweep ({sweep.pk}): resume or stop it before starting" in out
    assert Sweep.objects.count() == 1


def test_the_junit_report_has_a_suite_per_configuration_and_a_case_per_row(tmp_path, user):
    report = tmp_path / "report.xml"
    status, out = sweep_cli(write(tmp_path / "suite.json"), "--junit", str(report), "--max-failed", "1")
    assert status == 0 and f"JUnit report: {report}" in out, out

    xml = JUnitXml.fromfile(str(report))
    suites = {suite.name.split(": ", 1)[1]: suite for suite in xml}
    assert set(suites) == {"model=mock/echo", "model=mock/error"}
    assert (xml.tests, xml.errors) == (6, 3)
    for suite in suites.values():
        assert suite.tests == 3 and len(list(suite)) == 3
    samples = {(s.run_id, s.row_index): s for s in RunSample.objects.select_related("run").prefetch_related("scores")}
    for suite in suites.values():
        for case in suite:
            run_id = int(case.classname.split()[1])
            sample = samples[(run_id, int(case.name.split()[1]))]
            [result] = case.result or [None]
            failed = [s for s in sample.scores.all() if not s.passed]
            if sample.status == "failed":
                assert isinstance(result, Error) and "mock/error always fails" in result.message
            elif failed:
                assert isinstance(result, Failure)
                assert result.text == "\n".join(f"{s.name}: {s.reason}" for s in failed)
            else:
                assert result is None and case.system_out == sample.output
    assert xml.failures == sum(1 for s in samples.values() if s.status == "completed"
                               and any(not x.passed for x in s.scores.all()))  # fmt: skip


TWELVE = [{"ticket": f"billing issue number {i}", "expected": "billing"} for i in range(12)]
ECHO_UPPER = {"type": "grid", "params": {"model": ["mock/echo", "mock/upper"]}}


def regression_suite(path, prompt: str, grid=ECHO_UPPER):
    path.write_text(json.dumps(spec(
        pipeline=[{"name": "label", "prompt": prompt, "model": "mock/echo"}], dataset=TWELVE,
        scorers=[{"type": "icontains", "value": "{{ expected }}"}], sweep=grid,
    )))  # fmt: skip
    return str(path)


def test_a_baseline_gate_exits_1_on_a_significant_regression_and_says_where(tmp_path, user):
    suite = tmp_path / "suite.json"
    assert sweep_cli(regression_suite(suite, "Label: {{ ticket }}"), "--experiment", "Gate")[0] == 0
    same, out = sweep_cli(regression_suite(suite, "Label this: {{ ticket }}"), "--experiment", "Gate",
                          "--baseline", "previous")  # fmt: skip
    assert same == 0 and "0 configurations got significantly worse, 0 better, 2 unchanged." in out, out

    status, out = sweep_cli(regression_suite(suite, "Label: nothing"), "--experiment", "Gate", "--baseline", "previous")

    assert status == 1, out
    assert "2 configurations got significantly worse, 0 better, 0 unchanged." in out
    assert "pass -> fail rows [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]" in out
    assert "regression against sweep" in out and "a configuration got significantly worse" in out


def test_the_api_compares_two_sweeps_per_configuration(tmp_path, user, other_user):
    from tests.integration.api_client import ApiClient

    suite = tmp_path / "suite.json"
    sweep_cli(regression_suite(suite, "Label: {{ ticket }}"), "--experiment", "Api", "--user", user.username)
    sweep_cli(regression_suite(suite, "Label: nothing"), "--experiment", "Api", "--user", user.username)
    first, second = Sweep.objects.order_by("pk")

    body = ApiClient(user).get(f"/sweeps/{first.pk}/compare/{second.pk}").json()
    assert body["summary"] == {"worse": 2, "better": 0, "unchanged": 0,
                               "text": "2 configurations got significantly worse, 0 better, 0 unchanged"}  # fmt: skip
    echo = next(c for c in body["configurations"] if c["config"]["model"] == "mock/echo")
    assert (echo["score_before"], echo["score_after"], echo["rows"], echo["verdict"]) == (1.0, 0.0, 12, "worse")
    assert echo["p_value"] < 0.001 and echo["pass_to_fail"] == list(range(12)) and echo["fail_to_pass"] == []
    assert ApiClient(other_user).get(f"/sweeps/{first.pk}/compare/{second.pk}").status_code == 404
    assert ApiClient(user).get(f"/sweeps/{first.pk}/compare/{second.pk}", alpha=2).status_code == 422


def test_a_baseline_with_no_configuration_in_common_exits_2(tmp_path, user):
    suite = tmp_path / "suite.json"
    sweep_cli(regression_suite(suite, "Label: {{ ticket }}", {"type": "grid", "params": {"model": ["mock/echo"]}}))
    baseline = Sweep.objects.get()
    status, out = sweep_cli(regression_suite(suite, "Label: {{ ticket }}", {"type": "grid", "params": {
        "model": ["mock/upper"]}}), "--baseline", str(baseline.pk))  # fmt: skip
    assert status == 2 and f"has no configuration in common with sweep {baseline.pk}: nothing to compare" in out
    assert sweep_cli(str(suite), "--baseline", "yesterday")[0] == 2


def test_each_way_in_records_where_the_experiment_came_from(tmp_path, user):
    from tests.integration.api_client import ApiClient

    sweep_cli(write(tmp_path / "suite.json"), "--experiment", "From CI", "--max-failed", "1")
    made = ApiClient(user).post("/experiments", spec(name="From a script")).json()
    assert made["source"] == "api"
    assert Experiment.objects.get(name="From CI").source == "cli"


def test_each_sweep_records_who_started_it_and_how(tmp_path, user):
    from tests.conftest import logged_in
    from tests.integration.api_client import ApiClient

    sweep_cli(write(tmp_path / "suite.json"), "--experiment", "Who", "--user", user.username, "--max-failed", "1")
    experiment = Experiment.objects.get(name="Who")
    started = ApiClient(user).post(f"/experiments/{experiment.pk}/sweeps").json()
    assert started["started_via"] == "api"
    from tests.conftest import wait_for_sweep

    wait_for_sweep(Sweep.objects.get(pk=started["id"]))
    logged_in(user).post(f"/experiments/{experiment.pk}/sweep/start/")
    ways = [(s.started_by_id, s.started_via) for s in experiment.sweeps.order_by("pk")]
    assert ways == [(user.pk, "cli"), (user.pk, "api"), (user.pk, "web")]
