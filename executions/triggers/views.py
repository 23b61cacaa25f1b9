"""Backfill on the flow page: preview a Schedule trigger's dates, then start them.

The form sits on the flow page and posts here with htmx into ``#backfill``;
the same ``schedule.backfill`` serves the REST API and the CLI.
"""

from __future__ import annotations

from django import forms
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from accounts import roles
from executions.forms import LabelsField
from executions.lifecycle.actor import Actor
from executions.lifecycle.base import ActionError
from executions.triggers import schedule
from flows.access import get_flow_for_user


class BackfillForm(forms.Form):
    """A Schedule trigger and a date range; the dates themselves are checked
    by executions.triggers.schedule.backfill, as for the API and the CLI."""

    trigger = forms.ChoiceField(label="Schedule trigger")
    start = forms.CharField(
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "2024-01-01"}),
        help_text="ISO date or datetime, in the trigger's time zone unless it has an offset.",
    )
    end = forms.CharField(
        max_length=64,
        widget=forms.TextInput(attrs={"placeholder": "2024-01-31"}),
        help_text="Inclusive: a date without a time includes that whole day.",
    )
    labels = LabelsField(
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "reason:reload"}),
        help_text="Extra labels for the executions, key:value, comma-separated.",
    )
    # The flow revision the preview was made with (confirm only).
    revision = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, schedules: list[str], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["trigger"].choices = [(s, s) for s in schedules]


@require_http_methods(["GET", "POST"])
def backfill_flow(request, namespace: str, flow_id: str):
    """Backfill a Schedule trigger: POST 1 previews the dates (marking those
    that fired already), POST 2 with confirm=yes starts the others. The form
    also sits on the flow page, which posts here with htmx into ``#backfill``."""
    flow = get_flow_for_user(request, namespace, flow_id, roles.OPERATOR)
    schedules = schedule.schedule_ids(flow.latest.spec)
    form = BackfillForm(
        schedules,
        request.POST or None,
        initial={"trigger": request.GET.get("trigger")},
    )
    context = {"nav": "flows", "flow": flow, "form": form, "schedules": schedules}
    status = 200
    if request.method == "POST" and not form.is_valid():
        status = 400
    elif request.method == "POST":
        data = form.cleaned_data
        confirm = request.POST.get("confirm") == "yes"
        previewed = data["revision"]
        if confirm and previewed is not None and previewed != flow.revision:
            # The cron or the inputs may differ from what was previewed.
            context["changed"] = previewed
            confirm = False
        try:
            report = schedule.backfill(
                namespace,
                flow_id,
                data["trigger"],
                data["start"],
                data["end"],
                labels=data["labels"],
                actor=Actor.from_request(request, "web"),
                dry_run=not confirm,
                max_dates=schedule.MAX_BACKFILL_HTTP,
            )
        except ActionError as exc:
            form.add_error(None, str(exc))
            status = 400
        else:
            context.update(
                report=report,
                dry_run=not confirm,
                already=set(report.existing),
                message=report.summary(not confirm),
            )
    template = "triggers/backfill.html"
    if request.htmx:
        template += "#panel"
    return render(request, template, context, status=status)
