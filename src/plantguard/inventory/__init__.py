"""Observations and flows -> assets with vendor, role, identity, services, zone."""
