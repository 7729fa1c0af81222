from django.urls import path

from sweeps import views

urlpatterns = [
    path("", views.experiment_list, name="experiment_list"),
    path("experiments/<int:experiment_id>/", views.experiment_detail, name="experiment_detail"),
    path("experiments/<int:experiment_id>/live/", views.experiment_live, name="experiment_live"),
    path("experiments/<int:experiment_id>/sweep/<str:action>/", views.sweep_control, name="sweep_control"),
    path("runs/<int:run_id>/", views.run_detail, name="run_detail"),
    path("account/tokens/", views.api_tokens, name="api_tokens"),
    path("account/tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]
