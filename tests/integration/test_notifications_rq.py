"""With RQ, a real `rqworker` process runs the sweep and then the notification job it enqueued:
the webhook call is the worker's, never the web process's."""

from __future__ import annotations

import pytest
from rq.registry import FailedJobRegistry

from sweeps.engine.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from sweeps.services.experiments import experiment_create
from sweeps.services.notifications import notification_create
from sweeps.services.sweeps import sweep_start
from tests.conftest import spec, wait_for, wait_for_sweep
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


def test_a_receiver_trickling_its_answer_holds_the_worker_no_longer_than_the_jobs_limit(
    user,
    rq_redis,
    settings,
    mock_latency,  # noqa: F811
):
    """Each read of the answer arrives within the timeout, so only the job's time limit ends the
    call: then the same (only) worker runs the next sweep."""
    use_queue(settings)
    settings.PROMPTLOOPER_WEBHOOK_ALLOW = "127.0.0.1"
    env = {"PROMPTLOOPER_WEBHOOK_ALLOW": "127.0.0.1", "PROMPTLOOPER_WEBHOOK_TIMEOUT_SECONDS": "2",
           "PROMPTLOOPER_WEBHOOK_ATTEMPTS": "1"}  # fmt: skip
    with WebhookReceiver() as receiver, rqworkers(1, rq_redis, **env):
        receiver.endless_headers = True
        notification_create(owner=user, data={"webhook_url": receiver.url, "events": ["completed"]})
        first = wait_for_sweep(sweep_start(experiment=experiment_create(owner=user, data=spec())), timeout=60)
        receiver.wait_for(1)  # the delivery has begun, and never gets its status
        failed = FailedJobRegistry("sweeps", connection=rq_redis)
        wait_for(lambda: failed.get_job_ids(), timeout=90)  # RQ ended it at its limit
        receiver.endless_headers = False
        second = wait_for_sweep(sweep_start(experiment=experiment_create(owner=user, data=spec(name="next"))),
                                timeout=60)  # fmt: skip
    assert first.status == "completed" and second.status == "completed"
