from django.db import migrations

# Present on every install; each is available as soon as its key's environment variable is set
# (the key itself is never stored). Prices come from sweeps/providers/prices.py per model.
HOSTED = {
    "openai": {"kind": "openai", "api_key_env": "OPENAI_API_KEY"},
    "anthropic": {"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
}


def add_hosted(apps, schema_editor):
    Provider = apps.get_model("sweeps", "Provider")
    for name, fields in HOSTED.items():
        Provider.objects.get_or_create(name=name, defaults=fields)


class Migration(migrations.Migration):
    dependencies = [("sweeps", "0004_experiment_fail_fast")]
    operations = [migrations.RunPython(add_hosted, migrations.RunPython.noop)]
