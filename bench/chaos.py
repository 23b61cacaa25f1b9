"""Chaos benchmark: a steady load while workers, PostgreSQL and Redis fail.

    .venv/bin/python bench/chaos.py            # the long form (minutes)
    .venv/bin/python bench/chaos.py --short    # CI's form: 10 kills, 1 of each outage

It starts its own PostgreSQL (initdb on a free port) and its own
``redis-server``, so it may stop and restart them; two real Celery workers
(threads) and a real beat run against them. A load of light, Sleep, shell
script, Parallel, ForEach and retrying flows arrives at a fixed rate; every
script task run appends its id to an effects file. Faults: worker SIGKILLs
(the supervisor here starts a new worker, as `orchestra server` does),
PostgreSQL restarts, Redis restarts without persistence and worker SIGSTOPs
longer than the liveness timeout.

It prints: executions created; terminal by state; non-terminal after
recovery (goal 0); script task runs whose effect completed twice (goal 0);
FAILED "worker lost" (goal 0 while resubmissions remain); and for each fault
the time until every execution in flight at the fault was terminal again.
Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEARTBEAT, MISSED = 0.5, 4  # liveness timeout 2 s
LIVENESS_TIMEOUT = HEARTBEAT * MISSED

FLOWS = {
    "light": """
id: light
namespace: chaos
tasks:
  - id: a
    type: Return
    format: "{{ execution.id }}"
""",
    "sleep": """
id: sleep
namespace: chaos
tasks:
  - id: nap
    type: Sleep
    duration: PT1S
""",
    "script": """
id: script
namespace: chaos
tasks:
  - id: act
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - sleep 0.3
      - echo "{{ taskrun.id }}" >> EFFECTS
""",
    "parallel": """
id: parallel
namespace: chaos
tasks:
  - id: p
    type: Parallel
    tasks:
      - id: x
        type: Sleep
        duration: PT0.5S
      - id: y
        type: io.kestra.plugin.scripts.shell.Commands
        commands:
          - echo "{{ taskrun.id }}" >> EFFECTS
""",
    "foreach": """
id: foreach
namespace: chaos
tasks:
  - id: each
    type: ForEach
    values: [1, 2, 3]
    tasks:
      - id: v
        type: Return
        format: "{{ taskrun.value }}"
""",
    "retrying": """
id: retrying
namespace: chaos
tasks:
  - id: flaky
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "{{ taskrun.id }}" >> EFFECTS
      - test {{ taskrun.attemptsCount }} -ge 1
    retry:
      type: constant
      interval: PT0.2S
      maxAttempt: 3
""",
}


class Cluster:
    def __init__(self, work: Path):
        from tests.outages.private import PrivatePostgres, PrivateRedis

        self.work = work
        self.pg = PrivatePostgres(work / "pg")
        self.redis = PrivateRedis(work / "redis")
        self.env = {
            **os.environ,
            "DATABASE_URL": self.pg.url,
            "CELERY_BROKER_URL": self.redis.url,
            "ORCHESTRA_HOME": str(work / "home"),
            "ORCHESTRA_HEARTBEAT_SECONDS": str(HEARTBEAT),
            "ORCHESTRA_MISSED_HEARTBEATS": str(MISSED),
            "ORCHESTRA_LIVENESS_SWEEP_SECONDS": "1",
            "ORCHESTRA_KILL_GRACE_SECONDS": "5",
            # Scripts write their effects to this bench's folder.
            "ORCHESTRA_SCRIPT_SANDBOX": "none",
            "DJANGO_SETTINGS_MODULE": "orchestra.settings",
            "PYTHONPATH": str(ROOT),
        }
        self.env.pop("ORCHESTRA_BROKER_KEY_PREFIX", None)
        self.log = open(work / "celery.log", "w")
        self.workers: dict[str, subprocess.Popen] = {}
        self.beat: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def _celery(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "orchestra", *args],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_worker(self, name: str) -> None:
        proc = self._celery(
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "--hostname",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        )
        with self.lock:
            self.workers[name] = proc

    def start(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"],
            env=self.env,
            cwd=ROOT,
            check=True,
        )
        self.start_worker("w1")
        self.start_worker("w2")
        self.beat = self._celery("beat", "--schedule", str(self.work / "beat-schedule"))

    def supervise(self, stop: threading.Event) -> None:
        """Start a new worker for each one that died, as `orchestra server` does."""
        while not stop.wait(0.5):
            with self.lock:
                dead = [n for n, p in self.workers.items() if p.poll() is not None]
            for name in dead:
                self.start_worker(name)

    def close(self) -> None:
        procs = [*self.workers.values(), *([self.beat] if self.beat else [])]
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.log.close()
        self.redis.close()
        self.pg.close()


def _tree(pid: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="CI's bounded form")
    parser.add_argument("--rate", type=float, default=4.0, help="executions/s")
    parser.add_argument(
        "--keep", action="store_true", help="on failure, keep the cluster to inspect"
    )
    args = parser.parse_args()
    if args.short:
        kills, pg_restarts, redis_restarts, stops, spacing = 10, 1, 1, 1, 4.0
    else:
        kills, pg_restarts, redis_restarts, stops, spacing = 100, 5, 5, 5, 6.0

    work = Path(tempfile.mkdtemp(prefix="orchestra-chaos-"))
    cluster = Cluster(work)
    effects = work / "effects.txt"
    try:
        cluster.start()
        os.environ.update(cluster.env)
        import django

        django.setup()
        from django.db import close_old_connections
        from django.db.utils import Error as DatabaseError

        from executions.lifecycle.actor import Actor
        from executions.lifecycle.start import create_execution
        from executions.models import TERMINAL, Execution, TaskRun
        from flows.models import save_flow

        revisions = [
            save_flow(src.replace("EFFECTS", str(effects)), actor="chaos")[1]
            for src in FLOWS.values()
        ]
        stop = threading.Event()
        created: list[tuple[int, float]] = []
        threading.Thread(target=cluster.supervise, args=(stop,), daemon=True).start()

        def load() -> None:
            actor = Actor.system("chaos")
            n = 0
            while not stop.is_set():
                try:
                    close_old_connections()
                    ex = create_execution(revisions[n % len(revisions)], actor=actor)
                    created.append((ex.pk, time.time()))
                    n += 1
                except DatabaseError:
                    pass  # the database is down: arrivals wait, as clients retry
                stop.wait(1 / args.rate)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        faults: list[tuple[str, float]] = []
        plan = (
            ["kill"] * kills
            + ["pg"] * pg_restarts
            + ["redis"] * redis_restarts
            + ["sigstop"] * stops
        )
        random.Random(7).shuffle(plan)
        print(f"chaos: {len(plan)} faults, one every {spacing:g}s; work in {work}")
        for kind in plan:
            time.sleep(spacing)
            with cluster.lock:
                name = random.choice(sorted(cluster.workers))
                proc = cluster.workers[name]
            faults.append((kind, time.time()))
            if kind == "kill":
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            elif kind == "pg":
                cluster.pg.stop()
                time.sleep(random.Random(len(faults)).uniform(0, 8))
                cluster.pg.start()
            elif kind == "redis":
                cluster.redis.stop()
                time.sleep(10 if not args.short else 5)
                cluster.redis.start()
            else:
                frozen = _tree(proc.pid)
                for pid in frozen:
                    os.kill(pid, signal.SIGSTOP)
                time.sleep(LIVENESS_TIMEOUT + 3)
                for pid in frozen:
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except ProcessLookupError:
                        pass
            print(f"  {kind:8} at +{faults[-1][1] - faults[0][1]:6.1f}s")
        stop.set()
        loader.join()
        ids = [pk for pk, _ in created]
        bound = LIVENESS_TIMEOUT + 90
        deadline = time.time() + bound
        while time.time() < deadline:
            close_old_connections()
            left = (
                Execution.objects.filter(pk__in=ids).exclude(state__in=TERMINAL).count()
            )
            if not left:
                break
            time.sleep(1)
        close_old_connections()
        states = Counter(
            Execution.objects.filter(pk__in=ids).values_list("state", flat=True)
        )
        left = sum(n for s, n in states.items() if s not in TERMINAL)
        ran = effects.read_text().split() if effects.exists() else []
        twice = sum(1 for _, n in Counter(ran).items() if n > 1)
        lost = TaskRun.objects.filter(
            execution_id__in=ids, state="FAILED", error__startswith="worker lost"
        ).count()
        ended = dict(Execution.objects.filter(pk__in=ids).values_list("pk", "ended_at"))
        recovery = []
        for _, at in faults:
            in_flight = [pk for pk, t in created if t <= at]
            ends = [ended[pk].timestamp() for pk in in_flight if ended.get(pk)]
            if ends:
                recovery.append(max(0.0, max(ends) - at))
        if left:
            from executions.models import Worker

            stuck = Execution.objects.filter(pk__in=ids).exclude(state__in=TERMINAL)
            why = Counter()
            alive = dict(Worker.objects.values_list("pk", "state"))
            reports = dict(Worker.objects.values_list("pk", "running"))
            for ex in stuck[:200]:
                runs = [
                    (
                        t.state,
                        alive.get(t.worker_id, "-"),
                        "held" if t.pk in (reports.get(t.worker_id) or []) else "",
                    )
                    for t in ex.taskruns.filter(flowable=False).exclude(
                        state__in=TERMINAL
                    )
                ]
                why[(ex.state, tuple(sorted(runs)))] += 1
            print("left waiting (execution, its unfinished task runs):")
            for key, n in why.most_common(10):
                print(f"  {n:4}  {key}")
            if args.keep:
                print(f"kept running: DATABASE_URL={cluster.pg.url}")
                input("press Enter to stop the cluster ")
        print(f"executions created        {len(ids)}")
        print("terminal by state         " + json.dumps(dict(sorted(states.items()))))
        print(f"non-terminal after wait   {left}  (goal 0)")
        print(f"effects completed twice   {twice}  of {len(set(ran))} script task runs")
        print(f'FAILED "worker lost"      {lost}  (goal 0 while resubmits remain)')
        if recovery:
            q = statistics.quantiles(recovery, n=20) if len(recovery) > 1 else recovery
            print(
                f"fault → all terminal      p50 {statistics.median(recovery):.1f}s "
                f"p95 {q[-1]:.1f}s max {max(recovery):.1f}s "
                f"(goal p95 ≤ {LIVENESS_TIMEOUT + 30:g}s)"
            )
        return 1 if left or twice else 0
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
