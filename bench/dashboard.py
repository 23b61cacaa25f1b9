"""Dashboard and API latency on a big history (PostgreSQL).

Seeds 1,000,000 executions and 5,000,000 task runs spread over 90 days with
bulk SQL (generate_series) into its own database, then times, through
Django's test client, the pages people open all day: the executions list
(default window, 25 rows), namespace + state + label filters, the same
search through the API, and the overview aggregates. Prints median and p95
per scenario, and EXPLAIN for any query that scans a big table sequentially.

    .venv/bin/python bench/dashboard.py [--executions N] [--runs 30] [--reseed]

Targets: p95 <= 300 ms for lists and filters, <= 1 s for aggregates.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pgdb import ensure_database  # noqa: E402

BENCH_DB = os.environ.get("ORCHESTRA_BENCH_DB", "orchestra_bench_web")
BIG_TABLES = ("executions_execution", "executions_taskrun")


def _database_url() -> str:
    base = os.environ.get(
        "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orchestra"
    )
    parsed = urlparse(base)
    if not parsed.scheme.startswith("postgres"):
        sys.exit("bench/dashboard.py needs PostgreSQL: set DATABASE_URL=postgres://...")
    return urlunparse(parsed._replace(path="/" + BENCH_DB))


SEED_EXECUTIONS = """
INSERT INTO executions_execution (
    namespace, flow_id, flow_revision_id, revision, source, state, stop_state, inputs,
    labels, variables, outputs, trigger, trigger_id, parent_id, parent_taskrun_id,
    original_id, error, attempt, created_at, started_at, ended_at, progress_at)
SELECT
    ns, 'flow_' || (i %% 10), NULL, 1, '', st, '', '{}'::jsonb,
    jsonb_build_object('env', (ARRAY['prod','dev','staging'])[1 + i %% 3],
                       'team', 'team' || (i %% 7)),
    '{}'::jsonb, '{}'::jsonb,
    CASE WHEN i %% 4 = 0 THEN '{"type": "schedule", "id": "nightly"}'::jsonb
         ELSE '{"type": "api"}'::jsonb END,
    CASE WHEN i %% 4 = 0 THEN 'nightly' ELSE '' END,
    NULL, NULL, NULL,
    CASE WHEN st = 'FAILED' THEN 'task ''extract'' failed' ELSE '' END,
    1, created, created + interval '1 second',
    CASE WHEN st IN ('RUNNING', 'CREATED') THEN NULL ELSE created + interval '90 seconds' END,
    created + interval '90 seconds'
FROM (
    SELECT i,
        'company.team' || (i %% 5) || '.' || (ARRAY['etl','ml','reports','ingest'])[1 + (i / 5) %% 4] AS ns,
        now() - (interval '90 days' * (i::float / %(n)s)) AS created,
        CASE
            WHEN i < %(n)s / 2000 AND i %% 3 = 0 THEN 'RUNNING'
            WHEN i %% 100 < 6 THEN 'FAILED'
            WHEN i %% 100 < 8 THEN 'WARNING'
            WHEN i %% 100 < 9 THEN 'KILLED'
            ELSE 'SUCCESS'
        END AS st
    FROM generate_series(1, %(n)s) AS i
) AS rows
"""

SEED_TASKRUNS = """
INSERT INTO executions_taskrun (
    execution_id, task_id, parent_id, value, attempt, state, flowable, outputs, error,
    worker_id, created_at, scheduled_at, started_at, ended_at)
SELECT e.id, 'task_' || t, NULL, NULL, 1,
    CASE WHEN e.state = 'FAILED' AND t = %(per)s THEN 'FAILED'
         WHEN e.state = 'RUNNING' AND t = %(per)s THEN 'RUNNING'
         ELSE 'SUCCESS' END,
    false, '{}'::jsonb, '', NULL,
    e.created_at + t * interval '10 seconds', NULL,
    e.created_at + t * interval '10 seconds',
    CASE WHEN e.state = 'RUNNING' AND t = %(per)s THEN NULL
         ELSE e.created_at + t * interval '10 seconds' + interval '8 seconds' END
FROM executions_execution e CROSS JOIN generate_series(1, %(per)s) AS t
"""


def seed(n: int, per: int, reseed: bool) -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM executions_execution")
        have = cursor.fetchone()[0]
        if have == n and not reseed:
            print(f"reusing {have:,} executions in {BENCH_DB}")
            return
        print(f"seeding {n:,} executions and {n * per:,} task runs into {BENCH_DB} ...")
        started = time.monotonic()
        cursor.execute("TRUNCATE executions_execution RESTART IDENTITY CASCADE")
        cursor.execute(SEED_EXECUTIONS, {"n": n})
        print(f"  executions: {time.monotonic() - started:.0f}s")
        cursor.execute(SEED_TASKRUNS, {"per": per})
        print(f"  task runs: {time.monotonic() - started:.0f}s")
    connection.commit() if not connection.get_autocommit() else None
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE executions_execution")
        cursor.execute("VACUUM ANALYZE executions_taskrun")
    print(f"  done with VACUUM ANALYZE in {time.monotonic() - started:.0f}s")


def _explain_seq_scans(queries) -> list[str]:
    from django.db import connection

    reports = []
    for query in queries:
        sql = query["sql"]
        if not sql.lstrip().upper().startswith("SELECT") or not any(
            t in sql for t in BIG_TABLES
        ):
            continue
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        if any(f"Seq Scan on {t}" in plan for t in BIG_TABLES):
            reports.append(f"{sql}\n{plan}")
    return reports


def measure(client, name: str, url: str, runs: int, headers=None) -> dict:
    from django.core.signals import request_started
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    headers = headers or {}
    # Django clears the query log when a request starts; keep it for this one.
    request_started.disconnect(reset_queries)
    try:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, headers=headers)
    finally:
        request_started.connect(reset_queries)
    queries = list(captured.captured_queries)  # read now: the log is reset per request
    if response.status_code != 200:
        raise SystemExit(
            f"{name}: {url} answered {response.status_code}: {response.content[:300]!r}"
        )
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[max(int(len(times) * 0.95) - 1, 0)]
    return {
        "name": name,
        "url": url,
        "median": statistics.median(times),
        "p95": p95,
        "queries": len(queries),
        "seq_scans": _explain_seq_scans(queries),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--taskruns-per-execution", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()

    url = _database_url()
    ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings")
    os.environ.setdefault("ORCHESTRA_HOME", str(Path.home() / ".orchestra-bench"))
    import django

    django.setup()
    from django.test.utils import setup_test_environment

    setup_test_environment()  # responses carry their template context
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.models import ApiToken, Role

    seed(args.executions, args.taskruns_per_execution, args.reseed)

    User = get_user_model()
    admin = User.objects.filter(
        username="bench-admin"
    ).first() or User.objects.create_superuser("bench-admin", "", "bench")
    member = User.objects.filter(
        username="bench-member"
    ).first() or User.objects.create_user("bench-member", "", "bench")
    Role.objects.get_or_create(
        user=member, namespace="company.team1", defaults={"role": "operator"}
    )
    _, key = ApiToken.issue(member, "bench")

    scenarios = [
        ("list, default window (admin)", admin, "/executions/", "list"),
        ("list, default window (role on one prefix)", member, "/executions/", "list"),
        ("list, page 2 (keyset)", admin, None, "list"),
        (
            "filter namespace+state",
            admin,
            "/executions/?namespace=company.team2&state=FAILED",
            "list",
        ),
        (
            "filter namespace+state+label",
            admin,
            "/executions/?namespace=company.team2&state=FAILED&labels=env:prod",
            "list",
        ),
        (
            "filter flow+state, 30 days",
            admin,
            "/executions/?namespace=company.team3.ml&flow=flow_3&state=FAILED&window=30d",
            "list",
        ),
        (
            "filter label only, 90 days",
            admin,
            "/executions/?labels=team:team3&window=90d",
            "list",
        ),
        (
            "API search namespace+state+label (bearer)",
            None,
            "/api/executions?namespace=company.team1&state=FAILED&labels=env:prod",
            "list",
        ),
        ("execution detail (5 task runs)", admin, None, "list"),
        ("overview, 24 hours", admin, "/?window=24h", "aggregate"),
        ("overview, 7 days", admin, "/?window=7d", "aggregate"),
        ("overview, 30 days", admin, "/?window=30d", "aggregate"),
        ("namespaces page (7-day counts)", admin, "/namespaces/", "aggregate"),
    ]
    results = []
    for name, user, path, kind in scenarios:
        client = Client()
        headers = {}
        if user is None:
            headers = {"Authorization": f"Bearer {key}"}
        else:
            client.force_login(user)
        if name.startswith("list, page 2"):
            path = "/executions/" + client.get("/executions/").context["next_url"]
        if name.startswith("execution detail"):
            from executions.models import Execution

            path = f"/executions/{Execution.objects.order_by('-id').values_list('id', flat=True)[500]}/"
        result = measure(client, name, path, args.runs, headers)
        result["kind"] = kind
        results.append(result)
        target = 300 if kind == "list" else 1000
        flag = "ok" if result["p95"] <= target else f"OVER {target} ms"
        print(
            f"{name:48s} median {result['median']:7.1f} ms  p95 {result['p95']:7.1f} ms  "
            f"queries {result['queries']:2d}  {flag}"
        )
    for result in results:
        for report in result["seq_scans"]:
            print(f"\nSeq Scan in '{result['name']}':\n{report}")
    if not any(r["seq_scans"] for r in results):
        print("\nno sequential scan on executions_execution or executions_taskrun")
    return 0


if __name__ == "__main__":
    sys.exit(main())
