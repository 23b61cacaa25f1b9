from django.dispatch import Signal

# Sent inside the saving transaction with flow, revision, spec.
flow_saved = Signal()
