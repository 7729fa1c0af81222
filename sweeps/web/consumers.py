"""Websockets: live tails of events, each for the owner only.

/ws/experiments/<id>/ follows one experiment (its page); /ws/experiments/ follows the sweeps
of all the user's experiments (the list).
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from sweeps.events.publishing import experiment_group, user_group
from sweeps.selectors.experiments import experiment_visible_to

UNAUTHORISED = 4403


class GroupTail(AsyncJsonWebsocketConsumer):
    """Joins one group (when allowed) and forwards what publishing sends to it."""

    group: str | None = None

    async def allowed_group(self) -> str | None:
        raise NotImplementedError

    async def connect(self) -> None:
        self.group = await self.allowed_group()
        if self.group is None:
            await self.close(code=UNAUTHORISED)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def sweep_event(self, message: dict) -> None:
        await self.send_json(message["event"])


class ExperimentConsumer(GroupTail):
    async def allowed_group(self) -> str | None:
        experiment_id = self.scope["url_route"]["kwargs"]["experiment_id"]
        if not await database_sync_to_async(experiment_visible_to)(self.scope.get("user"), experiment_id):
            return None
        return experiment_group(experiment_id)


class ExperimentListConsumer(GroupTail):
    async def allowed_group(self) -> str | None:
        # The user is resolved lazily from the session: that is a query, so off the event loop.
        user_id = await database_sync_to_async(authenticated_id)(self.scope.get("user"))
        return None if user_id is None else user_group(user_id)


def authenticated_id(user) -> int | None:
    return user.pk if user is not None and user.is_authenticated else None
