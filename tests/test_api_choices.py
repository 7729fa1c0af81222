"""The API's query enums are typed Literals (so OpenAPI lists them and a bad value is a 422
naming the choices); these tests keep them equal to the model choices and orders they filter by."""

from __future__ import annotations

from typing import get_args

from sweeps.api.schemas import ExperimentStatus, RunOrder, RunStatus
from sweeps.models import Experiment, Run
from sweeps.selectors.leaderboard import LEADERBOARD_ORDERS
from sweeps.selectors.runs import RUN_ORDERS


def test_the_run_status_filter_offers_every_run_status():
    assert set(get_args(RunStatus)) == set(Run.Status.values)


def test_the_experiment_status_filter_offers_every_experiment_status():
    assert set(get_args(ExperimentStatus)) == set(Experiment.Status.values)


def test_the_run_orders_are_the_orders_the_selector_knows():
    assert set(get_args(RunOrder)) == set(RUN_ORDERS)
    assert set(LEADERBOARD_ORDERS) <= set(RUN_ORDERS)  # the page's sorts are the API's


def test_the_open_samples_index_covers_exactly_the_unfinished_statuses():
    from sweeps.models import OPEN_STATUSES, RunSample

    assert set(OPEN_STATUSES) == set(RunSample.UNFINISHED)
