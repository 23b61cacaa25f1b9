"""A task that does nothing but answer: bench/engine.py's Celery calibration.

Loaded only into the benchmark's worker (``celery worker --include bench.noop``).
"""

from __future__ import annotations

import os

from celery import shared_task

_client = None


@shared_task(name="bench.noop", ignore_result=True)
def noop(reply_key: str, value: int) -> None:
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    _client.rpush(reply_key, value)
