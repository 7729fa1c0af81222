from django.db import migrations

# The offline provider every install has. Its prices are nominal (like a small hosted model),
# so cost figures and cost budgets behave in demos as they would with a real provider.
MOCK = {
    "kind": "mock",
    "price_in_per_mtok": 0.15,
    "price_out_per_mtok": 0.60,
    "options": {"latency_ms": 150, "jitter": 0.5},
}


def add_mock(apps, schema_editor):
    apps.get_model("sweeps", "Provider").objects.get_or_create(name="mock", defaults=MOCK)


class Migration(migrations.Migration):
    dependencies = [("sweeps", "0001_initial")]
    operations = [migrations.RunPython(add_mock, migrations.RunPython.noop)]
