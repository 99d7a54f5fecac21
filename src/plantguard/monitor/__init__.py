"""`plantguard monitor`: the engine fed continuously from a live interface or a capture ring,
checkpoints of inventory and assessment, a baseline of what is normal, and alerts delivered to
SIEM sinks (docs/monitor.md)."""
