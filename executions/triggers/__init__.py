"""Triggers: what starts executions besides a person.

- registry.py keeps one ``Trigger`` row per trigger of every deployed flow
  (written when the flow is saved);
- schedule.py fires cron dates (Celery beat runs ``evaluate_schedules``) and
  backfills date ranges;
- webhook.py answers ``/api/executions/webhook/<namespace>/<flow>/<key>``;
- flow.py starts flows when other executions end.

Each firing is a ``TriggerEvent`` row whose unique constraints make a date,
or the end of a source execution, fire at most once.
"""
