"""The spec editor: create, edit, duplicate, delete and the pre-flight estimate, through Django's
test client with real sessions and CSRF checks, on the configured database."""

from __future__ import annotations

import html
import json
import re

import pytest
import yaml
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile

from sweeps.engine.budget import estimate_tokens
from sweeps.engine.errors import SpecError
from sweeps.engine.spec import load_spec_text
from sweeps.models import Experiment, Sweep
from sweeps.services.experiments import experiment_create, validate_spec
from sweeps.services.sweeps import sweep_start
from sweeps.web.editor import EXAMPLE_SPEC
from tests.conftest import logged_in, spec, wait_for_sweep

NEW = "/experiments/new/"
ESTIMATE = "/experiments/estimate/"


@pytest.fixture(autouse=True)
def mock_provider(mock_latency):
    """The built-in mock provider row, even after a transactional test flushed it."""


# --- helpers ---


def edit_url(experiment) -> str:
    return f"/experiments/{experiment.pk}/edit/"


def spec_text(page: str) -> str:
    found = re.search(r'<textarea id="spec"[^>]*>\n(.*?)</textarea>', page, re.S)
    assert found, "no textarea#spec"
    return html.unescape(found.group(1))


def field_errors(page: str) -> list[tuple[str, str]]:
    """(data-path, message) of every .field-error, in order."""
    items = re.findall(r'<li class="field-error" data-path="([^"]*)">(.*?)</li>', page, re.S)
    return [(html.unescape(path), html.unescape(re.search(r'<span class="message">(.*?)</span>', body, re.S).group(1)))
            for path, body in items]  # fmt: skip


def error_line(page: str, path: str) -> int | None:
    item = re.search(rf'<li class="field-error" data-path="{re.escape(html.escape(path))}">(.*?)</li>', page, re.S)
    line = re.search(r'data-line="(\d+)"', item.group(1))
    return int(line.group(1)) if line else None


def numbers(page: str) -> dict[str, float]:
    """The estimate's figures by name, from their data-value."""
    section = re.search(r'<section id="estimate".*?</section>', page, re.S).group(0)
    return {name: float(value) for name, value in re.findall(r'data-estimate="([\w-]+)" data-value="([^"]+)"', section)}


def csrf_token(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def flashes(response) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]


def as_text(data: dict) -> str:
    return json.dumps(data, indent=2)  # JSON is YAML: the editor takes either


def csv_file(text: str, name: str = "tickets.csv", *, bom: bool = False) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, (b"\xef\xbb\xbf" if bom else b"") + text.encode(), content_type="text/csv")


def running(experiment: Experiment, status: str = "running") -> Sweep:
    """A sweep in the given state, written directly (no worker)."""
    return Sweep.objects.create(experiment=experiment, spec=experiment.parsed_spec().to_dict(), status=status)


# --- login, ownership, CSRF ---


@pytest.mark.django_db
def test_every_editor_url_requires_login(user, client):
    e = experiment_create(owner=user, data=spec()).pk
    urls = [("get", NEW), ("post", NEW), ("get", f"/experiments/{e}/edit/"), ("post", f"/experiments/{e}/edit/"),
            ("post", f"/experiments/{e}/duplicate/"), ("get", f"/experiments/{e}/delete/"),
            ("post", f"/experiments/{e}/delete/"), ("post", ESTIMATE)]  # fmt: skip
    for method, url in urls:
        form = {"spec": as_text(spec()), "action": "save"} if method == "post" else None
        response = getattr(client, method)(url, form)
        assert response.status_code == 302 and response["Location"] == f"/login/?next={url}", url
    assert Experiment.objects.count() == 1


@pytest.mark.django_db
def test_another_users_experiment_is_404_and_untouched(user, other_user):
    experiment = experiment_create(owner=user, data=spec(name="Alice only"))
    bob = logged_in(other_user)
    changed = as_text(spec(name="Bob was here"))

    delete = f"/experiments/{experiment.pk}/delete/"
    urls = [
        ("get", edit_url(experiment)),
        ("post", edit_url(experiment)),
        ("post", f"/experiments/{experiment.pk}/duplicate/"),
        ("get", delete),
        ("post", delete),
    ]
    for method, url in urls:
        response = getattr(bob, method)(url, {"spec": changed, "action": "save"} if method == "post" else None)
        assert response.status_code == 404, url
        assert "Alice only" not in response.content.decode()

    experiment.refresh_from_db()
    assert experiment.name == "Alice only"
    assert list(Experiment.objects.values_list("name", flat=True)) == ["Alice only"]


@pytest.mark.django_db
def test_editor_posts_need_the_pages_csrf_token(user):
    client = logged_in(user, enforce_csrf_checks=True)
    text = as_text(spec())

    assert client.post(NEW, {"spec": text, "action": "save"}).status_code == 403
    assert client.post(ESTIMATE, {"spec": text}).status_code == 403
    assert not Experiment.objects.exists()

    token = csrf_token(client.get(NEW).content.decode())
    response = client.post(NEW, {"spec": text, "action": "save", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Experiment.objects.get().name == "Test experiment"


# --- create ---


@pytest.mark.django_db
def test_the_new_page_offers_the_example_spec_which_saves_as_it_is(user):
    client = logged_in(user, enforce_csrf_checks=True)
    page = client.get(NEW).content.decode()

    text = spec_text(page)
    assert text == EXAMPLE_SPEC.read_text()
    assert re.search(r'<input type="file" id="dataset" name="dataset" accept=".csv,.jsonl,.json"', page)
    assert '<button type="submit" name="action" value="estimate"' in page
    assert '<button type="submit" name="action" value="save"' in page
    assert 'id="estimate"' in page and not field_errors(page)

    response = client.post(NEW, {"spec": text, "action": "save", "csrfmiddlewaretoken": csrf_token(page)})

    experiment = Experiment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/experiments/{experiment.pk}/"
    assert experiment.owner == user and experiment.status == "draft"
    assert experiment.spec == validate_spec(load_spec_text(text)).to_dict()
    assert not experiment.sweeps.exists()  # saving does not start anything


@pytest.mark.django_db
def test_an_invalid_spec_shows_every_error_by_path_and_keeps_the_text(user):
    text = """# my notes <keep> & these
name: Broken
pipeline:
  - name: summarize
    prompt: "Summarize {{ tiket }}"
    model: nope/x
dataset:
  - {ticket: "a"}
sweep:
  type: grdi
  params:
    params.temperature: {min: 1, max: 0}
repeats: 0
"""
    with pytest.raises(SpecError) as expected:
        validate_spec(load_spec_text(text))
    client = logged_in(user)

    for action in ("save", "estimate"):
        response = client.post(NEW, {"spec": text, "action": action})
        page = response.content.decode()
        assert response.status_code == 200
        assert spec_text(page) == text  # as typed, comments and all
        assert field_errors(page) == [(e.path, e.message) for e in expected.value.errors]
        assert {path for path, _ in field_errors(page)} >= {
            "pipeline[0].prompt", "pipeline[0].model", "sweep.type", "sweep.params.params.temperature", "repeats"
        }  # fmt: skip
    # Each error points at its line of the text.
    assert error_line(page, "pipeline[0].model") == 6
    assert error_line(page, "sweep.params.params.temperature") == 12
    assert error_line(page, "repeats") == 13
    assert not Experiment.objects.exists()


@pytest.mark.django_db
def test_a_yaml_syntax_error_names_its_line(user):
    text = "name: x\npipeline:\n  - name: a\n    prompt: [unclosed\n"
    page = logged_in(user).post(NEW, {"spec": text, "action": "save"}).content.decode()

    [(path, message)] = field_errors(page)
    assert path == "" and "invalid YAML at line" in message
    assert error_line(page, "") is not None
    assert spec_text(page) == text and not Experiment.objects.exists()


# --- dataset files ---

SMALL = {
    "name": "Upload",
    "pipeline": [{"name": "answer", "prompt": "Answer: {{ ticket }}", "model": "mock/echo"}],
    "dataset": [{"ticket": "replaced by the file", "expected": "x"}],
    "scorers": [{"type": "icontains", "value": "{{ expected }}"}],
}


@pytest.mark.django_db
@pytest.mark.parametrize("bom", [False, True])
def test_a_csv_upload_fills_the_dataset(user, bom):
    content = 'ticket, expected\r\n"charged twice, again",billing\r\n\r\n"line one\nline two",login\r\n'
    upload = csv_file(content, bom=bom)
    response = logged_in(user).post(NEW, {"spec": as_text(SMALL), "action": "save", "dataset": upload})

    assert response.status_code == 302
    assert Experiment.objects.get().spec["dataset"] == [
        {"ticket": "charged twice, again", "expected": "billing"},  # header names are trimmed, quotes honoured
        {"ticket": "line one\nline two", "expected": "login"},
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name, content",
    [
        ("tickets.jsonl", '{"ticket": "charged twice", "expected": "billing", "n": 1}\n\n{"ticket": "no login", "expected": "login", "n": 2}\n'),
        ("tickets.json", '[{"ticket": "charged twice", "expected": "billing", "n": 1},\n {"ticket": "no login", "expected": "login", "n": 2}]'),
    ],
)  # fmt: skip
def test_a_jsonl_or_json_upload_fills_the_dataset(user, name, content):
    upload = SimpleUploadedFile(name, content.encode())
    response = logged_in(user).post(NEW, {"spec": as_text(SMALL), "action": "save", "dataset": upload})

    assert response.status_code == 302
    assert Experiment.objects.get().spec["dataset"] == [
        {"ticket": "charged twice", "expected": "billing", "n": 1}, {"ticket": "no login", "expected": "login", "n": 2}
    ]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name, content, message",
    [
        ("tickets.csv", b"ticket,expected\na,billing\nb,login,extra\n", "tickets.csv: line 3: 3 values, but the header has 2 columns"),
        ("tickets.csv", b"ticket,expected\r\nonly one\r\n", "tickets.csv: line 2: 1 value, but the header has 2 columns"),
        ("tickets.csv", b"ticket,ticket\na,b\n", "tickets.csv: line 1: column 'ticket' appears twice"),
        ("tickets.csv", b"ticket,expected\nok,\xff\xfe\n", "tickets.csv: line 2: not UTF-8 text"),
        ("tickets.csv", b"", "tickets.csv: the file is empty"),
        ("tickets.jsonl", b'{"ticket": "a", "expected": "b"}\n{"ticket": "b",\n', "tickets.jsonl: line 2: not valid JSON"),
        ("tickets.jsonl", b'{"ticket": "a", "expected": "b"}\n["not", "an object"]\n', "tickets.jsonl: line 2: expected an object"),
        ("tickets.json", b'[{"ticket": "a", "expected": "b"},\n {"ticket": }]', "tickets.json: line 2: not valid JSON"),
    ],
)  # fmt: skip
def test_a_bad_file_names_its_line_and_nothing_is_saved(user, name, content, message):
    text = as_text(SMALL)
    page = (
        logged_in(user)
        .post(NEW, {"spec": text, "action": "save", "dataset": SimpleUploadedFile(name, content)})
        .content.decode()
    )

    [(path, shown)] = field_errors(page)
    assert path == "dataset" and shown.startswith(message)
    assert error_line(page, "dataset") is None  # about the file: no line of the spec to point at
    assert spec_text(page) == text and not Experiment.objects.exists()


@pytest.mark.django_db
def test_rows_from_a_file_survive_an_error_in_the_spec(user):
    client = logged_in(user)
    broken = as_text({**SMALL, "pipeline": [{**SMALL["pipeline"][0], "model": "nope/x"}]})
    upload = csv_file("ticket,expected\ncharged twice,billing\nno login,login\n")

    page = client.post(NEW, {"spec": broken, "action": "save", "dataset": upload}).content.decode()

    assert [path for path, _ in field_errors(page)] == ["pipeline[0].model"]
    assert "2 rows</strong>" in page and "tickets.csv" in page and "choose a file only to replace them" in page
    kept = html.unescape(re.search(r'name="dataset_rows" value="([^"]*)"', page).group(1))
    rows = [{"ticket": "charged twice", "expected": "billing"}, {"ticket": "no login", "expected": "login"}]
    assert json.loads(kept) == rows

    # Fixed, and sent back without choosing the file again: the kept rows are used.
    form = {"spec": as_text(SMALL), "action": "save", "dataset_rows": kept, "dataset_name": "tickets.csv"}
    assert client.post(NEW, form).status_code == 302
    assert Experiment.objects.get().spec["dataset"] == json.loads(kept)

    # "Use the spec's own dataset" drops them.
    assert client.post(NEW, {**form, "dataset_clear": "1"}).status_code == 302
    assert Experiment.objects.latest("id").spec["dataset"] == SMALL["dataset"]


# --- edit ---


@pytest.mark.django_db
def test_edit_shows_the_spec_as_yaml_and_saves_through_the_service(user):
    experiment = experiment_create(owner=user, data=spec(name="Before"))
    client = logged_in(user, enforce_csrf_checks=True)
    page = client.get(edit_url(experiment)).content.decode()

    text = spec_text(page)
    # Created from data, not typed: version 1's text is the normal form written out in the
    # engine's key order (not jsonb's, which PostgreSQL would give the stored spec)
    assert text == yaml.safe_dump(validate_spec(spec(name="Before")).to_dict(), sort_keys=False, allow_unicode=True)
    assert f'action="{edit_url(experiment)}"' in page

    changed = text.replace("name: Before", "name: After", 1)
    form = {"spec": changed, "action": "save", "csrfmiddlewaretoken": csrf_token(page)}
    response = client.post(edit_url(experiment), form)

    assert response.status_code == 302 and response["Location"] == f"/experiments/{experiment.pk}/"
    experiment.refresh_from_db()
    assert experiment.name == "After" and Experiment.objects.count() == 1


@pytest.mark.django_db
def test_an_invalid_edit_lists_the_errors_and_changes_nothing(user):
    experiment = experiment_create(owner=user, data=spec())
    text = as_text(spec(max_concurrency=0))

    page = logged_in(user).post(edit_url(experiment), {"spec": text, "action": "save"}).content.decode()

    assert field_errors(page) == [("max_concurrency", "must be at least 1, got 0")]
    assert spec_text(page) == text
    experiment.refresh_from_db()
    assert experiment.spec["max_concurrency"] == 4


@pytest.mark.django_db
def test_editing_while_a_sweep_runs_is_refused_and_the_text_kept(user):
    experiment = experiment_create(owner=user, data=spec(name="Running one"))
    running(experiment)
    text = as_text(spec(name="Changed while running"))

    response = logged_in(user).post(edit_url(experiment), {"spec": text, "action": "save"})

    page = response.content.decode()
    assert response.status_code == 200 and spec_text(page) == text
    [(path, message)] = field_errors(page)
    assert path == "" and "running sweep: pause or stop it before editing" in message
    experiment.refresh_from_db()
    assert experiment.name == "Running one"


# --- duplicate and delete ---


@pytest.mark.django_db
def test_duplicate_makes_a_copy_and_opens_its_editor(user):
    original = experiment_create(owner=user, data=spec(name="Triage"))
    running(original, "completed")
    client = logged_in(user)

    assert client.get(f"/experiments/{original.pk}/duplicate/").status_code == 405
    response = client.post(f"/experiments/{original.pk}/duplicate/")

    copy = Experiment.objects.exclude(pk=original.pk).get()
    assert response.status_code == 302 and response["Location"] == edit_url(copy)
    assert copy.name == "Triage (copy)" and copy.owner == user and copy.status == "draft"
    assert {**copy.spec, "name": "Triage"} == original.spec
    assert not copy.sweeps.exists()  # results stay with the original
    assert "Triage (copy)" in client.get(edit_url(copy)).content.decode()


@pytest.mark.django_db
def test_delete_asks_first_then_deletes(user):
    experiment = experiment_create(owner=user, data=spec(name="Doomed"))
    client = logged_in(user, enforce_csrf_checks=True)
    url = f"/experiments/{experiment.pk}/delete/"

    page = client.get(url).content.decode()
    assert "Delete “Doomed”?" in page and f'<form method="post" action="{url}"' in page
    assert Experiment.objects.filter(pk=experiment.pk).exists()  # a GET deletes nothing
    assert client.post(url).status_code == 403  # nor a post without the page's token

    response = client.post(url, {"csrfmiddlewaretoken": csrf_token(page)})

    assert response.status_code == 302 and response["Location"] == "/"
    assert not Experiment.objects.filter(pk=experiment.pk).exists()


@pytest.mark.django_db
def test_delete_is_refused_while_a_sweep_runs(user):
    experiment = experiment_create(owner=user, data=spec())
    sweep = running(experiment)

    response = logged_in(user).post(f"/experiments/{experiment.pk}/delete/")

    assert response.status_code == 302 and response["Location"] == f"/experiments/{experiment.pk}/"
    refusal = f"Experiment {experiment.pk} is running: stop its sweep before deleting it."
    assert flashes(response) == [("error", refusal)]
    assert Sweep.objects.filter(pk=sweep.pk).exists() and Experiment.objects.filter(pk=experiment.pk).exists()


# --- the estimate ---


def expected_first_stage_tokens(data: dict) -> int:
    return sum(estimate_tokens(f"Summarize this ticket: {row['ticket']}") for row in data["dataset"])


@pytest.mark.django_db
def test_estimate_of_a_known_spec_is_exact_and_calls_no_provider(user, provider_calls):
    data = spec()  # 2 models x 2 temperatures, 3 rows, 2 stages, no cache yet
    client = logged_in(user)

    partial = client.post(ESTIMATE, {"spec": as_text(data)})
    page = client.post(NEW, {"spec": as_text(data), "action": "estimate"}).content.decode()

    assert partial.status_code == 200 and "<html" not in partial.content.decode()
    figures = numbers(partial.content.decode())
    assert numbers(page) == figures  # the full-page fallback shows the same
    counts = (figures["configs"], figures["samples"], figures["calls"], figures["cached"], figures["paid"])
    assert counts == (4, 12, 24, 0, 24)
    # No cached responses and no max_tokens: 256 output tokens per call. The label's input holds
    # a stand-in of that length for the summary it has not seen.
    label_in = estimate_tokens("Label: " + "x" * 4 * 256)
    tokens_in = 4 * (expected_first_stage_tokens(data) + 3 * label_in)
    assert (figures["tokens-in"], figures["tokens-out"]) == (tokens_in, 24 * 256)
    assert figures["cost"] == pytest.approx((tokens_in * 0.15 + 24 * 256 * 0.60) / 1e6)  # the mock's prices
    assert "default" in partial.content.decode()  # says where the output length came from
    assert provider_calls == [] and not Experiment.objects.exists()
    assert spec_text(page) == as_text(data)


@pytest.mark.django_db
def test_estimate_counts_llm_judge_calls_and_repeats(user):
    judge = {"type": "llm_judge", "model": "mock/echo", "rubric": "Is {{ label }} right?"}
    page = logged_in(user).post(ESTIMATE, {"spec": as_text(spec(repeats=2, scorers=[judge]))}).content.decode()
    figures = numbers(page)
    assert (figures["configs"], figures["samples"], figures["calls"]) == (4, 24, 24 * 3)
    assert 'data-estimate="early-stopping"' not in page


@pytest.mark.django_db
def test_with_early_stopping_the_estimate_is_the_most_a_sweep_can_spend(user):
    data = spec()
    data["sweep"]["early_stopping"] = {"rungs": [0.5, 1.0]}
    page = logged_in(user).post(ESTIMATE, {"spec": as_text(data)}).content.decode()
    assert numbers(page)["samples"] == 12  # every sample: nothing is pruned before it runs
    assert re.search(r'data-estimate="early-stopping">· the most: early stopping prunes', page)


@pytest.mark.django_db
def test_estimate_warns_of_rows_whose_prompt_cannot_render(user):
    rows = [{"ticket": "a", "expected": "billing"}, {"expected": "login"}]  # the second has no ticket
    page = html.unescape(logged_in(user).post(ESTIMATE, {"spec": as_text(spec(dataset=rows))}).content.decode())
    assert "4 samples\n    would stop at a prompt that does not render, e.g. dataset[1]: stage 'summarize': " in page


@pytest.mark.django_db
def test_estimate_of_an_invalid_spec_shows_its_errors(user):
    page = logged_in(user).post(ESTIMATE, {"spec": as_text(spec(repeats=0))}).content.decode()
    assert field_errors(page) == [("repeats", "must be at least 1, got 0")]
    assert numbers(page) == {}


@pytest.mark.django_db
def test_estimate_uses_the_uploaded_rows(user):
    upload = csv_file("ticket,expected\n" + "".join(f"t{i},billing\n" for i in range(10)))
    page = logged_in(user).post(ESTIMATE, {"spec": as_text(spec()), "dataset": upload}).content.decode()
    assert numbers(page)["samples"] == 4 * 10


@pytest.mark.django_db(transaction=True)
def test_after_a_sweep_the_estimate_counts_its_calls_as_cached(user, provider_calls):
    experiment = experiment_create(owner=user, data=spec())
    sweep = wait_for_sweep(sweep_start(experiment=experiment))
    assert sweep.status == "completed" and len(provider_calls) == 24
    client = logged_in(user)

    again = numbers(client.post(ESTIMATE, {"spec": as_text(spec())}).content.decode())
    assert (again["calls"], again["cached"], again["paid"]) == (24, 24, 0)
    assert (again["tokens-in"], again["tokens-out"], again["cost"]) == (0, 0, 0)

    # A third model: its 6 samples (12 calls) are new; the output length comes from what is cached.
    wider = spec(sweep={"type": "grid", "params": {"model": ["mock/echo", "mock/upper", "mock/short"],
                                                   "params.temperature": [0.0, 1.0]}})  # fmt: skip
    partial = client.post(ESTIMATE, {"spec": as_text(wider)}).content.decode()
    figures = numbers(partial)
    assert (figures["configs"], figures["calls"], figures["cached"], figures["paid"]) == (6, 36, 24, 12)
    assert "mean of" in partial and "cached responses" in partial
    assert len(provider_calls) == 24  # estimating called nothing
