from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("sweeps", "0010_sample_foreign_keys_use_the_composite_indexes")]

    operations = [
        migrations.AddField(
            model_name="sweep",
            name="cached_calls",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
