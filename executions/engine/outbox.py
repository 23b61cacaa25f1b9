"""Outcomes a worker could not record yet: kept on disk, recorded later.

A worker that finishes a task while the database is unreachable (a restart,
a failover) must not lose what the task did, or the execution stays RUNNING
forever. The outcome (state, outputs, error and the log lines not stored
yet) is written to a file in this host's outbox folder, and a thread records
it with backoff once the database answers. A worker started on the same host
replays what an earlier process left there.

Recording is the worker's ordinary finish: a conditional UPDATE on the task
run still RUNNING under the claiming worker and resubmission. A replay after
liveness moved the task run (its worker declared dead, the run resubmitted)
changes nothing, so replaying twice, or after a recovery, is harmless.
While a file waits, its task run stays in the heartbeat's report of held
runs, so liveness does not take it for lost.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import Error as DatabaseError
from django.db import close_old_connections, connection
from django.utils.dateparse import parse_datetime

from executions.engine import lease
from executions.models import LogEntry

log = logging.getLogger("orchestra.outbox")

# Backoff between attempts to record, in seconds.
FIRST_DELAY, MAX_DELAY = 0.5, 30.0

_wake = threading.Event()
_thread: list[tuple[int, threading.Thread]] = []
_lock = threading.Lock()
_recorder: list[Callable[[dict[str, Any]], None]] = []


def folder() -> Path:
    return Path(settings.ORCHESTRA_OUTBOX_DIR) / socket.gethostname()


def _log_rows(entries: list[LogEntry]) -> list[dict[str, Any]]:
    return [
        {
            "execution_id": e.execution_id,
            "taskrun_id": e.taskrun_id,
            "task_id": e.task_id,
            "attempt": e.attempt,
            "level": e.level,
            "timestamp": e.timestamp.isoformat(),
            "message": e.message,
        }
        for e in entries
    ]


def log_entries(record: dict[str, Any]) -> list[LogEntry]:
    return [
        LogEntry(**{**row, "timestamp": parse_datetime(row["timestamp"])})
        for row in record.get("logs", [])
    ]


def keep(record: dict[str, Any], logs: list[LogEntry]) -> Path:
    """Write an outcome to the outbox (atomically) and wake the recorder."""
    where = folder()
    where.mkdir(parents=True, exist_ok=True)
    record = {**record, "logs": _log_rows(logs), "kept_at": time.time()}
    path = where / f"taskrun-{record['taskrun_id']}-{record['resubmits']}.json"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(record, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    log.warning(
        "could not record task run %s (%s); kept in %s, recording when the "
        "database answers",
        record["taskrun_id"],
        record["state"],
        path,
    )
    _ensure_thread()
    _wake.set()
    return path


def pending() -> list[Path]:
    where = folder()
    if not where.is_dir():
        return []
    return sorted(where.glob("taskrun-*.json"))


def replay_once(record_outcome: Callable[[dict[str, Any]], None]) -> int:
    """Record every kept outcome the database accepts now; returns how many
    files were done with (recorded or refused as stale). Stops at the first
    database error, leaving that file and the rest for the next attempt."""
    done = 0
    for path in pending():
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            log.error("unreadable outbox file %s; moved aside", path)
            path.rename(path.with_suffix(".bad"))
            continue
        lease.hold(record["taskrun_id"])
        try:
            close_old_connections()
            record_outcome(record)
        except DatabaseError as exc:
            connection.close()
            log.info("outbox: database still unavailable (%s)", exc)
            break
        path.unlink(missing_ok=True)
        lease.release(record["taskrun_id"])
        done += 1
    return done


def use(record_outcome: Callable[[dict[str, Any]], None]) -> None:
    """How kept outcomes are recorded (the worker's finish)."""
    _recorder[:] = [record_outcome]


def replay_pending() -> int:
    """At a worker's start: take over what an earlier process on this host
    left, reporting those task runs as held until they are recorded."""
    paths = pending()
    for path in paths:
        try:
            lease.hold(json.loads(path.read_text())["taskrun_id"])
        except (OSError, ValueError, KeyError):
            pass
    if paths:
        _ensure_thread()
        _wake.set()
    return len(paths)


def _ensure_thread() -> None:
    with _lock:
        if _thread and _thread[0][0] == os.getpid() and _thread[0][1].is_alive():
            return
        thread = threading.Thread(target=_run, name="orchestra-outbox", daemon=True)
        _thread[:] = [(os.getpid(), thread)]
        thread.start()


def _run() -> None:
    delay = FIRST_DELAY
    while True:
        _wake.clear()
        if _recorder:
            replay_once(_recorder[0])
        if not pending():
            delay = FIRST_DELAY
            _wake.wait()  # until something new is kept
            continue
        _wake.wait(delay)
        delay = min(delay * 2, MAX_DELAY)
