"""Keep the working directory off ``sys.path``.

Celery's Django fixup runs ``sys.path.insert(0, os.getcwd())`` when the app
is made, and ``python -m`` puts the working directory first too: a
``flows/`` or ``orchestra/`` folder where a server is started would then be
imported instead of our packages (every flow page broken, or code run in the
worker). orchestra/celery.py removes it again right after making the app.
"""

from __future__ import annotations

import os

# The folder our packages are imported from (a checkout, or site-packages).
HOME = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def safe_sys_path(path: list[str], cwd: str) -> list[str]:
    """``path`` without the working directory (``''``, ``.`` or its absolute
    name), unless our own packages live there (a checkout started from its
    own folder)."""
    cwd = os.path.abspath(cwd)

    def unsafe(entry: str) -> bool:
        where = os.path.normpath(os.path.join(cwd, entry or "."))
        return where == cwd and where != HOME

    return [entry for entry in path if not unsafe(entry)]
