from django.core.management.base import BaseCommand

from executions.stuck.cleanup import auto_cleanup


class Command(BaseCommand):
    help = (
        "Run the automatic cleanup of stuck executions once (what the beat schedule "
        "runs every ORCHESTRA_STUCK_SWEEP_SECONDS), for a cron-based set-up."
    )

    def handle(self, *args, **options) -> str:
        done = auto_cleanup()
        if not done:
            return "no namespace has automatic cleanup enabled"
        return "; ".join(
            f"{prefix}: cancelled {count}" for prefix, count in done.items()
        )
