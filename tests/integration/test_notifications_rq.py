"""With RQ, a real `rqworker` process runs the sweep and then the notification job it enqueued:
the webhook call is the worker's, never the web process's."""

from __future__ import annotations

import pytest

from sweeps.engine.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from sweeps.services.experiments import experiment_create
from sweeps.services.notifications import notification_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import spec, wait_for_sweep
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.integration.test_rq_workers import rq_redis, rqworkers, use_queue  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_process_delivers_the_signed_webhook(user, rq_redis, settings, mock_latency):  # noqa: F811
    use_queue(settings)
    settings.PROMPTLOOPER_WEBHOOK_ALLOW = "127.0.0.1"
    with WebhookReceiver() as receiver:
        _, secret = notification_create(owner=user, data={"webhook_url": receiver.url})
        with rqworkers(1, rq_redis, PROMPTLOOPER_WEBHOOK_ALLOW="127.0.0.1"):
            sweep = wait_for_sweep(sweep_start(experiment=experiment_create(owner=user, data=spec())), timeout=60)
            [request] = receiver.wait_for(1)
    assert sweep.status == "completed"
    assert request.json["event"] == "sweep.completed" and request.json["sweep"]["id"] == sweep.pk
    assert verify(secret, request.headers[TIMESTAMP_HEADER], request.body, request.headers[SIGNATURE_HEADER])
