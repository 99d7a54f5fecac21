"""Authorised PLC changes: change tickets (tickets.py: the one verdict), the PLC change timeline
the plc.* checks and the contract's plc_changes share (timeline.py), tickets in the store (store.py)."""
