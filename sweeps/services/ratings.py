"""People's 👍/👎 on samples: rate, clear. The run and compare pages, the API and the admin all
go through these; only the owner of a sample's experiment can rate it (another's is a 404)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from sweeps.models import Rating
from sweeps.selectors.runs import sample_get

VALUES = tuple(Rating.Value.values)


class RatingProblem(ValueError):
    """Bad input to a rating, naming the field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def rating_problems(value: Any, note: Any) -> list[RatingProblem]:
    problems = []
    if value not in VALUES:
        problems.append(RatingProblem("value", f"must be one of {', '.join(VALUES)}, not {str(value)[:40]!r}"))
    if not isinstance(note, str):
        problems.append(RatingProblem("note", "must be text"))
    elif "\x00" in note:  # no database column holds a NUL
        problems.append(RatingProblem("note", "must not contain NUL characters"))
    elif len(note) > Rating.NOTE_MAX_LENGTH:
        problems.append(RatingProblem("note", f"must be at most {Rating.NOTE_MAX_LENGTH} characters, not {len(note)}"))
    return problems


@transaction.atomic
def rating_set(*, user: Any, sample_id: int, value: Any, note: Any = "") -> Rating:
    """Rate one of the user's samples, or rate it again (the newest rating wins). Raises
    Http404 for another's sample, RatingProblem (the first one) for bad input."""
    sample = sample_get(user=user, sample_id=sample_id)
    if problems := rating_problems(value, note):
        raise problems[0]
    rating, _ = Rating.objects.update_or_create(
        sample=sample, user=user, defaults={"value": value, "note": note.strip(), "run_id": sample.run_id}
    )
    return rating


def rating_clear(*, user: Any, sample_id: int) -> None:
    """Take the user's rating of one of their samples back (nothing to take back is fine)."""
    sample = sample_get(user=user, sample_id=sample_id)
    Rating.objects.filter(sample=sample, user=user).delete()


def rating_out(rating: Rating | None) -> dict[str, Any] | None:
    """A rating as the page's script and the API show it."""
    if rating is None:
        return None
    return {"value": rating.value, "note": rating.note, "updated_at": rating.updated_at}
