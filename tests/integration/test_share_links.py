"""Read-only share links: the holder sees the shared experiment's (or sweep's) pages without
logging in and without any control, and nothing else; a tampered, revoked or dead link is a 404.
The owner makes and revokes links on the Share page and over the API."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from sweeps.models import Experiment, Run, RunSample, ShareLink, Sweep
from sweeps.selectors.shares import share_path
from sweeps.services.experiments import experiment_create
from sweeps.services.shares import share_create, share_revoke
from tests.conftest import logged_in, spec
from tests.integration.api_client import ApiClient

LONG_INPUT = "question " * 40


def make_sweep(experiment: Experiment, scores: list[float]) -> tuple[Sweep, list[Run], list[RunSample]]:
    """A finished sweep, one run per score and one sample per run, written directly: pages only read them."""
    sweep = Sweep.objects.create(experiment=experiment, spec={}, status="completed", total=len(scores))
    runs, samples = [], []
    for i, score in enumerate(scores):
        run = Run.objects.create(
            experiment=experiment, sweep=sweep, config_hash=f"h{sweep.pk}-{i}", status="completed",
            config={"model": "mock/echo", "params": {"temperature": i / 10}}, score=score, cost_usd=0.001 * (i + 1),
            latency_ms=100.0, samples_total=1,
        )  # fmt: skip
        runs.append(run)
        samples.append(
            RunSample.objects.create(
                run=run,
                sweep=sweep,
                row_index=0,
                status="completed",
                score=score,
                inputs={"question": LONG_INPUT},
                output="4",
                stages=[],
            )  # fmt: skip
        )
    return sweep, runs, samples


@pytest.fixture
def shared(user, other_user):
    """Alice's experiment with two sweeps, a link to all of it and one to its first sweep alone;
    Bob's experiment beside it."""
    experiment = experiment_create(owner=user, data=spec(name="Shared experiment"))
    first = make_sweep(experiment, [0.5, 0.7])
    second = make_sweep(experiment, [0.9, 0.6])
    bobs = experiment_create(owner=other_user, data=spec(name="Bob secret"))
    bob_sweep = make_sweep(bobs, [0.4])
    return {
        "experiment": experiment,
        "first": first,
        "second": second,
        "bob": bob_sweep,
        "whole": share_create(user=user, experiment=experiment, label="reviewers"),
        "scoped": share_create(user=user, experiment=experiment, sweep_id=first[0].pk),
    }


def anonymous() -> Client:
    return Client(enforce_csrf_checks=True)


def run_links(page: str) -> set[str]:
    return set(re.findall(r'href="([^"]*runs/\d+/)"', page))


def every_href(page: str) -> list[str]:
    return re.findall(r'(?:href|action|src)="([^"]*)"', page)


# --- the holder's pages ---


@pytest.mark.django_db
def test_a_link_shows_the_experiment_read_only_without_login(shared):
    path = share_path(shared["whole"])
    response = anonymous().get(path)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Shared experiment" in page and 'id="leaderboard"' in page and 'id="charts-data"' in page
    assert response["X-Robots-Tag"].startswith("noindex")
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    # No control of any kind: no POST form, no CSRF token, no button but the chart toggles.
    assert "<form" not in page and "csrfmiddlewaretoken" not in page
    assert all("data-pareto-axis" in button for button in re.findall(r"<button[^>]*>", page))
    assert "data-ws-path" not in page and "data-live-url" not in page and "experiment.js" not in page
    controls = ("Start sweep", "Edit", "Duplicate", "export", "Log out", "API tokens", "Compare two sweeps",
                "Versions", "Notify me", "Notifications")  # fmt: skip
    for text in controls:
        assert text not in page, text
    # Every link stays inside the share (static files and plotly.js aside).
    for href in every_href(page):
        assert href.startswith((path, "?", "#", "/static/", "/vendor/", "data:")), href
    second_runs = {f"{path}runs/{run.pk}/" for run in shared["second"][1]}
    assert run_links(page) == second_runs  # the latest sweep, as the owner's page shows it


@pytest.mark.django_db
def test_a_whole_experiment_link_lists_every_sweep_and_shows_an_earlier_one(shared):
    path = share_path(shared["whole"])
    first, _, _ = shared["first"]
    page = anonymous().get(path, {"sweep": first.pk}).content.decode()

    assert 'id="sweep-picker"' in page and 'id="earlier-sweep"' in page
    assert "compare-sweeps" not in page and "Regressions" not in page and "alice" not in page
    assert run_links(page) == {f"{path}runs/{run.pk}/" for run in shared["first"][1]}
    # Bob's sweep through ?sweep=: not this experiment's.
    assert anonymous().get(path, {"sweep": shared["bob"][0].pk}).status_code == 404


@pytest.mark.django_db
def test_a_sweep_link_shows_that_sweep_alone(shared):
    path = share_path(shared["scoped"])
    first, first_runs, first_samples = shared["first"]
    second, second_runs, second_samples = shared["second"]

    page = anonymous().get(path).content.decode()
    assert f"Sweep {first.pk}" in page and f"Sweep {second.pk}" not in page and 'id="sweep-picker"' not in page
    assert run_links(page) == {f"{path}runs/{run.pk}/" for run in first_runs}

    assert anonymous().get(path, {"sweep": first.pk}).status_code == 200
    assert anonymous().get(path, {"sweep": second.pk}).status_code == 404
    assert anonymous().get(f"{path}runs/{first_runs[0].pk}/").status_code == 200
    assert anonymous().get(f"{path}runs/{second_runs[0].pk}/").status_code == 404
    assert anonymous().get(f"{path}samples/{first_samples[0].pk}/text/", {"part": "output"}).status_code == 200
    assert anonymous().get(f"{path}samples/{second_samples[0].pk}/text/", {"part": "output"}).status_code == 404


@pytest.mark.django_db
@override_settings(PROMPTLOOPER_SHOWN_TEXT_CHARS=50)
def test_the_run_page_is_read_only_and_its_full_texts_stay_in_the_share(shared):
    path = share_path(shared["whole"])
    run, sample = shared["first"][1][1], shared["first"][2][1]
    response = anonymous().get(f"{path}runs/{run.pk}/")

    assert response.status_code == 200
    assert response["Referrer-Policy"] == "no-referrer" and response["X-Robots-Tag"].startswith("noindex")
    page = response.content.decode()
    assert f"Run {run.pk}" in page and 'id="samples"' in page
    assert "csrfmiddlewaretoken" not in page and 'method="post"' not in page
    assert "Compare with other runs" not in page and "export" not in page
    assert "review.js" not in page and 'class="review"' not in page  # no 👍/👎: rating is the owner's
    full = f"{path}samples/{sample.pk}/text/?part=inputs.question"
    assert f'href="{full}"' in page
    for href in every_href(page):
        assert href.startswith((path, "?", "#", "/static/", "data:")), href
    text = anonymous().get(full)
    assert text.status_code == 200 and text.content.decode() == LONG_INPUT
    assert text["Referrer-Policy"] == "no-referrer"
    assert anonymous().get(f"{path}samples/{sample.pk}/text/", {"part": "nothing"}).status_code == 404


@pytest.mark.django_db
def test_other_experiments_runs_and_samples_are_404(shared):
    path = share_path(shared["whole"])
    _, bob_runs, bob_samples = shared["bob"]
    assert anonymous().get(f"{path}runs/{bob_runs[0].pk}/").status_code == 404
    assert anonymous().get(f"{path}samples/{bob_samples[0].pk}/text/", {"part": "output"}).status_code == 404
    assert anonymous().get(f"{path}runs/999999999999/").status_code == 404


@pytest.mark.django_db
def test_tampered_revoked_and_dead_links_are_404(shared, user):
    whole = shared["whole"]
    path = share_path(whole)
    token = path.split("/")[2]
    link_id, signature = token.split(":", 1)
    other = shared["scoped"]
    bad = [
        f"{link_id}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",  # one character of the signature
        f"{other.pk}:{signature}",  # another link's id under this signature
        link_id,  # no signature
        "x" * 500,
        f"{link_id}:{signature}:{signature}",
    ]
    for tampered in bad:
        assert anonymous().get(f"/share/{tampered}/").status_code == 404, tampered
    run = shared["second"][1][0]
    share_revoke(link=whole)
    for url in (path, f"{path}runs/{run.pk}/", f"{path}samples/{shared['second'][2][0].pk}/text/?part=output"):
        response = anonymous().get(url)
        assert response.status_code == 404, url
        # The dead link's URL still holds the token: kept out of indexes and Referers all the same.
        assert response["X-Robots-Tag"].startswith("noindex") and response["Referrer-Policy"] == "no-referrer"
        assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    # Deleting the experiment deletes its links.
    scoped_path = share_path(other)
    assert anonymous().get(scoped_path).status_code == 200
    shared["experiment"].delete()
    assert anonymous().get(scoped_path).status_code == 404
    assert not ShareLink.objects.exists()


@pytest.mark.django_db
def test_a_link_opens_no_control_route(shared):
    """The holder is not logged in: the owner's routes still ask for a login, and writes need CSRF."""
    experiment = shared["experiment"]
    client = anonymous()
    assert client.get(share_path(shared["whole"])).status_code == 200
    for url in (f"/experiments/{experiment.pk}/sweep/start/", f"/experiments/{experiment.pk}/duplicate/",
                f"/experiments/{experiment.pk}/shares/"):  # fmt: skip
        response = Client().post(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
    assert client.get(f"/experiments/{experiment.pk}/").status_code == 302
    assert client.get(f"/runs/{shared['first'][1][0].pk}/").status_code == 302
    assert client.get(f"/api/v1/experiments/{experiment.pk}").status_code == 401
    assert Client().post(share_path(shared["whole"])).status_code == 405
    assert not Sweep.objects.filter(experiment=experiment).exclude(status="completed").exists()


@pytest.mark.django_db
def test_the_owner_viewing_a_link_gets_the_read_only_page_too(shared, user):
    page = logged_in(user).get(share_path(shared["whole"])).content.decode()
    assert "csrfmiddlewaretoken" not in page and "Log out" not in page and "Start sweep" not in page


# --- the owner's page ---


@pytest.mark.django_db
def test_owner_creates_lists_and_revokes_links_on_the_share_page(shared, user):
    experiment = shared["experiment"]
    first = shared["first"][0]
    client = logged_in(user, enforce_csrf_checks=False)
    assert 'id="share-link"' in client.get(f"/experiments/{experiment.pk}/").content.decode()

    response = client.post(f"/experiments/{experiment.pk}/shares/", {"sweep": str(first.pk), "label": " team "})
    assert response.status_code == 302
    link = ShareLink.objects.get(label="team")
    assert link.sweep_id == first.pk and link.created_by == user

    page = client.get(f"/experiments/{experiment.pk}/shares/").content.decode()
    assert f'value="http://testserver{share_path(link)}"' in page
    assert page.count("data-revoke=") == 3

    response = client.post(f"/experiments/{experiment.pk}/shares/{link.pk}/revoke/")
    assert response.status_code == 302
    link.refresh_from_db()
    assert link.revoked_at is not None
    assert anonymous().get(share_path(link)).status_code == 404
    again = client.post(f"/experiments/{experiment.pk}/shares/{link.pk}/revoke/", follow=True)
    assert "already revoked" in again.content.decode()


@pytest.mark.django_db
def test_bad_share_form_input_is_named(shared, user):
    experiment = shared["experiment"]
    client = logged_in(user)
    bob_sweep = shared["bob"][0]
    for data, message in (
        ({"sweep": "abc"}, "is not a sweep id"),
        ({"sweep": str(bob_sweep.pk)}, f"Sweep {bob_sweep.pk} is not a sweep of experiment {experiment.pk}"),
        ({"label": "x" * 101}, "at most 100 characters"),
    ):
        page = client.post(f"/experiments/{experiment.pk}/shares/", data, follow=True).content.decode()
        assert message in page, data
    assert ShareLink.objects.count() == 2


@pytest.mark.django_db
def test_the_share_page_needs_csrf_and_its_owner(shared, user, other_user):
    experiment = shared["experiment"]
    strict = logged_in(user, enforce_csrf_checks=True)
    assert strict.post(f"/experiments/{experiment.pk}/shares/", {"label": "x"}).status_code == 403
    assert strict.post(f"/experiments/{experiment.pk}/shares/{shared['whole'].pk}/revoke/").status_code == 403
    bob = logged_in(other_user)
    assert bob.get(f"/experiments/{experiment.pk}/shares/").status_code == 404
    assert bob.post(f"/experiments/{experiment.pk}/shares/", {"label": "mine now"}).status_code == 404
    assert bob.post(f"/experiments/{experiment.pk}/shares/{shared['whole'].pk}/revoke/").status_code == 404
    # Alice's link id under Bob's own experiment: still not his.
    bobs = shared["bob"][0].experiment_id
    assert bob.post(f"/experiments/{bobs}/shares/{shared['whole'].pk}/revoke/").status_code == 404
    assert ShareLink.objects.count() == 2 and not ShareLink.objects.filter(revoked_at__isnull=False).exists()


# --- the API ---


@pytest.mark.django_db
def test_api_creates_lists_and_revokes_links(shared, user):
    experiment = shared["experiment"]
    first = shared["first"][0]
    api = ApiClient(user)

    created = api.post(f"/experiments/{experiment.pk}/shares", {"sweep_id": first.pk, "label": "ci"})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["sweep_id"] == first.pk and body["label"] == "ci" and body["revoked_at"] is None
    assert body["url"].startswith("http://testserver/share/")
    assert anonymous().get(body["url"].removeprefix("http://testserver")).status_code == 200

    listed = api.get(f"/experiments/{experiment.pk}/shares").json()
    assert [item["id"] for item in listed][0] == body["id"] and len(listed) == 3

    revoked = api.request("delete", f"/shares/{body['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert anonymous().get(body["url"].removeprefix("http://testserver")).status_code == 404
    again = api.request("delete", f"/shares/{body['id']}")
    assert again.status_code == 409 and "already revoked" in again.json()["detail"]


@pytest.mark.django_db
def test_api_refuses_bad_input_and_other_users(shared, user, other_user):
    experiment = shared["experiment"]
    api = ApiClient(user)
    bob_sweep = shared["bob"][0]
    wrong = api.post(f"/experiments/{experiment.pk}/shares", {"sweep_id": bob_sweep.pk})
    assert wrong.status_code == 422 and f"Sweep {bob_sweep.pk} is not a sweep" in wrong.json()["detail"]
    assert api.post(f"/experiments/{experiment.pk}/shares", {"sweep_id": "abc"}).status_code == 422
    assert api.post(f"/experiments/{experiment.pk}/shares", {"label": "x" * 101}).status_code == 422

    bob = ApiClient(other_user)
    assert bob.post(f"/experiments/{experiment.pk}/shares", {}).status_code == 404
    assert bob.get(f"/experiments/{experiment.pk}/shares").status_code == 404
    assert bob.request("delete", f"/shares/{shared['whole'].pk}").status_code == 404
    assert ApiClient().post(f"/experiments/{experiment.pk}/shares", {}).status_code == 401
    assert ShareLink.objects.count() == 2 and not ShareLink.objects.filter(revoked_at__isnull=False).exists()


# --- the admin ---


@pytest.mark.django_db
def test_the_admin_lists_and_revokes_links(shared, admin_client):
    changelist = "/admin/sweeps/sharelink/"
    page = admin_client.get(changelist).content.decode()
    assert "reviewers" in page and "/share/" not in page  # the URL is the owner's to hand out
    whole, scoped = shared["whole"], shared["scoped"]
    share_revoke(link=scoped)
    response = admin_client.post(
        changelist, {"action": "revoke", "_selected_action": [whole.pk, scoped.pk]}, follow=True
    )
    text = response.content.decode()
    assert "revoked" in text and "already revoked" in text
    whole.refresh_from_db()
    assert whole.revoked_at is not None
    assert anonymous().get(share_path(whole)).status_code == 404
    assert admin_client.get(f"{changelist}add/").status_code == 403


@pytest.mark.django_db
def test_shared_pages_cost_what_the_owners_pages_cost(shared, user):
    """The link's lookup takes the place of the owner's experiment (or run) lookup and session:
    a shared page reads no more than the owner's does, whatever the number of runs."""
    experiment, run = shared["experiment"], shared["second"][1][0]
    path = share_path(shared["whole"])
    owner = logged_in(user)

    def queries(client: Client, url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    assert queries(anonymous(), path) <= queries(owner, f"/experiments/{experiment.pk}/")
    assert queries(anonymous(), f"{path}runs/{run.pk}/") <= queries(owner, f"/runs/{run.pk}/")
