"""``python -P -m orchestra.celery_main worker|beat ...``: Celery's command
line with our app, never importing from the working directory.

``python -m celery -A orchestra`` puts the working directory first on
``sys.path`` (and Celery adds it again while it imports ``-A``), so a
``flows/`` or ``orchestra/`` folder where the server is started would be
imported instead of our packages: every flow page broken, or code injected
into the worker. ``-P`` keeps Python from adding it; this module drops it too
(in case it is run without ``-P``) and hands Celery the app object, so Celery
has no module name to look up.
"""

from __future__ import annotations

import os
import sys


def safe_sys_path(path: list[str], cwd: str) -> list[str]:
    """``path`` without the working directory (``''`` or its absolute name),
    unless our own packages are installed from there (a checkout)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def unsafe(entry: str) -> bool:
        where = os.path.abspath(entry or ".")
        return where == os.path.abspath(cwd) and where != here

    return [entry for entry in path if not unsafe(entry)]


def main(argv: list[str] | None = None) -> int:
    sys.path[:] = safe_sys_path(sys.path, os.getcwd())
    from orchestra.celery import app

    return app.start(sys.argv[1:] if argv is None else argv) or 0


if __name__ == "__main__":
    sys.exit(main())
