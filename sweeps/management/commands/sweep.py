"""`python manage.py sweep FILE.yaml [--wait] [--min-score X]`: run an experiment from a spec file.

Exit status: 0 done, 1 the sweep failed, more than --max-failed of its samples failed, or its best
score is below --min-score; 2 invalid spec or option.
Also controls existing sweeps: `--pause ID`, `--resume ID`, `--stop ID`.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any, cast

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.http import Http404
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from sweeps.engine import formatting
from sweeps.engine.errors import SpecError
from sweeps.engine.space import get_path
from sweeps.engine.spec import load_spec_text
from sweeps.engine.spec_files import resolve_files
from sweeps.models import Experiment, Sweep
from sweeps.selectors.junit import junit_xml
from sweeps.selectors.leaderboard import (
    leaderboard,
    top_two_verdict,
    varying_params,
    verdict_names,
)
from sweeps.selectors.regression import sweep_regression
from sweeps.selectors.runs import scorer_means
from sweeps.selectors.sweeps import failure_reasons, sweep_by_id, sweep_get, sweep_progress, sweep_scorer_names
from sweeps.services import ServiceError
from sweeps.services.experiments import experiment_create, experiment_named
from sweeps.services.sweeps import ALLOWED, sweep_pause, sweep_start, sweep_transition
from sweeps.services.users import cli_user, user_named

POLL_S = 0.2


# --- a --wait that executes the sweep drains it before exiting (issue 12, item 14) ---


def executors(sweep: Sweep) -> list[threading.Thread]:
    """This process's threads executing the sweep (sweeps.runner.dispatch names them)."""
    return [t for t in threading.enumerate() if t.name == f"sweep-{sweep.pk}" and t.is_alive()]


class Forced(Exception):
    pass


class CtrlC:
    """Counts Ctrl-C presses while installed; the second one raises Forced."""

    def __init__(self) -> None:
        self.pressed = 0
        self._previous: Any = None

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: object) -> None:
        if self.pressed:
            raise Forced
        self.pressed = 1


class Command(BaseCommand):
    help = "Create and run an experiment from a YAML/JSON spec, or pause/resume/stop a sweep."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", nargs="?", help="experiment spec (YAML or JSON)")
        parser.add_argument("--wait", action="store_true", help="wait for the sweep to end (always, without Redis)")
        parser.add_argument("--min-score", type=float, help="exit 1 when the best score is below this")
        parser.add_argument("--max-failed", type=float, default=0.0, metavar="SHARE",
                            help="exit 1 when more than this share (0-1) of the finished samples failed (default 0)")  # fmt: skip
        parser.add_argument("--user", help="owner of the experiment (default: demo, or the first superuser)")
        parser.add_argument("--experiment", metavar="NAME",
                            help="add a sweep to your experiment of this name (its spec becomes FILE's) "
                                 "instead of creating another; created when there is none")  # fmt: skip
        parser.add_argument("--junit", metavar="PATH", help="write a JUnit XML report of the sweep (with --wait)")
        parser.add_argument("--baseline", metavar="previous|SWEEP_ID",
                            help="exit 1 when a configuration is significantly worse than in this sweep, or the "
                                 "best score drops (with --wait)")  # fmt: skip
        parser.add_argument("--alpha", type=float, default=0.05, help="--baseline's significance level (default 0.05)")
        for action in ALLOWED:
            parser.add_argument(f"--{action}", type=int, metavar="SWEEP_ID", help=f"{action} a sweep")

    def handle(self, *args, **options) -> None:
        self.open_console()
        for action in ALLOWED:
            if options[action] is not None:
                return self.control(action, options[action])
        if not options["file"]:
            raise CommandError("give a spec file, or --pause/--resume/--stop SWEEP_ID", returncode=2)
        max_failed = options["max_failed"]
        if not 0 <= max_failed <= 1:  # NaN too
            raise CommandError(f"--max-failed must be a share between 0 and 1, got {max_failed}", returncode=2)
        if not 0 < options["alpha"] < 1:
            raise CommandError(f"--alpha must be between 0 and 1, got {options['alpha']}", returncode=2)
        experiment = self.create(Path(options["file"]), options["user"], options["experiment"])
        baseline = self.baseline(experiment, options["baseline"]) if options["baseline"] else None
        self.start_and_report(experiment, wait=options["wait"] or bool(options["junit"] or baseline),
                              max_failed=max_failed, min_score=options["min_score"], junit=options["junit"],
                              baseline=baseline, alpha=options["alpha"])  # fmt: skip

    def open_console(self) -> None:
        width = shutil.get_terminal_size((140, 40)).columns  # pipes and CI logs get a wide table
        self.console = Console(file=cast(IO[str], self.stdout), highlight=False, width=width)  # a text stream

    def start_and_report(
        self,
        experiment: Experiment,
        *,
        wait: bool,
        max_failed: float = 0.0,
        min_score: float | None = None,
        junit: str | None = None,
        baseline: Sweep | None = None,
        alpha: float = 0.05,
    ) -> None:
        """Start a sweep of the experiment; unless it runs elsewhere and `wait` is off, follow it
        to the end, print its leaderboard, and exit 1 when it failed or missed a bar."""
        try:
            sweep = sweep_start(experiment=experiment, started_by=experiment.owner, via=Experiment.Source.CLI)
        except ServiceError as e:
            raise CommandError(str(e)) from None
        self.console.print(f"Experiment {experiment.pk} '{experiment.name}': sweep {sweep.pk} started.")
        if not (wait or settings.EMBEDDED_WORKER):
            self.console.print(f"Follow it with the API or the dashboard; control it with --pause/--stop {sweep.pk}.")
            return
        sweep = self.follow(sweep)
        self.print_leaderboard(sweep)
        if junit:
            Path(junit).write_bytes(junit_xml(sweep))
            self.console.print(f"JUnit report: {junit}", markup=False)
        if sweep.status == Sweep.Status.FAILED:
            raise CommandError(f"sweep {sweep.pk} failed: {sweep.error}", returncode=1)
        if sweep.status != Sweep.Status.COMPLETED:
            self.console.print(f"Sweep {sweep.pk} is {sweep.status} ({sweep.stopped_reason}).")
        self.check_failures(sweep, max_failed)
        if baseline is not None:
            self.check_regression(baseline, sweep, alpha)
        if min_score is not None and (sweep.best_score is None or sweep.best_score < min_score):
            raise CommandError(f"best score {sweep.best_score} is below --min-score {min_score}", returncode=1)

    def baseline(self, experiment: Experiment, which: str) -> Sweep:
        """The sweep to compare with: the experiment's latest so far ("previous"), or one by id."""
        if which == "previous":
            found = experiment.sweeps.order_by("-pk").first()
            if found is None:
                raise CommandError(f"--baseline previous: experiment {experiment.pk} has no sweep yet to compare "
                                   "with (run it once first, or name a sweep id)", returncode=2)  # fmt: skip
            return found
        if not which.isascii() or not which.isdigit():
            raise CommandError(f"--baseline must be previous or a sweep id, got {which!r}", returncode=2)
        try:
            return sweep_get(user=experiment.owner, sweep_id=int(which))
        except Http404:
            raise CommandError(f"--baseline: no sweep {which} of yours", returncode=2) from None

    def check_regression(self, baseline: Sweep, sweep: Sweep, alpha: float) -> None:
        """Print what changed since the baseline; exit 1 when a configuration got significantly
        worse or the best score dropped, 2 when the two sweeps share no configuration."""
        regression = sweep_regression(baseline, sweep, alpha=alpha)
        if not regression.changes:
            raise CommandError(f"--baseline: sweep {sweep.pk} has no configuration in common with sweep "
                               f"{baseline.pk}: nothing to compare", returncode=2)  # fmt: skip
        self.stdout.write(f"Against sweep {baseline.pk} (alpha {alpha:g}): {regression.summary}.")
        for change in regression.changes:
            if change.verdict == "unchanged":
                continue
            self.stdout.write(
                f"  {change.verdict}: run {change.before.run_id} -> run {change.after.run_id}, score "
                f"{change.before.score} -> {change.after.score} (p = {change.p_value:.3g} over {change.rows} rows); "
                f"pass -> fail rows {change.pass_to_fail or 'none'}, fail -> pass rows {change.fail_to_pass or 'none'}"
            )
        dropped = (baseline.best_score or 0) > (sweep.best_score or 0)
        if regression.count("worse") or dropped:
            why = "a configuration got significantly worse" if regression.count("worse") else "the best score dropped"
            raise CommandError(f"regression against sweep {baseline.pk}: {why} (best score {baseline.best_score} "
                               f"-> {sweep.best_score})", returncode=1)  # fmt: skip

    def check_failures(self, sweep: Sweep, max_failed: float) -> None:
        """Exit 1 when more than `max_failed` of the finished samples failed, after printing why
        they failed: a sweep whose every call got a 404 is not a success (issue 12, item 16)."""
        finished = sweep.completed + sweep.failed
        if not sweep.failed:
            return
        self.console.print(f"Failures ({formatting.count(sweep.failed)} samples):")
        for reason, n in failure_reasons(sweep):
            self.console.print(f"  {formatting.count(n)} × {reason}", markup=False)
        share = sweep.failed / finished
        if share > max_failed:
            raise CommandError(f"{share:.1%} of the finished samples failed, more than --max-failed {max_failed:g}",
                               returncode=1)  # fmt: skip

    def create(self, path: Path, username: str | None, name: str | None = None):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise CommandError(f"cannot read {path}: {e.strerror}", returncode=2) from None
        except UnicodeDecodeError:
            raise CommandError(f"{path} is not UTF-8 text", returncode=2) from None
        try:
            with transaction.atomic():  # an invalid spec saves nothing, not even the owner
                data = resolve_files(
                    load_spec_text(text), path.parent, max_bytes=settings.PROMPTLOOPER_MAX_BODY_BYTES
                )  # `{file: ...}` is read relative to the spec file
                if name is None:
                    return experiment_create(
                        owner=self.owner(username), data=data, source=Experiment.Source.CLI, text=text
                    )
                return experiment_named(owner=self.owner(username), name=name, data=data, text=text)
        except SpecError as e:
            lines = "\n".join(f"  {err}" for err in e.errors)
            raise CommandError(f"{path} is not a valid spec:\n{lines}", returncode=2) from None
        except ServiceError as e:  # the named experiment has a sweep in progress
            raise CommandError(str(e), returncode=1) from None

    def owner(self, username: str | None):
        if not username:
            return cli_user()
        try:
            return user_named(username)
        except ServiceError as e:
            raise CommandError(str(e), returncode=2) from None

    def control(self, action: str, sweep_id: int) -> None:
        try:
            sweep = sweep_transition(sweep=sweep_by_id(sweep_id), action=action)
        except Sweep.DoesNotExist:
            raise CommandError(f"no sweep {sweep_id}", returncode=2) from None
        except ServiceError as e:
            raise CommandError(str(e)) from None
        self.console.print(f"Sweep {sweep.pk}: {sweep.status}.")
        if action == "resume" and settings.EMBEDDED_WORKER:
            self.print_leaderboard(self.follow(sweep))

    def follow(self, sweep: Sweep) -> Sweep:
        """Until the sweep ends and, when this process executes it (embedded worker), until its
        calls in flight finished and were recorded: a pause or stop from elsewhere, or Ctrl-C
        here (which pauses it; a second Ctrl-C forces), never orphans samples."""
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        interrupts = CtrlC() if settings.EMBEDDED_WORKER else None
        try:
            with interrupts or nullcontext(), Progress(*columns, console=self.console, transient=False) as progress:
                task = progress.add_task(f"sweep {sweep.pk}", total=None)
                while True:
                    executing = executors(sweep)  # looked at before the status: its last results are in
                    sweep.refresh_from_db()
                    done = sweep.done
                    progress.update(task, completed=done, total=sweep.total or None,
                                    description=f"sweep {sweep.pk} {sweep.status}")  # fmt: skip
                    if not sweep.is_active and not executing:
                        return sweep
                    if interrupts and interrupts.pressed == 1 and sweep.is_active:
                        interrupts.pressed += 1  # handled once
                        self.console.print(f"Pausing sweep {sweep.pk}: the calls in flight finish and are recorded "
                                           "(Ctrl-C again to abandon them).")  # fmt: skip
                        try:
                            sweep_pause(sweep=sweep)
                        except ServiceError:
                            pass  # it ended meanwhile
                    time.sleep(POLL_S)
        except Forced:
            raise CommandError(
                f"interrupted: sweep {sweep.pk}'s calls in flight were abandoned; "
                f"`manage.py sweep --resume {sweep.pk}` continues it",
                returncode=130,
            ) from None

    def print_leaderboard(self, sweep: Sweep, limit: int = 10) -> None:
        runs = leaderboard(sweep, limit=limit)
        params = varying_params(runs) if runs else []
        scorers = sweep_scorer_names(sweep)
        means = scorer_means(runs, live=False)
        table = Table(title=f"Leaderboard · sweep {sweep.pk} · {sweep.status}")
        for header in ["#", "score [95 %]", *scorers, *params, "status", "tokens", "cost $"]:
            table.add_column(header, overflow="fold")
        for rank, run in enumerate(runs, 1):
            score = f"{run.score:.3f}" if run.score is not None else "–"
            if run.score_ci_low is not None:
                score += f" [{run.score_ci_low:.2f}–{run.score_ci_high:.2f}]"
            values = [formatting.param(get_path(run.config, p, "")) for p in params]
            table.add_row(str(rank), score, *formatting.scorer_means(means[run.pk], len(scorers)), *values,
                          formatting.run_status(run.status, run.samples_failed),
                          formatting.count(run.tokens_in + run.tokens_out), f"{run.cost_usd:.5f}")  # fmt: skip
        self.console.print(table)
        count = formatting.count
        self.console.print(
            f"{sweep_progress(sweep)['progress_text']}: {count(sweep.completed)} completed, "
            f"{count(sweep.failed)} failed · {count(sweep.cached_calls)} calls from cache · "
            f"{count(sweep.tokens_in + sweep.tokens_out)} tokens spent, {count(sweep.saved_tokens)} saved by cache · "
            f"${sweep.cost_usd:.4f}"
        )
        if sweep.pruned:
            self.console.print(f"Early stopping pruned {sweep.pruned:,} samples: about {sweep.pruned_tokens:,} tokens "
                               f"and ${sweep.pruned_cost_usd:.4f} not spent.")  # fmt: skip
        if verdict := top_two_verdict(sweep):
            first, second = verdict_names(sweep, verdict["run_ids"])
            answer = "distinguishable" if verdict["distinguishable"] else "not distinguishable: it may be noise"
            self.console.print(f"{first} and {second} (the top two): {answer} "
                               f"(p = {verdict['p_value']:.3g}, Wilcoxon over {verdict['rows']} rows; "
                               f"difference {verdict['difference']:+.3f}, 95 % [{verdict['ci_low']:+.3f}, {verdict['ci_high']:+.3f}])")  # fmt: skip
