from django.urls import path

from sweeps.web.consumers import ExperimentConsumer, ExperimentListConsumer

websocket_urlpatterns = [
    path("ws/experiments/", ExperimentListConsumer.as_asgi()),
    path("ws/experiments/<int:experiment_id>/", ExperimentConsumer.as_asgi()),
]
