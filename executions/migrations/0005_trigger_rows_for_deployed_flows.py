"""Trigger rows for the flows deployed before triggers were tracked (a flow
saved again unchanged makes no new revision, so it would never get them)."""

from django.db import migrations


def forwards(apps, schema_editor):
    from executions.triggers.registry import sync_triggers
    from flows.spec import FlowInvalid, parse_flow

    Flow = apps.get_model("flows", "Flow")
    FlowRevision = apps.get_model("flows", "FlowRevision")
    Trigger = apps.get_model("executions", "Trigger")
    for flow in Flow.objects.filter(deleted=False):
        revision = FlowRevision.objects.filter(flow=flow, revision=flow.revision).first()
        if revision is None:
            continue
        try:
            spec = parse_flow(revision.source)
        except FlowInvalid:
            continue  # stays without triggers until it is fixed and saved again
        sync_triggers(flow, revision.revision, spec, model=Trigger)


class Migration(migrations.Migration):
    dependencies = [
        ("executions", "0004_triggers"),
        ("flows", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
