"""Spec versions: every change of a spec is kept with its author, route and text as typed, through
the editor, the API and the CLI; a sweep records the version it ran (and the API token that
started it); the version pages and API routes show them, with a diff against the one before."""

from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest
import yaml

from sweeps.models import Experiment, SpecVersion
from sweeps.selectors import versions as version_reads
from sweeps.services import versions
from sweeps.services.experiments import experiment_create, experiment_update
from sweeps.services.sweeps import sweep_start
from sweeps.services.tokens import token_create
from sweeps.web import editor_text
from tests.conftest import logged_in, spec, wait_for_sweep
from tests.integration.api_client import ApiClient
from tests.integration.test_cli import sweep_cli
from tests.integration.test_editor import spec_text

TYPED = """# Ticket triage, typed by hand: this comment must survive
name: Triage
pipeline:
  - name: label
    prompt: "Label: {{ ticket }}"   # short on purpose
    model: mock/echo
dataset:
  - {ticket: billing charged twice, expected: billing}
  - {ticket: login broken, expected: login}
scorers:
  - {type: icontains, value: "{{ expected }}"}
"""


@pytest.fixture(autouse=True)
def mock_provider(mock_latency):
    """The built-in mock provider row, even after a transactional test flushed it."""


def save(client, experiment, text, **extra):
    return client.post(f"/experiments/{experiment.pk}/edit/", {"spec": text, "action": "save", **extra})


def numbers(experiment) -> list[int]:
    return list(experiment.versions.order_by("number").values_list("number", flat=True))


LARGE = [{"question": f"q{i}", "expected": f"a{i}", "topic": "t"} for i in range(60)]


def large_dataset_experiment(owner) -> Experiment:
    """60 rows: past what the editor inlines."""
    return experiment_create(
        owner=owner,
        data=spec(
            pipeline=[{"name": "answer", "prompt": "{{ question }}", "model": "mock/echo"}], dataset=LARGE,
            sweep={"type": "grid", "params": {"params.temperature": [0.0]}},
        ),
    )  # fmt: skip


@pytest.mark.django_db
def test_editing_twice_in_the_editor_keeps_each_text_as_typed_and_an_unchanged_resave_adds_none(user):
    client = logged_in(user)
    response = client.post("/experiments/new/", {"spec": TYPED, "action": "save"})
    assert response.status_code == 302
    experiment = Experiment.objects.get()
    assert numbers(experiment) == [1]

    page = client.get(f"/experiments/{experiment.pk}/edit/").content.decode()
    assert spec_text(page) == TYPED  # the text as typed, comments and flow rows kept

    edited = TYPED.replace('"Label: {{ ticket }}"', '"Label this: {{ ticket }}"')
    assert save(client, experiment, edited).status_code == 302
    commented = edited + "# only a comment more\n"
    assert save(client, experiment, commented).status_code == 302  # same normal form
    assert numbers(experiment) == [1, 2]

    latest = experiment.versions.get(number=2)
    assert latest.text == commented and latest.author == user and latest.via == "web"  # the comment is kept
    assert latest.spec["pipeline"][0]["prompt"] == "Label this: {{ ticket }}"
    assert spec_text(client.get(f"/experiments/{experiment.pk}/edit/").content.decode()) == commented


@pytest.mark.django_db
def test_the_version_pages_list_versions_and_colour_the_diff(user, other_user):
    client = logged_in(user)
    client.post("/experiments/new/", {"spec": TYPED, "action": "save"})
    experiment = Experiment.objects.get()
    save(client, experiment, TYPED.replace("mock/echo", "mock/upper"))

    listing = client.get(f"/experiments/{experiment.pk}/versions/").content.decode()
    assert re.findall(r'data-version="(\d+)"', listing) == ["2", "1"]
    assert "alice" in listing and "web" in listing

    page = client.get(f"/experiments/{experiment.pk}/versions/2/").content.decode()
    removed = re.findall(r'<span class="diff-removed">(.*?)</span>', page)
    added = re.findall(r'<span class="diff-added">(.*?)</span>', page)
    assert [html.unescape(line) for line in removed] == ["-    model: mock/echo"]
    assert [html.unescape(line) for line in added] == ["+    model: mock/upper"]
    assert "this comment must survive" in page

    assert client.get(f"/experiments/{experiment.pk}/versions/3/").status_code == 404
    assert client.get(f"/experiments/{experiment.pk}/versions/0/").status_code == 404
    assert client.get(f"/experiments/{experiment.pk}/versions/x/").status_code == 404
    stranger = logged_in(other_user)
    assert stranger.get(f"/experiments/{experiment.pk}/versions/").status_code == 404
    assert stranger.get(f"/experiments/{experiment.pk}/versions/1/").status_code == 404
    assert stranger.get(f"/experiments/{experiment.pk}/dataset.csv").status_code == 404


@pytest.mark.django_db
def test_api_post_keeps_the_body_and_put_patch_add_versions_only_when_the_spec_changes(user, other_user):
    api = ApiClient(user)
    body = json.dumps(spec(name="From the API"), indent=1)
    response = api.post("/experiments", body.encode())
    assert response.status_code == 201, response.content
    experiment_id = response.json()["id"]

    assert api.patch(f"/experiments/{experiment_id}", {"repeats": 2}).status_code == 200
    assert api.patch(f"/experiments/{experiment_id}", {"repeats": 2}).status_code == 200  # unchanged
    rows = "ticket,expected\nrefund please,billing\n"
    replaced = api.client.put(f"/api/v1/experiments/{experiment_id}/dataset", rows, content_type="text/csv",
                              headers=api.headers())  # fmt: skip
    assert replaced.status_code == 200, replaced.content

    listing = api.get(f"/experiments/{experiment_id}/versions").json()
    assert listing["count"] == 3
    assert [(v["number"], v["author"], v["via"]) for v in listing["items"]] == [(3, "alice", "api"), (2, "alice", "api"), (1, "alice", "api")]  # fmt: skip

    first = api.get(f"/experiments/{experiment_id}/versions/1").json()
    assert first["text"] == body and first["spec"]["name"] == "From the API"
    second = api.get(f"/experiments/{experiment_id}/versions/2").json()
    assert second["spec"]["repeats"] == 2 and "+repeats: 2" in second["diff"].splitlines()

    assert api.get(f"/experiments/{experiment_id}/versions/4").status_code == 404
    assert ApiClient(other_user).get(f"/experiments/{experiment_id}/versions").status_code == 404
    assert ApiClient(other_user).get(f"/experiments/{experiment_id}/versions/1").status_code == 404


@pytest.mark.django_db
def test_a_yaml_body_is_kept_as_sent_comments_and_all(user):
    api = ApiClient(user)
    response = api.client.post("/api/v1/experiments", TYPED.encode(), content_type="application/yaml",
                               headers=api.headers())  # fmt: skip
    assert response.status_code == 201, response.content
    version = api.get(f"/experiments/{response.json()['id']}/versions/1").json()
    assert (
        version["text"] == TYPED
        and version["diff"].splitlines()[3] == "+# Ticket triage, typed by hand: this comment must survive"
    )


@pytest.mark.django_db
def test_edits_sent_as_data_keep_the_typed_texts_comments(user):
    """A PATCH or a new dataset rewrites only what it changed: the rest of the text stays as typed."""
    api = ApiClient(user)
    response = api.client.post("/api/v1/experiments", TYPED.encode(), content_type="application/yaml",
                               headers=api.headers())  # fmt: skip
    experiment_id = response.json()["id"]

    assert api.patch(f"/experiments/{experiment_id}", {"repeats": 2}).status_code == 200
    patched = api.get(f"/experiments/{experiment_id}/versions/2").json()
    assert patched["text"] == TYPED + "repeats: 2\n"
    assert [line for line in patched["diff"].splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "+repeats: 2"
    ]

    rows = "ticket,expected\nrefund please,billing\n"
    replaced = api.client.put(f"/api/v1/experiments/{experiment_id}/dataset", rows, content_type="text/csv",
                              headers=api.headers())  # fmt: skip
    assert replaced.status_code == 200, replaced.content
    text = api.get(f"/experiments/{experiment_id}/versions/3").json()["text"]
    assert text.startswith("# Ticket triage, typed by hand: this comment must survive\n")
    assert '    prompt: "Label: {{ ticket }}"   # short on purpose\n' in text and "login broken" not in text
    assert yaml.safe_load(text)["dataset"] == [{"ticket": "refund please", "expected": "billing"}]
    assert yaml.safe_load(text)["sources"]["dataset"]["rows"] == 1
    # The editor shows that text, comments and all.
    editor = spec_text(logged_in(user).get(f"/experiments/{experiment_id}/edit/").content.decode())
    assert editor == text


@pytest.mark.django_db
def test_a_long_text_edited_by_data_is_written_out_whole(user, monkeypatch):
    """Parsing YAML is slow in Python: past EDITABLE_CHARS the text is not edited in place."""
    monkeypatch.setattr(versions, "EDITABLE_CHARS", len(TYPED) - 1)
    api = ApiClient(user)
    response = api.client.post("/api/v1/experiments", TYPED.encode(), content_type="application/yaml",
                               headers=api.headers())  # fmt: skip
    experiment_id = response.json()["id"]
    assert api.patch(f"/experiments/{experiment_id}", {"repeats": 2}).status_code == 200
    text = api.get(f"/experiments/{experiment_id}/versions/2").json()["text"]
    assert "# Ticket triage" not in text and yaml.safe_load(text)["repeats"] == 2


@pytest.mark.django_db
def test_a_text_too_long_to_parse_on_a_request_is_shown_written_out(user, monkeypatch):
    """The editor and the diff parse texts only up to EDITABLE_CHARS (pure-Python YAML is slow)."""
    client = logged_in(user)
    client.post("/experiments/new/", {"spec": TYPED, "action": "save"})
    experiment = Experiment.objects.get()
    assert spec_text(client.get(f"/experiments/{experiment.pk}/edit/").content.decode()) == TYPED
    monkeypatch.setattr(editor_text, "EDITABLE_CHARS", len(TYPED) - 1)
    monkeypatch.setattr(version_reads, "EDITABLE_CHARS", len(TYPED) - 1)

    shown = spec_text(client.get(f"/experiments/{experiment.pk}/edit/").content.decode())
    assert "# Ticket triage" not in shown and yaml.safe_load(shown)["name"] == "Triage"
    assert version_reads.without_dataset(TYPED) is None
    assert client.get(f"/experiments/{experiment.pk}/versions/1/").status_code == 200


@pytest.mark.django_db
def test_a_text_that_kept_its_rows_out_keeps_them_out_when_the_rows_are_replaced(user):
    experiment = large_dataset_experiment(user)
    client = logged_in(user)
    shown = spec_text(client.get(f"/experiments/{experiment.pk}/edit/").content.decode())
    typed = "# rows are in the file\n" + shown.replace("max_concurrency: 4", "max_concurrency: 3")
    assert save(client, experiment, typed, dataset_kept="1").status_code == 302
    assert experiment.versions.get(number=2).text == typed

    api = ApiClient(user)
    body = "\n".join(json.dumps({**row, "topic": "new"}) for row in LARGE)
    replaced = api.client.put(f"/api/v1/experiments/{experiment.pk}/dataset", body,
                              content_type="application/x-ndjson", headers=api.headers())  # fmt: skip
    assert replaced.status_code == 200, replaced.content
    latest = experiment.versions.order_by("-number").first()
    assert latest.number == 3 and latest.text == typed  # the rows changed, not the text
    assert latest.spec["dataset"][0]["topic"] == "new"
    assert spec_text(client.get(f"/experiments/{experiment.pk}/edit/").content.decode()) == typed


@pytest.mark.django_db(transaction=True)
def test_a_sweep_records_its_version_and_the_token_that_started_it(user):
    token, raw = token_create(user=user, name="nightly-ci")
    api = ApiClient(token=raw)
    experiment_id = api.post("/experiments", spec(name="Swept")).json()["id"]
    api.patch(f"/experiments/{experiment_id}", {"repeats": 2})

    started = api.post(f"/experiments/{experiment_id}/sweeps")
    assert started.status_code == 202 and started.json()["spec_version"] == 2
    experiment = Experiment.objects.get(pk=experiment_id)
    sweep = wait_for_sweep(experiment.sweeps.get())
    assert (sweep.spec_version.number, sweep.started_token) == (2, token)
    assert api.get(f"/experiments/{experiment_id}/sweeps").json()["items"][0]["spec_version"] == 2
    assert api.get(f"/experiments/{experiment_id}/versions/2").json()["sweep_ids"] == [sweep.pk]

    second = wait_for_sweep(sweep_start(experiment=experiment, started_by=user, via="web"))
    picker = logged_in(user).get(f"/experiments/{experiment_id}/").content.decode()
    rows = re.findall(r'<tr data-sweep-id="(\d+)".*?</tr>', picker, re.S)
    assert rows == [str(second.pk), str(sweep.pk)]
    first_row = re.search(rf'<tr data-sweep-id="{sweep.pk}".*?</tr>', picker, re.S).group(0)
    assert "token “nightly-ci”" in first_row and f"/experiments/{experiment_id}/versions/2/" in first_row
    assert "token" not in re.search(rf'<tr data-sweep-id="{second.pk}".*?</tr>', picker, re.S).group(0)


@pytest.mark.django_db(transaction=True)
def test_cli_named_experiment_keeps_the_file_text_and_adds_a_version_only_on_change(tmp_path, user):
    suite = tmp_path / "suite.yaml"
    text = "# nightly suite\n" + yaml.safe_dump(spec(sweep={"type": "grid", "params": {"model": ["mock/echo"]}}))
    suite.write_text(text)
    assert sweep_cli(str(suite), "--experiment", "Nightly")[0] == 0
    assert sweep_cli(str(suite), "--experiment", "Nightly")[0] == 0  # the same suite again
    experiment = Experiment.objects.get()
    assert numbers(experiment) == [1]
    suite.write_text(text.replace("max_concurrency: 4", "max_concurrency: 2"))
    assert sweep_cli(str(suite), "--experiment", "Nightly")[0] == 0

    assert numbers(experiment) == [1, 2]
    latest = experiment.versions.get(number=2)
    assert latest.text.startswith("# nightly suite\n") and latest.via == "cli"
    assert [s.spec_version.number for s in experiment.sweeps.order_by("pk")] == [1, 1, 2]


@pytest.mark.django_db
def test_a_large_dataset_is_summarised_in_the_editor_and_kept_on_save(user):
    experiment = large_dataset_experiment(user)
    client = logged_in(user)
    page = client.get(f"/experiments/{experiment.pk}/edit/").content.decode()
    shown = spec_text(page)
    assert "q59" not in shown and "dataset" not in yaml.safe_load(shown)
    columns = re.search(r"columns:\s*<code>(.*?)</code>", page).group(1)
    assert "<strong>60 rows</strong>" in page and sorted(columns.split(", ")) == ["expected", "question", "topic"]

    edited = shown.replace("max_concurrency: 4", "max_concurrency: 3")
    response = save(client, experiment, edited, dataset_kept="1")
    assert response.status_code == 302, response.content.decode()[:2000]
    experiment.refresh_from_db()
    assert experiment.spec["dataset"] == LARGE and experiment.spec["max_concurrency"] == 3
    assert numbers(experiment) == [1, 2] and experiment.versions.get(number=2).text == edited
    diff = client.get(f"/experiments/{experiment.pk}/versions/2/").content.decode()
    assert re.findall(r'<span class="diff-(?:added|removed)">(.*?)</span>', diff) == [
        "-max_concurrency: 4",
        "+max_concurrency: 3",
    ]  # the rows left out of the text were kept, not removed
    # the text without rows is shown again as typed, and saving it again changes nothing
    assert spec_text(client.get(f"/experiments/{experiment.pk}/edit/").content.decode()) == edited
    assert save(client, experiment, edited, dataset_kept="1").status_code == 302
    assert numbers(experiment) == [1, 2]

    csv_body = client.get(f"/experiments/{experiment.pk}/dataset.csv").content.decode()
    assert sorted(csv_body.splitlines()[0].split(",")) == ["expected", "question", "topic"]  # PG orders keys its way
    assert len(csv_body.splitlines()) == 61
    jsonl = client.get(f"/experiments/{experiment.pk}/dataset.jsonl").content.decode().splitlines()
    assert [json.loads(line) for line in jsonl] == LARGE
    assert client.get(f"/experiments/{experiment.pk}/dataset.xml").status_code == 404


@pytest.mark.django_db
def test_the_dataset_download_neutralises_spreadsheet_formulas(user):
    rows = [{"ticket": '=HYPERLINK("https://evil.example", "click")', "expected": "billing", "n": 3}]
    experiment = experiment_create(owner=user, data=spec(dataset=rows))
    body = logged_in(user).get(f"/experiments/{experiment.pk}/dataset.csv").content.decode()
    [row] = csv.DictReader(io.StringIO(body))
    assert row["ticket"] == "'" + rows[0]["ticket"] and row["expected"] == "billing" and row["n"] == "3"


@pytest.mark.django_db
def test_the_versions_page_is_paginated(user):
    experiment = experiment_create(owner=user, data=spec(name="v1"))
    for number in range(2, 56):
        experiment_update(experiment=experiment, data=spec(name=f"v{number}"), author=user, via="api")
    client = logged_in(user)
    first = client.get(f"/experiments/{experiment.pk}/versions/").content.decode()
    second = client.get(f"/experiments/{experiment.pk}/versions/", {"page": 2}).content.decode()
    shown = [[int(n) for n in re.findall(r'<tr data-version="(\d+)">', page)] for page in (first, second)]
    assert shown == [list(range(55, 5, -1)), list(range(5, 0, -1))]
    assert "(current)" in first and "(current)" not in second
    assert "page 1 of 2" in first and 'rel="next"' in first
    assert client.get(f"/experiments/{experiment.pk}/versions/", {"page": "x"}).status_code == 200  # the first


@pytest.mark.django_db
def test_versions_are_numbered_per_experiment(user):
    first = experiment_create(owner=user, data=spec(name="one"))
    second = experiment_create(owner=user, data=spec(name="two"))
    assert list(SpecVersion.objects.order_by("pk").values_list("experiment_id", "number")) == [
        (first.pk, 1),
        (second.pk, 1),
    ]
