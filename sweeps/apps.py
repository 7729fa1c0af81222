from django.apps import AppConfig


class SweepsConfig(AppConfig):
    name = "sweeps"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from sweeps.engine import templating
        from sweeps.engine.scorers import python

        templating.configure(
            templating.TemplateLimits(
                max_steps=settings.PROMPTLOOPER_TEMPLATE_MAX_STEPS,
                max_seconds=settings.PROMPTLOOPER_TEMPLATE_MAX_SECONDS,
                max_chars=settings.PROMPTLOOPER_TEMPLATE_MAX_CHARS,
            )
        )
        python.configure(settings.PROMPTLOOPER_SCORER_MODULES)
