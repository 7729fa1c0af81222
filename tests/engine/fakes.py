"""In-memory implementations of the executor's Workload / ResponseStore / Providers protocols.

No Django here: these stand in for the database, the response cache table and the provider
registry, and record what the executor did to them (in one shared `log` where ordering matters)
so tests can assert behaviour rather than internals.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sweeps.engine.executor import CachedResponse, SampleOutcome, WorkItem
from sweeps.engine.pipeline import ResolvedStage
from sweeps.engine.provider import Completion, CompletionRequest, Provider, ProviderError
from sweeps.engine.scorers import Scorer, ScoreResult, Scoring


def stage(name: str, prompt: str, *, model: str = "fake/m", system: str | None = None, **params: Any) -> ResolvedStage:
    return ResolvedStage(name=name, model=model, system=system, prompt=prompt, params=dict(params))


def make_items(
    rows: Iterable[Mapping[str, Any]],
    stages: Sequence[ResolvedStage],
    *,
    run_id: int = 1,
    replicates: int = 1,
    first_id: int = 1,
) -> list[WorkItem]:
    items = []
    sample_id = first_id
    for row_index, row in enumerate(rows):
        for replicate in range(replicates):
            items.append(WorkItem(sample_id, run_id, row_index, replicate, dict(row), tuple(stages)))
            sample_id += 1
    return items


def user_prompt(request: CompletionRequest) -> str:
    return next(m["content"] for m in reversed(request.messages) if m["role"] == "user")


async def until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    """Yield to the event loop until `predicate()` is truthy; fail (not hang) after `timeout`."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)
    return result


class EventLog(list):
    """Shared, ordered record of what happened across the fakes: tuples like ("record", 3)."""


@dataclass
class FakeWorkload:
    """The sweep's samples, held in memory. `state` (or `control_script`) drives control()."""

    items: list[WorkItem]
    log: EventLog = field(default_factory=EventLog)
    state: str = "running"
    # Called with the 1-based number of the control() call; returns the state. Overrides `state`.
    control_script: Callable[[int], str] | None = None
    # At most this many items per claim, whatever the limit (a busy database, other workers).
    claim_cap: int | None = None
    # Awaited inside record(), e.g. to make persisting slow.
    record_hook: Callable[[SampleOutcome], Awaitable[None]] | None = None

    def __post_init__(self) -> None:
        self.pending: deque[WorkItem] = deque(self.items)
        self.claimed: list[WorkItem] = []
        self.claim_limits: list[int] = []
        self.released: list[WorkItem] = []
        self.release_calls = 0
        self.recorded: list[SampleOutcome] = []
        self.control_calls = 0
        self.flush_calls = 0

    async def claim(self, limit: int) -> list[WorkItem]:
        self.claim_limits.append(limit)
        n = limit if self.claim_cap is None else min(limit, self.claim_cap)
        got = [self.pending.popleft() for _ in range(min(n, len(self.pending)))]
        self.claimed.extend(got)
        self.log.append(("claim", limit, tuple(i.sample_id for i in got)))
        await asyncio.sleep(0)
        return got

    async def release(self, items: Sequence[WorkItem]) -> None:
        self.release_calls += 1
        self.released.extend(items)
        for item in items:
            self.log.append(("release", item.sample_id))
        await asyncio.sleep(0)

    async def control(self) -> str:
        self.control_calls += 1
        state = self.control_script(self.control_calls) if self.control_script else self.state
        self.log.append(("control", state))
        return state

    async def record(self, outcome: SampleOutcome) -> None:
        if self.record_hook is not None:
            await self.record_hook(outcome)
        self.recorded.append(outcome)
        self.log.append(("record", outcome.item.sample_id))

    async def flush(self) -> None:
        self.flush_calls += 1
        self.log.append(("flush",))

    # ---- views for assertions -------------------------------------------------------------
    @property
    def recorded_ids(self) -> list[int]:
        return [o.item.sample_id for o in self.recorded]

    @property
    def released_ids(self) -> list[int]:
        return [i.sample_id for i in self.released]

    def outcome(self, sample_id: int) -> SampleOutcome:
        (found,) = [o for o in self.recorded if o.item.sample_id == sample_id]
        return found

    def assert_accounted(self) -> None:
        """Every sample is exactly one of: recorded, released, never claimed (none lost or doubled)."""
        recorded, released = self.recorded_ids, self.released_ids
        unclaimed = [i.sample_id for i in self.pending]
        assert len(recorded) == len(set(recorded)), f"recorded twice: {recorded}"
        assert len(released) == len(set(released)), f"released twice: {released}"
        assert not set(recorded) & set(released), "a sample was both recorded and released"
        assert sorted(recorded + released + unclaimed) == sorted(i.sample_id for i in self.items)
        assert set(recorded) | set(released) == {i.sample_id for i in self.claimed}


class FakeStore:
    """The response cache: a dict, with every get/put in the shared log."""

    def __init__(self, log: EventLog | None = None, *, put_delay: float = 0.0) -> None:
        self.entries: dict[str, CachedResponse] = {}
        self.log = log if log is not None else EventLog()
        self.gets = 0
        self.hits = 0
        self.puts: list[tuple[str, str, str, CachedResponse]] = []
        self.put_delay = put_delay

    async def get(self, key: str) -> CachedResponse | None:
        self.gets += 1
        await asyncio.sleep(0)
        found = self.entries.get(key)
        if found is not None:
            self.hits += 1
        return found

    async def put(self, key: str, provider: str, model: str, response: CachedResponse) -> None:
        await asyncio.sleep(self.put_delay)
        self.entries[key] = response
        self.puts.append((key, provider, model, response))
        self.log.append(("put", key, response))


Behaviour = Callable[[CompletionRequest], "Completion | Awaitable[Completion]"]


def echo(request: CompletionRequest) -> Completion:
    """Answer with the user prompt; usage = rough word counts."""
    text = "ECHO " + user_prompt(request)
    return Completion(text=text, tokens_in=len(text.split()), tokens_out=len(text.split()))


class ScriptedProvider(Provider):
    """A provider whose answer comes from `behaviour(request)` (sync or async; may raise).

    Counts calls and tracks how many are in progress at once, with a timeline of
    (event, active) pairs: ("start", n) right after a call starts, ("end", n) just before it ends.
    """

    def __init__(self, behaviour: Behaviour = echo, name: str = "fake") -> None:
        self.name = name
        self.behaviour = behaviour
        self.requests: list[CompletionRequest] = []
        self.active = 0
        self.max_active = 0
        self.timeline: list[tuple[str, int, str]] = []

    @property
    def calls(self) -> int:
        return len(self.requests)

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.timeline.append(("start", self.active, user_prompt(request)))
        try:
            result = self.behaviour(request)
            if inspect.isawaitable(result):
                result = await result
            return result
        finally:
            self.timeline.append(("end", self.active, user_prompt(request)))
            self.active -= 1


class GatedProvider(Provider):
    """Each call blocks until the test lets it finish: `finish(prompt_substring)`."""

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.waiting: dict[str, asyncio.Future[Completion]] = {}
        self.started: list[str] = []
        self.finished: list[str] = []
        self.max_active = 0

    @property
    def active(self) -> int:
        return len(self.waiting)

    async def complete(self, request: CompletionRequest) -> Completion:
        prompt = user_prompt(request)
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self.waiting[prompt] = future
        self.started.append(prompt)
        self.max_active = max(self.max_active, len(self.waiting))
        try:
            return await future
        finally:
            del self.waiting[prompt]
            self.finished.append(prompt)

    def finish(self, prompt: str, completion: Completion | None = None, error: BaseException | None = None) -> None:
        future = self.waiting[prompt]
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(completion or Completion(text=f"done {prompt}", tokens_in=1, tokens_out=1))

    def finish_all(self) -> None:
        for prompt in list(self.waiting):
            self.finish(prompt)


class FakeProviders:
    """The provider registry: name -> adapter, and prices (USD per million tokens in/out)."""

    def __init__(self, *providers: Provider, prices: Mapping[str, tuple[float, float]] | None = None) -> None:
        self._providers = {p.name: p for p in providers}
        self._prices = dict(prices or {})

    def get(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise ProviderError(f"unknown provider '{name}'", permanent=True) from None

    def price(self, provider: str, model: str) -> tuple[float, float]:
        return self._prices.get(provider, (0.0, 0.0))

    def cache_namespace(self, provider: str) -> str:
        return ""


class FakeSleep:
    """The executor's injectable `sleep`: records every wait asked for (in `waits`, and as
    ("sleep", seconds) in the shared log), without waiting that long.

    By default a wait returns after one turn of the event loop. With `hold=True` every wait
    blocks until the test calls `wake_all()`, so it can look at the executor while samples wait.
    """

    def __init__(self, log: EventLog | None = None, *, hold: bool = False) -> None:
        self.log = log if log is not None else EventLog()
        self.hold = hold
        self.waits: list[float] = []
        self._sleepers: list[asyncio.Future[None]] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.log.append(("sleep", seconds))
        if self.hold:
            sleeper = asyncio.get_running_loop().create_future()
            self._sleepers.append(sleeper)
            try:
                await sleeper
            finally:
                self._sleepers.remove(sleeper)
        else:
            await asyncio.sleep(0)

    @property
    def sleeping(self) -> int:
        return len(self._sleepers)

    def wake_all(self) -> None:
        for sleeper in self._sleepers:
            if not sleeper.done():
                sleeper.set_result(None)


class ScriptedLimiter:
    """A RateLimiter whose waits are given by the test: `waits[n]` for the n-th acquire (0 after them)."""

    def __init__(self, waits: Sequence[float] = (), log: EventLog | None = None) -> None:
        self.waits = list(waits)
        self.log = log if log is not None else EventLog()
        self.acquired: list[tuple[str, int]] = []

    async def acquire(self, provider: str, tokens: int) -> float:
        n = len(self.acquired)
        self.acquired.append((provider, tokens))
        wait = self.waits[n] if n < len(self.waits) else 0.0
        self.log.append(("acquire", provider, wait))
        return wait


@dataclass(frozen=True, kw_only=True)
class FakeJudge(Scorer):
    """An LLM-judge scorer built on the executor's hook, as llm_judge is: asks `judge_model`
    whether the output is right and expects "PASS" or "FAIL" (anything else is no verdict)."""

    calls_model = True
    judge_model: str = "fake/judge"
    max_tokens: int = 5

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        raise AssertionError("a judge is scored through ascore")

    async def ascore(self, output: str, variables: Mapping[str, Any], scoring: Scoring) -> ScoreResult:
        messages = (
            {"role": "system", "content": "Answer PASS or FAIL."},
            {"role": "user", "content": f"Expected {variables.get('expected')!r}, got {output!r}"},
        )
        verdict = (await scoring.call(self.judge_model, messages, {"max_tokens": self.max_tokens})).strip()
        if verdict not in ("PASS", "FAIL"):
            raise ValueError(f"unparseable verdict {verdict!r}")
        return ScoreResult(1.0 if verdict == "PASS" else 0.0, verdict == "PASS", f"the judge said {verdict}")
