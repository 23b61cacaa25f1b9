from django.dispatch import Signal

# Sent inside the transaction of every execution state change:
# execution, old, new, cause. SLA code listens here (the engine never imports sla).
execution_state_changed = Signal()

# Sent inside the creating transaction: execution, spec.
execution_created = Signal()
