"""What both HTTP adapters share, proved against the fake server over real sockets: error
classification, Retry-After, timeouts, dead servers, malformed bodies, the key kept secret,
one reused client, and real concurrency. Each test runs against OpenAI and Anthropic alike."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from httpx_aiohttp import HttpxAiohttpClient

from sweeps.engine.provider import CompletionRequest, ProviderError
from sweeps.providers.anthropic import AnthropicProvider
from sweeps.providers.http import HttpProvider, HttpSettings, make_client, retry_after
from sweeps.providers.openai import OpenAIProvider
from tests.fakes.llm_server import FakeLLMServer, Scripted

KEY = "sk-test-5ecret-0123456789abcdef"
REQUEST = CompletionRequest(
    model="some-model",
    messages=({"role": "system", "content": "Be brief."}, {"role": "user", "content": "say hello"}),
    params={"temperature": 0.0},
)


@pytest.fixture
async def server():
    async with FakeLLMServer() as server:
        yield server


@pytest.fixture(params=["openai", "anthropic"])
def kind(request) -> str:
    return request.param


@pytest.fixture
async def connect(server, kind):
    """Builds adapters of this test's kind against the fake server, and closes them after."""
    made: list[HttpProvider] = []

    def make(
        *, api_key: str | None = KEY, base_url: str | None = None, key_env: str | None = None, **settings
    ) -> HttpProvider:
        cls, url = (OpenAIProvider, server.url) if kind == "openai" else (AnthropicProvider, server.anthropic_url)
        provider = cls(
            name=kind,
            base_url=base_url or url,
            api_key=api_key,
            key_env=f"{kind.upper()}_API_KEY" if key_env is None else key_env,
            settings=HttpSettings(**settings),
        )
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


async def failure(provider: HttpProvider, request: CompletionRequest = REQUEST) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await provider.complete(request)
    return caught.value


def unused_port() -> int:
    # Bound but never listening, then closed: connecting to it is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- statuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
async def test_retryable_statuses(server, connect, kind, status):
    server.script(Scripted(status))
    error = await failure(connect())
    assert not error.permanent and not error.quota_exhausted
    assert error.status == status
    assert error.message.startswith(f"{kind}: {status} ")
    assert "scripted" in error.message  # the server's own explanation is kept


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        (400, "request refused"),
        (401, "invalid API key — set {KEY_ENV}"),
        (403, "not allowed — check that the key in {KEY_ENV} may use model 'some-model'"),
        (404, "unknown model or URL: check the model name ('some-model') and base_url"),
        (413, "request refused"),
        (422, "request refused"),
    ],
)
async def test_permanent_statuses_fail_with_advice(server, connect, kind, status, advice):
    server.script(Scripted(status))
    error = await failure(connect())
    assert error.permanent and not error.quota_exhausted
    assert error.status == status
    assert error.retry_after is None
    assert error.message.startswith(f"{kind}: {status} " + advice.format(KEY_ENV=f"{kind.upper()}_API_KEY"))
    assert error.message.endswith(f'the server said: "fake server: scripted {status}"')


async def test_a_404_names_the_base_url_it_tried(server, connect):
    server.script(Scripted(404))
    error = await failure(connect())
    assert f"127.0.0.1:{server.port}" in error.message


async def test_a_redirect_is_a_permanent_error_pointing_at_base_url(server, connect):
    server.script(Scripted(301, headers={"Location": "https://elsewhere.example/v1"}))
    error = await failure(connect())
    assert error.permanent and error.status == 301
    assert "redirect to https://elsewhere.example/v1: check base_url" in error.message


async def test_error_bodies_of_other_shapes_are_quoted(server, connect):
    server.script(
        Scripted(400, body={"object": "error", "message": "top-level vllm message", "type": "BadRequestError"}),
        Scripted(400, body={"error": "ollama says no"}),
        Scripted(502, raw=b"<html><body>\n  Bad   gateway\n</body></html>"),
        Scripted(500, raw=b"x" * 5000),
    )
    provider = connect()
    assert (await failure(provider)).message.endswith('"top-level vllm message"')
    assert (await failure(provider)).message.endswith('"ollama says no"')
    assert (await failure(provider)).message.endswith('"<html><body> Bad gateway </body></html>"')
    long_one = await failure(provider)
    assert len(long_one.message) < 400 and long_one.message.endswith('x…"')


# -- Retry-After ------------------------------------------------------------------------------


async def test_retry_after_seconds_is_passed_on(server, connect):
    server.script(Scripted(429, headers={"Retry-After": "7"}), Scripted(503, headers={"Retry-After": "0.25"}))
    provider = connect()
    assert (await failure(provider)).retry_after == 7.0
    assert (await failure(provider)).retry_after == 0.25


async def test_retry_after_http_date_becomes_seconds_from_now(server, connect):
    when = datetime.now(UTC) + timedelta(seconds=30)
    server.script(Scripted(429, headers={"Retry-After": format_datetime(when, usegmt=True)}))
    error = await failure(connect())
    # The date has whole seconds, and some time passed since: a little under 30, never over.
    assert 20 < error.retry_after <= 30


async def test_retry_after_ms_wins_over_retry_after(server, connect):
    server.script(Scripted(429, headers={"retry-after-ms": "1500", "Retry-After": "2"}))
    assert (await failure(connect())).retry_after == 1.5


async def test_no_retry_after_header_means_none(server, connect):
    server.script(Scripted(429))
    assert (await failure(connect())).retry_after is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": " 2.5 "}, 2.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "oops", "Retry-After": "4"}, 4.0),  # an unreadable one is skipped
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past: go now
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "inf"}, None),
        ({"llm_provider-retry-after": "60"}, 60.0),  # LiteLLM's 429
        ({"llm_provider-retry-after": "60", "Retry-After": "2"}, 2.0),  # the standard one wins
        ({"x-ratelimit-reset-requests": "1s"}, 1.0),  # OpenAI's, Go durations
        ({"x-ratelimit-reset-tokens": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-requests": "20ms"}, 0.02),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "1m30.5s"}, 90.5),  # the later
        ({"x-ratelimit-reset-requests": "1h2m3s"}, 3723.0),
        ({"x-ratelimit-reset-requests": "2"}, 2.0),
        ({"x-ratelimit-reset-requests": "soon", "x-ratelimit-reset-tokens": "-1s"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers, expected):
    assert retry_after(httpx.Response(429, headers=headers)) == expected


# -- no usable answer -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scripted",
    [
        Scripted(raw=b'{"choices": [{"message": '),
        Scripted(raw=b"<html>maintenance</html>"),
        Scripted(raw=b""),
        Scripted(body={}),
        Scripted(body=[]),
        Scripted(body={"choices": [], "content": None}),
        Scripted(body={"choices": [{"message": "text"}], "content": [{"type": "text"}]}),
        Scripted(body={"choices": [{"message": {"content": 3}}], "content": "text"}),
    ],
    ids=["truncated", "html", "empty", "no-fields", "list", "empty-or-null", "wrong-shapes", "wrong-types"],
)
async def test_malformed_answers_are_retryable(server, connect, kind, scripted):
    server.script(scripted)
    error = await failure(connect())
    assert not error.permanent
    assert error.status == 200
    assert error.message.startswith(f"{kind}: malformed response (200): ")


async def test_a_slow_answer_times_out_as_retryable(server, connect, kind):
    server.script(Scripted(delay=5.0))
    provider = connect(timeout_read=0.2)
    error = await failure(provider)
    assert not error.permanent and error.status is None
    assert error.message == f"{kind}: timed out after 0.2 s waiting for the answer"
    # The same client goes on working after a timeout.
    assert (await provider.complete(REQUEST)).text == "say hello"


@pytest.mark.parametrize("forever", [False, True], ids=["slow-body", "endless-body"])
async def test_a_trickled_body_hits_the_overall_deadline_and_is_not_retried(server, connect, kind, forever):
    # One byte per 0.05 s never trips the 1 s read timeout; only the overall deadline ends it.
    server.script(Scripted(trickle=0.05, trickle_forever=forever))
    error = await failure(connect(timeout_read=1, timeout_total=0.5))
    assert error.permanent and error.status is None
    assert error.message.startswith(f"{kind}: no complete answer within timeout_total 0.5 s")
    assert len(server.requests) == 1


async def test_a_trickled_body_within_the_deadline_is_read_whole(server, connect):
    server.script(Scripted(trickle=0.001, text="slow but complete"))
    assert (await connect(timeout_read=1, timeout_total=30).complete(REQUEST)).text == "slow but complete"


async def test_a_refused_connection_is_retryable(connect, kind):
    error = await failure(connect(base_url=f"http://127.0.0.1:{unused_port()}"))
    assert not error.permanent and error.status is None
    assert error.message.startswith(f"{kind}: connection failed: ")


async def test_a_connection_dropped_before_the_answer_is_retryable(server, connect, kind):
    server.script(Scripted(disconnect=True))
    provider = connect()
    error = await failure(provider)
    assert not error.permanent and error.status is None
    assert error.message.startswith(f"{kind}: connection failed: ")
    assert (await provider.complete(REQUEST)).text == "say hello"


# -- the key ----------------------------------------------------------------------------------


@pytest.mark.parametrize("api_key", [None, ""])
async def test_no_key_fails_permanently_before_any_request(server, connect, kind, api_key):
    error = await failure(connect(api_key=api_key))
    assert error.permanent and error.status is None
    assert error.message == f"{kind}: no API key — set {kind.upper()}_API_KEY"
    assert server.requests == []


async def test_a_keyless_provider_sends_no_key_header(server, connect, kind):
    provider = connect(api_key=None, key_env="")
    assert (await provider.complete(REQUEST)).text == "say hello"
    headers = server.requests[0].headers
    assert "authorization" not in headers and "x-api-key" not in headers
    server.script(Scripted(401))
    assert "set the provider's api_key_env" in (await failure(provider)).message


async def test_the_key_never_shows_in_errors_or_repr(server, connect):
    # Servers that quote the key back, in every kind of error.
    quoting = {"error": {"message": f"Incorrect API key provided: {KEY}. " + "padding " * 60 + KEY}}
    server.script(
        Scripted(401, body=quoting),
        Scripted(400, body=quoting),
        Scripted(429, body=quoting),
        Scripted(500, raw=f"bad key {KEY}".encode()),
        Scripted(
            body={  # an unreadable token count, which a parse error would quote: it is estimated
                "choices": [{"message": {"content": "hi"}}],
                "content": [{"type": "text", "text": "hi"}],
                "usage": {"prompt_tokens": KEY, "input_tokens": KEY, "completion_tokens": 1, "output_tokens": 1},
            }
        ),
    )
    provider = connect()
    errors = [await failure(provider) for _ in range(4)]
    answered = await provider.complete(REQUEST)
    assert answered.usage_estimated and KEY not in repr(answered)
    assert errors[0].message.startswith(f"{provider.name}: 401 invalid API key")
    assert "Incorrect API key provided: ***" in errors[0].message
    for error in errors:
        for shown in (str(error), repr(error), error.message, repr(error.__cause__), str(error.__context__)):
            assert KEY not in shown
            assert KEY[:16] not in shown  # nor a prefix left by shortening
    assert KEY not in repr(provider) and KEY not in str(provider)


# -- the client -------------------------------------------------------------------------------


async def test_one_client_is_reused_across_calls(server, connect):
    provider = connect()
    for _ in range(20):
        await provider.complete(REQUEST)
    assert server.connections == 1
    for _ in range(3):
        await asyncio.gather(*(provider.complete(REQUEST) for _ in range(16)))
    assert len(server.requests) == 68
    assert server.connections <= 16  # never more connections than calls in flight at once


async def test_64_gathered_calls_are_all_in_flight_at_once(server, connect):
    server.hold_until(64)  # each request waits until 64 are in the server, then all answer
    provider = connect()
    completions = await asyncio.gather(*(provider.complete(REQUEST) for _ in range(64)))
    assert server.max_concurrency == 64
    assert all(c.text == "say hello" for c in completions)
    assert [r.status for r in server.requests] == [200] * 64


async def test_max_connections_bounds_what_reaches_the_server(server, connect):
    server.hold_until(64, timeout=0.5)  # never reached: the client holds the rest back
    provider = connect(max_connections=8)
    await asyncio.gather(*(provider.complete(REQUEST) for _ in range(24)))
    assert server.max_concurrency == 8
    assert server.connections == 8


async def test_latency_is_measured(server, connect):
    server.latency = 0.05
    completion = await connect().complete(REQUEST)
    assert completion.latency_ms >= 50


async def test_aclose_releases_the_client_and_a_later_call_opens_another(server, connect):
    provider = connect()
    await provider.aclose()  # before any call: nothing to close
    await provider.complete(REQUEST)
    await provider.aclose()
    await provider.aclose()
    await provider.complete(REQUEST)
    assert server.connections == 2


def test_make_client_uses_the_aiohttp_transport_with_the_settings():
    client = make_client("http://127.0.0.1:1/v1", {"x-test": "1"}, HttpSettings(timeout_connect=3, timeout_read=7))
    assert isinstance(client, HttpxAiohttpClient)
    assert client.timeout == httpx.Timeout(connect=3, read=7, write=30, pool=60)
    assert client.headers["x-test"] == "1"
    assert str(client.base_url) == "http://127.0.0.1:1/v1/"


def test_settings_from_provider_options():
    assert HttpSettings.from_options({}) == HttpSettings()
    settings = HttpSettings.from_options({"timeout_read": 30, "max_connections": 8, "rpm": 60})
    assert settings == HttpSettings(timeout_connect=10.0, timeout_read=30, max_connections=8)


# -- the fake server itself, as other tests use it --------------------------------------------


def test_the_fake_server_runs_in_a_thread_for_synchronous_tests():
    with FakeLLMServer() as server:
        server.script(Scripted(503))
        with httpx.Client(base_url=server.url) as client:
            assert client.post("/chat/completions", json={"messages": []}).status_code == 503
            answer = client.post(
                "/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "a b"}]}
            )
        assert answer.json()["choices"][0]["message"]["content"] == "a b"

        async def call() -> str:  # as a sweep job does: its own loop, its own client
            provider = OpenAIProvider(name="openai", base_url=server.url, api_key=KEY, key_env="OPENAI_API_KEY")
            try:
                return (await provider.complete(REQUEST)).text
            finally:
                await provider.aclose()

        assert asyncio.run(call()) == "say hello"
        assert [r.status for r in server.requests] == [503, 200, 200]
        port = server.port
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={})


async def test_the_fake_server_responder_answers_when_the_script_is_empty(server, connect):
    server.responder = lambda request: Scripted(text="judged: 0.8") if "judge" in str(request.json) else None
    server.script(Scripted(500))
    provider = connect()
    await failure(provider)
    assert (await provider.complete(REQUEST)).text == "say hello"
    judge = CompletionRequest(model="m", messages=({"role": "user", "content": "judge this"},), params={})
    assert (await provider.complete(judge)).text == "judged: 0.8"
    server.reset()
    assert server.requests == [] and server.max_concurrency == 0
    assert (await provider.complete(judge)).text == "judged: 0.8"  # the responder stays
