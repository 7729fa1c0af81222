"""Runs keep each scorer's mean, set as they close; runs closed before this get theirs here,
by the rule selectors.runs.compute_scorer_means states (a failed sample counts 0)."""

from django.db import migrations, models
from django.db.models import Count, Sum

SCORED = ("completed", "failed")


def fill(apps, schema_editor):
    Run, RunSample, Score = (apps.get_model("sweeps", name) for name in ("Run", "RunSample", "Score"))
    closed = Run.objects.filter(finished_at__isnull=False)
    counted = dict(
        RunSample.objects.filter(run__in=closed, status__in=SCORED)
        .values("run_id")
        .annotate(n=Count("id"))
        .values_list("run_id", "n")
    )
    means: dict[int, list] = {}
    totals = (
        Score.objects.filter(sample__run__in=closed, sample__status__in=SCORED)
        .values("sample__run_id", "scorer_index", "name")
        .annotate(total=Sum("value"))
        .order_by("sample__run_id", "scorer_index")
    )
    for row in totals.iterator():
        n = counted.get(row["sample__run_id"], 0)
        mean = round(row["total"] / n, 9) if n else None
        means.setdefault(row["sample__run_id"], []).append({"name": row["name"], "mean": mean, "n": n})
    changed = []
    for run in closed.only("id").iterator():
        run.scorer_means = means.get(run.pk, [])
        changed.append(run)
        if len(changed) == 1000:
            Run.objects.bulk_update(changed, ["scorer_means"])
            changed = []
    Run.objects.bulk_update(changed, ["scorer_means"])


class Migration(migrations.Migration):
    dependencies = [("sweeps", "0013_experiment_one_stored_spec")]

    operations = [
        migrations.AddField(model_name="run", name="scorer_means", field=models.JSONField(blank=True, default=list)),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
