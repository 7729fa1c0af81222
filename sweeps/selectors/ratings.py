"""Reads of people's ratings: a page's samples' ratings, each run's share of 👍 and how far an
llm_judge agrees with the ratings over a sweep."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from django.db.models import Count, Q

from sweeps.engine.agreement import agreement
from sweeps.models import Rating, Sweep
from sweeps.selectors.sweeps import sweep_page_facts

JUDGE_TYPE = "llm_judge"


def sample_ratings(*, user: Any, sample_ids: Iterable[int]) -> dict[int, Rating]:
    """The user's rating of each of these samples that has one, by sample id."""
    return {r.sample_id: r for r in Rating.objects.filter(user=user, sample_id__in=list(sample_ids))}


def human_shares(run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Per run with ratings: how many samples were rated 👍, out of how many ratings, and the
    share. One grouped query over the ratings' own run column."""
    rows = (
        Rating.objects.filter(run_id__in=list(run_ids))
        .values("run_id")
        .annotate(count=Count("id"), up=Count("id", filter=Q(value=Rating.Value.UP)))
        .values_list("run_id", "up", "count")
    )
    return {run_id: {"up": up, "count": count, "share": up / count} for run_id, up, count in rows if count}


def judge_scorers(scorers: list[dict[str, Any]]) -> dict[int, str]:
    """The llm_judge scorers among a sweep's, by scorer index, with the name their Score rows carry."""
    return {
        i: s.get("name") or s.get("type", "?")
        for i, s in enumerate(scorers)
        if isinstance(s, dict) and s.get("type") == JUDGE_TYPE
    }


def sweep_agreement(sweep: Sweep, scorers: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Per llm_judge scorer of the sweep, its verdicts against the ratings of the same samples:
    counts, accuracy and Cohen's kappa (engine/agreement.py). Empty without a judge; a judge
    with no rated sample has zero pairs. `scorers`: the sweep's, when the caller has read them
    (else one read of them alone: the spec holds the dataset). Then one query, from the sweep's
    ratings (few) to their samples' judge verdicts; none without a judge."""
    judges = judge_scorers(sweep_page_facts(sweep)[0] if scorers is None else scorers)
    if not judges:
        return []
    pairs: dict[int, list[tuple[bool, bool]]] = defaultdict(list)
    found = Rating.objects.filter(run__sweep_id=sweep.pk, sample__scores__scorer_index__in=list(judges))
    for index, passed, value in found.values_list("sample__scores__scorer_index", "sample__scores__passed", "value"):
        pairs[index].append((passed, value == Rating.Value.UP))
    out = []
    for index, name in judges.items():
        figures = agreement(pairs[index])
        out.append({"scorer": name, "scorer_index": index, "pairs": figures.pairs, "agreed": figures.agreed,
                    **asdict(figures)})  # fmt: skip
    return out
