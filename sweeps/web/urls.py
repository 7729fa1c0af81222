from django.urls import path

from sweeps.web import editor, notifications, regression, review, runs, shares, versions, views

urlpatterns = [
    path("experiments/new/", editor.experiment_new, name="experiment_new"),
    path("experiments/estimate/", editor.experiment_estimate, name="experiment_estimate"),
    path("experiments/<int:experiment_id>/edit/", editor.experiment_edit, name="experiment_edit"),
    path("experiments/<int:experiment_id>/duplicate/", editor.experiment_duplicate, name="experiment_duplicate"),
    path("experiments/<int:experiment_id>/delete/", editor.experiment_delete, name="experiment_delete"),
    path("", views.experiment_list, name="experiment_list"),
    path("experiments/live/", views.experiment_list_live, name="experiment_list_live"),
    path("vendor/plotly-<str:version>.min.js", views.plotly_js, name="plotly_js"),
    path("experiments/<int:experiment_id>/", views.experiment_detail, name="experiment_detail"),
    path("experiments/<int:experiment_id>/live/", views.experiment_live, name="experiment_live"),
    path("experiments/<int:experiment_id>/sweep/<str:action>/", views.sweep_control, name="sweep_control"),
    path("runs/<int:run_id>/", runs.run_detail, name="run_detail"),
    path("samples/<int:sample_id>/text/", runs.sample_text, name="sample_text"),
    path("samples/<int:sample_id>/rating/", review.sample_rating, name="sample_rating"),
    path("experiments/<int:experiment_id>/compare/", runs.experiment_compare, name="experiment_compare"),
    path("experiments/<int:experiment_id>/regression/", regression.sweep_regression_page, name="sweep_regression"),
    path("experiments/<int:experiment_id>/shares/", shares.experiment_shares, name="experiment_shares"),
    path(
        "experiments/<int:experiment_id>/shares/<int:share_id>/revoke/",
        shares.experiment_share_revoke,
        name="experiment_share_revoke",
    ),
    path("share/<str:token>/", shares.share_experiment, name="share_experiment"),
    path("share/<str:token>/runs/<int:run_id>/", shares.share_run, name="share_run"),
    path("share/<str:token>/samples/<int:sample_id>/text/", shares.share_sample_text, name="share_sample_text"),
    path("experiments/<int:experiment_id>/versions/", versions.experiment_versions, name="experiment_versions"),
    path(
        "experiments/<int:experiment_id>/versions/<int:number>/", versions.experiment_version, name="experiment_version"
    ),
    path("experiments/<int:experiment_id>/dataset.<str:fmt>", versions.experiment_dataset, name="experiment_dataset"),
    path("account/tokens/", views.api_tokens, name="api_tokens"),
    path("account/tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("account/notifications/", notifications.notifications_page, name="notifications"),
    path(
        "account/notifications/<int:notification_id>/delete/",
        notifications.notification_delete_view,
        name="notification_delete",
    ),  # fmt: skip
    path(
        "account/notifications/<int:notification_id>/test/",
        notifications.notification_test_view,
        name="notification_test",
    ),  # fmt: skip
    path(
        "account/notifications/<int:notification_id>/active/",
        notifications.notification_active_view,
        name="notification_active",
    ),  # fmt: skip
]
