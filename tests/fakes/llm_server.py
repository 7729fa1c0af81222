"""A fake LLM server on 127.0.0.1 (real sockets, real HTTP) speaking OpenAI's chat completions
(POST /v1/chat/completions) and embeddings (POST /v1/embeddings: vectors counting the words of
each input by hash, so texts sharing words are close), and Anthropic's messages (POST /v1/messages).

Async tests run it on their own event loop:

    async with FakeLLMServer() as server:
        openai = OpenAIProvider(name="openai", base_url=server.url, api_key="k", key_env="OPENAI_API_KEY")
        anthropic = AnthropicProvider(name="anthropic", base_url=server.anthropic_url, ...)
        server.script(Scripted(429, headers={"Retry-After": "1"}), Scripted(500))  # then defaults
        ...
        assert server.requests[0].json["model"] == "gpt-4o-mini"

Synchronous tests (Django integration tests, the benchmark) run it in a background thread:

    with FakeLLMServer() as server:            # or: server = FakeLLMServer().start_in_thread()
        ...                                    #     ...; server.stop()

Each request (of either protocol, in arrival order) gets:
1. the next response queued with `script(...)`, if any;
2. else `responder(request)` when that is set and returns a Scripted (e.g. 10 % of 429s);
3. else the default answer: the last user message echoed back (or, when the request offers
   `tools`, a call of the first tool with {"text": <that message>} as its arguments), with usage counted in words
   (input: every message and the system prompt; output: the answer). `max_tokens` cuts the
   answer to that many words, with finish reason "length" / stop reason "max_tokens".
Every answer waits `latency` + its own `delay` seconds first (and a `trickle`d one then sends
its body a byte at a time, or padding forever); `hold_until(n)` also holds each
request until n are in flight at once (to prove a client's concurrency without timing).

Observations: `requests` (every request, with path, headers, JSON body, arrival time, client
port and the status answered), `max_concurrency` (most requests in flight at once),
`connections` (distinct client ports: TCP connections opened). `reset()` forgets them and
the script; `latency` and `responder` stay.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

OPENAI_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
ANTHROPIC_PATH = "/v1/messages"


@dataclass
class Scripted:
    """One response. A 200 without `body` or `raw` is the protocol's default answer (with `text`
    as the answer when given); an error status without them gets the protocol's error shape."""

    status: int = 200
    body: Any = None  # JSON-serialisable, sent as the response body
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds, on top of the server's latency
    raw: bytes | None = None  # sent as-is (application/json), for malformed bodies
    text: str | None = None  # the answer text of a default 200 answer
    disconnect: bool = False  # close the connection without answering at all
    # Seconds between the bytes of the body: the headers go at once, then one byte at a time
    # (chunked), as a stalled proxy or an overloaded server does. Never trips a read timeout
    # longer than this.
    trickle: float = 0.0
    trickle_forever: bool = False  # with `trickle`: send a space (valid JSON padding) forever instead


@dataclass
class RecordedRequest:
    path: str
    protocol: str  # "openai", "anthropic", or "" for an unknown path
    headers: dict[str, str]  # lower-cased names
    body: bytes
    json: Any  # the decoded body, None when it is not JSON
    received: float  # time.monotonic() on arrival
    client_port: int
    status: int | None = None  # what was answered; None while in flight, or if it never was
    answered: float | None = None  # time.monotonic() when the answer was sent


class FakeLLMServer:
    def __init__(self) -> None:
        self.latency = 0.0  # seconds before every answer
        self.responder: Callable[[RecordedRequest], Scripted | None] | None = None
        self.requests: list[RecordedRequest] = []
        self.max_concurrency = 0
        self.port = 0
        self._script: deque[Scripted] = deque()
        self._in_flight = 0
        self._hold: tuple[int, float, asyncio.Event] | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count(1)

    # -- configuration ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The OpenAI base_url."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        """The Anthropic base_url."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered."""
        return self._in_flight

    def script(self, *responses: Scripted) -> None:
        """Queue responses for the next requests, in order; later ones get the default answer."""
        self._script.extend(responses)

    def hold_until(self, in_flight: int, timeout: float = 10.0) -> None:
        """Hold every request until `in_flight` requests are in flight at once, then let them
        all go. After `timeout` seconds without that, all go anyway: a client that serialises
        its calls makes a test fail (on max_concurrency), not hang."""
        self._hold = (in_flight, timeout, asyncio.Event())

    def reset(self) -> None:
        self.requests.clear()
        self._script.clear()
        self.max_concurrency = 0
        self._hold = None

    @property
    def connections(self) -> int:
        return len({request.client_port for request in self.requests})

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> FakeLLMServer:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        # handler_cancellation: a client that gives up (a timeout test) ends its handler, so
        # in-flight counts stay true and shutdown need not wait for abandoned sleeps.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)  # port 0: the OS picks a free one
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLLMServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start_in_thread(self) -> FakeLLMServer:
        """Serve from a background thread with its own event loop (for synchronous tests)."""
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-llm-server", daemon=True)
        self._thread.start()
        if not started.wait(30):
            raise RuntimeError("the fake LLM server did not start within 30 s")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop a server started with start_in_thread()."""
        if self._thread is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._thread = None

    def __enter__(self) -> FakeLLMServer:
        return self.start_in_thread() if self._runner is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- serving -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            decoded = json.loads(body) if body else None
        except ValueError:
            decoded = None
        protocol = {OPENAI_PATH: "openai", ANTHROPIC_PATH: "anthropic", EMBEDDINGS_PATH: "embeddings"}.get(
            request.path, ""
        )
        peer = request.transport.get_extra_info("peername") if request.transport else None
        recorded = RecordedRequest(
            path=request.path,
            protocol=protocol,
            headers={name.lower(): value for name, value in request.headers.items()},
            body=body,
            json=decoded,
            received=time.monotonic(),
            client_port=peer[1] if peer else 0,
        )
        self.requests.append(recorded)
        self._in_flight += 1
        self.max_concurrency = max(self.max_concurrency, self._in_flight)
        try:
            await self._wait_for_hold()
            if request.method != "POST" or not protocol:
                return self._answer(recorded, web.json_response({"error": {"message": "no such route"}}, status=404))
            scripted = self._next_response(recorded)
            if self.latency or scripted.delay:
                await asyncio.sleep(self.latency + scripted.delay)
            if scripted.disconnect:
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError  # nothing more to send on a dead connection
            response = self._response(recorded, scripted)
            if scripted.trickle:
                return await self._trickle(request, recorded, response, scripted)
            return self._answer(recorded, response)
        finally:
            self._in_flight -= 1

    async def _wait_for_hold(self) -> None:
        if self._hold is None:
            return
        count, timeout, everyone_here = self._hold
        if self._in_flight >= count:
            everyone_here.set()
        try:
            await asyncio.wait_for(everyone_here.wait(), timeout)
        except TimeoutError:
            # Let everyone go: the test's assertion on max_concurrency reports the failure,
            # instead of each later request waiting out the timeout again.
            everyone_here.set()

    def _next_response(self, request: RecordedRequest) -> Scripted:
        if self._script:
            return self._script.popleft()
        if self.responder is not None:
            scripted = self.responder(request)
            if scripted is not None:
                return scripted
        return Scripted()

    async def _trickle(
        self, request: web.Request, recorded: RecordedRequest, response: web.Response, scripted: Scripted
    ) -> web.StreamResponse:
        stream = web.StreamResponse(status=response.status, headers={"content-type": "application/json"})
        stream.enable_chunked_encoding()
        await stream.prepare(request)
        recorded.status = response.status  # answered, but the body is still coming
        body = response.body if isinstance(response.body, bytes) else b""
        chunks = itertools.repeat(b" ") if scripted.trickle_forever else (body[i : i + 1] for i in range(len(body)))
        for chunk in chunks:  # ends when the client hangs up: the write raises, or the handler is cancelled
            await stream.write(chunk)
            await asyncio.sleep(scripted.trickle)
        await stream.write_eof()
        recorded.answered = time.monotonic()
        return stream

    def _answer(self, recorded: RecordedRequest, response: web.Response) -> web.Response:
        recorded.status = response.status
        recorded.answered = time.monotonic()
        return response

    def _response(self, request: RecordedRequest, scripted: Scripted) -> web.Response:
        headers = dict(scripted.headers)
        if scripted.raw is not None:
            return web.Response(
                status=scripted.status, body=scripted.raw, headers=headers, content_type="application/json"
            )
        body = scripted.body
        if body is None:
            if scripted.status >= 300:
                body = error_body(request.protocol, scripted.status)
            elif request.protocol == "embeddings":
                body = embeddings_answer(request.json or {})
            elif request.protocol == "anthropic":
                body = anthropic_answer(request.json or {}, scripted.text, next(self._ids))
            else:
                body = openai_answer(request.json or {}, scripted.text, next(self._ids))
        return web.json_response(body, status=scripted.status, headers=headers)


# -- protocol bodies (also for responders that build their own) --------------------------------


def error_body(protocol: str, status: int, message: str | None = None, error_type: str | None = None) -> dict[str, Any]:
    """The protocol's error JSON: OpenAI's {"error": {...}} or Anthropic's {"type": "error", ...}."""
    message = message or f"fake server: scripted {status}"
    if protocol == "anthropic":
        error_type = error_type or _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": error_type, "message": message}}
    return {"error": {"message": message, "type": error_type or "fake_error", "param": None, "code": None}}


_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def openai_answer(request: dict[str, Any], text: str | None = None, answer_id: int = 0) -> dict[str, Any]:
    """A chat.completion answering `request` (its decoded JSON) with `text`, or the echo."""
    answer, tokens_in, tokens_out, truncated = _answer_for(request, text)
    if tool := _first_tool(request, "function"):
        return {
            "id": f"chatcmpl-fake-{answer_id}", "object": "chat.completion", "created": 0,
            "model": request.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": None,
                "tool_calls": [{"id": f"call_{answer_id}", "type": "function",
                                "function": {"name": tool, "arguments": json.dumps({"text": answer})}}],
            }}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                      "total_tokens": tokens_in + tokens_out},
        }  # fmt: skip
    return {
        "id": f"chatcmpl-fake-{answer_id}",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "length" if truncated else "stop",
            }
        ],
        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
    }


def anthropic_answer(request: dict[str, Any], text: str | None = None, answer_id: int = 0) -> dict[str, Any]:
    """A Messages API answer to `request` (its decoded JSON) with `text`, or the echo."""
    answer, tokens_in, tokens_out, truncated = _answer_for(request, text)
    if tool := _first_tool(request, None):
        return {
            "id": f"msg_fake_{answer_id}", "type": "message", "role": "assistant", "model": request.get("model", ""),
            "content": [{"type": "text", "text": "Routing it."},
                        {"type": "tool_use", "id": f"toolu_{answer_id}", "name": tool, "input": {"text": answer}}],
            "stop_reason": "tool_use", "stop_sequence": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
        }  # fmt: skip
    return {
        "id": f"msg_fake_{answer_id}",
        "type": "message",
        "role": "assistant",
        "model": request.get("model", ""),
        "content": [{"type": "text", "text": answer}],
        "stop_reason": "max_tokens" if truncated else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
    }


def embeddings_answer(request: dict[str, Any], dimensions: int = 64) -> dict[str, Any]:
    """OpenAI's embeddings answer to `request`: one unit vector per input counting its lower-cased
    words by hash (cosine = shared words), usage counted in words."""
    inputs = request.get("input")
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    data = []
    for index, text in enumerate(texts):
        counts = [0.0] * dimensions
        for word in str(text).lower().split():
            counts[int(hashlib.md5(word.encode()).hexdigest(), 16) % dimensions] += 1.0
        norm = math.sqrt(sum(c * c for c in counts)) or 1.0
        data.append({"object": "embedding", "index": index, "embedding": [c / norm for c in counts]})
    words = sum(len(str(text).split()) for text in texts)
    return {"object": "list", "data": data, "model": request.get("model", ""),
            "usage": {"prompt_tokens": words, "total_tokens": words}}  # fmt: skip


def _first_tool(request: dict[str, Any], wrapper: str | None) -> str | None:
    """The name of the first tool the request offers: OpenAI's {"type": "function", "function":
    {"name"}} (wrapper "function"), Anthropic's {"name", "input_schema"} (no wrapper)."""
    tools = request.get("tools")
    if not isinstance(tools, list) or not tools or not isinstance(tools[0], dict):
        return None
    tool = tools[0].get(wrapper) if wrapper else tools[0]
    return tool.get("name") if isinstance(tool, dict) else None


def _answer_for(request: dict[str, Any], text: str | None) -> tuple[str, int, int, bool]:
    """(answer, tokens in, tokens out, cut by max_tokens), counting a word as a token."""
    messages = request.get("messages") or []
    if text is None:
        user = [m.get("content", "") for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        text = str(user[-1]) if user else ""
    prompt = [str(m.get("content", "")) for m in messages if isinstance(m, dict)]
    system = request.get("system")
    if isinstance(system, str):
        prompt.append(system)
    words = text.split()
    max_tokens = request.get("max_tokens")
    truncated = isinstance(max_tokens, int) and len(words) > max_tokens
    if truncated:
        words = words[:max_tokens]
        text = " ".join(words)
    return text, sum(len(p.split()) for p in prompt), len(words), truncated
