"""Labels, durations and log levels read and shown one way, as a user meets
them on the pages, in the REST API and in the ``orchestra`` command."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from executions.models import LogEntry
from orchestra.cli import main

pytestmark = pytest.mark.django_db

FLOW_FILE = """id: labelled
namespace: tests.labels
tasks:
  - id: hello
    type: Log
    message: hi
"""


@pytest.mark.parametrize("query", ["labels=team:data", "labels=team%3Ddata"])
def test_the_label_filter_reads_both_syntaxes_on_the_page_and_in_the_api(
    client, alice, token_for, make_execution, query
):
    data = make_execution(labels={"team": "data", "env": "prod"})
    make_execution(labels={"team": "web"})
    client.force_login(alice)
    page = client.get(f"/executions/?{query}")
    assert [e.pk for e in page.context["page"].rows] == [data.pk]
    api = client.get(f"/api/executions?{query}", headers=token_for(alice))
    assert [row["id"] for row in api.json()["results"]] == [data.pk]


def test_a_bad_label_filter_names_the_one_syntax(client, alice, token_for):
    api = client.get("/api/executions?labels=nolabel", headers=token_for(alice))
    assert api.status_code == 400
    assert "label 'nolabel' must be key:value, e.g. env:prod" in api.json()["detail"]


def test_the_same_duration_text_on_the_execution_page_and_in_the_cli(
    client, alice, make_execution, capsys
):
    execution = make_execution(state="SUCCESS")
    execution.ended_at = execution.started_at + timedelta(seconds=4.2)
    execution.save(update_fields=["ended_at"])
    client.force_login(alice)
    html = client.get(f"/executions/{execution.pk}/").content.decode()
    assert "4.2s" in html and "4.20s" not in html
    assert main(["executions", "list"]) == 0
    assert "4.2s" in capsys.readouterr().out
    assert main(["executions", "get", str(execution.pk)]) == 0
    assert "duration: 4.2s" in capsys.readouterr().out


def test_sla_pages_show_labels_as_key_colon_value(client, alice):
    from sla.models import SlaRule

    SlaRule.objects.create(
        name="strict",
        namespace="company",
        sla=timedelta(hours=1),
        labels={"env": "prod"},
        add_labels={"sla": "breached"},
    )
    client.force_login(alice)
    html = client.get("/sla/").content.decode()
    assert "company.* env:prod" in html and "labels sla:breached" in html
    assert "sla=breached" not in html and "1h 00m" in html


def test_the_warning_spelling_counts_as_warn_in_the_api_and_the_cli(
    client, alice, token_for, make_execution, capsys
):
    execution = make_execution()
    for level in ("INFO", "WARN", "WARNING", "ERROR"):
        LogEntry.objects.create(execution=execution, level=level, message=level)
    url = f"/api/executions/{execution.pk}/logs"
    for level in ("WARN", "warning"):
        rows = client.get(f"{url}?level={level}", headers=token_for(alice)).json()
        assert [r["message"] for r in rows["results"]] == ["WARN", "WARNING", "ERROR"]
    bad = client.get(f"{url}?level=LOUD", headers=token_for(alice))
    assert bad.status_code == 400 and "use one of TRACE" in str(bad.json())
    assert main(["executions", "logs", str(execution.pk), "--level", "warn"]) == 0
    out = capsys.readouterr().out
    assert "WARNING" in out and " INFO" not in out


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("label", ["team:data", "team=data"])
def test_the_cli_label_option_reads_both_syntaxes(tmp_path, capsys, label):
    flow = tmp_path / "labelled.yml"
    flow.write_text(FLOW_FILE)
    code = main(
        ["flows", "test", str(flow), "--label", label, "-l", "note:a,b", "--json"]
    )
    assert code == 0, capsys.readouterr().err
    labels = json.loads(capsys.readouterr().out)["labels"]
    assert labels["team"] == "data" and labels["note"] == "a,b"


def test_a_bad_cli_label_is_a_usage_error_naming_the_syntax(tmp_path, capsys):
    flow = tmp_path / "labelled.yml"
    flow.write_text(FLOW_FILE)
    assert main(["flows", "test", str(flow), "--label", "nolabel"]) == 2
    assert "--label: label 'nolabel' must be key:value" in capsys.readouterr().err


def test_every_command_group_is_there_without_guarded_imports(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for group in ("flows", "executions", "sla", "users", "cleanup", "manage"):
        assert group in out, group
    with pytest.raises(SystemExit):
        main(["flows", "--help"])
    assert "backfill" in capsys.readouterr().out  # from executions/triggers/cli.py


def test_the_overview_counts_sla_misses_and_stuck_executions(client, alice):
    client.force_login(alice)
    response = client.get("/")
    assert response.status_code == 200
    assert response.context["sla_misses"] == 0
    html = response.content.decode()
    assert "SLA misses" in html and "stuck" in html
    # The stuck tile loads the stuck page's own count.
    assert 'hx-get="/stuck/count"' in html
    assert client.get("/stuck/count").content == b"0"
