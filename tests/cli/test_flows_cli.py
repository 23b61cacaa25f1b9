"""``orchestra flows validate|deploy|list|test`` and ``namespaces list``, as a user sees them."""

from __future__ import annotations

import json

from tests.cli.conftest import ROOT, write

EXAMPLES = ROOT / "examples" / "flows"

BAD = """\
id: bad
namespace: tests.cli
tasks:
  - id: a
    type: io.kestra.plugin.core.log.Logg
    message: hi
  - id: b
    type: Return
    fromat: "x"
  - id: c
    type: Sleep
    duration: "{{ unclosed"
"""

TYPED = """\
id: typed
namespace: tests.cli
inputs:
  - id: n
    type: INT
  - id: cfg
    type: JSON
    required: false
  - id: items
    type: ARRAY
    itemType: INT
    required: false
  - id: data
    type: FILE
    required: false
tasks:
  - id: double
    type: Return
    format: "{{ inputs.n * 2 }}"
  - id: shape
    type: Return
    format: "{{ inputs.cfg.a }}/{{ inputs['items'] | length }}"
  - id: file
    type: Return
    format: "{{ inputs.data }}"
outputs:
  - id: doubled
    type: INT
    value: "{{ outputs.double.value }}"
"""


def test_it_prints_every_error_with_file_line_and_column(cli):
    bad = write(cli.home, "bad.yml", BAD)
    broken = write(cli.home, "broken.yml", "id: x\nnamespace: a\ntasks: [\n")
    r = cli(
        "flows", "validate", str(bad), str(broken), str(EXAMPLES / "hello_world.yml")
    )
    assert r.code == 1, r
    lines = r.err.splitlines()
    assert (
        f"✗ {bad}:5:5: tasks[0].type: unknown task type 'io.kestra.plugin.core.log.Logg'; "
        "did you mean 'io.kestra.plugin.core.log.Log'?" in r.err
    ), r
    assert any(
        line.startswith(
            f"✗ {bad}:9:5: tasks[1].fromat: unknown property 'fromat'; "
            "did you mean 'format'?"
        )
        for line in lines
    ), r
    assert any(
        line.startswith(f"✗ {bad}:12:5: tasks[2].duration: invalid expression")
        for line in lines
    ), r
    assert any(
        line.startswith(f"✗ {broken}:4:1:") and "invalid YAML" in line for line in lines
    ), r
    assert "company.team.hello_world is valid" in r.out
    assert "1 valid, 2 invalid" in r.err


def test_it_lists_known_types_for_an_unknown_type(cli):
    bad = write(
        cli.home, "t.yml", "id: t\nnamespace: a\ntasks:\n  - id: a\n    type: Slep\n"
    )
    r = cli("flows", "validate", "--json", str(bad))
    assert r.code == 1, r
    [result] = json.loads(r.out)
    [error] = result["errors"]
    assert (error["line"], error["column"], error["path"]) == (5, 5, "tasks[0].type")
    assert "did you mean 'Sleep'?" in error["message"]
    assert "Known types:" in error["message"] and "Return" in error["message"]


def test_it_accepts_the_example_flows(cli):
    r = cli("flows", "validate", *[str(p) for p in sorted(EXAMPLES.glob("*.yml"))])
    assert r.code == 0, r
    assert "0 invalid" in r.out and r.err == ""


def test_it_reports_a_missing_file(cli):
    r = cli("flows", "validate", "nope.yml")
    assert r.code == 1, r
    assert "✗ nope.yml: no such file or folder" in r.err


def test_usage_errors_exit_2_with_a_reason(cli):
    cases = [
        ((), "the following arguments are required: COMMAND"),
        (("flows",), "the following arguments are required: VERB"),
        (("flows", "bogus"), "invalid choice: 'bogus'"),
        (("flows", "validate"), "the following arguments are required: FILE"),
        (("executions", "get", "abc"), "invalid int value: 'abc'"),
        (("executions", "list", "--state", "NOPE"), "unknown state NOPE"),
        (
            ("flows", "execute", "--flow", "x"),
            "the following arguments are required: --namespace",
        ),
        (("flows", "test", "missing.yml"), "no such file 'missing.yml'"),
    ]
    for args, message in cases:
        r = cli(*args)
        assert r.code == 2, (args, str(r))
        assert message in r.err, (args, str(r))
        assert "Traceback" not in r.err


def test_it_deploys_a_folder_and_lists_flows_and_namespaces(cli):
    assert "No flows deployed." in cli("flows", "list").out
    r = cli("flows", "deploy", str(EXAMPLES))
    assert r.code == 0, r
    assert "✓ company.team.hello_world: revision 1" in r.out
    again = cli("flows", "deploy", str(EXAMPLES / "hello_world.yml"))
    assert "✓ company.team.hello_world: unchanged (revision 1)" in again.out

    listed = cli("flows", "list", "--json")
    flows = {(f["namespace"], f["id"]) for f in json.loads(listed.out)}
    assert {("company.team", "hello_world"), ("company.team", "branching")} <= flows
    table = cli("flows", "list", "--namespace", "company.team").out
    assert "hello_world" in table and "daily_report" not in table

    namespaces = {
        n["namespace"]: n for n in json.loads(cli("namespaces", "list", "--json").out)
    }
    in_team = sum(
        "namespace: company.team\n" in f.read_text() for f in EXAMPLES.glob("*.yml")
    )
    assert namespaces["company.team"]["flows"] == in_team >= 2
    assert namespaces["company"]["flows_with_children"] >= 3
    assert "NAMESPACE" in cli("namespaces", "list").out


def test_a_folder_with_one_bad_flow_deploys_nothing(cli):
    folder = cli.home / "flows"
    folder.mkdir()
    write(folder, "good.yml", (EXAMPLES / "hello_world.yml").read_text())
    write(folder, "bad.yml", BAD)
    r = cli("flows", "deploy", str(folder))
    assert r.code == 1, r
    assert f"{folder / 'bad.yml'}:5:5" in r.err and "Nothing deployed" in r.err
    assert "No flows deployed." in cli("flows", "list").out


def test_flows_test_prints_the_final_execution_as_json(cli):
    flow = write(cli.home, "typed.yml", TYPED)
    data = write(cli.home, "data.csv", "a,b\n1,2\n")
    r = cli(
        "flows",
        "test",
        str(flow),
        "--input",
        "n=21",
        "--input",
        'cfg={"a": "x"}',
        "--input",
        "items=[1, 2, 3]",
        "--input",
        f"data={data}",
        "--json",
    )
    assert r.code == 0, r
    execution = json.loads(r.out)
    assert execution["state"] == "SUCCESS"
    assert execution["outputs"] == {"doubled": 42}
    assert execution["inputs"]["cfg"] == {"a": "x"} and execution["inputs"][
        "items"
    ] == [1, 2, 3]
    runs = {t["taskId"]: t for t in execution["taskRuns"]}
    assert [runs[t]["state"] for t in ("double", "shape", "file")] == ["SUCCESS"] * 3
    assert runs["double"]["outputs"] == {"value": "42"}
    assert runs["shape"]["outputs"] == {"value": "x/3"}
    uri = runs["file"]["outputs"]["value"]
    assert uri.startswith("kestra:///tests.cli/typed/") and uri.endswith("/data.csv")
    stored = cli.home / "storage" / uri.removeprefix("kestra:///")
    assert stored.read_text() == "a,b\n1,2\n"


def test_flows_test_shows_progress_and_fails_with_the_task_error(cli):
    flow = write(
        cli.home,
        "f.yml",
        "id: f\nnamespace: tests.cli\ntasks:\n"
        "  - id: ok\n    type: Log\n    message: hi\n"
        "  - id: boom\n    type: Fail\n    errorMessage: 'broken on purpose'\n",
    )
    r = cli("flows", "test", str(flow))
    assert r.code == 1, r
    assert "✔ ok SUCCESS" in r.out
    assert "✘ boom FAILED" in r.out and "broken on purpose" in r.out
    assert "ended FAILED" in r.out


def test_bad_inputs_give_a_clear_error_and_run_nothing(cli):
    flow = write(cli.home, "typed.yml", TYPED)
    cases = [
        ((), "✘ input 'n': required INT input is missing"),
        (("--input", "n=abc"), "✘ input 'n': expected an integer, got 'abc'"),
        (("--input", "n=1", "--input", "cfg={bad"), "✘ input 'cfg': not valid JSON"),
        (
            ("--input", "n=1", "--input", 'items=[1, "b"]'),
            "✘ input 'items': item 1: expected an integer",
        ),
        (
            ("--input", "n=1", "--input", "data=/no/such/file"),
            "--input data: no such file '/no/such/file'",
        ),
        (
            ("--input", "n=1", "--input", "zzz=1"),
            "✘ input 'zzz': this flow has no such input",
        ),
        (("--input", "n"), "--input 'n' must look like key=value"),
    ]
    for args, message in cases:
        r = cli("flows", "test", str(flow), *args)
        assert r.code == 2, (args, str(r))
        assert message in r.err, (args, str(r))
        assert "Traceback" not in r.err
    assert "No executions match." in cli("executions", "list").out
