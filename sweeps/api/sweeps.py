"""A sweep's status and its controls: the same services as the admin, the CLI and the dashboard."""

from __future__ import annotations

from ninja import Query, Router, Status

from sweeps.api.auth import ApiRequest
from sweeps.api.schemas import AgreementOut, Conflict, Message, SweepOut
from sweeps.api.serialize import sweep_out
from sweeps.selectors.ratings import sweep_agreement
from sweeps.selectors.regression import regression_out, sweep_regression
from sweeps.selectors.sweeps import sweep_get
from sweeps.services.sweeps import sweep_transition

router = Router(tags=["sweeps"])
ERRORS = {401: Message, 404: Message}


@router.get("/{int:sweep_id}", response={200: SweepOut, **ERRORS})
def get_sweep(request: ApiRequest, sweep_id: int):
    """Status, counts, tokens, cost, best score, progress and ETA."""
    return sweep_out(sweep_get(user=request.auth, sweep_id=sweep_id))


def control(request: ApiRequest, sweep_id: int, action: str):
    sweep = sweep_get(user=request.auth, sweep_id=sweep_id)
    return Status(202, sweep_out(sweep_transition(sweep=sweep, action=action)))


@router.post("/{int:sweep_id}/pause", response={202: SweepOut, 409: Conflict, **ERRORS})
def pause_sweep(request: ApiRequest, sweep_id: int):
    """No new calls start; calls in flight finish; the sweep is `paused` within one call's latency."""
    return control(request, sweep_id, "pause")


@router.post("/{int:sweep_id}/resume", response={202: SweepOut, 409: Conflict, **ERRORS})
def resume_sweep(request: ApiRequest, sweep_id: int):
    """Go on with exactly the unfinished samples (a budget-paused sweep needs a raised budget first)."""
    return control(request, sweep_id, "resume")


@router.post("/{int:sweep_id}/stop", response={202: SweepOut, 409: Conflict, **ERRORS})
def stop_sweep(request: ApiRequest, sweep_id: int):
    """Pending samples are cancelled and the sweep ends `stopped`."""
    return control(request, sweep_id, "stop")


@router.get("/{int:before_id}/compare/{int:after_id}", response={200: dict, **ERRORS})
def compare_sweeps(request: ApiRequest, before_id: int, after_id: int, alpha: float = Query(0.05, gt=0, lt=1)):
    """Regression view: for every configuration both sweeps ran, the score before and after, a
    paired Wilcoxon signed-rank test over the rows both scored (`p_value`; `verdict` worse, better
    or unchanged at `alpha`) and the rows that flipped pass to fail and fail to pass."""
    before = sweep_get(user=request.auth, sweep_id=before_id)
    after = sweep_get(user=request.auth, sweep_id=after_id)
    return regression_out(before, after, sweep_regression(before, after, alpha=alpha))


@router.get("/{int:sweep_id}/agreement", response={200: list[AgreementOut], **ERRORS})
def judge_agreement(request: ApiRequest, sweep_id: int):
    """Per llm_judge scorer, how far its pass/fail verdicts agree with people's 👍/👎 on the
    same samples: counts, accuracy and Cohen's kappa. Empty when the sweep has no judge."""
    return sweep_agreement(sweep_get(user=request.auth, sweep_id=sweep_id))
