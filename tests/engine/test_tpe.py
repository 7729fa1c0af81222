"""TPE proposals: in the space, reproducible, new, and better than random on a simple landscape."""

from __future__ import annotations

import math
import random

import pytest

from sweeps.engine.space import Choice, Space, Steps, Uniform, config_hash
from sweeps.engine.strategies import propose, random_search
from sweeps.engine.strategies.tpe import tpe

MIXED = Space(
    {
        "model": Choice(("mock/echo", "mock/upper", "mock/short")),
        "params.temperature": Uniform(0.0, 1.0),
        "params.top_p": Steps(0.1, 1.0, 0.1),
        "params.max_tokens": Steps(16, 1024, 2, log=True),
        "params.frequency_penalty": Uniform(0.001, 10.0, log=True),
        "params.seed": Steps(0, 100, 5),
        "system": Choice((None, 1, 1.0, True, ["a", "list"], {"a": "dict"})),
    }
)


def toy_score(config: dict) -> float:
    params = config["params"]
    return (
        -((params["temperature"] - 0.7) ** 2)
        - (params["top_p"] - 0.3) ** 2
        - {"mock/echo": 0.2, "mock/upper": 0.0, "mock/short": 0.1}[config["model"]]
    )


def run_rounds(space: Space, kind: str, seed: int, score, total: int = 40, per_round: int = 8) -> list:
    history, seen = [], set()
    for round_no in range(math.ceil(total / per_round)):
        configs = propose(
            kind, space, n=per_round, history=history, rng=random.Random(f"{seed}:{round_no}"),
            top_k=5, explore_ratio=0.3, seen=seen,
        )  # fmt: skip
        history += [(config, score(config)) for config in configs]
    return history


def test_proposals_respect_the_space():
    history = run_rounds(MIXED, "tpe", seed=1, score=lambda c: toy_score(c) + c["params"]["seed"] / 1000, total=24)
    assert len(history) == 24
    top_p_values = set(MIXED.params["params.top_p"].values())
    max_tokens_values = set(MIXED.params["params.max_tokens"].values())
    seed_values = set(MIXED.params["params.seed"].values())
    for config, _ in history:
        params = config["params"]
        assert set(config) == {"model", "params", "system"}
        assert config["model"] in ("mock/echo", "mock/upper", "mock/short")
        assert any(config["system"] is c or (type(config["system"]) is type(c) and config["system"] == c)
                   for c in MIXED.params["system"].values)  # fmt: skip
        assert isinstance(params["temperature"], float) and 0.0 <= params["temperature"] <= 1.0
        assert params["top_p"] in top_p_values and isinstance(params["top_p"], float)  # 0.3, not 0.30000000000000004
        assert params["max_tokens"] in max_tokens_values and isinstance(params["max_tokens"], int)
        assert params["seed"] in seed_values and isinstance(params["seed"], int)
        assert 0.001 <= params["frequency_penalty"] <= 10.0


def test_same_seed_and_history_give_the_same_proposals():
    history = run_rounds(MIXED, "random", seed=5, score=toy_score, total=16)
    seen = {config_hash(c) for c, _ in history}

    def proposals(seed: int) -> list[dict]:
        return tpe(MIXED, history, 6, rng=random.Random(f"{seed}:2"), seen=set(seen))

    assert proposals(7) == proposals(7)
    assert proposals(7) != proposals(8)


def test_no_duplicates_of_seen_configs_and_none_within_a_round():
    small = Space({"model": Choice(("a", "b", "c")), "params.temperature": Steps(0, 1, 0.5)})  # 9 points
    history = [({"model": m, "params": {"temperature": t}}, float(i)) for i, (m, t) in
               enumerate([("a", 0.0), ("b", 0.5), ("c", 1.0), ("a", 1.0)])]  # fmt: skip
    pending = [{"model": "b", "params": {"temperature": 0.0}}]
    seen = {config_hash(c) for c, _ in history} | {config_hash(c) for c in pending}
    before = set(seen)

    configs = tpe(small, history, 10, rng=random.Random(1), seen=seen, pending=pending)

    hashes = [config_hash(c) for c in configs]
    assert len(configs) == 4  # exactly the unseen rest of the space, then it runs out
    assert len(set(hashes)) == 4 and not set(hashes) & before
    assert seen == before | set(hashes)
    assert tpe(small, history, 3, rng=random.Random(1), seen=seen) == []


def test_history_outside_the_space_is_ignored():
    space = Space({"model": Choice(("a", "b")), "params.temperature": Uniform(0.0, 1.0)})
    history = [
        ({"model": "zzz", "params": {"temperature": 0.5}}, 1.0),
        ({"model": "a", "params": {"temperature": 7.0}}, 1.0),
        ({"model": "a"}, 1.0),
        ({"model": "b", "params": {"temperature": 0.2}}, float("nan")),
    ]
    configs = tpe(space, history, 3, rng=random.Random(0), seen=set())
    assert len(configs) == 3 and all(0.0 <= c["params"]["temperature"] <= 1.0 for c in configs)


def test_in_flight_configs_are_fed_to_the_sampler():
    # Every completed trial points at 0.7; configs in flight there are RUNNING trials that the
    # constant liar counts as bad, so the same seed asks differently with them than without.
    space = Space({"params.temperature": Uniform(0.0, 1.0)})
    history = [({"params": {"temperature": x / 20}}, -((x / 20 - 0.7) ** 2)) for x in range(21)]
    pending = [{"params": {"temperature": t}} for t in (0.68, 0.69, 0.7, 0.71, 0.72)]

    def ask(in_flight: list[dict]) -> list[dict]:
        return tpe(space, history, 5, rng=random.Random(3), seen=set(), pending=in_flight)

    assert ask(pending) != ask([])
    assert len({config_hash(c) for c in ask(pending)}) == 5


def test_tpe_beats_random_search_on_a_simple_landscape():
    space = Space(
        {
            "model": Choice(("mock/echo", "mock/upper", "mock/short", "mock/json")),
            "params.temperature": Uniform(0.0, 1.0),
            "params.top_p": Uniform(0.0, 1.0),
        }
    )
    penalty = {"mock/echo": 0.3, "mock/upper": 0.0, "mock/short": 0.15, "mock/json": 0.2}

    def score(config: dict) -> float:
        params = config["params"]
        return 1 - (params["temperature"] - 0.7) ** 2 - (params["top_p"] - 0.3) ** 2 - penalty[config["model"]]

    def best(kind: str, seed: int) -> float:
        return max(s for _, s in run_rounds(space, kind, seed, score, total=40, per_round=8))

    wins = sum(best("tpe", seed) > best("random", seed) for seed in range(10))
    assert wins >= 8


def test_propose_dispatches_tpe_and_round_zero_is_random_like():
    seen: set[str] = set()
    configs = propose("tpe", MIXED, n=5, history=[], rng=random.Random(0), top_k=5, explore_ratio=0.3, seen=seen)
    assert len(configs) == 5 and len(seen) == 5


@pytest.mark.parametrize("n", [0, -1])
def test_nothing_asked_for_nothing(n):
    assert tpe(MIXED, [], n, rng=random.Random(0), seen=set()) == []
    assert random_search(MIXED, n, random.Random(0)) == []
