"""The webhook URL policy (internal addresses refused unless allowed), signing, and delivery's
retries, against a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sweeps.engine.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AllowList,
    WebhookRefused,
    check_url,
    deliver,
    encode,
    pinned,
    sign,
    verify,
)
from tests.fakes.webhook_receiver import WebhookReceiver

NOTHING = AllowList()


def resolving_to(*addresses: str):
    return lambda host: list(addresses)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://100.64.0.1/",  # carrier-grade NAT
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4 mapped into IPv6
        "http://2130706433/",  # 127.0.0.1 as one number
    ],
)
def test_internal_addresses_are_refused(url):
    with pytest.raises(WebhookRefused, match="internal address|does not resolve"):
        check_url(url, NOTHING)


def test_a_name_resolving_to_an_internal_address_is_refused_even_when_one_address_is_public():
    with pytest.raises(WebhookRefused, match="hooks.example is at 10.0.0.5, an internal address"):
        check_url("https://hooks.example/x", NOTHING, resolving_to("93.184.216.34", "10.0.0.5"))


def test_a_public_address_is_allowed():
    check_url("https://hooks.example/x", NOTHING, resolving_to("93.184.216.34", "2606:2800:220:1::1"))
    check_url("http://93.184.216.34:8080/x?a=1", NOTHING)


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://93.184.216.34/", "must start with http:// or https://, not ftp"),
        ("file:///etc/passwd", "not file"),
        ("hooks.example/x", "not nothing"),
        ("http:///x", "no host"),
        ("http://user:pw@93.184.216.34/", "user name or password"),
        ("http://93.184.216.34:port/", "is not a URL"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url, message):
    with pytest.raises(WebhookRefused, match=message):
        check_url(url, NOTHING)


def test_a_host_that_does_not_resolve_is_refused():
    def fails(host):
        raise OSError("Name or service not known")

    with pytest.raises(WebhookRefused, match="does not resolve"):
        check_url("https://nowhere.invalid/", NOTHING, fails)


def test_the_allow_list_admits_listed_hosts_and_networks_only():
    allow = AllowList.parse("hooks.internal, 10.0.0.0/8, ::1")
    check_url("http://hooks.internal/x", allow, resolving_to("192.168.1.1"))
    check_url("http://10.9.8.7/", allow)
    check_url("http://[::1]:9000/", allow)
    with pytest.raises(WebhookRefused):
        check_url("http://127.0.0.1/", allow)
    with pytest.raises(WebhookRefused):
        check_url("http://other.internal/", allow, resolving_to("192.168.1.1"))


def test_an_allow_list_entry_that_is_neither_host_nor_network_is_named():
    with pytest.raises(ValueError, match="'http://x/' is neither"):
        AllowList.parse("10.0.0.0/8, http://x/")


def test_the_signature_covers_timestamp_and_body():
    body = encode({"b": 1, "a": [1, 2]})
    assert body == b'{"a":[1,2],"b":1}'
    signature = sign("s3cret", 1700000000, body)
    # Computed here independently: HMAC-SHA256 of "<timestamp>.<body>", as the README tells receivers.
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    assert verify("s3cret", "1700000000", body, signature)
    assert not verify("s3cret", "1700000001", body, signature)
    assert not verify("other", "1700000000", body, signature)
    assert not verify("s3cret", "1700000000", body + b" ", signature)


LOCAL = AllowList.parse("127.0.0.1")


def test_delivery_signs_the_body_it_sends():
    with WebhookReceiver() as receiver:
        outcome = deliver(receiver.url, {"event": "x"}, secret="k", event="sweep.completed", allow=LOCAL)
        [request] = receiver.requests
    assert outcome.delivered and outcome.attempts == 1 and outcome.status == 200
    assert request.json == {"event": "x"}
    assert request.headers["X-PromptLooper-Event"] == "sweep.completed"
    assert verify("k", request.headers[TIMESTAMP_HEADER], request.body, request.headers[SIGNATURE_HEADER])


def test_delivery_retries_5xx_with_growing_waits_then_gives_up():
    waits = []
    with WebhookReceiver() as receiver:
        receiver.script(500, 503, 502)
        outcome = deliver(
            receiver.url, {}, secret="k", event="e", allow=LOCAL, attempts=3, backoff=0.5, sleep=waits.append
        )
    assert not outcome.delivered and outcome.attempts == 3 and outcome.status == 502
    assert waits == [0.5, 1.0] and len(receiver.requests) == 3


def test_delivery_does_not_retry_a_4xx():
    with WebhookReceiver() as receiver:
        receiver.script(404)
        outcome = deliver(receiver.url, {}, secret="k", event="e", allow=LOCAL, attempts=3, sleep=lambda s: None)
    assert (outcome.delivered, outcome.attempts, outcome.error) == (False, 1, "HTTP 404")


def test_delivery_retries_a_timeout():
    with WebhookReceiver() as receiver:
        receiver.delay = 0.5
        outcome = deliver(
            receiver.url, {}, secret="k", event="e", allow=LOCAL, attempts=2, timeout=0.1, sleep=lambda s: None
        )
    assert not outcome.delivered and outcome.attempts == 2 and "Timeout" in outcome.error


def test_delivery_reads_the_status_and_never_the_body():
    """A receiver answering with a body that never ends (a byte a second, each within the read
    timeout) cannot hold the worker: the status is all a delivery reads. (Reading the body, the
    call would go on for as long as the receiver likes.)"""
    with WebhookReceiver() as receiver, ThreadPoolExecutor(1) as pool:
        receiver.endless_body = True
        call = pool.submit(deliver, receiver.url, {"event": "test"}, secret="s", event="test", allow=LOCAL, timeout=5)
        try:
            outcome = call.result(timeout=60)
        finally:
            receiver.endless_body = False  # lets a stuck call end, at the next read timeout
    assert outcome.delivered and outcome.status == 200


def test_delivery_checks_the_policy_before_sending():
    with WebhookReceiver() as receiver:
        outcome = deliver(receiver.url, {}, secret="k", event="e", allow=NOTHING)
        assert receiver.requests == []
    assert not outcome.delivered and outcome.error.startswith("refused: the host 127.0.0.1")


def test_the_readme_receiver_example_accepts_a_real_delivery_and_nothing_else():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Notifications") :]
    namespace: dict = {}
    exec(re.search(r"```python\n(.*?)```", section, re.S).group(1), namespace)
    check = namespace["verify_signature"]
    with WebhookReceiver() as receiver:
        deliver(receiver.url, {"event": "test"}, secret="whsec_k", event="test", allow=LOCAL)
        [request] = receiver.requests
    assert check("whsec_k", request.headers, request.body)
    assert not check("whsec_other", request.headers, request.body)
    assert not check("whsec_k", request.headers, request.body + b" ")
    old = int(request.headers[TIMESTAMP_HEADER]) - 600  # correctly signed, but too old: a replay
    replayed = {TIMESTAMP_HEADER: str(old), SIGNATURE_HEADER: sign("whsec_k", old, request.body)}
    assert not check("whsec_k", replayed, request.body)


def test_delivery_connects_to_the_address_that_was_checked_with_the_name_as_host():
    # hooks.test exists only for this resolver: the request can reach the receiver only by the
    # address the check approved, never by a second lookup (which could answer differently).
    with WebhookReceiver() as receiver:
        port = receiver.server.server_address[1]
        outcome = deliver(f"http://hooks.test:{port}/hook", {}, secret="k", event="e", allow=LOCAL,
                          resolve=resolving_to("127.0.0.1"))  # fmt: skip
        [request] = receiver.requests
    assert outcome.delivered and request.headers["Host"] == f"hooks.test:{port}"


@pytest.mark.parametrize(
    "url, address, target, host, extensions",
    [
        ("https://hooks.example/x?a=1", "93.184.216.34", "https://93.184.216.34/x?a=1", "hooks.example",
         {"sni_hostname": "hooks.example"}),
        ("http://hooks.example:8080/x", "2606:2800:220:1::1", "http://[2606:2800:220:1::1]:8080/x",
         "hooks.example:8080", {}),
    ],
)  # fmt: skip
def test_pinning_keeps_path_port_and_the_name_for_tls(url, address, target, host, extensions):
    assert pinned(url, ipaddress.ip_address(address)) == (target, {"Host": host}, extensions)
