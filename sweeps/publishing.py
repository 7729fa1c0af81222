"""The one place that sends events to browsers (websocket group per experiment).

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


async def _send(events: Sequence[Event]) -> None:
    layer = get_channel_layer()
    for event in events:
        await layer.group_send(experiment_group(event["experiment_id"]), {"type": "sweep.event", "event": event})


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
