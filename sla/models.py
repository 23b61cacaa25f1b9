"""SLA rules and misses (see DESIGN §4)."""
