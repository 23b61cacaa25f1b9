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
