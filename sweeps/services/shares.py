"""Share links: create and revoke. The owner's page, the API and the admin go through these."""

from __future__ import annotations

from typing import Any, cast

from django.utils import timezone

from sweeps.models import Experiment, ShareLink
from sweeps.services import ServiceError

LABEL_MAX_LENGTH = cast(int, ShareLink._meta.get_field("label").max_length)


def share_create(*, user: Any, experiment: Experiment, sweep_id: int | None = None, label: str = "") -> ShareLink:
    """A new read-only link to the experiment (every sweep) or to one of its sweeps. The caller
    has checked that the user owns the experiment."""
    label = (label or "").strip()
    if len(label) > LABEL_MAX_LENGTH:
        raise ServiceError(f"A share label has at most {LABEL_MAX_LENGTH} characters; this one has {len(label)}.")
    sweep = None
    if sweep_id is not None:
        sweep = experiment.sweeps.defer("spec").filter(pk=sweep_id).first()
        if sweep is None:
            raise ServiceError(f"Sweep {sweep_id} is not a sweep of experiment {experiment.pk}: share one of its own.")
    return ShareLink.objects.create(experiment=experiment, sweep=sweep, created_by=user, label=label)


def share_revoke(*, link: ShareLink) -> ShareLink:
    """From now on the link's URL is a 404. Revoking is final: make a new link to share again."""
    if link.revoked_at is not None:
        raise ServiceError(f"Share link {link.pk} was already revoked on {link.revoked_at:%Y-%m-%d %H:%M} UTC.")
    link.revoked_at = timezone.now()
    link.save(update_fields=["revoked_at"])
    return link
