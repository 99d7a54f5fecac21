"""The web console: server-rendered pages over the same store, roles and audit as the API
(no JavaScript; every asset is in this package, nothing is loaded from elsewhere)."""
