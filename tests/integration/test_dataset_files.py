"""Datasets and prompts from files, for real: `manage.py sweep` reads `{file: ...}` next to the
spec (a real process, from another working directory), and PUT /api/v1/experiments/{id}/dataset
takes CSV and JSON Lines bodies through Django's whole request path (and through daphne)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys

import httpx
import pytest

from sweeps.models import Experiment, RunSample
from sweeps.services.tokens import token_create
from tests.conftest import spec
from tests.integration.api_client import ApiClient
from tests.servers import ROOT, daphne, session_database_url

pytestmark = pytest.mark.django_db(transaction=True)

SPEC_YAML = """\
name: From files
pipeline:
  - name: route
    prompt: {file: prompts/route.txt}
    model: mock/echo
dataset: {file: data/tickets.csv}
scorers:
  - {type: icontains, value: "{{ expected }}"}
sweep:
  type: grid
  params:
    prompt: [{file: prompts/route.txt}, {file: prompts/terse.txt}]
"""
TICKETS = "ticket,expected\ncharged twice billing,billing\nlogin broken,login\nparcel lost,shipping\n"


@pytest.fixture
def spec_folder(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "prompts" / "route.txt").write_text("Route: {{ ticket }}")
    (tmp_path / "prompts" / "terse.txt").write_text("Label this: {{ ticket }}")
    (tmp_path / "data" / "tickets.csv").write_text(TICKETS)
    (tmp_path / "triage.yaml").write_text(SPEC_YAML)
    return tmp_path


def cli(*args, cwd):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "promptlooper.settings_test", "DATABASE_URL": session_database_url()}
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), "sweep", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_cli_reads_files_next_to_the_spec_and_records_their_digests(
    user, mock_latency, spec_folder, tmp_path_factory
):
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # relative to the spec file, not to where it runs
    done = cli(str(spec_folder / "triage.yaml"), "--wait", "--user", user.username, cwd=elsewhere)

    assert done.returncode == 0, done.stdout + done.stderr
    experiment = Experiment.objects.get(name="From files")
    assert experiment.spec["dataset"] == list(csv.DictReader(io.StringIO(TICKETS)))
    assert experiment.spec["sweep"]["params"]["prompt"] == ["Route: {{ ticket }}", "Label this: {{ ticket }}"]
    digest = hashlib.sha256(TICKETS.encode()).hexdigest()
    assert experiment.spec["sources"]["dataset"] == {"file": "data/tickets.csv", "sha256": digest, "rows": 3}
    prompts = {s["prompt"] for sample in RunSample.objects.filter(run__experiment=experiment) for s in sample.stages}
    assert "Label this: login broken" in prompts and "Route: parcel lost" in prompts


def test_the_cli_names_the_file_and_line_of_a_bad_dataset_and_saves_nothing(user, mock_latency, spec_folder):
    (spec_folder / "data" / "tickets.csv").write_text("ticket,expected\nok,fine\nragged\n")
    (spec_folder / "prompts" / "terse.txt").unlink()
    done = cli(str(spec_folder / "triage.yaml"), "--user", user.username, cwd=spec_folder)

    assert done.returncode == 2
    assert "dataset.file: data/tickets.csv: line 3: 1 value, but the header has 2 columns" in done.stderr
    assert "sweep.params.prompt[1].file: prompts/terse.txt: no such file" in done.stderr
    assert "Traceback" not in done.stderr and not Experiment.objects.exists()


@pytest.fixture
def api(user, mock_latency):
    return ApiClient(user)


def put(api: ApiClient, experiment_id: int, body: bytes, content_type: str):
    return api.client.put(f"/api/v1/experiments/{experiment_id}/dataset", data=body, content_type=content_type,
                          headers=api.headers())  # fmt: skip


def test_put_dataset_replaces_the_rows_with_a_csv_or_json_lines_body(api):
    experiment_id = api.post("/experiments", spec()).json()["id"]

    response = put(api, experiment_id, TICKETS.encode(), "text/csv; charset=utf-8")
    assert response.status_code == 200, response.json()
    assert response.json() == {"rows": 3, "columns": ["ticket", "expected"],
                               "sha256": hashlib.sha256(TICKETS.encode()).hexdigest()}  # fmt: skip
    stored = api.get(f"/experiments/{experiment_id}").json()["spec"]
    assert stored["dataset"][2] == {"ticket": "parcel lost", "expected": "shipping"}
    assert stored["sources"]["dataset"]["rows"] == 3

    lines = b'{"ticket": "a", "expected": "x"}\n{"ticket": "b", "expected": "y"}\n'
    assert put(api, experiment_id, lines, "application/x-ndjson").json()["rows"] == 2
    assert [r["ticket"] for r in api.get(f"/experiments/{experiment_id}").json()["spec"]["dataset"]] == ["a", "b"]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [(b"ticket,expected\na,b\nc\n", "text/csv", "line 3: 1 value, but the header has 2 columns"),
     (b'{"ticket": "a"}\n{"ticket": \n', "application/x-ndjson", "line 2: not valid JSON"),
     (b"ticket,expected\n\xff,b\n", "text/csv", "line 2: not UTF-8 text"),
     (b"ticket,ticket\na,b\n", "text/csv", "line 1: column 'ticket' appears twice"),
     (b"colour\nred\n", "text/csv", "")],  # a valid file whose rows lack the spec's variables
)  # fmt: skip
def test_a_bad_body_is_a_422_naming_the_line_and_changes_nothing(api, body, content_type, message):
    experiment_id = api.post("/experiments", spec()).json()["id"]
    before = Experiment.objects.get(pk=experiment_id).spec

    response = put(api, experiment_id, body, content_type)

    assert response.status_code == 422
    [problem, *_] = response.json()["detail"]
    assert problem["msg"].startswith(message) and problem["field"].startswith("pipeline" if not message else "dataset")
    assert Experiment.objects.get(pk=experiment_id).spec == before


def test_size_type_ownership_and_a_running_sweep_are_refused(api, other_user, settings):
    experiment_id = api.post("/experiments", spec()).json()["id"]
    assert put(api, experiment_id, b"a\n1\n", "text/plain").status_code == 415
    assert put(ApiClient(other_user), experiment_id, TICKETS.encode(), "text/csv").status_code == 404
    settings.PROMPTLOOPER_MAX_BODY_BYTES = 20
    too_big = put(api, experiment_id, TICKETS.encode(), "text/csv")
    assert too_big.status_code == 413 and "PROMPTLOOPER_MAX_BODY_BYTES" in too_big.json()["detail"]


def test_put_dataset_streams_through_daphne(user, mock_latency):
    token = token_create(user=user, name="daphne")[1]
    experiment_id = ApiClient(token=token).post("/experiments", spec()).json()["id"]
    rows = "".join(f"ticket {i},label {i % 7}\n" for i in range(20_000))
    body = ("ticket,expected\n" + rows).encode()

    def chunks():  # no Content-Length: the server counts what arrives
        for start in range(0, len(body), 65_536):
            yield body[start : start + 65_536]

    with daphne() as base:
        response = httpx.put(f"http://{base}/api/v1/experiments/{experiment_id}/dataset", content=chunks(), timeout=60,
                             headers={"authorization": f"Bearer {token}", "content-type": "text/csv"})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == 20_000
    assert len(Experiment.objects.get(pk=experiment_id).spec["dataset"]) == 20_000


def test_a_spec_posted_with_a_file_reference_is_told_what_to_do(api):
    response = api.post("/experiments", {**spec(), "dataset": {"file": "/etc/passwd"}})
    assert response.status_code == 422
    [problem] = [d for d in response.json()["detail"] if d["field"] == "dataset"]
    assert "PUT /api/v1/experiments/{id}/dataset" in problem["msg"]


def test_editing_a_section_by_hand_drops_the_record_of_the_file_it_came_from(api):
    experiment_id = api.post("/experiments", spec()).json()["id"]
    put(api, experiment_id, TICKETS.encode(), "text/csv")
    api.patch(f"/experiments/{experiment_id}", {"description": "renamed only"})
    assert "dataset" in api.get(f"/experiments/{experiment_id}").json()["spec"]["sources"]  # untouched

    api.patch(f"/experiments/{experiment_id}", {"dataset": [{"ticket": "typed", "expected": "x"}]})
    assert "sources" not in api.get(f"/experiments/{experiment_id}").json()["spec"]  # no longer the file's rows
