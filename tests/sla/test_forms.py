"""The rule form: what users type, and the clear errors they get."""

from datetime import timedelta

import pytest

from sla.forms import SlaRuleForm
from sla.models import SlaRule

VALID = {
    "name": "etl",
    "namespace": "company.data",
    "slo": "45m",
    "sla": "PT1H",
    "tz": "UTC",
    "on_breach": "NONE",
    "enabled": "on",
}


def form(**changes):
    data = {**VALID, **changes}
    return SlaRuleForm(data={k: v for k, v in data.items() if v is not None})


@pytest.mark.django_db
def test_it_accepts_iso_and_short_durations_labels_and_recipients():
    f = form(
        sla="1h30m",
        labels="env=prod, team=data",
        add_labels="sla=breached",
        recipients="Oncall@example.com; data@example.com",
        on_breach="CANCEL",
    )
    assert f.is_valid(), f.errors
    rule = f.save()
    assert rule.slo == timedelta(minutes=45) and rule.sla == timedelta(
        hours=1, minutes=30
    )
    assert rule.labels == {"env": "prod", "team": "data"}
    assert rule.add_labels == {"sla": "breached"}
    assert rule.recipients == "data@example.com, oncall@example.com"
    # Typed as key=value, shown back in the edit form as ISO-8601 and the
    # key:value text every other label field uses.
    edit = SlaRuleForm(instance=SlaRule.objects.get())
    assert 'value="PT1H30M"' in str(
        edit["sla"]
    ) and 'value="env:prod, team:data"' in str(edit["labels"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes, field, message",
    [
        (
            {"sla": "1 hour"},
            "sla",
            "'1 hour' is not a duration; use ISO-8601 such as PT1H30M or P1D, or a short form such as "
            "45m, 1h30m, 10s.",
        ),
        ({"slo": "PT0S"}, "slo", "must be longer than zero"),
        (
            {"slo": "2h"},
            "slo",
            "the SLO (warning) must be shorter than the SLA (breach)",
        ),
        (
            {"namespace": "company..data"},
            "namespace",
            "'company..data' is not a namespace; use dotted names such as company.data",
        ),
        (
            {"expected_runs": "1"},
            "expected_cron",
            "say which cron window the runs are counted in",
        ),
        (
            {"expected_runs": "1", "expected_cron": "every day"},
            "expected_cron",
            "'every day' is not a cron expression; use five fields such as '0 10 * * *'",
        ),
        (
            {"tz": "Mars/Olympus"},
            "tz",
            "unknown time zone 'Mars/Olympus'; use a name such as UTC or Europe/Paris",
        ),
        (
            {"recipients": "oncall@example.com, not-an-address"},
            "recipients",
            "not an email address: not-an-address",
        ),
        (
            {"labels": "env"},
            "labels",
            "label 'env' must be key:value, e.g. env:prod",
        ),
        (
            {"slo": "", "sla": ""},
            "__all__",
            "a rule needs an SLO, an SLA or an expected number of runs per window (or recipients "
            "and actions, for flows that set their own SLA/SLO inputs)",
        ),
    ],
)
def test_it_rejects_bad_input_with_a_clear_message_and_saves_nothing(
    changes, field, message
):
    f = form(**changes)
    assert not f.is_valid()
    assert f.errors[field] == [message]
    assert SlaRule.objects.count() == 0
