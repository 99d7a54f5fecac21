"""Practice checks: each check is a small function beside its metadata, returning PASS and FAIL
findings with evidence. Check modules are discovered automatically (see registry.py)."""
