"""plantguard probe: OT-safe active identity queries, separate from the passive commands.

A query (queries/, one module per protocol) is a generator of request frames; nothing it yields
leaves before the validator (validator.py) has decoded it with plantguard's own passive decoder
and found only read-only operations of the catalogue (catalogue.py). Targets come only from the
site's allow-list (targets.py); the session (session.py) sends with one connection per device, a
global rate cap and a circuit breaker, and records everything sent and received (evidence.py).
What the devices said is read back from that record by the passive decoders (results.py), so an
identity learnt by probing is decoded exactly as it would be from a capture."""
