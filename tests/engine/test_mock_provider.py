from __future__ import annotations

import asyncio
import difflib
import json
import statistics
import time

import pytest

from sweeps.engine.provider import CompletionRequest, ProviderError
from sweeps.providers.mock import MockProvider

TICKET = (
    "Summarize this ticket: I was charged twice for my subscription this month and the support "
    "page keeps timing out when I try to ask for a refund of the second payment"
)
TICKET_ANSWER = TICKET.rpartition(":")[2].strip()


def ask(text: str = TICKET, model: str = "echo", *, replicate: int = 0, **params) -> CompletionRequest:
    messages = ({"role": "system", "content": "You are concise."}, {"role": "user", "content": text})
    return CompletionRequest(model=model, messages=messages, params=params, replicate=replicate)


async def answer(request: CompletionRequest, provider: MockProvider | None = None) -> str:
    return (await (provider or MockProvider()).complete(request)).text


def divergence(text: str, reference: str) -> float:
    return 1 - difflib.SequenceMatcher(None, text.split(), reference.split()).ratio()


# Determinism


@pytest.mark.asyncio
async def test_same_request_gives_the_same_answer_even_from_another_provider_instance():
    request = ask(temperature=1.0, top_p=0.9)

    first = await answer(request, MockProvider(seed=3))
    second = await answer(request, MockProvider(seed=3))

    assert first == second
    assert first != TICKET_ANSWER  # the noise is there, and it is reproducible


@pytest.mark.asyncio
async def test_params_in_another_key_order_are_the_same_request():
    a = ask(temperature=1.0, top_p=0.9)
    b = CompletionRequest(model="echo", messages=a.messages, params={"top_p": 0.9, "temperature": 1.0})

    assert await answer(a) == await answer(b)


@pytest.mark.asyncio
async def test_replicates_differ_when_temperature_is_above_zero():
    texts = {await answer(ask(temperature=1.0, replicate=r)) for r in range(10)}

    assert len(texts) >= 8


@pytest.mark.asyncio
async def test_replicates_agree_at_temperature_zero():
    texts = {await answer(ask(temperature=0.0, replicate=r)) for r in range(10)}

    assert texts == {TICKET_ANSWER}


@pytest.mark.asyncio
async def test_provider_seed_changes_the_noise():
    request = ask(temperature=1.0)

    texts = {await answer(request, MockProvider(seed=seed)) for seed in range(10)}

    assert len(texts) >= 8


# Models


@pytest.mark.asyncio
async def test_echo_answers_with_the_text_after_the_last_colon():
    assert await answer(ask("Note: label: billing problem ")) == "billing problem"


@pytest.mark.asyncio
async def test_echo_answers_with_the_whole_message_without_a_colon():
    assert await answer(ask("  just this, please ")) == "just this, please"


@pytest.mark.asyncio
async def test_echo_answers_the_last_user_message():
    messages = (
        {"role": "user", "content": "first: old question"},
        {"role": "assistant", "content": "reply: old answer"},
        {"role": "user", "content": "second: new question"},
        {"role": "assistant", "content": "prefill: ignored"},
    )

    assert await answer(CompletionRequest("echo", messages, {})) == "new question"


@pytest.mark.asyncio
async def test_upper_short_and_json_transform_the_echo_answer():
    assert await answer(ask("Label: billing problem", "upper")) == "BILLING PROBLEM"
    assert await answer(ask(model="short")) == "I was charged"
    assert json.loads(await answer(ask(model="json"))) == {"answer": TICKET_ANSWER}


@pytest.mark.asyncio
async def test_noise_applies_to_the_answer_before_the_model_shapes_it():
    text = await answer(ask(model="json", temperature=2.0))

    assert json.loads(text)["answer"] != TICKET_ANSWER


@pytest.mark.asyncio
async def test_error_model_always_fails_permanently():
    for replicate in range(5):
        with pytest.raises(ProviderError) as failure:
            await MockProvider().complete(ask(model="error", replicate=replicate))
        assert failure.value.permanent


@pytest.mark.asyncio
async def test_unknown_model_fails_permanently_and_names_the_choices():
    with pytest.raises(ProviderError) as failure:
        await MockProvider().complete(ask(model="gpt-5"))

    assert failure.value.permanent
    assert "'gpt-5'" in str(failure.value)
    for model in ("echo", "upper", "short", "json", "error", "flaky"):
        assert model in str(failure.value)


@pytest.mark.asyncio
async def test_flaky_fails_about_a_third_of_requests_with_a_retryable_error():
    provider = MockProvider()
    failures = []
    for replicate in range(400):
        try:
            await provider.complete(ask(model="flaky", replicate=replicate))
        except ProviderError as error:
            failures.append(error)

    assert 0.2 < len(failures) / 400 < 0.4
    assert not any(error.permanent for error in failures)


@pytest.mark.asyncio
async def test_flaky_fails_on_the_same_requests_for_the_same_seed():
    async def failing(provider: MockProvider) -> list[int]:
        failed = []
        for replicate in range(50):
            try:
                await provider.complete(ask(model="flaky", replicate=replicate))
            except ProviderError:
                failed.append(replicate)
        return failed

    assert await failing(MockProvider(seed=1)) == await failing(MockProvider(seed=1))
    assert await failing(MockProvider(seed=1)) != await failing(MockProvider(seed=2))


@pytest.mark.asyncio
async def test_retrying_a_flaky_request_succeeds_with_the_echo_answer():
    provider = MockProvider()
    first_attempt_failed = 0
    for replicate in range(30):
        request = ask(model="flaky", replicate=replicate)
        for attempt in range(20):
            try:
                completion = await provider.complete(request)
                break
            except ProviderError:
                first_attempt_failed += attempt == 0
        else:
            pytest.fail(f"replicate {replicate} never succeeded in 20 attempts")
        assert completion.text == TICKET_ANSWER

    assert first_attempt_failed > 0  # retries really were needed


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "params",
    [
        {"temperature": -0.1},
        {"temperature": 2.5},
        {"temperature": "hot"},
        {"top_p": 1.5},
        {"max_tokens": 0},
        {"max_tokens": 2.5},
        {"max_tokens": True},
    ],
)
async def test_out_of_range_params_fail_permanently(params):
    with pytest.raises(ProviderError) as failure:
        await MockProvider().complete(ask(**params))

    assert failure.value.permanent
    assert next(iter(params)) in str(failure.value)


# Params


@pytest.mark.asyncio
async def test_more_temperature_diverges_more_from_the_clean_answer_on_average():
    async def mean_divergence(temperature: float) -> float:
        texts = [await answer(ask(temperature=temperature, replicate=r)) for r in range(200)]
        return statistics.mean(divergence(text, TICKET_ANSWER) for text in texts)

    low, mid, high = [await mean_divergence(t) for t in (0.25, 1.0, 2.0)]

    assert 0 < low < mid < high


@pytest.mark.asyncio
async def test_top_p_below_one_reduces_the_noise():
    async def mean_divergence(top_p: float) -> float:
        texts = [await answer(ask(temperature=1.0, top_p=top_p, replicate=r)) for r in range(200)]
        return statistics.mean(divergence(text, TICKET_ANSWER) for text in texts)

    assert 0 < await mean_divergence(0.1) < await mean_divergence(1.0)


@pytest.mark.asyncio
async def test_max_tokens_cuts_the_answer_short():
    full = await MockProvider().complete(ask())
    cut = await MockProvider().complete(ask(max_tokens=10))

    assert full.finish_reason == "stop"
    assert (cut.finish_reason, cut.tokens_out) == ("length", 10)
    assert full.text.startswith(cut.text)
    assert 0 < len(cut.text.split()) < len(full.text.split())


@pytest.mark.asyncio
async def test_max_tokens_above_the_answer_changes_nothing():
    full = await MockProvider().complete(ask())
    roomy = await MockProvider().complete(ask(max_tokens=full.tokens_out))

    assert (roomy.text, roomy.finish_reason) == (full.text, "stop")


@pytest.mark.asyncio
async def test_usage_is_positive_and_grows_with_the_text():
    provider = MockProvider()
    small = await provider.complete(ask("Q: yes"))
    large = await provider.complete(ask("Q: " + "word " * 100))

    assert 0 < small.tokens_in < large.tokens_in
    assert 0 < small.tokens_out < large.tokens_out
    assert 100 < large.tokens_out < 200  # about 1.3 tokens per word


@pytest.mark.asyncio
async def test_an_empty_answer_still_reports_usage():
    completion = await MockProvider().complete(ask("Answer:"))

    assert completion.text == ""
    assert completion.tokens_in > 0 and completion.tokens_out > 0


# Latency


@pytest.mark.asyncio
async def test_latency_is_simulated_and_calls_overlap():
    provider = MockProvider(latency_ms=5)
    requests = [ask(replicate=r) for r in range(100)]

    started = time.perf_counter()
    completions = await asyncio.gather(*(provider.complete(r) for r in requests))
    wall_ms = (time.perf_counter() - started) * 1000

    latencies = [c.latency_ms for c in completions]
    assert min(latencies) >= 4.5
    assert statistics.mean(latencies) < 50  # wide: the machine may be busy
    assert wall_ms < sum(latencies) / 4  # concurrent, not one after the other


@pytest.mark.asyncio
async def test_jittered_latency_keeps_its_mean_and_has_a_long_tail(monkeypatch):
    delays: list[float] = []

    async def record(seconds: float) -> None:
        delays.append(seconds * 1000)

    monkeypatch.setattr("sweeps.providers.mock.asyncio.sleep", record)
    provider = MockProvider(latency_ms=5, jitter=1.0)

    await asyncio.gather(*(provider.complete(ask(replicate=r)) for r in range(2000)))

    assert statistics.mean(delays) == pytest.approx(5, rel=0.15)
    assert max(delays) > 4 * 5
    assert statistics.median(delays) < 5  # most calls are quicker than the mean


@pytest.mark.asyncio
async def test_jittered_latency_in_real_time_averages_near_latency_ms():
    provider = MockProvider(latency_ms=5, jitter=0.5)

    completions = await asyncio.gather(*(provider.complete(ask(replicate=r)) for r in range(200)))

    assert 3 < statistics.mean(c.latency_ms for c in completions) < 50


@pytest.mark.asyncio
async def test_latency_does_not_change_the_answer():
    request = ask(temperature=1.0)

    assert await answer(request, MockProvider(latency_ms=1, jitter=0.5)) == await answer(request)
