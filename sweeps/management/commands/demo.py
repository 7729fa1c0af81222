"""Prepare a local install: recover interrupted sweeps, a demo user and a demo experiment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from sweeps.engine.spec import load_spec_text
from sweeps.models import Experiment
from sweeps.selectors.experiments import experiment_list
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweeps_recover_interrupted
from sweeps.services.users import demo_user_ensure

DEMO_SPEC = Path(settings.BASE_DIR) / "examples" / "ticket-triage.yaml"


class Command(BaseCommand):
    help = "Create the demo user and experiment (once) and recover sweeps a previous process left running."

    def handle(self, *args, **options) -> None:
        if settings.EMBEDDED_WORKER:  # in this mode nothing outlives the web process
            for sweep in sweeps_recover_interrupted(stale_after=timedelta(0)):
                self.stdout.write(f"Sweep {sweep.pk} was interrupted; it is paused and can be resumed.")
        user, password = demo_user_ensure()
        if password:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Log in as demo / {password}  (shown once; change it with "
                    "`.venv/bin/python manage.py changepassword demo`)"
                )
            )
        else:
            self.stdout.write(
                "Log in as demo (the password was printed on the first run; "
                "reset it with `.venv/bin/python manage.py changepassword demo`)."
            )
        if not experiment_list(user=user).exists():
            experiment = experiment_create(
                owner=user, data=load_spec_text(DEMO_SPEC.read_text()), source=Experiment.Source.CLI
            )
            self.stdout.write(f"Demo experiment '{experiment.name}' is ready: open it and press Start sweep.")
