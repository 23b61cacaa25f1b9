from django.db import migrations


def create_gin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS ex_labels_gin ON executions_execution "
            "USING gin (labels jsonb_path_ops)"
        )


def drop_gin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS ex_labels_gin")


class Migration(migrations.Migration):
    dependencies = [("executions", "0001_initial")]
    operations = [migrations.RunPython(create_gin, drop_gin)]
