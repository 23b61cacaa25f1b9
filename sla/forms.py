"""Forms for SLA rules and the misses filter. The REST API validates rules
with the same form, so a rule is checked the same way wherever it is made."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta
from typing import Any

from croniter import croniter
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from executions.forms import LabelsField
from flows.spec import FLOW_ID_RE, NAMESPACE_RE
from orchestra.lib.cronfields import out_of_range
from orchestra.lib.durations import parse_duration, to_iso
from sla.models import Behavior, Level, SlaRule, normalize_recipients


class DurationField(forms.CharField):
    """ISO-8601 (PT1H30M) or short forms (45m, 1h30m); shown back as ISO-8601."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, timedelta):
            return to_iso(value)
        return value

    def to_python(self, value: Any) -> timedelta | None:
        if isinstance(value, timedelta):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value) + "s"  # a JSON number: seconds
        if not isinstance(value, str | None):
            raise ValidationError(
                f"a duration is text such as PT1H or 45m, not {type(value).__name__}"
            )
        text = (value or "").strip()
        if not text:
            return None
        try:
            delta = parse_duration(text)
        except ValueError as exc:
            raise ValidationError(f"{exc}.") from None
        if delta.total_seconds() <= 0:
            raise ValidationError("must be longer than zero")
        return delta


class SlaRuleForm(forms.ModelForm):
    slo = DurationField(
        required=False,
        label="SLO (warning)",
        help_text="Warn when a run takes longer: PT45M, 45m, 1h30m.",
    )
    sla = DurationField(
        required=False,
        label="SLA (breach)",
        help_text="Alert and act when a run takes longer: PT1H, 1h.",
    )
    labels = LabelsField(
        required=False,
        label="Label selector",
        help_text="Only executions with all these labels: env:prod, team:data.",
    )
    add_labels = LabelsField(
        required=False,
        label="Add labels on breach",
        help_text="sla:breached",
    )
    recipients = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Email addresses, separated by commas.",
    )

    class Meta:
        model = SlaRule
        fields = [
            "name",
            "namespace",
            "flow_id",
            "labels",
            "slo",
            "sla",
            "expected_runs",
            "expected_cron",
            "tz",
            "recipients",
            "on_breach",
            "add_labels",
            "enabled",
        ]
        labels = {
            "flow_id": "Flow id",
            "expected_runs": "Expected successful runs",
            "expected_cron": "per cron window",
            "on_breach": "On breach",
        }
        help_texts = {
            "expected_runs": "At least this many successful runs in each window…",
            "expected_cron": "…ending at each cron time, e.g. '0 10 * * *' (checked daily at "
            "10:00 over the previous 24 h).",
            "tz": "Time zone of the cron expression.",
        }

    def clean_namespace(self) -> str:
        value = self.cleaned_data["namespace"].strip()
        if not NAMESPACE_RE.match(value):
            raise ValidationError(
                f"'{value}' is not a namespace; use dotted names such as company.data"
            )
        return value

    def clean_flow_id(self) -> str:
        value = (self.cleaned_data.get("flow_id") or "").strip()
        if value and not FLOW_ID_RE.match(value):
            raise ValidationError(
                f"'{value}' is not a flow id; use letters, digits, '_', '-', '.'"
            )
        return value

    def clean_expected_cron(self) -> str:
        value = (self.cleaned_data.get("expected_cron") or "").strip()
        if value and not croniter.is_valid(value):
            problem = out_of_range(value.split())
            raise ValidationError(
                f"'{value}' is not a cron expression"
                + (
                    f": {problem}"
                    if problem
                    else "; use five fields such as '0 10 * * *'"
                )
            )
        return value

    def clean_tz(self) -> str:
        value = (self.cleaned_data.get("tz") or "UTC").strip()
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError(
                f"unknown time zone '{value}'; use a name such as UTC or Europe/Paris"
            ) from None
        return value

    def clean_recipients(self) -> str:
        addresses = normalize_recipients(self.cleaned_data.get("recipients") or "")
        bad = []
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            raise ValidationError(f"not an email address: {', '.join(bad)}")
        return ", ".join(addresses)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        slo, sla = data.get("slo"), data.get("sla")
        runs, cron = data.get("expected_runs"), data.get("expected_cron")
        if slo and sla and slo >= sla:
            self.add_error(
                "slo", "the SLO (warning) must be shorter than the SLA (breach)"
            )
        if runs and not cron and "expected_cron" not in self.errors:
            self.add_error(
                "expected_cron", "say which cron window the runs are counted in"
            )
        if cron and not runs:
            self.add_error(
                "expected_runs", "say how many successful runs each window needs"
            )
        if runs == 0:
            self.add_error("expected_runs", "must be at least 1")
        acts = (
            data.get("recipients")
            or data.get("add_labels")
            or (data.get("on_breach") not in (None, "", Behavior.NONE))
        )
        if not (slo or sla or (runs and cron) or acts) and not self.errors:
            raise ValidationError(
                "a rule needs an SLO, an SLA or an expected number of runs per window "
                "(or recipients and actions, for flows that set their own SLA/SLO inputs)"
            )
        return data


class MissFilterForm(forms.Form):
    namespace = forms.CharField(required=False)
    flow = forms.CharField(required=False)
    level = forms.ChoiceField(
        required=False, choices=[("", "any level"), *Level.choices]
    )
    since = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    rule = forms.IntegerField(required=False, min_value=1, label="Rule id")

    def filter(self, qs):
        data = self.cleaned_data
        if data.get("namespace"):
            qs = qs.in_namespace(data["namespace"].strip())
        if data.get("flow"):
            qs = qs.filter(flow_id=data["flow"].strip())
        if data.get("level"):
            qs = qs.filter(level=data["level"])
        if data.get("since"):
            qs = qs.filter(detected_at__gte=_day_start(data["since"]))
        if data.get("until"):
            qs = qs.filter(
                detected_at__lt=_day_start(data["until"]) + timedelta(days=1)
            )
        if data.get("rule"):
            qs = qs.filter(rule_id=data["rule"])
        return qs


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))
