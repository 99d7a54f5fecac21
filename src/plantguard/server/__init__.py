"""The central server: many sensors into one store, a REST API, roles and an audit log."""
