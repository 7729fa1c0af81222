"""Webhooks: which URLs may be called, what is sent, how it is signed, and how it is delivered.

A webhook URL is chosen by a user, and the server calls it: without a policy that is a way to
make the server reach its own private network (metadata services, databases, admin ports). So a
URL is refused when any address its host resolves to is loopback, private, link-local,
multicast, reserved or unspecified, unless the operator allowed that host or network
(PROMPTLOOPER_WEBHOOK_ALLOW). The check runs when a URL is saved and again before every
attempt, since what a name resolves to can change in between.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

SIGNATURE_HEADER = "X-PromptLooper-Signature"
TIMESTAMP_HEADER = "X-PromptLooper-Timestamp"
EVENT_HEADER = "X-PromptLooper-Event"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], list[str]]


class WebhookRefused(ValueError):
    """The URL may not be called; the message says why, for the person who typed it."""


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, raw: str | Iterable[str]) -> AllowList:
        """'hooks.internal, 10.0.0.0/8, 127.0.0.1' -> host names and networks. Raises ValueError
        naming an entry that is neither."""
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        hosts, networks = set(), []
        for item in (i.strip() for i in items):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                if not all(part and part.replace("-", "").isalnum() for part in item.split(".")):
                    raise ValueError(f"{item!r} is neither a host name nor an IP address or network") from None
                hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return host in self.hosts or any(address in network for network in self.networks)


def system_resolver(host: str) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]


def internal(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def resolved(host: str, resolve: Resolver) -> list[IPAddress]:
    try:
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in resolve(host)]
    except (OSError, UnicodeError) as e:
        raise WebhookRefused(f"the host {host} does not resolve ({e})") from None
    if not addresses:
        raise WebhookRefused(f"the host {host} does not resolve")
    return addresses


def check_url(url: str, allow: AllowList, resolve: Resolver = system_resolver) -> list[IPAddress]:
    """The addresses of `url`'s host; raises WebhookRefused unless it is http(s) with a host whose
    every address is public or allowed."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 -- raises on a port that is not a number
    except ValueError as e:
        raise WebhookRefused(f"{url!r} is not a URL: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused(f"the URL must start with http:// or https://, not {parts.scheme or 'nothing'}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise WebhookRefused("the URL has no host")
    if parts.username or parts.password:
        raise WebhookRefused("the URL may not hold a user name or password; the body is signed instead")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = resolved(host, resolve)
    for address in addresses:
        if internal(address) and not allow.allows(host, address):
            raise WebhookRefused(
                f"the host {host} is at {address}, an internal address; "
                "an administrator can allow it with PROMPTLOOPER_WEBHOOK_ALLOW"
            )
    return addresses


def pinned(url: str, address: IPAddress) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The request for `url` sent to the `address` the policy approved, not to whatever the name
    resolves to a moment later (DNS rebinding): the URL with the address as its host, the Host
    header, and for https the name to present and verify the certificate against (SNI)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    ip = f"[{address}]" if address.version == 6 else str(address)
    target = urlunsplit(parts._replace(netloc=ip + (f":{parts.port}" if parts.port else "")))
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return target, {"Host": parts.netloc}, extensions


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 of "<timestamp>.<body>": the timestamp is signed too, so a receiver that
    refuses old timestamps cannot be fed a replayed delivery."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (the tests, and the README's example, do it this way)."""
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


@dataclass
class Delivery:
    """The outcome of one webhook delivery; holds no secret, so it can be logged as it is."""

    delivered: bool = False
    attempts: int = 0
    status: int | None = None
    error: str = ""
    waits: list[float] = field(default_factory=list)


def retryable(status: int) -> bool:
    return status >= 500 or status in (408, 429)


def deliver(
    url: str,
    payload: dict[str, Any],
    *,
    secret: str,
    event: str,
    allow: AllowList,
    attempts: int = 3,
    timeout: float = 10.0,
    backoff: float = 1.0,
    resolve: Resolver = system_resolver,
    sleep: Callable[[float], None] = time.sleep,
    client: httpx.Client | None = None,
) -> Delivery:
    """POSTs the signed payload, retrying timeouts, connection errors and 5xx (backoff doubling
    from `backoff` seconds) up to `attempts` tries in all; a 4xx is the receiver's answer and is
    not retried. Redirects are not followed: they could lead anywhere the policy forbids. Only
    the status is read, never the body (a receiver could answer with gigabytes), and no proxy
    from the environment is used (the call goes to the address the policy approved)."""
    body = encode(payload)
    outcome = Delivery()
    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
    try:
        for attempt in range(1, attempts + 1):
            outcome.attempts = attempt
            try:
                target, headers, extensions = pinned(url, check_url(url, allow, resolve)[0])
            except WebhookRefused as e:
                outcome.error = f"refused: {e}"
                return outcome
            timestamp = int(time.time())
            headers |= {
                "Content-Type": "application/json",
                "User-Agent": "PromptLooper-Webhook/1",
                EVENT_HEADER: event,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(secret, timestamp, body),
            }
            try:
                with http.stream("POST", target, content=body, headers=headers, extensions=extensions) as response:
                    status = response.status_code
            except httpx.HTTPError as e:
                outcome.status, outcome.error = None, f"{type(e).__name__}: {e}"
            else:
                outcome.status = status
                if status < 300:
                    outcome.delivered, outcome.error = True, ""
                    return outcome
                outcome.error = f"HTTP {status}"
                if not retryable(status):
                    return outcome
            if attempt < attempts:
                wait = backoff * 2 ** (attempt - 1)
                outcome.waits.append(wait)
                sleep(wait)
        return outcome
    finally:
        if own:
            http.close()
