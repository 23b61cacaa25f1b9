"""Benchmark: issue 12's denial-of-service payloads against a real web server,
while another user keeps using the API.

    .venv/bin/python bench/dos.py [--seconds 10] [--attackers 4]

Starts ``orchestra server web`` (what is installed: gunicorn, else Django's
threaded server) on a free port, against its own PostgreSQL database
(BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/orchestra_bench_dos).
A user with no role sends every payload in a loop from several threads; a
viewer lists executions meanwhile. Prints, per payload, the answers and the
slowest one, and the viewer's p50/p95 before and during the attack. Targets:
each payload answered with a 4xx (or "valid", never evaluated) in < 2 s, the
viewer's p95 < 300 ms during the attack.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pgdb import ensure_database  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/orchestra_bench_dos"

FLOW = 'id: bomb\nnamespace: team.a\ntasks:\n  - id: t\n    type: Log\n    message: "{expr}"\n'
# 470 bytes, 9**9 values once expanded.
ALIAS_BOMB = (
    "id: bomb\nnamespace: team.a\n"
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "tasks: [{id: t, type: Log, message: x}]\n"
)

PAYLOADS = {
    "10**(10**7)": ("yaml", FLOW.format(expr="{{ 10**(10**7) }}")),
    "regex replace": (
        "yaml",
        FLOW.format(
            expr="{{ 'aaaaaaaaaaaaaaaaaaaaaaaaaaa!' | replace('(a+)+$', 'b', regexp=true) }}"
        ),
    ),
    "'x'*10**8": ("yaml", FLOW.format(expr="{{ 'x' * 10**8 }}")),
    "188 KiB of *": (
        "yaml",
        FLOW.format(expr="{{ " + " ~ ".join(["'x' * 10**9"] * 14000) + " }}"),
    ),
    "alias bomb": ("yaml", ALIAS_BOMB),
    "deep YAML": ("yaml", "x: " + "[" * 20000 + "]" * 20000),
    "deep JSON": ("json", "[" * 50000 + "]" * 50000),
    "deep expression": (
        "yaml",
        FLOW.format(expr="{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"),
    ),
    "3 MiB body": ("yaml", "x" * 3 * 1024 * 1024),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _setup(url: str) -> tuple[str, str]:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestra.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from accounts.models import ApiToken, Role
    from flows.models import save_flow

    call_command("migrate", interactive=False, verbosity=0)
    users = get_user_model()
    attacker = users.objects.create_user("attacker", password="pw-attacker-123")
    viewer = users.objects.create_user("viewer", password="pw-viewer-123")
    Role.objects.create(user=viewer, role="viewer", namespace="company")
    save_flow(
        "id: etl\nnamespace: company.data\ntasks:\n  - id: t\n    type: Log\n    message: hi\n",
        actor="bench",
    )
    return ApiToken.issue(attacker, "bench")[1], ApiToken.issue(viewer, "bench")[1]


def _send(c: httpx.Client, base: str, kind: str, body: str) -> int:
    if kind == "json":
        url, content_type = f"{base}/api/executions/cleanup", "application/json"
    else:
        url, content_type = f"{base}/api/flows/validate", "text/yaml"
    r = c.post(url, content=body, headers={"Content-Type": content_type}, timeout=60)
    return r.status_code


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--attackers", type=int, default=4)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(url, fresh=True)
    attacker_key, viewer_key = _setup(url)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("orchestra")),
            "server",
            "web",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        stop = threading.Event()
        viewer: list[float] = []

        def view() -> None:
            with httpx.Client(headers={"Authorization": f"Bearer {viewer_key}"}) as c:
                while not stop.is_set():
                    start = time.monotonic()
                    c.get(f"{base}/api/executions", timeout=30)
                    viewer.append(time.monotonic() - start)
                    time.sleep(0.05)

        watcher = threading.Thread(target=view)
        watcher.start()
        time.sleep(args.seconds / 2)
        baseline = list(viewer)
        viewer.clear()
        answers: dict[str, list[tuple[int, float]]] = defaultdict(list)

        def attack(offset: int) -> None:
            headers = {"Authorization": f"Bearer {attacker_key}"}
            names = list(PAYLOADS)
            i = offset
            with httpx.Client(headers=headers) as c:
                while not stop.is_set():
                    name = names[i % len(names)]
                    kind, body = PAYLOADS[name]
                    start = time.monotonic()
                    try:
                        code = _send(c, base, kind, body)
                    except httpx.HTTPError:
                        code = 0  # no answer within 60 s
                    answers[name].append((code, time.monotonic() - start))
                    i += 1

        attackers = [
            threading.Thread(target=attack, args=(n,)) for n in range(args.attackers)
        ]
        for t in attackers:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in [*attackers, watcher]:
            t.join()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)
    print(f"{'payload':18} {'answers':>22} {'slowest':>9} {'median':>8}")
    for name, got in answers.items():
        codes = defaultdict(int)
        for code, _ in got:
            codes[code] += 1
        summary = ", ".join(f"{n}×{c}" for c, n in sorted(codes.items()))
        times = [t for _, t in got]
        print(
            f"{name:18} {summary:>22} {max(times) * 1000:7.0f}ms "
            f"{statistics.median(times) * 1000:6.0f}ms"
        )
    print(
        f"viewer GET /api/executions: before p50 {_p(baseline, 0.5):.0f} ms, "
        f"p95 {_p(baseline, 0.95):.0f} ms ({len(baseline)} requests); during the "
        f"attack p50 {_p(viewer, 0.5):.0f} ms, p95 {_p(viewer, 0.95):.0f} ms "
        f"({len(viewer)} requests)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
