"""The one place that sends events to browsers: every event to its experiment's group (the
experiment page), and sweep events also to the owner's group (the experiments list).

Delivery is at most once: pages render state on the server and treat events as a live tail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)

Event = dict[str, Any]

# In embedded mode the in-memory layer lives on the web server's event loop; a sweep running
# in a background thread has its own loop and must hand its sends over to the server's.
_server_loop: asyncio.AbstractEventLoop | None = None


def register_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    global _server_loop
    _server_loop = loop


def experiment_group(experiment_id: int) -> str:
    return f"experiment-{experiment_id}"


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def groups_for(event: Event) -> list[str]:
    groups = [experiment_group(event["experiment_id"])]
    # The list shows sweep figures only; a sweep event follows every batch of run events
    # (progress), so run events there would multiply the traffic without showing anything new.
    if event["type"].startswith("sweep.") and event.get("owner_id") is not None:
        groups.append(user_group(event["owner_id"]))
    return groups


async def _send(events: Sequence[Event]) -> None:
    layer = get_channel_layer()
    for event in events:
        for group in groups_for(event):
            await layer.group_send(group, {"type": "sweep.event", "event": event})


def _foreign_server_loop() -> asyncio.AbstractEventLoop | None:
    if _server_loop is None or _server_loop.is_closed() or not isinstance(get_channel_layer(), InMemoryChannelLayer):
        return None
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    return None if current is _server_loop else _server_loop


async def apublish(events: Sequence[Event]) -> None:
    if not events:
        return
    try:
        if loop := _foreign_server_loop():
            asyncio.run_coroutine_threadsafe(_send(events), loop)
        else:
            await _send(events)
    except Exception:  # a browser missing an event must never break a sweep
        log.exception("could not publish %d event(s)", len(events))


def publish_on_commit(events: Sequence[Event]) -> None:
    """From synchronous code (services): send once the change that caused the events is committed."""

    def send() -> None:
        if loop := _foreign_server_loop():
            asyncio.run_coroutine_threadsafe(_send(events), loop)
        else:
            try:
                async_to_sync(_send)(events)
            except Exception:
                log.exception("could not publish %d event(s)", len(events))

    if events:
        transaction.on_commit(send)
