"""The embedded mode as `make run` serves it: daphne, a sweep thread in the web process, and
events crossing from that thread's event loop to the websocket through the in-memory layer."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets
from django.test import Client

from sweeps.models import Sweep
from sweeps.services.experiments import experiment_create
from tests.conftest import spec
from tests.servers import daphne

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def collect_until_completed(url: str, cookie: str, origin: str, start) -> list[dict]:
    async with websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": origin}) as ws:
        await start()
        events = []
        while not events or events[-1]["type"] != "sweep.completed":
            events.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=30)))
        return events


def test_sweep_started_from_the_page_streams_events_to_the_browser(user, other_user, mock_latency):
    mock_latency(5)
    experiment = experiment_create(owner=user, data=spec())
    cookie = f"sessionid={session_cookie(user)}"
    with daphne() as host:
        origin = f"http://{host}"
        page = httpx.get(f"{origin}/experiments/{experiment.pk}/", headers={"Cookie": cookie})
        assert page.status_code == 200 and "Start sweep" in page.text
        csrf = page.cookies["csrftoken"]

        async def start() -> None:
            async with httpx.AsyncClient() as http:
                response = await http.post(
                    f"{origin}/experiments/{experiment.pk}/sweep/start/",
                    data={"csrfmiddlewaretoken": csrf},
                    headers={"Cookie": f"{cookie}; csrftoken={csrf}"},
                )
                assert response.status_code == 302

        events = asyncio.run(
            collect_until_completed(f"ws://{host}/ws/experiments/{experiment.pk}/", cookie, origin, start)
        )

        assert events[-1]["completed"] == events[-1]["total"] == 12
        assert sum(e["type"] == "run.completed" for e in events) == 4
        assert Sweep.objects.get(experiment=experiment).status == "completed"
        live = httpx.get(f"{origin}/experiments/{experiment.pk}/live/", headers={"Cookie": cookie})
        assert live.status_code == 200 and "Leaderboard" in live.text and "12 of 12 done" in live.text

        intruder = f"sessionid={session_cookie(other_user)}"
        with pytest.raises(websockets.exceptions.InvalidStatus):
            asyncio.run(
                collect_until_completed(f"ws://{host}/ws/experiments/{experiment.pk}/", intruder, origin, start)
            )
        assert httpx.get(f"{origin}/experiments/{experiment.pk}/", headers={"Cookie": intruder}).status_code == 404
