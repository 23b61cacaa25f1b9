from django.core.management.base import BaseCommand

from sla.sweep import run


class Command(BaseCommand):
    help = (
        "Run the SLA sweep once: record misses, apply breach actions, send the digest."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-email",
            action="store_true",
            help="record misses and apply actions, send nothing",
        )

    def handle(self, *args, **options):
        result = run(send=not options["no_email"])
        self.stdout.write(str(result))
