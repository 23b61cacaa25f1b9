"""The small defects of issue 14 that need no browser: the cron error names
the field, the stuck message says "1 minute", an SLA rule for a flow that
does not exist is saved with a warning, the admin says "SLA misses"."""

from __future__ import annotations

import pytest

from executions.stuck.cleanup import message
from flows.triggers import validate_cron
from sla.models import SlaMiss, SlaRule

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 25 * * *", "hour 25 is out of range (0-23)"),
        ("61 * * * *", "minute 61 is out of range (0-59)"),
        ("0 2 32 * *", "day of month 32 is out of range (1-31)"),
        ("0 2 1 13 *", "month 13 is out of range (1-12)"),
        ("0 2 * * 1-9", "day of week 9 is out of range (0-7)"),
        ("75 0 2 * * *", "second 75 is out of range (0-59)"),
    ],
)
def test_a_cron_error_says_which_field_is_out_of_range(cron, says):
    with pytest.raises(ValueError) as error:
        validate_cron(cron)
    assert str(error.value) == f"invalid cron expression {cron!r}: {says}"


def test_steps_and_names_are_not_taken_for_values():
    assert validate_cron("*/15 2 * JAN MON-FRI") == "*/15 2 * JAN MON-FRI"


def test_the_sla_form_names_the_cron_field(client):
    from sla.forms import SlaRuleForm

    form = SlaRuleForm(
        {
            "name": "daily",
            "namespace": "company",
            "expected_runs": 1,
            "expected_cron": "0 24 * * *",
            "tz": "UTC",
        }
    )
    assert not form.is_valid()
    assert form.errors["expected_cron"] == [
        "'0 24 * * *' is not a cron expression: hour 24 is out of range (0-23)"
    ]


def test_the_stuck_message_counts_minutes_in_english():
    assert message(1, 1, True) == "Would cancel 1 stuck execution older than 1 minute"
    assert message(2, 5, False) == "Cancelled 2 stuck executions older than 5 minutes"


def test_a_rule_for_a_flow_that_does_not_exist_is_saved_with_a_warning(client, deploy):
    from tests.web.conftest import _user

    editor = _user("erin", "editor", "company")
    client.force_login(editor)
    deploy(
        "id: nightly\nnamespace: company.data\ntasks:\n  - id: a\n    type: Log\n    message: hi\n"
    )
    base = {
        "namespace": "company.data",
        "sla": "1h",
        "tz": "UTC",
        "on_breach": "NONE",
        "enabled": "on",
    }
    page = client.post(
        "/sla/rules/new/", {**base, "name": "typo", "flow_id": "nightyl"}, follow=True
    ).content.decode()
    assert "No flow &#x27;nightyl&#x27; exists in company.data yet" in page
    assert 'class="msg-warning"' in page
    assert SlaRule.objects.filter(flow_id="nightyl").exists()
    fine = client.post(
        "/sla/rules/new/", {**base, "name": "ok", "flow_id": "nightly"}, follow=True
    ).content.decode()
    assert "exists in" not in fine


def test_the_admin_says_sla_misses():
    assert str(SlaMiss._meta.verbose_name_plural) == "SLA misses"
    assert str(SlaRule._meta.verbose_name_plural) == "SLA rules"
