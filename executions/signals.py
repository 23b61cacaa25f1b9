from django.dispatch import Signal

# Sent inside the transaction of every single execution state change:
# execution, old, new, cause. SLA code listens here (the engine never imports sla).
execution_state_changed = Signal()

# The bulk form, sent by ``lifecycle.machine.transition_many`` (sweeps, stuck cleanup)
# instead of one ``execution_state_changed`` per row: executions (the moved
# rows, reloaded), olds ({id: previous state}), new, cause. Every listener of
# the single signal must also listen here, with set-based work: a cleanup of
# 10,000 executions must cost a few queries per batch, not a few per row.
executions_state_changed = Signal()

# Sent inside the creating transaction: execution, spec.
execution_created = Signal()

# Sent by the executor, under the execution's lock, each time it moved a still
# running execution forward (a task run ended, started, retried ...):
# execution, spec. Listeners must be cheap for executions that need nothing
# (the SLA app checks the flow's EXECUTION_ASSERTION here, in memory first).
execution_advanced = Signal()

# Sent about every second by a process that runs executions itself and no
# Celery beat (``orchestra flows test``): execution_ids. Time-driven work
# for those executions (SLA deadlines) happens on it.
in_process_tick = Signal()
