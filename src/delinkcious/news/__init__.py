"""The news service: per-user feeds of what the people one follows did to their links."""
