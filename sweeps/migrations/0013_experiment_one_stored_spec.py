"""The spec is stored once, in Experiment.spec; the nine columns that mirrored it are folded in.

Rows are carried over as the columns held them (they were written from the validated spec's
normal form), and back again on a reverse migration. The conversion is written here rather
than imported, so that later changes to the engine never change what this migration does.
"""

from django.db import migrations, models

MIRRORED = ("pipeline", "dataset", "scorers", "parameter_space", "repeats", "max_concurrency",
            "max_tokens", "max_cost_usd", "fail_fast")  # fmt: skip


def spec_from_columns(row) -> dict:
    return {
        "name": row.name,
        "description": row.description,
        "pipeline": row.pipeline,
        "dataset": row.dataset,
        "scorers": row.scorers,
        "sweep": row.parameter_space,
        "repeats": row.repeats,
        "max_concurrency": row.max_concurrency,
        "budget": {"max_tokens": row.max_tokens, "max_cost_usd": row.max_cost_usd},
        "fail_fast": row.fail_fast,
    }


def columns_from_spec(spec: dict) -> dict:
    budget = spec.get("budget") or {}
    return {
        "pipeline": spec.get("pipeline", []),
        "dataset": spec.get("dataset", []),
        "scorers": spec.get("scorers", []),
        "parameter_space": spec.get("sweep", {}),
        "repeats": spec.get("repeats", 1),
        "max_concurrency": spec.get("max_concurrency", 8),
        "max_tokens": budget.get("max_tokens"),
        "max_cost_usd": budget.get("max_cost_usd"),
        "fail_fast": spec.get("fail_fast", True),
    }


def fold_columns_into_spec(apps, schema_editor) -> None:
    Experiment = apps.get_model("sweeps", "Experiment")
    for row in Experiment.objects.only("pk", "name", "description", *MIRRORED).iterator(chunk_size=200):
        Experiment.objects.filter(pk=row.pk).update(spec=spec_from_columns(row))


def unfold_spec_into_columns(apps, schema_editor) -> None:
    Experiment = apps.get_model("sweeps", "Experiment")
    for row in Experiment.objects.only("pk", "spec").iterator(chunk_size=200):
        Experiment.objects.filter(pk=row.pk).update(**columns_from_spec(row.spec or {}))


class Migration(migrations.Migration):
    dependencies = [
        ("sweeps", "0012_providers_truncated_and_rate_limited"),
    ]

    operations = [
        migrations.AddField(model_name="experiment", name="spec", field=models.JSONField(default=dict)),
        migrations.RunPython(fold_columns_into_spec, unfold_spec_into_columns),
        migrations.AlterField(model_name="experiment", name="spec", field=models.JSONField()),
        *(migrations.RemoveField(model_name="experiment", name=name) for name in MIRRORED),
    ]
