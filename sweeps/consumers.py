"""Websocket: a live tail of one experiment's events, for its owner only."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from sweeps.publishing import experiment_group
from sweeps.selectors import experiment_visible_to

UNAUTHORISED = 4403


class ExperimentConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        experiment_id = self.scope["url_route"]["kwargs"]["experiment_id"]
        user = self.scope.get("user")
        if not await database_sync_to_async(experiment_visible_to)(user, experiment_id):
            await self.close(code=UNAUTHORISED)
            return
        self.group = experiment_group(experiment_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def sweep_event(self, message: dict) -> None:
        await self.send_json(message["event"])
