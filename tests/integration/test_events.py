"""Events: the websocket consumer through channels' communicator, in order, owner-only."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from promptlooper.asgi import application
from sweeps.runner.execution import execute_sweep
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_pause, sweep_start, sweep_stop
from tests.conftest import spec

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_async_connections():
    """database_sync_to_async runs on one shared thread whose connection would outlive the
    test (and keep PostgreSQL from dropping the test database at the end)."""
    yield
    await database_sync_to_async(connections.close_all)()


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return [(b"origin", b"http://testserver"), (b"cookie", cookie)]


async def connect(experiment_id: int, headers) -> tuple[WebsocketCommunicator, bool, int | None]:
    communicator = WebsocketCommunicator(application, f"/ws/experiments/{experiment_id}/", headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code


async def test_anonymous_and_other_users_are_refused(user, other_user, mock_latency):
    experiment = await database_sync_to_async(experiment_create)(owner=user, data=spec())

    anonymous, connected, _ = await connect(experiment.pk, [(b"origin", b"http://testserver")])
    assert not connected
    headers = await database_sync_to_async(session_headers)(other_user)
    intruder, connected, _ = await connect(experiment.pk, headers)
    assert not connected
    headers = await database_sync_to_async(session_headers)(user)
    owner, connected, _ = await connect(experiment.pk, headers)
    assert connected
    await owner.disconnect()


async def test_owner_receives_the_sweep_events_in_order(user, mock_latency, monkeypatch):
    # The sweep runs on this test's event loop (not the embedded thread) so that its events
    # and the consumer share one in-memory channel layer.
    monkeypatch.setattr("sweeps.services.sweeps.dispatch_sweep", lambda sweep, **kwargs: [])
    experiment = await database_sync_to_async(experiment_create)(owner=user, data=spec())
    headers = await database_sync_to_async(session_headers)(user)
    communicator, connected, _ = await connect(experiment.pk, headers)
    assert connected

    sweep = await database_sync_to_async(sweep_start)(experiment=experiment)
    assert await execute_sweep(sweep.pk) == "drained"

    received = []
    while not received or received[-1]["type"] != "sweep.completed":
        received.append(await communicator.receive_json_from(timeout=5))
    await communicator.disconnect()

    types = [e["type"] for e in received]
    assert types[0] == "sweep.queued" and types[1] == "sweep.started"
    assert types.count("run.started") == types.count("run.completed") == 4
    for event in received:
        assert event["experiment_id"] == experiment.pk and event["sweep_id"] == sweep.pk
    for run_id in {e["run_id"] for e in received if e["type"] == "run.completed"}:
        started = next(i for i, e in enumerate(received) if e.get("run_id") == run_id and e["type"] == "run.started")
        completed = next(
            i for i, e in enumerate(received) if e.get("run_id") == run_id and e["type"] == "run.completed"
        )
        assert started < completed
    run_done = [e for e in received if e["type"] == "run.completed"]
    assert all(0 <= e["score"] <= 1 and e["tokens_in"] > 0 and e["total"] == 12 for e in run_done)
    progress = [e["completed"] for e in received if "completed" in e]
    assert progress == sorted(progress)  # counts only grow
    assert received[-1]["completed"] == received[-1]["total"] == 12


async def test_pause_and_stop_are_published(user, mock_latency, monkeypatch):
    monkeypatch.setattr("sweeps.services.sweeps.dispatch_sweep", lambda sweep, **kwargs: [])
    experiment = await database_sync_to_async(experiment_create)(owner=user, data=spec())
    headers = await database_sync_to_async(session_headers)(user)
    communicator, connected, _ = await connect(experiment.pk, headers)
    sweep = await database_sync_to_async(sweep_start)(experiment=experiment)
    await database_sync_to_async(sweep_pause)(sweep=sweep)
    await database_sync_to_async(sweep_stop)(sweep=sweep)

    types = []
    while "sweep.stopped" not in types:
        types.append((await communicator.receive_json_from(timeout=5))["type"])
    await communicator.disconnect()
    assert types == ["sweep.queued", "sweep.paused", "sweep.stopped"]
    assert await asyncio.wait_for(execute_sweep(sweep.pk), 5) is None  # a stopped sweep never runs
