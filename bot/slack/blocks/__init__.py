"""Pure Block Kit builders: domain objects in, JSON-able dicts out; no I/O, no clock (``now`` is given)."""
