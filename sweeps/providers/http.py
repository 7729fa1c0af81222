"""What the HTTP adapters (OpenAI-compatible, Anthropic) share: the client, and turning every
outcome of a POST into a Completion or a ProviderError.

The adapters never retry: the executor does, because only it can release the sample's
concurrency slot while it waits. So this module's job is to classify each failure right:
- no answer at all (timeouts, refused or reset connections) and 408, 409, 429, 5xx: retryable,
  with `retry_after` when the server said how long to wait;
- a 2xx body that is not the expected JSON: retryable ("malformed response"), since a
  truncated or garbled body is usually a proxy's or an overloaded server's hiccup;
- any other 4xx: permanent, with a message a person can act on; an exhausted quota is also
  flagged `quota_exhausted` so a sweep can stop instead of failing every sample.

The API key is sent in a header and nowhere else: it is kept out of repr() and scrubbed from
any text the provider sends back, so it cannot reach a log, an event or the database.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import httpx
from httpx_aiohttp import HttpxAiohttpClient

from sweeps.engine.provider import Completion, CompletionRequest, Provider, ProviderError

T = TypeVar("T")

# Statuses that another attempt may turn into an answer (plus every 5xx, Anthropic's 529 included).
RETRYABLE_STATUSES = frozenset({408, 409, 429})
# Provider text quoted in messages is cut here: error pages can be whole HTML documents.
MAX_QUOTED_CHARS = 300


@dataclass(frozen=True)
class HttpSettings:
    """Per provider, from the Provider row's options."""

    timeout_connect: float = 10.0
    timeout_read: float = 120.0  # LLM answers are slow: the whole generation happens before the reply
    # The whole call, however the server paces its bytes: a server that trickles one byte per
    # second never trips timeout_read, and reasoning models legitimately take minutes.
    timeout_total: float = 600.0
    max_connections: int = 256  # above any sane max_concurrency, so the sweep's own bound is the one that bites

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HttpSettings:
        """The settings named in `options` (other keys are ignored), defaults for the rest."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in options.items() if key in known})


def make_client(base_url: str, headers: Mapping[str, str], settings: HttpSettings) -> httpx.AsyncClient:
    """An httpx client over aiohttp's connection pool (plain httpx's pool costs several times
    more CPU per call at high concurrency: LIBRARY_NOTES.md §4.1). Create it inside the event
    loop that uses it, and keep it for many calls."""
    return HttpxAiohttpClient(
        base_url=base_url,
        headers=dict(headers),
        timeout=httpx.Timeout(
            connect=settings.timeout_connect,
            read=settings.timeout_read,
            write=30.0,
            pool=60.0,  # waiting for a free connection: only when calls outnumber max_connections
        ),
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
        ),
    )


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait, from the first header it sent of:
    `retry-after-ms` (OpenAI); `Retry-After` as seconds or an HTTP date; LiteLLM's
    `llm_provider-retry-after` (seconds); OpenAI's `x-ratelimit-reset-requests` /
    `x-ratelimit-reset-tokens` (durations like `1s`, `6m0s`, `20ms`: the later of the two).
    None when it did not say (or said something unreadable)."""
    headers = response.headers
    milliseconds = _number(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    value = headers.get("retry-after")
    if value is None:
        litellm = _number(headers.get("llm_provider-retry-after"))
        if litellm is not None:
            return litellm
        resets = [_duration(headers.get(f"x-ratelimit-reset-{limit}")) for limit in ("requests", "tokens")]
        known = [seconds for seconds in resets if seconds is not None]
        return max(known) if known else None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; an unzoned one is read as such
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def _duration(value: str | None) -> float | None:
    """Seconds in a Go-style duration ("1s", "6m0s", "20ms", "1h2m3.5s"); None if unreadable."""
    if not value:
        return None
    value = value.strip()
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return _number(value)  # a bare number is seconds
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) and number >= 0 else None


class HttpProvider(Provider):
    """One chat completion per POST of JSON to `path` under `base_url`.

    Subclasses say what to send (`headers`, `request_body`), how to read an answer
    (`parse_completion`) and which errors mean the account is out of credit.
    """

    path: str  # relative to base_url

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: str | None,
        key_env: str,
        settings: HttpSettings = HttpSettings(),
    ) -> None:
        self.name = name
        self.base_url = self.normalized_base_url(base_url)
        self.key_env = key_env
        self.settings = settings
        self._api_key = api_key or None
        # Made on the first call, inside the event loop that runs the sweep: an httpx client
        # must never be shared across loops, and one per call would open a connection per call.
        self._client: httpx.AsyncClient | None = None

    @staticmethod
    def normalized_base_url(base_url: str) -> str:
        return base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r}, key_env={self.key_env!r})"

    @abstractmethod
    def headers(self, api_key: str | None) -> dict[str, str]:
        """The request headers; without the key header when `api_key` is None (a keyless server)."""

    @abstractmethod
    def request_body(self, request: CompletionRequest) -> dict[str, Any]: ...

    @abstractmethod
    def parse_completion(self, data: Any, request: CompletionRequest, latency_ms: float) -> Completion:
        """Read the answer out of the decoded JSON. A missing or mistyped field raises KeyError,
        IndexError, TypeError, AttributeError or ValueError: a retryable "malformed response"."""

    def is_quota_exhausted(self, status: int, error: ErrorBody) -> bool:
        return False

    async def complete(self, request: CompletionRequest) -> Completion:
        return await self.post(self.path, self.request_body(request), request, self.parse_completion)

    async def post(self, path: str, body: Any, request: Any, parse: Callable[[Any, Any, float], T]) -> T:
        """POST `body` as JSON to `path` and read the answer with `parse(data, request, latency_ms)`;
        every failure is a ProviderError saying what to do. `request` has the `model` asked for."""
        # No key variable at all (key_env "") is a keyless server: no key header is sent.
        if self._api_key is None and self.key_env:
            raise ProviderError(f"{self.name}: no API key — set {self.key_env}", permanent=True)
        if self._client is None:
            self._client = make_client(self.base_url, self.headers(self._api_key), self.settings)
        started = time.perf_counter()
        total = self.settings.timeout_total
        deadline = asyncio.timeout(total)  # the request and its whole body
        try:
            async with deadline:
                response = await self._client.post(path, json=body)
        except TimeoutError as exc:  # the deadline's, or (unmapped) aiohttp's own read timeout
            if not deadline.expired():
                raise ProviderError(
                    f"{self.name}: timed out after {self.settings.timeout_read:g} s waiting for the answer"
                ) from exc
            # Not retried: another attempt would hold the sample as long again.
            raise ProviderError(
                f"{self.name}: no complete answer within timeout_total {total:g} s "
                "(the server was still sending); raise the provider's timeout_total option if calls are that long",
                permanent=True,
            ) from exc
        except httpx.ReadTimeout as exc:
            raise ProviderError(
                f"{self.name}: timed out after {self.settings.timeout_read:g} s waiting for the answer"
            ) from exc
        # The aiohttp transport leaves a few aiohttp errors (e.g. an unreadable status line)
        # unmapped, and they are the same kind of failure as httpx's.
        except (httpx.RequestError, aiohttp.ClientError, OSError) as exc:
            detail = _shorten(self._scrub(str(exc))) or type(exc).__name__
            raise ProviderError(f"{self.name}: connection failed: {detail}") from exc
        latency_ms = (time.perf_counter() - started) * 1000
        if not response.is_success:
            raise self._error_for(response, request)
        try:
            return parse(response.json(), request, latency_ms)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            problem = self._describe_malformed(exc)
        # Raised outside the except block: the parsing error may quote the body, which is not
        # ours to show, so it must not ride along as the ProviderError's context.
        status = response.status_code
        raise ProviderError(f"{self.name}: malformed response ({status}): {problem}", status=status)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _error_for(self, response: httpx.Response, request: Any) -> ProviderError:
        status = response.status_code
        error = ErrorBody.read(response)
        # Scrubbed before shortening, so a cut cannot leave part of the key behind.
        said = f'; the server said: "{_shorten(self._scrub(error.message))}"' if error.message else ""
        # Before the retryable statuses: OpenAI says "out of quota" with a 429.
        if self.is_quota_exhausted(status, error):
            return ProviderError(
                f"{self.name}: {status} quota exhausted — add credit or raise the limit of the "
                f"account whose key is in {self.key_env}{said}",
                status=status,
                quota_exhausted=True,
            )
        if status in RETRYABLE_STATUSES or status >= 500:
            return ProviderError(
                f"{self.name}: {status} {_retryable_reason(status)}{said}",
                status=status,
                retry_after=retry_after(response),
            )
        if status == 401:
            advice = (
                f"invalid API key — set {self.key_env}"
                if self.key_env
                else "the server wants an API key: set the provider's api_key_env"
            )
        elif status == 403:
            advice = f"not allowed — check that the key in {self.key_env} may use model {request.model!r}"
        elif status == 404:
            advice = f"unknown model or URL: check the model name ({request.model!r}) and base_url ({self.base_url})"
        elif 300 <= status < 400:
            advice = f"unexpected redirect to {response.headers.get('location', '?')}: check base_url"
        else:  # 400, 422 and the rarer 4xx: the provider's own words say what to fix
            advice = "request refused"
        return ProviderError(f"{self.name}: {status} {advice}{said}", permanent=True, status=status)

    def _describe_malformed(self, exc: Exception) -> str:
        if isinstance(exc, json.JSONDecodeError):
            return "the body is not JSON"
        if isinstance(exc, KeyError):
            return f"no {exc.args[0]!r} field"
        if isinstance(exc, IndexError):
            return "an empty list where the answer should be"
        return _shorten(self._scrub(str(exc))) or type(exc).__name__

    def _scrub(self, text: str) -> str:
        # Some servers quote the key they were given in their error messages.
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text


@dataclass(frozen=True)
class ErrorBody:
    """The error a provider explains a non-2xx answer with, in any of the shapes in use:
    OpenAI and Anthropic `{"error": {"message", "type", "code"}}`, vLLM's top-level
    `{"message", "type", "code"}`, Ollama's `{"error": "text"}`, or a plain-text page."""

    message: str = ""
    type: str = ""
    code: str = ""

    @classmethod
    def read(cls, response: httpx.Response) -> ErrorBody:
        try:
            data = response.json()
        except ValueError:
            return cls(message=response.text)
        if not isinstance(data, dict):
            return cls(message=json.dumps(data))
        error = data.get("error", data)
        if isinstance(error, str):
            return cls(message=error)
        if not isinstance(error, dict):
            return cls()
        return cls(
            message=str(error.get("message") or ""),
            type=str(error.get("type") or ""),
            code=str(error.get("code") or ""),
        )


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_QUOTED_CHARS else text[: MAX_QUOTED_CHARS - 1] + "…"


def _retryable_reason(status: int) -> str:
    if status == 429:
        return "rate limited"
    if status == 408:
        return "request timeout"
    if status == 409:
        return "conflict"
    return "server error"


# No model reads or writes more in one call; a larger (or negative, or non-integer) count is a
# server's bug, and would overflow the token columns: the usage is estimated instead.
MAX_REPORTED_TOKENS = 10_000_000


def checked_usage(
    request: CompletionRequest, answer: str, read: Callable[[], tuple[Any, Any]] | None
) -> tuple[int, int, bool]:
    """(tokens in, tokens out, estimated): what `read()` says the server counted, when it sent a
    usage (`read` is None when not) whose counts are numbers in [0, MAX_REPORTED_TOKENS]; else
    estimated. A usage without its fields raises KeyError: a malformed answer, as before."""
    if read is not None:
        counts = [_count(n) for n in read()]
        if all(n is not None for n in counts):
            return counts[0], counts[1], False  # type: ignore[return-value]
    return (*estimated_usage(request, answer), True)


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        count = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return count if 0 <= count <= MAX_REPORTED_TOKENS else None


def estimated_usage(request: CompletionRequest, answer: str) -> tuple[int, int]:
    """(tokens in, tokens out) at about 4 characters per token: only for servers that send no usage."""
    prompt = sum(len(str(m.get("content", ""))) for m in request.messages)
    return math.ceil(prompt / 4), math.ceil(len(answer) / 4)
