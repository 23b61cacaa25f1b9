"""The sweep's entry points: `orchestra sla check`, the django-crontab job,
the Celery beat schedule."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from orchestra.cli import main
from sla.models import Deadline, SlaMiss
from tests.sla.flows import NIGHTLY


@pytest.fixture
def overdue(deploy, rule, started):
    rule(name="etl", namespace="company", sla="1h", recipients="oncall@example.com")
    execution = started(deploy(NIGHTLY))
    Deadline.objects.update(due_at=timezone.now() - timedelta(minutes=1))
    return execution


@pytest.mark.django_db
def test_sla_check_prints_what_it_found(overdue, capsys, smtp):
    assert main(["sla", "check"]) == 0
    out = capsys.readouterr().out
    assert "SLA sweep: 1 duration miss(es)" in out and "1 email(s) sent" in out
    assert f"company.data.nightly  {overdue.pk}" in out
    assert len(smtp.messages) == 1


@pytest.mark.django_db
def test_sla_check_json_for_scripts(overdue, capsys):
    assert main(["sla", "check", "--json", "--no-email"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (
        data["misses"] == 1 and data["emailsSent"] == 0 and data["expectedMisses"] == 0
    )
    [miss] = data["newMisses"]
    assert miss["executionId"] == overdue.pk and miss["level"] == "SLA"
    assert miss["threshold"] == "PT1H" and miss["executionState"] == "RUNNING"
    assert miss["recipients"] == ["oncall@example.com"] and miss["emailed"] is False

    assert main(["sla", "misses", "--json", "--namespace", "company"]) == 0
    assert [m["id"] for m in json.loads(capsys.readouterr().out)] == [miss["id"]]
    assert main(["sla", "misses", "--namespace", "other"]) == 0
    assert "No SLA misses." in capsys.readouterr().out


@pytest.mark.django_db
def test_sla_rules_lists_rules(rule, capsys):
    rule(
        name="etl",
        namespace="company",
        flow_id="nightly",
        slo="45m",
        sla="1h30m",
        recipients="b@example.com,a@example.com",
    )
    assert main(["sla", "rules"]) == 0
    out = capsys.readouterr().out
    assert "company.nightly" in out and "45m 00s" in out and "1h 30m" in out
    assert "a@example.com, b@example.com" in out


@pytest.mark.django_db
def test_the_crontab_job_runs_the_sweep(overdue, capsys):
    from django_crontab.crontab import Crontab

    [job] = settings.CRONJOBS
    job_hash = Crontab()._Crontab__hash_job(job)
    call_command("crontab", "run", job_hash)
    assert SlaMiss.objects.get().execution == overdue
    assert "1 duration miss(es)" in capsys.readouterr().out


def test_beat_runs_the_sweep_every_minute():
    from orchestra.celery import app

    app.loader.import_default_modules()  # what a worker does at start (autodiscovery)
    entry = settings.CELERY_BEAT_SCHEDULE["sla-sweep"]
    assert entry["schedule"] == 60.0
    assert app.tasks[entry["task"]].__module__ == "sla.tasks"


def test_crontab_add_installs_a_line_that_names_the_job(tmp_path, settings, capsys):
    from pathlib import Path

    from django_crontab.crontab import Crontab

    # A stand-in for /usr/bin/crontab: "-l" lists nothing, FILE installs it.
    installed = tmp_path / "installed"
    fake = tmp_path / "crontab"
    fake.write_text(f'#!/bin/sh\n[ "$1" = "-l" ] && exit 0\ncp "$1" {installed}\n')
    fake.chmod(0o755)
    settings.CRONTAB_EXECUTABLE = str(fake)
    call_command("crontab", "add")
    [line] = installed.read_text().splitlines()
    [job] = settings.CRONJOBS
    schedule, command = line[:9], line[10:]
    assert schedule == "* * * * *"
    assert f"crontab run {Crontab()._Crontab__hash_job(job)}" in command
    assert f"ORCHESTRA_HOME={settings.ORCHESTRA_HOME}" in command
    assert Path(settings.CRONTAB_DJANGO_MANAGE_PATH).is_file()
    assert "sla-cron.log" in command


def test_a_sweep_stands_aside_while_another_runs(postgres, overdue, capsys):
    import psycopg

    from sla.sweep import SWEEP_LOCK
    from tests.conftest import test_database_url

    with psycopg.connect(
        test_database_url().replace("postgres://", "postgresql://", 1), autocommit=True
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [SWEEP_LOCK])
        assert main(["sla", "check", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["skipped"] is True
        assert not SlaMiss.objects.exists()
    assert main(["sla", "check"]) == 0
    assert SlaMiss.objects.get().execution == overdue
