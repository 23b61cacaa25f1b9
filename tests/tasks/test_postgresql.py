"""PostgreSQL Query, CopyIn and Load against a real server."""

from __future__ import annotations

import json

from executions.lifecycle.actor import Actor
from executions.lifecycle.start import create_execution
from executions.lifecycle.stop import kill
from executions.models import State
from executions.storage import read_uri
from tests.tasks.helpers import flow, indent


def _conn(pg) -> str:
    return (
        f"    url: {pg['url']}\n    username: {pg['username']}\n"
        f"    password: '{pg['password']}'\n"
    )


def _query(pg, task_id: str, sql: str, extra: str = "") -> str:
    return (
        f"  - id: {task_id}\n    type: io.kestra.plugin.jdbc.postgresql.Query\n"
        + _conn(pg)
        + "    sql: |\n"
        + indent(sql.strip(), 6)
        + extra
    )


def test_query_runs_sql_with_parameters_and_every_fetch_type(
    deploy, run_inprocess, pg_scratch
):
    s = pg_scratch["schema"]
    rev = deploy(
        flow(
            _query(
                pg_scratch,
                "create",
                f"CREATE TABLE {s}.users (id int, name text, score numeric, seen timestamptz);\n"
                f"INSERT INTO {s}.users VALUES (1, 'ada', 9.5, '2026-01-02T03:04:05Z'),"
                " (2, 'bob', 7, NULL), (3, 'cy', 3, NULL);",
            )
            + _query(
                pg_scratch,
                "one",
                f"SELECT name, score, seen FROM {s}.users WHERE id = :id",
                "    parameters:\n      id: '{{ inputs.id }}'\n    fetchType: FETCH_ONE\n",
            )
            + _query(
                pg_scratch,
                "many",
                f"SELECT id, name FROM {s}.users WHERE score >= :min AND name <> '50%' ORDER BY id",
                "    parameters:\n      min: 5\n    fetchType: FETCH\n",
            )
            + _query(
                pg_scratch,
                "stored",
                f"SELECT id::text || ':' || name AS label FROM {s}.users ORDER BY id",
                "    fetchType: STORE\n",
            )
            + _query(
                pg_scratch,
                "older",
                f"SELECT count(*) AS n FROM {s}.users",
                "    fetch: true\n",
            )
            + '  - id: use\n    type: Log\n    message: "{{ outputs.one.row.name }} {{ outputs.many.size }}"\n',
            "inputs:\n  - id: id\n    type: INT\n    defaults: 1\n",
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS, list(
        execution.taskruns.values_list("error", flat=True)
    )
    out = {tr.task_id: tr.outputs for tr in execution.taskruns.all()}
    assert out["create"] == {}
    assert out["one"] == {
        "row": {"name": "ada", "score": 9.5, "seen": "2026-01-02T03:04:05Z"},
        "size": 1,
    }
    assert out["many"] == {
        "rows": [{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}],
        "size": 2,
    }
    assert out["stored"]["size"] == 3
    lines = read_uri(out["stored"]["uri"]).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"label": "1:ada"},
        {"label": "2:bob"},
        {"label": "3:cy"},
    ]
    assert out["older"]["rows"] == [{"n": 3}]
    assert execution.logs.filter(task_id="use", message="ada 2").exists()


def test_an_sql_error_or_a_missing_parameter_fails_with_the_reason(
    deploy, run_inprocess, pg_scratch
):
    bad = run_inprocess(
        deploy(flow(_query(pg_scratch, "q", "SELECT * FROM no_such_table")))
    )
    assert bad.state == State.FAILED
    assert (
        'relation "no_such_table" does not exist' in bad.taskruns.get(task_id="q").error
    )
    missing = run_inprocess(
        deploy(
            flow(
                _query(
                    pg_scratch, "q", "SELECT :a, :b", "    parameters:\n      a: 1\n"
                )
            )
        )
    )
    assert "parameters has no 'b'" in missing.taskruns.get(task_id="q").error


def test_connection_problems_are_explained(deploy, run_inprocess):
    wrong = run_inprocess(
        deploy(
            flow(
                "  - id: q\n    type: io.kestra.plugin.jdbc.postgresql.Query\n"
                "    url: jdbc:mysql://localhost/db\n    sql: SELECT 1\n"
            )
        )
    )
    assert "is not a PostgreSQL address" in wrong.taskruns.get(task_id="q").error
    down = run_inprocess(
        deploy(
            flow(
                "  - id: q\n    type: io.kestra.plugin.jdbc.postgresql.Query\n"
                "    url: jdbc:postgresql://127.0.0.1:9/db\n    sql: SELECT 1\n"
            )
        )
    )
    assert (
        "cannot connect to PostgreSQL at 127.0.0.1:9/db"
        in down.taskruns.get(task_id="q").error
    )


def test_a_timeout_cancels_the_running_statement(deploy, run_inprocess, pg_scratch):
    execution = run_inprocess(
        deploy(
            flow(
                _query(
                    pg_scratch,
                    "q",
                    "SELECT pg_sleep(60) /* time-me-out */",
                    "    timeout: PT1S\n",
                )
            )
        ),
        timeout=20,
    )
    assert execution.state == State.FAILED
    assert execution.taskruns.get(task_id="q").error.startswith("timed out")
    # The server is no longer running it.
    running = (
        pg_scratch["conn"]
        .execute(
            # Its own tag: a test running in another process sleeps too.
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/* time-me-out */%'"
            " AND state = 'active' AND pid <> pg_backend_pid()"
        )
        .fetchone()[0]
    )
    assert running == 0


def test_copy_in_and_load_put_a_stored_csv_into_a_table(
    deploy, run_inprocess, pg_scratch, http_server
):
    s = pg_scratch["schema"]
    rev = deploy(
        flow(
            f"  - id: dl\n    type: io.kestra.plugin.core.http.Download\n    uri: {http_server.url}/sales.csv\n"
            + _query(
                pg_scratch,
                "create",
                f"CREATE TABLE {s}.sales (region text, amount int);"
                f" CREATE TABLE {s}.sales2 (region text, amount int);",
            )
            + "  - id: copy\n    type: io.kestra.plugin.jdbc.postgresql.CopyIn\n"
            + _conn(pg_scratch)
            + f"    from: '{{{{ outputs.dl.uri }}}}'\n    table: {s}.sales\n    format: CSV\n"
            "    header: true\n    delimiter: ','\n"
            + "  - id: load\n    type: io.kestra.plugin.jdbc.postgresql.Load\n"
            + _conn(pg_scratch)
            + f"    from: '{{{{ outputs.dl.uri }}}}'\n    table: {s}.sales2\n"
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.SUCCESS, list(
        execution.taskruns.values_list("error", flat=True)
    )
    assert execution.taskruns.get(task_id="copy").outputs == {"rowCount": 3}
    assert execution.taskruns.get(task_id="load").outputs == {"rowCount": 3}
    for table in ("sales", "sales2"):
        rows = (
            pg_scratch["conn"]
            .execute(
                f"SELECT region, sum(amount) FROM {s}.{table} GROUP BY region ORDER BY region"
            )
            .fetchall()
        )
        assert rows == [("north", 15), ("south", 32)]


def test_a_copy_with_bad_rows_loads_nothing(
    deploy, run_inprocess, pg_scratch, http_server
):
    s = pg_scratch["schema"]
    pg_scratch["conn"].execute(f"CREATE TABLE {s}.strict (region text, amount int)")
    rev = deploy(
        flow(
            f"  - id: dl\n    type: io.kestra.plugin.core.http.Download\n    uri: {http_server.url}/sales.csv\n"
            "  - id: load\n    type: io.kestra.plugin.jdbc.postgresql.Load\n"
            + _conn(pg_scratch)
            + f"    from: '{{{{ outputs.dl.uri }}}}'\n    table: {s}.strict\n    header: false\n"
        )
    )
    execution = run_inprocess(rev)
    assert execution.state == State.FAILED
    assert (
        "invalid input syntax for type integer"
        in execution.taskruns.get(task_id="load").error
    )
    assert (
        pg_scratch["conn"].execute(f"SELECT count(*) FROM {s}.strict").fetchone()[0]
        == 0
    )


def test_a_kill_cancels_the_statement_on_the_server(
    deploy, transactional_db, pg_scratch
):
    from executions.engine.inprocess import use_in_process
    from executions.models import Cause, Execution, TaskRun
    from tests.conftest import wait_for

    rev = deploy(flow(_query(pg_scratch, "q", "SELECT pg_sleep(60) /* kill-me */")))
    active = (
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/* kill-me */%'"
        " AND state = 'active' AND pid <> pg_backend_pid()"
    )
    with use_in_process() as runner:
        execution = create_execution(rev, actor=Actor.system("test"))
        wait_for(
            lambda: pg_scratch["conn"].execute(active).fetchone()[0] == 1,
            15,
            what="the statement to run",
        )
        kill(execution.pk, reason="test", actor=Actor(Cause.USER, "alice"))
        wait_for(
            lambda: (
                Execution.objects.get(pk=execution.pk).is_terminal and runner.idle()
            ),
            15,
            what="execution to be killed",
        )
    assert Execution.objects.get(pk=execution.pk).state == State.KILLED
    assert TaskRun.objects.get(execution=execution, task_id="q").state == State.KILLED
    assert pg_scratch["conn"].execute(active).fetchone()[0] == 0
