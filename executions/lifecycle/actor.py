"""Who changed an execution, and through which interface.

Every verb takes an ``Actor``; none has a default, so an action can never be
recorded under the wrong interface (an API call written down as a dashboard
click). Build it once, where the request comes in: ``from_request`` in views
and API endpoints, ``cli()`` in commands, ``system(name)`` in the engine,
sweeps and triggers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from executions.models import Cause
from orchestra.lib.users import os_username

VIA = {"web": Cause.USER, "api": Cause.API}
# The other way round, for the audit log; the CLI builds its actor itself.
VIA_OF = {**{cause: via for via, cause in VIA.items()}, Cause.CLI: "cli"}


@dataclass(frozen=True)
class Actor:
    cause: str
    name: str
    # The person behind a web or API request: verbs check their role with it.
    # None for the CLI (run by whoever may run commands on the server) and
    # for the system.
    user: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def from_request(cls, request, via: str) -> Actor:
        """The signed-in user of ``request``; ``via`` is "web" or "api"."""
        if via not in VIA:
            raise ValueError(f"via must be one of {', '.join(VIA)}, not {via!r}")
        user = request.user
        return cls(VIA[via], user.get_username(), user)

    @classmethod
    def cli(cls) -> Actor:
        """The operating-system user running an ``orchestra`` command."""
        return cls(Cause.CLI, os_username())

    @classmethod
    def system(cls, name: str, cause: str = Cause.SYSTEM) -> Actor:
        """A part of Orchestra itself: the executor, a sweep, a trigger, SLA."""
        return cls(cause, name)

    @property
    def via(self) -> str:
        """How it came in, as the audit log shows it."""
        return VIA_OF.get(self.cause, self.cause)


# The engine's own actors: no person, one name each in the history.
EXECUTOR = Actor.system("executor", Cause.EXECUTOR)
