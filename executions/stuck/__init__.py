"""Stuck executions: detection, preview-then-confirm cleanup, and the
automatic cleanup sweep, with their pages, REST endpoint and CLI command.

``detect`` decides what is stuck (for every interface); ``cleanup`` previews
and cancels exactly what was previewed, through ``lifecycle.stop``.
"""
