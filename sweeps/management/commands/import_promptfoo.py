"""`manage.py import_promptfoo promptfooconfig.yaml [--run]`: a promptfoo suite as an experiment
(engine/promptfoo.py maps it), with everything that has no counterpart listed."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction

from sweeps.engine.errors import SpecError
from sweeps.engine.promptfoo import ConfigError, import_config
from sweeps.engine.spec import load_spec_text
from sweeps.management.commands.sweep import Command as SweepCommand
from sweeps.models import Experiment
from sweeps.services.experiments import experiment_create


class Command(SweepCommand):
    help = "Import a promptfoo config as an experiment (its prompts x providers grid); --run runs its sweep."

    def add_arguments(self, parser) -> None:
        parser.add_argument("config", help="promptfooconfig.yaml")
        parser.add_argument("--run", action="store_true", help="run the sweep and print its leaderboard")
        parser.add_argument("--user", help="owner of the experiment (default: demo, or the first superuser)")

    def handle(self, *args, **options) -> None:
        self.open_console()
        path = Path(options["config"])
        try:
            config = load_spec_text(path.read_text(encoding="utf-8"))
            imported = import_config(
                config, path.parent, name=path.stem, max_bytes=settings.PROMPTLOOPER_MAX_BODY_BYTES
            )
        except OSError as e:
            raise CommandError(f"cannot read {path}: {e.strerror}", returncode=2) from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text", returncode=2) from None
        except (SpecError, ConfigError) as e:
            raise CommandError(f"{path}: {e}", returncode=2) from None
        for source, module in imported.python_files:
            self.install(source, module)
        try:
            with transaction.atomic():
                experiment = experiment_create(
                    owner=self.owner(options["user"]), data=imported.spec, source=Experiment.Source.CLI
                )
        except SpecError as e:
            lines = "\n".join(f"  {err}" for err in e.errors)
            raise CommandError(f"{path} maps to a spec that is not valid:\n{lines}", returncode=2) from None
        grid = imported.spec.get("sweep", {}).get("params", {})
        # Plain lines, never wrapped: a CI log or a grep reads them whole.
        self.stdout.write(
            f"Imported {path} as experiment {experiment.pk} '{experiment.name}': "
            f"{len(grid.get('prompt', [None]))} prompts x {len(grid.get('model', [None]))} providers, "
            f"{len(imported.spec['dataset'])} tests, {len(imported.spec['scorers'])} scorers."
        )
        if imported.unmapped:
            self.stdout.write(f"Not imported ({len(imported.unmapped)}):")
            for where, why in imported.unmapped:
                self.stdout.write(f"  {where}: {why}")
        if options["run"]:
            self.start_and_report(experiment, wait=True, max_failed=1.0)

    def install(self, source: Path, module: str) -> None:
        """A promptfoo python assertion file, copied into the allowed scorers/ folder as `module`."""
        target = Path(settings.BASE_DIR) / (module.replace(".", "/") + ".py")
        if not source.is_file():
            raise CommandError(f"{source}: no such python assertion file", returncode=2)
        if target.exists() and not filecmp.cmp(source, target, shallow=False):
            raise CommandError(f"{target} exists with other content: remove it, or rename {source.name}", returncode=2)
        shutil.copyfile(source, target)
        self.stdout.write(f"Copied {source} to {target.relative_to(settings.BASE_DIR)} (an allowed scorer module).")
