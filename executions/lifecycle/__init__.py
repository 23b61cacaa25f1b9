"""Every change to an execution, and the rule for when it is allowed.

One module per verb (``start``, ``stop``, ``restart``, ``replay``, ``resume``,
``labels``, ``delete``) plus ``bulk`` for many at once. Each verb takes an
explicit ``actor.Actor`` (who, and through which interface) and asks
``rules`` whether it applies; ``machine`` is the only writer of state and of
history rows; ``admission`` decides who runs under a flow's concurrency
limit. The web pages, the REST API, the CLI, the engine and the sweeps all
call these functions, so the same request gets the same answer everywhere.
"""
