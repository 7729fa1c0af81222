"""The JSON API through Django's whole request path, with real tokens, a real database and the
embedded worker running the sweeps it starts."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from sweeps.models import Experiment, Provider, Run, RunSample, Score, Sweep
from sweeps.services.tokens import token_create, token_revoke
from tests.conftest import spec, wait_for
from tests.integration.api_client import ApiClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(user, mock_latency) -> ApiClient:
    return ApiClient(user)


@pytest.fixture
def other_api(other_user) -> ApiClient:
    return ApiClient(other_user)


def finished_sweep(api: ApiClient, **overrides) -> tuple[int, dict]:
    """Create an experiment through the API, start it, and wait until its sweep ends."""
    experiment_id = api.post("/experiments", spec(**overrides)).json()["id"]
    sweep = api.post(f"/experiments/{experiment_id}/sweeps").json()
    status = wait_for(
        lambda: (s := api.get(f"/sweeps/{sweep['id']}").json())["status"] in ("completed", "failed") and s
    )
    assert status["status"] == "completed", status
    return experiment_id, status


# --- authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "pl_not-a-real-token", "Basic abc"])
def test_without_a_valid_token_every_route_answers_401_in_json(token, user):
    client = ApiClient(token=token)
    for method, path in [("get", "/experiments"), ("post", "/experiments"), ("get", "/sweeps/1"), ("get", "/runs/1"),
                         ("get", "/providers"), ("get", "/experiments/1/export"), ("get", "/openapi.json")]:  # fmt: skip
        response = client.request(method, path)
        assert response.status_code == 401, (method, path)
        assert "Bearer" in response.json()["detail"]


def test_a_revoked_token_is_refused(user):
    token, raw = token_create(user=user, name="ci")
    client = ApiClient(token=raw)
    assert client.get("/experiments").status_code == 200
    token_revoke(token=token)
    assert client.get("/experiments").status_code == 401


def test_the_browser_session_works_and_needs_csrf_to_change_anything(user, mock_latency):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/v1/experiments").status_code == 200
    refused = client.post("/api/v1/experiments", json.dumps(spec()), content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert not Experiment.objects.exists()

    client.get("/")  # the page sets the CSRF cookie, as in a browser
    csrf = client.cookies["csrftoken"].value
    created = client.post("/api/v1/experiments", json.dumps(spec()), content_type="application/json",
                          headers={"X-CSRFToken": csrf})  # fmt: skip
    assert created.status_code == 201


def test_another_users_objects_are_404_everywhere(api, other_api):
    experiment_id, sweep = finished_sweep(api)
    run_id = Run.objects.filter(experiment_id=experiment_id).first().pk
    for method, path in [
        ("get", f"/experiments/{experiment_id}"), ("patch", f"/experiments/{experiment_id}"),
        ("delete", f"/experiments/{experiment_id}"), ("post", f"/experiments/{experiment_id}/sweeps"),
        ("get", f"/experiments/{experiment_id}/sweeps"), ("get", f"/experiments/{experiment_id}/runs"),
        ("get", f"/experiments/{experiment_id}/leaderboard"), ("get", f"/experiments/{experiment_id}/export"),
        ("get", f"/sweeps/{sweep['id']}"), ("post", f"/sweeps/{sweep['id']}/stop"), ("get", f"/runs/{run_id}"),
    ]:  # fmt: skip
        response = other_api.request(method, path, {} if method == "patch" else None)
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."}), (method, path)
    assert other_api.get("/experiments").json() == {"items": [], "count": 0}
    assert Experiment.objects.filter(pk=experiment_id).exists()


# --- experiments ----------------------------------------------------------------------------


def test_create_returns_201_with_the_stored_spec(api):
    response = api.post("/experiments", spec(name="triage"))
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "triage" and body["status"] == "draft" and body["latest_sweep"] is None
    assert body["spec"]["pipeline"][0]["model"] == "mock/echo"
    assert Experiment.objects.get(pk=body["id"]).name == "triage"


def test_an_invalid_spec_is_422_naming_every_bad_field_and_saves_nothing(api):
    bad = spec(name="", colour="blue", max_concurrency=0, scorers=[{"type": "telepathy"}])
    bad["pipeline"][0]["model"] = "nope/gpt"
    response = api.post("/experiments", bad)
    assert response.status_code == 422
    detail = response.json()["detail"]
    fields = {d["field"] for d in detail}
    assert {"name", "colour", "max_concurrency", "scorers[0].type", "pipeline[0].model"} <= fields
    assert ["body", "pipeline", 0, "model"] in [d["loc"] for d in detail]
    assert all(d["msg"] for d in detail)
    assert not Experiment.objects.exists()


def test_a_body_that_is_not_json_is_a_400_saying_where(api):
    response = api.post("/experiments", b'{"name": "x",\n not json}')
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The body is not valid JSON (line 2, column 2")
    assert not Experiment.objects.exists()


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"null"])
def test_a_body_that_is_not_a_json_object_is_a_422(api, body):
    response = api.post("/experiments", body)
    assert response.status_code == 422 and response.json()["detail"]
    assert not Experiment.objects.exists()


def test_a_body_over_the_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    big = spec(dataset=[{"ticket": "x" * 100, "expected": "x"} for _ in range(200)])
    response = api.post("/experiments", big)
    assert response.status_code == 413 and "10,000 bytes" in response.json()["detail"]
    assert not Experiment.objects.exists()


def test_a_dataset_of_a_few_megabytes_is_accepted_inline(api):
    rows = [{"ticket": f"ticket {i} " + "words " * 60, "expected": "billing"} for i in range(10_000)]
    body = spec(dataset=rows, sweep={"type": "grid", "params": {"model": ["mock/echo"]}})
    assert 3_000_000 < len(json.dumps(body)) < 5 * 1024 * 1024
    response = api.post("/experiments", body)
    assert response.status_code == 201
    assert len(Experiment.objects.get(pk=response.json()["id"]).spec["dataset"]) == 10_000


def test_list_is_paginated_filtered_and_capped(api, user):
    for i in range(7):
        api.post("/experiments", spec(name=f"exp {i}" + (" needle" if i % 3 == 0 else "")))
    Experiment.objects.filter(name="exp 1").update(status="completed")

    first = api.get("/experiments", limit=3).json()
    second = api.get("/experiments", limit=3, offset=3).json()
    assert first["count"] == second["count"] == 7
    assert len(first["items"]) == len(second["items"]) == 3
    assert not {e["id"] for e in first["items"]} & {e["id"] for e in second["items"]}
    assert [e["name"] for e in api.get("/experiments", status="completed").json()["items"]] == ["exp 1"]
    assert {e["name"] for e in api.get("/experiments", search="NEEDLE").json()["items"]} == {
        "exp 0 needle",
        "exp 3 needle",
        "exp 6 needle",
    }
    for bad in ({"limit": 201}, {"limit": 0}, {"offset": -1}, {"status": "sleeping"}):
        response = api.get("/experiments", **bad)
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"][0] == "query"


def test_patch_replaces_the_given_keys_and_is_refused_while_a_sweep_runs(api):
    experiment_id = api.post("/experiments", spec()).json()["id"]
    response = api.patch(f"/experiments/{experiment_id}", {"description": "now with notes", "max_concurrency": 2})
    assert response.status_code == 200
    assert response.json()["spec"]["max_concurrency"] == 2 and response.json()["description"] == "now with notes"
    assert api.patch(f"/experiments/{experiment_id}", {"max_concurrency": -1}).status_code == 422

    experiment = Experiment.objects.get(pk=experiment_id)
    Sweep.objects.create(experiment=experiment, spec=experiment.parsed_spec().to_dict(), status="running")
    refused = api.patch(f"/experiments/{experiment_id}", {"description": "again"})
    assert refused.status_code == 409 and "running sweep" in refused.json()["detail"]
    assert Experiment.objects.get(pk=experiment_id).description == "now with notes"
    refused = api.delete(f"/experiments/{experiment_id}")
    assert refused.status_code == 409 and "stop its sweep" in refused.json()["detail"]


def test_delete_removes_the_experiment_with_everything_it_made(api):
    experiment_id, _ = finished_sweep(api)
    assert RunSample.objects.exists() and Score.objects.exists()
    assert api.delete(f"/experiments/{experiment_id}").status_code == 204
    assert not Experiment.objects.exists() and not Sweep.objects.exists() and not Run.objects.exists()
    assert not RunSample.objects.exists() and not Score.objects.exists()
    assert api.get(f"/experiments/{experiment_id}").status_code == 404


# --- sweeps ---------------------------------------------------------------------------------


def test_a_sweep_started_through_the_api_reports_its_progress_to_the_end(api):
    experiment_id = api.post("/experiments", spec()).json()["id"]
    started = api.post(f"/experiments/{experiment_id}/sweeps")
    assert started.status_code == 202 and started.json()["status"] in ("queued", "running", "completed")
    again = api.post(f"/experiments/{experiment_id}/sweeps")
    assert again.status_code in (202, 409)  # 409 while the first is active; it may have finished already

    experiment_id, status = finished_sweep(api, name="second")
    assert status["total"] == status["completed"] == 12 and status["progress"] == 1.0
    assert (
        status["best_score"] == 1.0
        and status["tokens_in"] + status["saved_tokens"] > 0
        and status["stopped_reason"] == "completed"
    )
    assert status["allowed_actions"] == [] and status["finished_at"]
    listed = api.get(f"/experiments/{experiment_id}/sweeps").json()
    assert listed["count"] == 1 and listed["items"][0]["id"] == status["id"]
    assert api.get(f"/experiments/{experiment_id}").json()["latest_sweep"]["id"] == status["id"]


def test_pause_resume_and_stop_answer_202_or_409_with_what_is_allowed(api, mock_latency):
    mock_latency(50)
    experiment_id = api.post("/experiments", spec(max_concurrency=1)).json()["id"]
    sweep_id = api.post(f"/experiments/{experiment_id}/sweeps").json()["id"]
    wait_for(lambda: api.get(f"/sweeps/{sweep_id}").json()["completed"] >= 1)

    paused = api.post(f"/sweeps/{sweep_id}/pause")
    assert paused.status_code == 202 and paused.json()["status"] == "paused"
    assert paused.json()["allowed_actions"] == ["resume", "stop"]
    refused = api.post(f"/sweeps/{sweep_id}/pause")
    assert refused.status_code == 409
    assert refused.json()["allowed"] == ["resume", "stop"] and "paused" in refused.json()["detail"]

    resumed = api.post(f"/sweeps/{sweep_id}/resume")
    assert resumed.status_code == 202 and resumed.json()["status"] in ("queued", "running")
    stopped = api.post(f"/sweeps/{sweep_id}/stop")
    assert stopped.status_code == 202 and stopped.json()["status"] == "stopped"
    wait_for(lambda: not RunSample.objects.filter(sweep_id=sweep_id, status__in=("pending", "running")).exists())
    final = api.get(f"/sweeps/{sweep_id}").json()
    assert final["status"] == "stopped" and final["cancelled"] > 0 and final["completed"] < 12
    assert api.post(f"/sweeps/{sweep_id}/resume").json()["allowed"] == []


# --- runs, leaderboard, export --------------------------------------------------------------


def test_runs_are_ordered_filtered_and_paginated(api):
    experiment_id, sweep = finished_sweep(api, scorers=[{"type": "icontains", "value": "{{ expected }}"},
                                                        {"type": "max_length", "value": 40}])  # fmt: skip
    runs = api.get(f"/experiments/{experiment_id}/runs").json()
    assert runs["count"] == 4
    scores = [r["score"] for r in runs["items"]]
    assert scores == sorted(scores, reverse=True)
    by_cost = [r["cost_usd"] for r in api.get(f"/experiments/{experiment_id}/runs", order="cost").json()["items"]]
    assert by_cost == sorted(by_cost)
    created = [r["id"] for r in api.get(f"/experiments/{experiment_id}/runs", order="-created").json()["items"]]
    assert created == sorted(created, reverse=True)

    upper = api.get(f"/experiments/{experiment_id}/runs", param="model=mock/upper").json()
    assert upper["count"] == 2 and {r["config"]["model"] for r in upper["items"]} == {"mock/upper"}
    one = api.get(f"/experiments/{experiment_id}/runs", param=["model=mock/upper", "params.temperature=1.0"]).json()
    assert one["count"] == 1 and one["items"][0]["config"]["params"]["temperature"] == 1.0
    assert api.get(f"/experiments/{experiment_id}/runs", status="failed").json()["count"] == 0
    page = api.get(f"/experiments/{experiment_id}/runs", limit=3, offset=3).json()
    assert page["count"] == 4 and len(page["items"]) == 1

    bad = api.get(f"/experiments/{experiment_id}/runs", param="model")
    assert bad.status_code == 422 and "path=value" in bad.json()["detail"]
    assert api.get(f"/experiments/{experiment_id}/runs", order="price").status_code == 422
    assert api.get(f"/experiments/{experiment_id}/runs", sweep=sweep["id"] + 1000).status_code == 404


def test_a_run_shows_its_samples_with_every_stage_and_score(api):
    experiment_id, _ = finished_sweep(api)
    run = api.get(f"/experiments/{experiment_id}/runs", limit=1).json()["items"][0]
    detail = api.get(f"/runs/{run['id']}").json()
    assert detail["config"] == run["config"] and detail["samples"]["count"] == 3
    sample = detail["samples"]["items"][0]
    assert sample["inputs"] == {"ticket": "billing charged twice", "expected": "billing"}
    assert [s["name"] for s in sample["stages"]] == ["summarize", "label"]
    assert sample["output"] and sample["status"] == "completed" and isinstance(sample["cache_hit"], bool)
    assert sample["scores"][0]["name"] and sample["scores"][0]["reason"] and 0 <= sample["scores"][0]["value"] <= 1
    second_page = api.get(f"/runs/{run['id']}", limit=2, offset=2).json()["samples"]["items"]
    assert [s["row_index"] for s in second_page] == [2]


def test_the_leaderboard_ranks_runs_with_their_distinguishing_parameters(api):
    experiment_id, sweep = finished_sweep(api)
    board = api.get(f"/experiments/{experiment_id}/leaderboard").json()
    assert board["sweep_id"] == sweep["id"]
    assert board["varying_params"] == ["model", "params.temperature"]
    assert [e["rank"] for e in board["entries"]] == [1, 2, 3, 4]
    scores = [e["score"] for e in board["entries"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == sweep["best_score"]
    assert set(board["entries"][0]["params"]) == {"model", "params.temperature"}
    assert len(api.get(f"/experiments/{experiment_id}/leaderboard", limit=2).json()["entries"]) == 2


def test_a_new_experiment_has_an_empty_leaderboard_and_nothing_to_export(api):
    experiment_id = api.post("/experiments", spec()).json()["id"]
    assert api.get(f"/experiments/{experiment_id}/leaderboard").json() == {
        "sweep_id": None,
        "varying_params": [],
        "entries": [],
        "pareto_front": [],
        "verdict": None,
    }
    assert api.get(f"/experiments/{experiment_id}/runs").json() == {"items": [], "count": 0}
    response = api.get(f"/experiments/{experiment_id}/export")
    assert response.status_code == 409 and "no sweep yet" in response.json()["detail"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_is_streamed_as_an_attachment(api, fmt):
    experiment_id, sweep = finished_sweep(api)
    response = api.get(f"/experiments/{experiment_id}/export", format=fmt)
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"].endswith(f'.{fmt}"')
    text = b"".join(response.streaming_content).decode()
    lines = text.strip().splitlines()
    assert len(lines) == 12 + (fmt == "csv")  # every sample once, plus the CSV header
    if fmt == "jsonl":
        assert {json.loads(line)["run_id"] for line in lines} == set(Run.objects.values_list("id", flat=True))
    assert api.get(f"/experiments/{experiment_id}/export", format="xml").status_code == 422


# --- providers ------------------------------------------------------------------------------


def test_providers_show_availability_with_what_to_do(api, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    Provider.objects.update_or_create(name="openai", defaults={"kind": "openai", "api_key_env": "OPENAI_API_KEY"})
    providers = {p["name"]: p for p in api.get("/providers").json()}
    assert providers["mock"]["available"] is True and providers["mock"]["unavailable_reason"] == ""
    assert providers["openai"]["available"] is False
    assert providers["openai"]["unavailable_reason"] == "set the environment variable OPENAI_API_KEY"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    listed = api.get("/providers")
    assert "sk-secret-value" not in listed.content.decode()
    assert {p["name"]: p for p in listed.json()}["openai"]["available"] is True


def test_only_staff_may_add_or_change_providers(api, user):
    body = {"name": "local", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "LOCAL_API_KEY"}
    refused = api.post("/providers", body)
    assert refused.status_code == 403 and "staff" in refused.json()["detail"]
    assert not Provider.objects.filter(name="local").exists()

    user.is_staff = user.is_superuser = True
    user.save()
    created = api.post("/providers", body)
    assert created.status_code == 201 and created.json()["available"] is False
    assert api.post("/providers", body).status_code == 409
    bad = api.post("/providers", {**body, "name": "other", "options": {"retry": {"tries": 3}}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "options"]
    changed = api.patch("/providers/local", {"requests_per_minute": 60, "enabled": False})
    assert changed.status_code == 200 and changed.json()["unavailable_reason"] == "disabled in the admin"
    assert Provider.objects.get(name="local").requests_per_minute == 60
    assert api.patch("/providers/nope", {"enabled": True}).status_code == 404


# --- errors and docs ------------------------------------------------------------------------


def test_unknown_routes_and_methods_answer_in_json(api):
    missing = api.get("/nothing/here")
    assert missing.status_code == 404 and "/api/v1/docs" in missing.json()["detail"]
    wrong = api.request("put", "/experiments")
    assert wrong.status_code == 405 and wrong.json()["detail"]


def test_the_docs_work_offline_for_a_signed_in_user(user, api):
    client = Client()
    assert client.get("/api/v1/docs").status_code == 302  # to the login page
    client.force_login(user)
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and b"cdn" not in page.content.lower()
    schema = api.get("/openapi.json").json()
    assert "/api/v1/experiments/{experiment_id}/export" in schema["paths"]


# --- query counts ---------------------------------------------------------------------------


def test_query_counts_do_not_grow_with_the_data(api, django_assert_max_num_queries):
    experiment_id, sweep = finished_sweep(api)
    for i in range(5):
        finished_sweep(api, name=f"more {i}")
    run_id = Run.objects.filter(experiment_id=experiment_id).first().pk
    # token lookup + last-used check, then the route's own reads (the leaderboard's verdict: the
    # top two runs and their samples, once; it is cached after). Runs, the leaderboard and a run
    # read the runs' share of 👍 in one query more; a run's page of samples their ratings in one.
    for path, limit in [("/experiments", 5), (f"/experiments/{experiment_id}", 5), (f"/sweeps/{sweep['id']}", 3),
                        (f"/experiments/{experiment_id}/runs", 6), (f"/experiments/{experiment_id}/leaderboard", 8),
                        (f"/runs/{run_id}", 7)]:  # fmt: skip
        with django_assert_max_num_queries(limit):
            assert api.get(path).status_code == 200, path


def test_a_yaml_spec_file_can_be_posted_as_it_is(api):
    from tests.integration.test_cli import EXAMPLE

    response = api.client.post("/api/v1/experiments", EXAMPLE.read_bytes(), content_type="application/yaml",
                               headers=api.headers())  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["spec"]["pipeline"][0]["name"] == "summarize"
    bad = api.client.post(
        "/api/v1/experiments", b"name: [unclosed", content_type="application/yaml", headers=api.headers()
    )
    assert bad.status_code == 422 and "invalid YAML at line 1" in bad.json()["detail"][0]["msg"]


def test_export_streams_through_daphne(user, mock_latency):
    """Under ASGI a plain iterator would be read whole before the first byte: it must stream."""
    import httpx

    from tests.servers import daphne

    api = ApiClient(user)
    experiment_id, _ = finished_sweep(api)
    with daphne() as host, httpx.stream("GET", f"http://{host}/api/v1/experiments/{experiment_id}/export?format=jsonl",
                                        headers=api.headers(), timeout=30) as response:  # fmt: skip
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
        lines = "".join(response.iter_text()).splitlines()
    assert len(lines) == 12 and all(json.loads(line)["status"] == "completed" for line in lines)


def test_runs_sort_by_score_per_dollar_and_the_leaderboard_marks_the_pareto_front(api):
    experiment_id, sweep = finished_sweep(api)
    runs = list(Run.objects.filter(sweep_id=sweep["id"]).order_by("id"))
    # Made-up figures with a known answer: a is free; c gives most score per dollar, then b;
    # b beats d on score, cost and latency at once, so d alone is off the front.
    figures = [(0.5, 0, 10), (0.9, 0.01, 50), (0.6, 0.004, 20), (0.85, 1.0, 90)]
    for run, (score, cost, latency) in zip(runs, figures, strict=True):
        Run.objects.filter(pk=run.pk).update(score=score, cost_usd=cost, latency_ms=latency)
    a, b, c, d = (r.pk for r in runs)

    ordered = api.get(f"/experiments/{experiment_id}/runs", order="-score_per_dollar").json()["items"]
    assert [r["id"] for r in ordered] == [a, c, b, d]
    assert [r["score_per_dollar"] for r in ordered] == [
        None,
        pytest.approx(150),
        pytest.approx(90),
        pytest.approx(0.85),
    ]

    board = api.get(f"/experiments/{experiment_id}/leaderboard").json()
    assert sorted(board["pareto_front"]) == sorted([a, b, c])
    assert {e["run_id"]: e["pareto"] for e in board["entries"]} == {a: True, b: True, c: True, d: False}
    assert api.get(f"/runs/{c}").json()["score_per_dollar"] == pytest.approx(150)


def test_the_leaderboard_gives_intervals_and_says_whether_the_top_two_are_distinguishable(api):
    experiment_id, sweep = finished_sweep(api)
    board = api.get(f"/experiments/{experiment_id}/leaderboard").json()
    for entry in board["entries"]:
        assert entry["score_ci_low"] <= entry["score"] <= entry["score_ci_high"]
        assert entry["score_spread"] is None and entry["consistency"] is None  # one replicate
    verdict = board["verdict"]
    first, second = board["entries"][:2]
    assert verdict["run_ids"] == [first["run_id"], second["run_id"]]
    assert verdict["rows"] == 3 and verdict["alpha"] == 0.05
    assert verdict["difference"] == pytest.approx(first["score"] - second["score"])
    assert verdict["distinguishable"] is False  # 3 rows can never show a difference at 0.05
    assert 0 < verdict["p_value"] <= 1 and verdict["ci_low"] <= verdict["difference"] <= verdict["ci_high"]
    run = api.get(f"/runs/{first['run_id']}").json()
    assert (run["score_ci_low"], run["score_ci_high"]) == (first["score_ci_low"], first["score_ci_high"])


def test_an_early_stopping_sweep_reports_what_pruning_saved(api):
    from tests.integration.test_early_stopping import es_spec

    experiment_id = api.post("/experiments", es_spec()).json()["id"]
    sweep_id = api.post(f"/experiments/{experiment_id}/sweeps").json()["id"]
    sweep = wait_for(lambda: (s := api.get(f"/sweeps/{sweep_id}").json())["status"] == "completed" and s)
    assert sweep["pruned"] > 0 and sweep["pruned_tokens"] > 0 and sweep["progress"] == 1.0
    pruned = api.get(f"/experiments/{experiment_id}/runs", status="pruned").json()
    assert pruned["count"] >= 2 and {r["status"] for r in pruned["items"]} == {"pruned"}
    board = api.get(f"/experiments/{experiment_id}/leaderboard").json()
    assert board["entries"][0]["status"] == "completed" and board["entries"][-1]["status"] == "pruned"
    assert not set(board["pareto_front"]) & {r["id"] for r in pruned["items"]}
    bad = api.post("/experiments", es_spec(early_stopping={"rungs": [0.5, 0.2], "alpha": 2}))
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["detail"]} == {"sweep.early_stopping.alpha", "sweep.early_stopping.rungs"}


def test_an_unexpected_error_is_a_logged_json_500_without_a_traceback(api, monkeypatch, caplog):

    def broken(**kwargs):
        raise RuntimeError("database exploded: secret detail")

    monkeypatch.setattr("sweeps.api.experiments.experiment_search", broken)
    response = api.get("/experiments")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal error; it was logged for the administrator."}
    assert "secret detail" not in response.content.decode() and "Traceback" not in response.content.decode()
    [record] = [r for r in caplog.records if r.name == "promptlooper.api"]
    assert record.getMessage() == "API GET /api/v1/experiments failed" and "secret detail" in str(record.exc_info[1])


def test_an_exception_outside_the_routes_is_a_json_500_too(rf, caplog):
    from promptlooper.middleware import ApiErrorsAsJson

    middleware = ApiErrorsAsJson(lambda request: None)
    response = middleware.process_exception(rf.get("/api/v1/anything"), RuntimeError("boom"))
    assert response.status_code == 500 and json.loads(response.content)["detail"].startswith("Internal error")
    assert middleware.process_exception(rf.get("/experiments/"), RuntimeError("boom")) is None  # pages: Django's 500
