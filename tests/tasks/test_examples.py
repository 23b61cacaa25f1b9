"""The example flows that use the plugin tasks run end to end."""

from __future__ import annotations

from pathlib import Path

from executions.models import State
from executions.storage import read_uri

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "flows"


def test_the_etl_example_downloads_transforms_and_loads_into_postgresql(
    deploy, run_inprocess, http_server, pg_scratch
):
    rev = deploy((EXAMPLES / "etl_pipeline.yml").read_text())
    table = f"{pg_scratch['schema']}.sales_by_region"
    execution = run_inprocess(
        rev,
        timeout=60,
        inputs={
            "source_uri": f"{http_server.url}/sales.csv",
            "jdbc_url": pg_scratch["url"],
            "username": pg_scratch["username"],
            "password": pg_scratch["password"],
            "table": table,
        },
    )
    assert execution.state == State.SUCCESS, list(
        execution.taskruns.values_list("task_id", "error")
    )
    assert execution.outputs == {"rows_loaded": 2}
    transformed = execution.taskruns.get(task_id="transform").outputs["outputFiles"][
        "transformed.csv"
    ]
    assert read_uri(transformed).decode().splitlines()[0] == "region,total,execution_id"
    rows = (
        pg_scratch["conn"]
        .execute(f"SELECT region, total, execution_id FROM {table} ORDER BY region")
        .fetchall()
    )
    assert rows == [("north", 15, execution.pk), ("south", 32, execution.pk)]
    assert execution.logs.filter(
        task_id="report", message__startswith="Loaded 2 of 2 regions"
    ).exists()


def test_the_fibo_example_computes_in_a_python_script(deploy, run_inprocess):
    rev = deploy((EXAMPLES / "fibo.yml").read_text())
    execution = run_inprocess(rev, inputs={"n": "20"})
    assert execution.state == State.SUCCESS
    assert execution.outputs == {"value": 6765}
