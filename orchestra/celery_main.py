"""``python -P -m orchestra.celery_main worker|beat ...``: Celery's command
line with our app, never importing from the working directory.

``-P`` keeps Python from putting the working directory on ``sys.path``
(``python -m celery`` would), orchestra/celery.py removes what Celery's
Django fixup adds (orchestra/lib/syspath.py), and Celery is handed the app
object, so it has no ``-A`` module name to import from the working directory.
"""

from __future__ import annotations

import os
import sys

from orchestra.lib.syspath import safe_sys_path


def main(argv: list[str] | None = None) -> int:
    sys.path[:] = safe_sys_path(sys.path, os.getcwd())
    from orchestra.celery import app

    return app.start(sys.argv[1:] if argv is None else argv) or 0


if __name__ == "__main__":
    sys.exit(main())
